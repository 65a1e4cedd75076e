package ecrauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/runtime"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// fakeECR answers GetAuthorizationToken (AWS JSON 1.1) with a fixed login
// and records who signed each call.
type fakeECR struct {
	user, pass string
	expires    time.Time

	mu    sync.Mutex
	auths []string
	ids   [][]string
}

func (f *fakeECR) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".GetAuthorizationToken") {
		w.WriteHeader(400)
		fmt.Fprint(w, `{"__type":"UnknownOperationException","message":"no"}`)
		return
	}
	var in struct {
		RegistryIds []string `json:"registryIds"`
	}
	_ = json.NewDecoder(r.Body).Decode(&in)
	f.mu.Lock()
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	f.ids = append(f.ids, in.RegistryIds)
	f.mu.Unlock()
	tok := base64.StdEncoding.EncodeToString([]byte(f.user + ":" + f.pass))
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	fmt.Fprintf(w, `{"authorizationData":[{"authorizationToken":%q,"expiresAt":%d,"proxyEndpoint":"http://registry"}]}`, tok, f.expires.Unix())
}

func (f *fakeECR) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auths...)
}

func TestMatch(t *testing.T) {
	p, err := New(Options{Registries: []Registry{{Host: "reg.lab:5000", Endpoint: "http://127.0.0.1:1", RegistryID: "42"}}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ref                string
		ok                 bool
		region, registryID string
	}{
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1", true, "eu-west-1", "123456789012"},
		{"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/app", true, "us-gov-west-1", "123456789012"},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app", true, "cn-north-1", "123456789012"},
		{"reg.lab:5000/app:2", true, DefaultRegion, "42"},
		{"12345.dkr.ecr.eu-west-1.amazonaws.com/app", false, "", ""},
		{"docker.io/library/busybox", false, "", ""},
		{"busybox", false, "", ""},
		{"library/busybox:1", false, "", ""},
	}
	for _, c := range cases {
		tg, ok := p.match(c.ref)
		if ok != c.ok || tg.region != c.region || tg.registryID != c.registryID {
			t.Errorf("%s: want %v %q %q, got %v %+v", c.ref, c.ok, c.region, c.registryID, ok, tg)
		}
	}
	if _, err := New(Options{Registries: []Registry{{Host: "x"}}}); err == nil {
		t.Error("registry without endpoint accepted")
	}
}

// TestPullWithExecutionRoleToken pulls from the real registry with basic
// auth, whose login only the GetAuthorizationToken endpoint hands out.
func TestPullWithExecutionRoleToken(t *testing.T) {
	ctx := context.Background()
	areg := testenv.AuthRegistry(t)
	img := testenv.BuildImage(t, areg, "ecrauth/app", testenv.ImageSpec{Cmd: []string{"/bin/true"}})
	now := time.Now()
	fake := &fakeECR{user: areg.Username, pass: areg.Password, expires: now.Add(12 * time.Hour)}
	api := httptest.NewServer(fake)
	defer api.Close()
	clock := now
	p, err := New(Options{
		Registries:          []Registry{{Host: areg.Host, Endpoint: api.URL, Region: "eu-central-1"}},
		InstanceCredentials: credentials.NewStaticCredentialsProvider("AKIAINSTANCE", "instance-secret", ""),
		Now:                 func() time.Time { return clock },
	})
	if err != nil {
		t.Fatal(err)
	}

	cd := testenv.Containerd(t)
	dir := t.TempDir()
	rt, err := runtime.New(ctx, runtime.Options{
		Address: cd.Address, Namespace: cd.Namespace(t), Snapshotter: cd.Snapshotter,
		ConnectTimeout: 30 * time.Second, StateDir: filepath.Join(dir, "state"),
		Registry:     runtime.RegistryOptions{HostsDir: filepath.Join(dir, "certs.d")},
		PullBehavior: runtime.PullAlways,
	})
	if err != nil {
		t.Fatalf("runtime: %v", err)
	}
	defer rt.Close()

	if _, err := rt.Pull(ctx, img.Ref); err == nil {
		t.Fatal("pull without a token succeeded; the registry does not demand auth and the test proves nothing")
	}
	exec := &RoleCredentials{RoleArn: "arn:aws:iam::123456789012:role/exec", AccessKeyID: "ASIAEXECROLE", SecretAccessKey: "exec-secret", SessionToken: "exec-token"}
	a, ok, err := p.Auth(ctx, img.Ref, exec)
	if err != nil || !ok {
		t.Fatalf("auth: %v %v", ok, err)
	}
	if a.Username != areg.Username || a.Password != areg.Password || a.ExpiresAt.Unix() != fake.expires.Unix() {
		t.Fatalf("auth: got user %q, expiry %v", a.Username, a.ExpiresAt)
	}
	calls := fake.calls()
	if len(calls) != 1 || !strings.Contains(calls[0], "Credential=ASIAEXECROLE/") || !strings.Contains(calls[0], "/eu-central-1/ecr/aws4_request") {
		t.Fatalf("GetAuthorizationToken not signed with the execution role for eu-central-1: %q", calls)
	}
	pulled, err := rt.PullWith(ctx, img.Ref, runtime.PullOptions{Credentials: &runtime.Credentials{Username: a.Username, Password: a.Password}})
	if err != nil {
		t.Fatalf("pull with the token: %v", err)
	}
	if pulled.Digest != img.Digest.String() {
		t.Fatalf("pulled digest %s, pushed %s", pulled.Digest, img.Digest)
	}

	// Cached until shortly before expiry, then fetched again.
	if _, _, err := p.Auth(ctx, img.Ref, exec); err != nil || len(fake.calls()) != 1 {
		t.Fatalf("second auth: want the cached token, got %d calls (%v)", len(fake.calls()), err)
	}
	clock = now.Add(12*time.Hour - 10*time.Minute)
	if _, _, err := p.Auth(ctx, img.Ref, exec); err != nil || len(fake.calls()) != 2 {
		t.Fatalf("auth near expiry: want a fresh token, got %d calls (%v)", len(fake.calls()), err)
	}
	// No execution role: the instance's credentials.
	if _, _, err := p.Auth(ctx, img.Ref, nil); err != nil {
		t.Fatal(err)
	}
	if c := fake.calls(); len(c) != 3 || !strings.Contains(c[2], "Credential=AKIAINSTANCE/") {
		t.Fatalf("instance credentials not used: %q", c)
	}
	// Not ECR: nothing to do.
	if _, ok, err := p.Auth(ctx, "docker.io/library/busybox:latest", exec); ok || err != nil {
		t.Fatalf("docker hub image: want not ECR, got %v %v", ok, err)
	}
	bare, _ := New(Options{Registries: []Registry{{Host: areg.Host, Endpoint: api.URL}}})
	if _, ok, err := bare.Auth(ctx, img.Ref, nil); !ok || !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("no role and no instance credentials: want ErrNoCredentials, got %v %v", ok, err)
	}
}
