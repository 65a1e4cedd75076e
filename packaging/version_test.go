package packaging

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// versionSeen records the agent version an endpoint was told, per place.
type versionSeen struct {
	mu   sync.Mutex
	seen map[string]string // "registration", "ACS handshake", "TCS handshake"
}

func (v *versionSeen) set(where, version string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.seen[where]; !ok {
		v.seen[where] = version
	}
}

func (v *versionSeen) get() map[string]string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string]string, len(v.seen))
	for k, s := range v.seen {
		out[k] = s
	}
	return out
}

// versionEndpoint is the least of an ECS endpoint that an agent needs to
// say its version everywhere it does: RegisterContainerInstance
// (versionInfo.agentVersion) and DiscoverPollEndpoint answered, the ACS and
// TCS websocket handshakes (query parameter agentVersion) recorded and
// refused, everything else refused.
func versionEndpoint(t *testing.T, seen *versionSeen) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/ws":
			seen.set("ACS handshake", r.URL.Query().Get("agentVersion"))
			http.Error(w, "recorded", http.StatusServiceUnavailable)
			return
		case r.Method == http.MethodGet && r.URL.Path == "/tcs/ws":
			seen.set("TCS handshake", r.URL.Query().Get("agentVersion"))
			http.Error(w, "recorded", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		switch op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonEC2ContainerServiceV20141113."); op {
		case "RegisterContainerInstance":
			var in struct {
				VersionInfo struct {
					AgentVersion string `json:"agentVersion"`
				} `json:"versionInfo"`
			}
			if err := json.Unmarshal(body, &in); err != nil {
				t.Errorf("RegisterContainerInstance body %q: %v", body, err)
			}
			seen.set("registration", in.VersionInfo.AgentVersion)
			_, _ = io.WriteString(w, `{"containerInstance":{"containerInstanceArn":"arn:aws:ecs:us-east-1:000000000000:container-instance/versiontest/0123456789abcdef"}}`)
		case "DiscoverPollEndpoint":
			_, _ = io.WriteString(w, `{"endpoint":"`+srv.URL+`","telemetryEndpoint":"`+srv.URL+`/tcs"}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"__type":"ClientException","message":"not served by this test: `+op+`"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// checkVersionOnTheWire runs the installed berth-agent against
// versionEndpoint and checks that registration, both handshakes and
// /v1/metadata carry version, the package's version.
func checkVersionOnTheWire(t *testing.T, version string) {
	h := newDevHost(t)
	seen := &versionSeen{seen: map[string]string{}}
	srv := versionEndpoint(t, seen)

	a := h.run(t, []string{
		"ECS_BACKEND_HOST=" + srv.URL, "ECS_CLUSTER=versiontest", "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDVERSIONTEST", "AWS_SECRET_ACCESS_KEY=versiontest",
		"ECS_DATADIR=" + filepath.Join(h.dir, "agent"),
		// Not the default under /var/log/ecs, which the package removal
		// step expects to find empty.
		"ECS_AUDIT_LOGFILE=" + filepath.Join(h.dir, "audit.log"),
	})

	places := []string{"registration", "ACS handshake", "TCS handshake"}
	deadline := time.Now().Add(time.Minute)
	for len(seen.get()) < len(places) {
		select {
		case <-a.Done():
			t.Fatalf("berth-agent exited before it connected: %v\n%s", a.Err(), a.Output())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("within a minute the endpoint saw the agent's version only in %v", seen.get())
		}
	}
	for _, where := range places {
		if got := seen.get()[where]; got != version {
			t.Errorf("%s: agentVersion %q, want the package version %q", where, got, version)
		}
	}

	if got, want := metadataVersion(t, h.intro), "Berth Agent - "+version; got != want {
		t.Errorf("/v1/metadata Version %q, want %q", got, want)
	}
	if code := a.Stop(t); code != 0 {
		t.Errorf("berth-agent exited %d on SIGTERM, want 0", code)
	}
}

// metadataVersion returns the Version of the agent's /v1/metadata at addr.
func metadataVersion(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v1/metadata")
	if err != nil {
		t.Fatalf("GET /v1/metadata: %v", err)
	}
	defer resp.Body.Close()
	var md struct{ Version string }
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatalf("decode /v1/metadata: %v", err)
	}
	return md.Version
}
