package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/remotes"
	"github.com/containerd/containerd/remotes/docker"
	"golang.org/x/crypto/bcrypt"
)

// RegistryInstance is a loopback plain-HTTP docker-registry. Username and Password
// are empty for the registry without auth.
type RegistryInstance struct {
	// Host is "127.0.0.1:PORT", the registry part of image references.
	Host string
	// Username and Password are the htpasswd basic-auth credentials.
	Username string
	Password string
}

// Resolver returns a containerd resolver that talks plain HTTP to loopback
// registries and sends r's credentials, if any.
func (r *RegistryInstance) Resolver() remotes.Resolver {
	opts := []docker.RegistryOpt{docker.WithPlainHTTP(docker.MatchLocalhost)}
	if r.Username != "" {
		user, pass := r.Username, r.Password
		opts = append(opts, docker.WithAuthorizer(docker.NewDockerAuthorizer(
			docker.WithAuthCreds(func(string) (string, string, error) { return user, pass, nil }))))
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(opts...)})
}

// registryServer is a docker-registry process started by this package.
type registryServer struct {
	reg  RegistryInstance
	proc *daemon
}

// freeLoopbackPort asks the kernel for a free port on 127.0.0.1. Another
// process may take it before the registry binds; startRegistry retries.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// startRegistry starts docker-registry with filesystem storage in dir,
// listening on a free loopback port, with htpasswd auth when auth is set.
func startRegistry(ctx context.Context, dir string, auth bool) (*registryServer, error) {
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o755); err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	var reg RegistryInstance
	authConf := ""
	if auth {
		reg.Username = "berth"
		reg.Password = randomHex(12)
		hash, err := bcrypt.GenerateFromPassword([]byte(reg.Password), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("start registry: hash password: %w", err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(reg.Username+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("start registry: write htpasswd: %w", err)
		}
		authConf = fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n", htpasswd)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		reg.Host = fmt.Sprintf("127.0.0.1:%d", port)
		conf := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: %s
%s`, filepath.Join(dir, "storage"), reg.Host, randomHex(16), authConf)
		cfg := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			return nil, fmt.Errorf("start registry: write config: %w", err)
		}
		proc, err := startDaemon("docker-registry", filepath.Join(dir, "registry.log"), "docker-registry", "serve", cfg)
		if err != nil {
			return nil, err
		}
		s := &registryServer{reg: reg, proc: proc}
		if lastErr = s.waitReady(ctx, 20*time.Second); lastErr == nil {
			return s, nil
		}
		_ = proc.stop(5 * time.Second)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// waitReady polls /v2/ until the registry answers: 200 without auth, 401
// with auth (the challenge proves the auth layer is up).
func (s *registryServer) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	want := http.StatusOK
	if s.reg.Username != "" {
		want = http.StatusUnauthorized
	}
	client := &http.Client{Timeout: 2 * time.Second}
	url := "http://" + s.reg.Host + "/v2/"
	var last error
	for {
		if s.proc.exited() {
			return fmt.Errorf("docker-registry exited during start (%v); log:\n%s", s.proc.waitErr, s.proc.logTail())
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("poll registry: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			err = fmt.Errorf("GET %s: status %d, want %d", url, resp.StatusCode, want)
		}
		last = err
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("registry at %s not ready; log:\n%s", s.reg.Host, s.proc.logTail()), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends the registry process.
func (s *registryServer) stop() error {
	return s.proc.stop(5 * time.Second)
}
