package iam

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

// twoTasks is a MetadataSource with task A (metadata id meta-a) and task B
// (meta-b).
type twoTasks struct{}

func (twoTasks) TaskMetadata(id string) (TaskMetadata, string, bool) {
	switch id {
	case "meta-a":
		return TaskMetadata{Cluster: "c", TaskARN: taskA, Family: "secret-family-a", Containers: []ContainerMetadata{{DockerID: "da", Name: "a"}}}, "da", true
	case "meta-b":
		return TaskMetadata{Cluster: "c", TaskARN: taskB, Family: "family-b", Containers: []ContainerMetadata{{DockerID: "db", Name: "b"}}}, "db", true
	}
	return TaskMetadata{}, "", false
}

func (twoTasks) TaskStats(_ context.Context, id string) (map[string]*ContainerStats, bool) {
	if id != "meta-a" && id != "meta-b" {
		return nil, false
	}
	return map[string]*ContainerStats{"da": {ID: "da", Name: "a"}, "db": {ID: "db", Name: "b"}}, true
}

// TestHostileRequests asks the credentials and metadata endpoint for
// another task's credentials and metadata (by its id from a neighbour's
// address, from the host, with ids bent by path traversal, encoding,
// truncation, duplication, 10,000 characters), with other methods, and
// through paths that climb out of a task's metadata. Each gets the
// refusal an unknown id gets, no refusal carries a secret, the store is
// unchanged, and the owner is still served afterwards.
func TestHostileRequests(t *testing.T) {
	store := NewStore()
	store.Set(taskA, credsA)
	credsB := credsA
	credsB.ID, credsB.AccessKeyID, credsB.SecretAccessKey, credsB.SessionToken = "99999999-2222-4333-8444-555555555555", "ASIABKEY", "b-secret", "b-token"
	store.Set(taskB, credsB)
	aAddr, bAddr := netip.MustParseAddr("10.9.0.5"), netip.MustParseAddr("10.9.0.6")
	tasks := &fakeTasks{addrs: map[string][]netip.Addr{taskA: {aAddr}, taskB: {bAddr}}}
	s, audit := newTestServer(t, Options{Store: store, Tasks: tasks, Metadata: twoTasks{}})
	idA := credsA.ID
	const (
		notFoundV2 = `{"code":"InvalidIdInRequest","message":"CredentialsV2Request: Credentials not found"}`
		notFoundV1 = `{"code":"InvalidIdInRequest","message":"CredentialsV1Request: Credentials not found"}`
		noMetadata = `{"code":"NotFound","message":"TaskMetadata: unable to find container for the given id"}`
	)
	cases := []struct {
		name, method, path, from string
		status                   int
		body                     string
	}{
		{"A's credentials from B", "GET", "/v2/credentials/" + idA, "10.9.0.6:4000", 400, notFoundV2},
		{"A's credentials from B (v1)", "GET", "/v1/credentials?id=" + idA, "10.9.0.6:4000", 400, notFoundV1},
		{"A's credentials from the host", "GET", "/v2/credentials/" + idA, "127.0.0.1:4000", 400, notFoundV2},
		{"A's credentials from an unknown address", "GET", "/v2/credentials/" + idA, "10.9.0.99:4000", 400, notFoundV2},
		{"A's credentials from B as an IPv4-mapped address", "GET", "/v2/credentials/" + idA, "[::ffff:10.9.0.6]:4000", 400, notFoundV2},
		{"B's id then A's (v1)", "GET", "/v1/credentials?id=" + idA + "&id=" + credsB.ID, "10.9.0.6:4000", 400, notFoundV1},
		{"traversal to A's id", "GET", "/v2/credentials/../credentials/" + idA, "10.9.0.6:4000", 400, notFoundV2},
		{"encoded traversal to A's id", "GET", "/v2/credentials/..%2Fcredentials%2F" + idA, "10.9.0.6:4000", 400, notFoundV2},
		{"A's id with a trailing slash", "GET", "/v2/credentials/" + idA + "/", "10.9.0.5:4000", 400, notFoundV2},
		{"A's id with a NUL", "GET", "/v2/credentials/" + idA + "%00", "10.9.0.5:4000", 400, notFoundV2},
		{"a prefix of A's id", "GET", "/v2/credentials/" + idA[:8], "10.9.0.5:4000", 400, notFoundV2},
		{"A's id in upper case", "GET", "/v2/credentials/" + strings.ToUpper(idA) + "X", "10.9.0.5:4000", 400, notFoundV2},
		{"10,000-character id", "GET", "/v2/credentials/" + strings.Repeat("a", 10000), "10.9.0.5:4000", 400, notFoundV2},
		{"POST", "POST", "/v2/credentials/" + idA, "10.9.0.5:4000", 405, "method not allowed\n"},
		{"DELETE", "DELETE", "/v2/credentials/" + idA, "10.9.0.5:4000", 405, "method not allowed\n"},
		{"A's metadata from B", "GET", "/v4/meta-a/task", "10.9.0.6:4000", 404, noMetadata},
		{"A's container metadata from B (v3)", "GET", "/v3/meta-a", "10.9.0.6:4000", 404, noMetadata},
		{"A's stats from B", "GET", "/v4/meta-a/task/stats", "10.9.0.6:4000", 404, noMetadata},
		{"climb from B's metadata to A's", "GET", "/v4/meta-b/../meta-a/task", "10.9.0.6:4000", 404, noMetadata},
		{"encoded climb from B's metadata to A's", "GET", "/v4/meta-b/..%2Fmeta-a%2Ftask", "10.9.0.6:4000", 404, noMetadata},
		{"climb out of the task document", "GET", "/v4/meta-a/task/../../../etc/passwd", "10.9.0.5:4000", 404, noMetadata},
		{"climb from metadata to credentials", "GET", "/v4/meta-a/../../v2/credentials/" + idA, "10.9.0.6:4000", 404, noMetadata},
		{"empty metadata id", "GET", "/v4//task", "10.9.0.5:4000", 404, noMetadata},
		{"10,000-character metadata id", "GET", "/v4/" + strings.Repeat("m", 10000) + "/task", "10.9.0.5:4000", 404, noMetadata},
		{"metadata id with control characters", "GET", "/v4/meta-a%0A%1B/task", "10.9.0.5:4000", 404, noMetadata},
	}
	secrets := []string{credsA.SecretAccessKey, credsA.SessionToken, credsA.AccessKeyID, credsB.SecretAccessKey, "secret-family-a"}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "/", nil)
		// The target is set raw: httptest.NewRequest would clean it.
		r.RequestURI = c.path
		u, err := url.ParseRequestURI(c.path)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		r.URL = u
		r.RemoteAddr = c.from
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != c.status || w.Body.String() != c.body {
			t.Errorf("%s: %s %.80s from %s = %d %s, want %d %s", c.name, c.method, c.path, c.from, w.Code, w.Body.String(), c.status, c.body)
		}
		for _, sec := range secrets {
			if strings.Contains(w.Body.String(), sec) || strings.Contains(audit.String(), sec) {
				t.Errorf("%s: answer or audit log carries %q", c.name, sec)
			}
		}
	}
	// Over a real listener the paths arrive as the client wrote them.
	srv := httptest.NewServer(s)
	defer srv.Close()
	for _, p := range []string{"/v4/meta-b/../meta-a/task", "/v2/credentials/../../v2/credentials/" + idA} {
		if status, body := testenv.RawHTTP(t, srv.Listener.Addr().String(), "GET", p); status == http.StatusOK || strings.Contains(body, "secret") {
			t.Errorf("GET %s from loopback = %d %s, want a refusal", p, status, body)
		}
	}
	// Nothing changed: the owners are still served, and nothing else.
	if e, ok := store.Get(idA); !ok || e.Credentials != credsA || store.Len() != 2 {
		t.Errorf("the store changed: %+v %v, %d ids", e, ok, store.Len())
	}
	for _, c := range []struct{ path, from, has string }{
		{"/v2/credentials/" + idA, "10.9.0.5:1", credsA.SecretAccessKey},
		{"/v2/credentials/" + credsB.ID, "10.9.0.6:1", credsB.SecretAccessKey},
		{"/v4/meta-a/task", "10.9.0.5:1", "secret-family-a"},
	} {
		if status, body := do(t, s, c.path, c.from); status != http.StatusOK || !strings.Contains(body, c.has) {
			t.Errorf("owner's GET %s = %d %s", c.path, status, body)
		}
	}
	if n := strings.Count(audit.String(), EventSourceRefused); n != 11 {
		t.Errorf("%d %s audit lines, want 11 (one per request from a neighbour's or the host's address that named a real id):\n%s", n, EventSourceRefused, audit.String())
	}
}
