package runtime

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testenv/agentproc"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/logs"
)

// TestMain doubles the test binary as the shim-started logger (as the agent
// binary does in its hidden mode) and as a stand-in agent process for the
// crash test; otherwise it runs the tests under testenv.
func TestMain(m *testing.M) { os.Exit(agentproc.Main(m, agentHelperEnv, runAgentHelper)) }

// testRuntime is a Runtime on the test containerd in a fresh namespace.
type testRuntime struct {
	*Runtime
	cd     *testenv.ContainerdInstance
	ns     string
	logDir string
}

func newTestRuntime(t *testing.T, adjust func(*Options)) *testRuntime {
	t.Helper()
	cd := testenv.Containerd(t)
	ns := cd.Namespace(t)
	dir := t.TempDir()
	resolv := filepath.Join(dir, "host-resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.53\nsearch test.internal\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Address:           cd.Address,
		Namespace:         ns,
		Snapshotter:       cd.Snapshotter,
		ConnectTimeout:    30 * time.Second,
		StateDir:          filepath.Join(dir, "state"),
		HostResolvConf:    resolv,
		SystemdResolvConf: filepath.Join(dir, "absent"),
		LoggerBinary:      self,
		Registry:          RegistryOptions{HostsDir: filepath.Join(dir, "certs.d")},
	}
	if adjust != nil {
		adjust(&opts)
	}
	rt, err := New(t.Context(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &testRuntime{Runtime: rt, cd: cd, ns: ns, logDir: filepath.Join(dir, "logs")}
}

// pull pulls ref and fails the test on error.
func (tr *testRuntime) pull(t *testing.T, ref string) container.Image {
	t.Helper()
	img, err := tr.Pull(t.Context(), ref)
	if err != nil {
		t.Fatalf("Pull(%s): %v", ref, err)
	}
	return img
}

// output is what a container wrote, per stream, read back from its log.
type output struct{ stdout, stderr string }

func (tr *testRuntime) logsOf(t *testing.T, id string) output {
	t.Helper()
	var o [2]strings.Builder
	err := logs.Read(t.Context(), LogPath(tr.logDir, id), logs.ReadOptions{}, func(e logs.Entry) error {
		if e.Stream == "stderr" {
			o[1].WriteString(e.Log)
		} else {
			o[0].WriteString(e.Log)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read logs of %s: %v", id, err)
	}
	return output{o[0].String(), o[1].String()}
}

// run creates, starts and waits for a container, removes it and returns its
// exit and output. spec.ID and spec.LogPath are filled in when empty.
func (tr *testRuntime) run(t *testing.T, spec container.Spec) (ExitStatus, output) {
	t.Helper()
	id := tr.create(t, &spec)
	return tr.runExisting(t, id)
}

// runExisting starts a created container, waits for it, removes it and
// returns its exit and output.
func (tr *testRuntime) runExisting(t *testing.T, id string) (ExitStatus, output) {
	t.Helper()
	if _, err := tr.Start(t.Context(), id); err != nil {
		t.Fatalf("Start(%s): %v", id, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	x, err := tr.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait(%s): %v", id, err)
	}
	st := ExitStatus{ExitCode: uint32(x.Code), ExitedAt: x.At, OOMKilled: x.OOMKill}
	out := tr.logsOf(t, id)
	if err := tr.Remove(t.Context(), id); err != nil {
		t.Errorf("Remove(%s): %v", id, err)
	}
	return st, out
}

var idSeq struct {
	mu sync.Mutex
	n  int
}

func (tr *testRuntime) create(t *testing.T, spec *container.Spec) string {
	t.Helper()
	if spec.ID == "" {
		idSeq.mu.Lock()
		idSeq.n++
		spec.ID = fmt.Sprintf("c%d", idSeq.n)
		idSeq.mu.Unlock()
	}
	if spec.LogPath == "" {
		spec.LogPath = LogPath(tr.logDir, spec.ID)
	}
	if err := tr.Create(t.Context(), *spec); err != nil {
		t.Fatalf("Create(%s): %v", spec.ID, err)
	}
	return spec.ID
}

func waitExit(t *testing.T, ch <-chan ExitStatus, limit time.Duration) ExitStatus {
	t.Helper()
	select {
	case st, ok := <-ch:
		if !ok {
			t.Fatal("exit channel closed without a status")
		}
		return st
	case <-time.After(limit):
		t.Fatalf("container did not exit within %s", limit)
	}
	return ExitStatus{}
}

// countingProxy is a reverse proxy in front of a registry that counts
// requests by "METHOD path" and can be switched to failing or stalling.
type countingProxy struct {
	Host string
	srv  *http.Server

	mu     sync.Mutex
	counts map[string]int
	mode   string // "", "down" (503), "stall" (blobs never finish)
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &countingProxy{counts: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Host = ln.Addr().String()
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.counts[r.Method+" "+r.URL.Path]++
		mode := p.mode
		p.mu.Unlock()
		switch {
		case mode == "down":
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		case mode == "slow" && strings.Contains(r.URL.Path, "/blobs/"):
			// Moving, but slowly: 128 KiB every 400 ms.
			rp.ServeHTTP(&slowWriter{ResponseWriter: w, chunk: 128 << 10, pause: 400 * time.Millisecond}, r)
			return
		case mode == "stall" && strings.Contains(r.URL.Path, "/blobs/"):
			w.Header().Set("Content-Length", "1000000")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		rp.ServeHTTP(w, r)
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		p.srv.Close()
		<-done
	})
	return p
}

func (p *countingProxy) setMode(m string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
}

// take returns the counts so far and resets them.
func (p *countingProxy) take() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.counts
	p.counts = map[string]int{}
	return c
}

func total(c map[string]int) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// slowWriter delivers a response with a pause after every chunk bytes.
type slowWriter struct {
	http.ResponseWriter
	chunk   int
	pause   time.Duration
	written int // since the last pause
}

func (s *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), s.chunk-s.written)
		m, err := s.ResponseWriter.Write(p[:c])
		n += m
		if err != nil {
			return n, err
		}
		s.written += m
		p = p[c:]
		if s.written >= s.chunk {
			s.ResponseWriter.(http.Flusher).Flush()
			time.Sleep(s.pause)
			s.written = 0
		}
	}
	return n, nil
}
