package execrole

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/ecrauth"
	"github.com/berth-dev/berth/pkg/iam"
)

const (
	bridgeTask = "arn:aws:ecs:us-east-1:123456789012:task/c/bridge1"
	hostTask   = "arn:aws:ecs:us-east-1:123456789012:task/c/host1"
)

// TestRegistryLoginsUseExecutionRole: an ECR-style image is pulled with a
// GetAuthorizationToken login signed with the task's execution role; other
// registries get no login; a task without one (and no instance
// credentials) gets an error.
func TestRegistryLoginsUseExecutionRole(t *testing.T) {
	var signedWith string
	endpoint := httptestECR(t, &signedWith)
	p, err := ecrauth.New(ecrauth.Options{Registries: []ecrauth.Registry{{Host: "reg.lab:5000", Endpoint: endpoint}}})
	if err != nil {
		t.Fatal(err)
	}
	store := iam.NewStore()
	store.Set(bridgeTask, iam.Credentials{ID: "exec-id", RoleArn: "arn:aws:iam::1:role/exec", AccessKeyID: "ASIAEXECGLUE",
		SecretAccessKey: "s", RoleType: api.RoleTypeTaskExecution})
	ra := &RegistryLogins{Roles: store, Provider: p}
	c, err := ra.PullCredentials(context.Background(), bridgeTask, "reg.lab:5000/app:1")
	if err != nil || c == nil || c.Username != "AWS" || c.Password != "pw" {
		t.Fatalf("login: %+v %v", c, err)
	}
	if !strings.Contains(signedWith, "Credential=ASIAEXECGLUE/") {
		t.Fatalf("not signed with the execution role: %q", signedWith)
	}
	if c, err := ra.PullCredentials(context.Background(), bridgeTask, "docker.io/library/busybox"); c != nil || err != nil {
		t.Fatalf("non-ECR image: %+v %v", c, err)
	}
	if _, err := ra.PullCredentials(context.Background(), hostTask, "reg.lab:5000/app:1"); err == nil {
		t.Fatal("task without execution role and no instance credentials got a login")
	}
}

// httptestECR serves GetAuthorizationToken with the login AWS:pw.
func httptestECR(t *testing.T, signedWith *string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*signedWith = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = io.WriteString(w, `{"authorizationData":[{"authorizationToken":"QVdTOnB3","expiresAt":4102444800}]}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
