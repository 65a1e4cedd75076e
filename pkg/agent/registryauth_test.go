package agent_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
)

// execRoleECR answers GetAuthorizationToken (AWS JSON 1.1) with the auth
// registry's login, but only to calls signed with the execution role's key.
type execRoleECR struct {
	keyID, user, pass string
	granted, refused  atomic.Int32
}

func (f *execRoleECR) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if !strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".GetAuthorizationToken") {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"__type":"UnknownOperationException","message":"unknown operation"}`)
		return
	}
	if !strings.Contains(r.Header.Get("Authorization"), "Credential="+f.keyID+"/") {
		f.refused.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"__type":"AccessDeniedException","message":"not the execution role"}`)
		return
	}
	f.granted.Add(1)
	tok := base64.StdEncoding.EncodeToString([]byte(f.user + ":" + f.pass))
	fmt.Fprintf(w, `{"authorizationData":[{"authorizationToken":%q,"expiresAt":%d,"proxyEndpoint":"http://registry"}]}`,
		tok, time.Now().Add(12*time.Hour).Unix())
}

// TestExecutionRolePull pulls a task's image from the real registry with
// basic auth, configured as ECR-compatible (BERTH_ECR_REGISTRIES): the
// login comes from a GetAuthorizationToken endpoint that only answers the
// task's execution role. Without the role the pull fails.
func TestExecutionRolePull(t *testing.T) {
	h := newHostEnv(t)
	areg := testenv.AuthRegistry(t)
	img := testenv.BuildImage(t, areg, "agent/execrole", testenv.ImageSpec{Cmd: []string{"/bin/sleep", "600"}})
	ecr := &execRoleECR{keyID: "ASIAEXECROLEPULL", user: areg.Username, pass: areg.Password}
	srv := httptest.NewServer(ecr)
	defer srv.Close()

	cfg := h.config(t)
	withTaskRoles(t, cfg)
	cfg.Images.ECRRegistries = map[string]string{areg.Host: srv.URL}
	a, _ := h.startAgent(t, cfg)

	task := func(arn string, exec *api.IAMRoleCredentials, desired string) *api.PayloadMessage {
		return &api.PayloadMessage{MessageID: randomHex(8), ClusterArn: "arn:aws:ecs:us-east-1:000000000000:cluster/lab",
			Tasks: []*api.Task{{Arn: arn, Family: "execrole", Version: "1", DesiredStatus: desired, NetworkMode: "none",
				ExecutionRoleCredentials: exec,
				Containers:               []*api.Container{{Name: "app", Image: img.Ref, Essential: true, Memory: 32}}}}}
	}
	exec := &api.IAMRoleCredentials{CredentialsID: "exec-" + randomHex(8), RoleArn: "arn:aws:iam::000000000000:role/exec",
		AccessKeyID: ecr.keyID, SecretAccessKey: "exec-secret", SessionToken: "exec-token",
		Expiration: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}

	withRole := "arn:aws:ecs:us-east-1:000000000000:task/lab/" + randomHex(16)
	handle(t, a, task(withRole, exec, "RUNNING"))
	waitTask(t, a, withRole, "RUNNING", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskRunning })
	if ecr.granted.Load() == 0 {
		t.Fatal("the task ran but GetAuthorizationToken was never called with the execution role")
	}
	handle(t, a, task(withRole, nil, "STOPPED"))
	waitTask(t, a, withRole, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })

	// Without an execution role the agent's own key signs the call, which
	// the endpoint refuses: no login, no image.
	noRole := "arn:aws:ecs:us-east-1:000000000000:task/lab/" + randomHex(16)
	handle(t, a, task(noRole, nil, "RUNNING"))
	st := waitTask(t, a, noRole, "STOPPED", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
	if r := container(st, "app").Reason; !strings.HasPrefix(r, "CannotPullContainerError: ") {
		t.Fatalf("container reason %q, want CannotPullContainerError", r)
	}
	if ecr.refused.Load() == 0 {
		t.Fatal("the pull without a role failed without asking GetAuthorizationToken")
	}
}
