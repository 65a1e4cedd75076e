package runtime

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/container"
)

func TestPullWithEachCredentialForm(t *testing.T) {
	areg := testenv.AuthRegistry(t)
	img := testenv.BuildImage(t, areg, "rt/auth", testenv.ImageSpec{Cmd: []string{"/bin/true"}})
	user, pass := areg.Username, areg.Password
	b64 := func(u, p string) string { return base64.StdEncoding.EncodeToString([]byte(u + ":" + p)) }
	dockerJSON := func(u, p string) string {
		b, _ := json.Marshal(map[string]any{"http://" + areg.Host + "/v2/": map[string]string{"username": u, "password": p, "email": "x@example.com"}})
		return string(b)
	}
	dockercfgJSON := func(u, p string) string {
		b, _ := json.Marshal(map[string]any{areg.Host: map[string]string{"auth": b64(u, p), "email": "x@example.com"}})
		return string(b)
	}
	writeConfig := func(t *testing.T, u, p string) string {
		path := filepath.Join(t.TempDir(), "config.json")
		b, _ := json.Marshal(map[string]any{"auths": map[string]any{areg.Host: map[string]string{"auth": b64(u, p)}}})
		os.WriteFile(path, b, 0o600)
		return path
	}
	type form struct {
		name  string
		opts  func(t *testing.T, u, p string) func(*Options)
		creds func(u, p string) *Credentials
	}
	forms := []form{
		{name: "per-pull credentials", creds: func(u, p string) *Credentials { return &Credentials{Username: u, Password: p} }},
		{name: "engine auth docker", opts: func(t *testing.T, u, p string) func(*Options) {
			a, err := ParseEngineAuth(EngineAuthDocker, dockerJSON(u, p))
			if err != nil {
				t.Fatal(err)
			}
			return func(o *Options) { o.Registry.EngineAuth = a }
		}},
		{name: "engine auth dockercfg", opts: func(t *testing.T, u, p string) func(*Options) {
			a, err := ParseEngineAuth(EngineAuthDockercfg, dockercfgJSON(u, p))
			if err != nil {
				t.Fatal(err)
			}
			return func(o *Options) { o.Registry.EngineAuth = a }
		}},
		{name: "docker config.json", opts: func(t *testing.T, u, p string) func(*Options) {
			path := writeConfig(t, u, p)
			return func(o *Options) { o.Registry.DockerConfigPath = path }
		}},
	}
	for _, f := range forms {
		for _, right := range []bool{true, false} {
			name := f.name + "/right"
			p := pass
			if !right {
				name, p = f.name+"/wrong", pass+"-wrong"
			}
			t.Run(name, func(t *testing.T) {
				var adjust func(*Options)
				if f.opts != nil {
					adjust = f.opts(t, user, p)
				}
				tr := newTestRuntime(t, adjust)
				var po PullOptions
				if f.creds != nil {
					po.Credentials = f.creds(user, p)
				}
				got, err := tr.PullWith(t.Context(), img.Ref, po)
				if right {
					if err != nil {
						t.Fatalf("Pull with right credentials: %v", err)
					}
					if got.Digest != img.Digest.String() {
						t.Errorf("recorded digest %s, registry has %s", got.Digest, img.Digest)
					}
					return
				}
				if !errors.Is(err, ErrUnauthorized) {
					t.Fatalf("Pull with wrong credentials: %v, want ErrUnauthorized", err)
				}
			})
		}
	}
	t.Run("no credentials", func(t *testing.T) {
		tr := newTestRuntime(t, nil)
		if _, err := tr.PullWith(t.Context(), img.Ref, PullOptions{}); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("anonymous Pull: %v, want ErrUnauthorized", err)
		}
	})
}

func TestConcurrentPullsShareOneFetch(t *testing.T) {
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/shared", testenv.ImageSpec{
		Cmd:   []string{"/bin/true"},
		Files: []testenv.File{{Path: "/data", Mode: 0o644, Data: []byte(strings.Repeat("d", 1<<20))}},
	})
	proxy := newCountingProxy(t, reg.Host)
	ref := proxy.Host + strings.TrimPrefix(img.Ref, reg.Host)
	tr := newTestRuntime(t, nil)

	const n = 10
	var wg sync.WaitGroup
	results := make([]container.Image, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = tr.PullWith(t.Context(), ref, PullOptions{Behavior: PullAlways})
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("pull %d: %v", i, errs[i])
		}
		if results[i].Digest != img.Digest.String() {
			t.Errorf("pull %d digest %s, want %s", i, results[i].Digest, img.Digest)
		}
	}
	counts := proxy.take()
	blobs := 0
	for req, c := range counts {
		if c != 1 && req != "GET /v2/" {
			t.Errorf("%s fetched %d times by %d concurrent pulls, want once", req, c, n)
		}
		if strings.HasPrefix(req, "GET ") && strings.Contains(req, "/blobs/") {
			blobs++
		}
	}
	// Config, files layer and base layer; the base layer (busybox, in every
	// test image) is not fetched when another test's pull put it in
	// containerd's content store, which namespaces share, just before.
	if blobs < 2 || blobs > 3 {
		t.Errorf("blob fetches = %d, want the config, the files layer and at most the base layer; all requests: %v", blobs, counts)
	}
	t.Logf("registry requests for %d concurrent pulls: %v", n, counts)
}

func TestPullBehaviorsAndFailureClasses(t *testing.T) {
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/behave", testenv.ImageSpec{Cmd: []string{"/bin/true"}})
	proxy := newCountingProxy(t, reg.Host)
	ref := proxy.Host + strings.TrimPrefix(img.Ref, reg.Host)
	tr := newTestRuntime(t, func(o *Options) { o.PullInactivityTimeout = time.Second })

	if _, err := tr.PullWith(t.Context(), ref, PullOptions{Behavior: PullOnce}); err != nil {
		t.Fatal(err)
	}
	if total(proxy.take()) == 0 {
		t.Fatal("first pull made no registry requests")
	}
	for _, b := range []PullBehavior{PullOnce, PullPreferCached} {
		got, err := tr.PullWith(t.Context(), ref, PullOptions{Behavior: b})
		if err != nil || !got.Cached {
			t.Errorf("%s after a pull: %+v, %v; want the cached image", b, got, err)
		}
		if c := proxy.take(); total(c) != 0 {
			t.Errorf("%s contacted the registry: %v", b, c)
		}
	}
	proxy.setMode("down")
	if got, err := tr.PullWith(t.Context(), ref, PullOptions{Behavior: PullDefault}); err != nil || !got.Cached || got.PullError == nil {
		t.Errorf("default with registry down: %+v, %v; want the cached image and the pull error", got, err)
	}
	if _, err := tr.PullWith(t.Context(), ref, PullOptions{Behavior: PullAlways}); err == nil {
		t.Error("always with registry down succeeded")
	}
	proxy.setMode("")
	if _, err := tr.PullWith(t.Context(), proxy.Host+"/rt/does-not-exist:1", PullOptions{}); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("missing image: %v, want ErrImageNotFound", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	if _, err := tr.PullWith(t.Context(), closed+"/rt/x:1", PullOptions{}); !errors.Is(err, ErrRegistryUnreachable) {
		t.Errorf("closed port: %v, want ErrRegistryUnreachable", err)
	}
	// A stalled transfer is cancelled by the inactivity timeout.
	stallImg := testenv.BuildImage(t, reg, "rt/stall", testenv.ImageSpec{Cmd: []string{"/bin/false"}, Env: []string{"STALL=1"}})
	proxy.setMode("stall")
	if _, err := tr.PullWith(t.Context(), proxy.Host+strings.TrimPrefix(stallImg.Ref, reg.Host), PullOptions{}); !errors.Is(err, ErrPullTimeout) {
		t.Errorf("stalled pull: %v, want ErrPullTimeout", err)
	}
}

func TestSlowPullsAndTimeouts(t *testing.T) {
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/slow", testenv.ImageSpec{
		Cmd:   []string{"/bin/true"},
		Files: []testenv.File{{Path: "/data", Mode: 0o644, Data: randomBytes(512 << 10)}},
	})
	proxy := newCountingProxy(t, reg.Host)
	proxy.setMode("slow")
	ref := proxy.Host + strings.TrimPrefix(img.Ref, reg.Host)

	// Pauses of 400 ms stay under a 1.5 s inactivity timeout even though
	// the whole pull takes longer than that.
	tr := newTestRuntime(t, func(o *Options) { o.PullInactivityTimeout = 1500 * time.Millisecond })
	began := time.Now()
	if _, err := tr.PullWith(t.Context(), ref, PullOptions{}); err != nil {
		t.Fatalf("slow but moving pull: %v", err)
	}
	took := time.Since(began)
	t.Logf("slow pull took %s", took)
	if took < 1500*time.Millisecond {
		t.Fatalf("pull took %s; the proxy did not slow it enough for the test to mean anything", took)
	}
	// The overall timeout still bounds it. (Another image: containerd shares
	// content between namespaces, so the first one would not be fetched again.)
	img2 := testenv.BuildImage(t, reg, "rt/slow2", testenv.ImageSpec{
		Cmd:   []string{"/bin/true"},
		Files: []testenv.File{{Path: "/data", Mode: 0o644, Data: randomBytes(1 << 20)}},
	})
	tr2 := newTestRuntime(t, func(o *Options) { o.PullTimeout = time.Second })
	defer func(began time.Time) { t.Logf("timed-out pull took %s", time.Since(began)) }(time.Now())
	if _, err := tr2.PullWith(t.Context(), proxy.Host+strings.TrimPrefix(img2.Ref, reg.Host), PullOptions{}); !errors.Is(err, ErrPullTimeout) {
		t.Errorf("pull past PullTimeout: %v, want ErrPullTimeout", err)
	}
}

func TestCertsDirMirror(t *testing.T) {
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/mirrored", testenv.ImageSpec{Cmd: []string{"/bin/true"}})
	proxy := newCountingProxy(t, reg.Host)
	tr := newTestRuntime(t, nil)
	// "mirror.invalid" only exists through its hosts.toml, whose server and
	// mirror are both the loopback proxy: no traffic leaves the host.
	dir := filepath.Join(tr.opts.Registry.HostsDir, "mirror.invalid")
	os.MkdirAll(dir, 0o755)
	toml := `server = "http://` + proxy.Host + `"

[host."http://` + proxy.Host + `"]
  capabilities = ["pull", "resolve"]
`
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := tr.PullWith(t.Context(), "mirror.invalid"+strings.TrimPrefix(img.Ref, reg.Host), PullOptions{})
	if err != nil {
		t.Fatalf("pull through certs.d mirror: %v", err)
	}
	if got.Digest != img.Digest.String() {
		t.Errorf("digest %s, want %s", got.Digest, img.Digest)
	}
	if total(proxy.take()) == 0 {
		t.Error("the mirror configured in hosts.toml was not used")
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
