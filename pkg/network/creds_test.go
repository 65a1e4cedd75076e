package network

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

// ruleLines returns the iptables-save lines carrying comment.
func ruleLines(t *testing.T, comment string) []string {
	t.Helper()
	var out []string
	for _, table := range []string{"nat", "filter"} {
		for _, line := range strings.Split(run(t, "iptables-save", "-t", table), "\n") {
			if strings.Contains(line, comment) {
				out = append(out, table+" "+line)
			}
		}
	}
	return out
}

func TestCredentialsRoute(t *testing.T) {
	requireHost(t)
	eachDatapath(t, func(t *testing.T, dp Datapath, off int) {
		// HostNetwork installs the host-wide nat OUTPUT redirect.
		testenv.LockHost(t, testenv.LockCredentialsRedirect)
		tn := newTestNetOn(t, "creds", 17+off, dp)
		m := tn.manager(t)

		// The agent's credentials listener, on loopback only.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "creds for %s", r.URL.Path)
		})}
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(ln) }()
		defer func() { _ = srv.Close(); <-done }()

		route := CredentialsRoute{
			Bridge:      tn.opts.Bridge, // does not exist yet: Install creates it
			ListenPort:  uint16(ln.Addr().(*net.TCPAddr).Port),
			HostNetwork: true,
			BlockIMDS:   true,
			Comment:     "berth:test-creds:" + tn.opts.Bridge,
		}
		t.Cleanup(func() { _ = route.Remove(bg()) })
		for i := 0; i < 2; i++ {
			if err := route.Install(bg()); err != nil {
				t.Fatalf("install %d: %v", i+1, err)
			}
		}
		lines := ruleLines(t, route.Comment)
		if len(lines) != 4 {
			t.Fatalf("after installing twice: want 4 rules (PREROUTING, OUTPUT, INPUT, FORWARD), once each; got %d:\n%s", len(lines), strings.Join(lines, "\n"))
		}
		for _, chain := range []string{"-A PREROUTING ", "-A OUTPUT ", "-A INPUT ", "-A FORWARD "} {
			n := 0
			for _, l := range lines {
				if strings.Contains(l, chain) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("chain %q: want 1 rule, got %d:\n%s", chain, n, strings.Join(lines, "\n"))
			}
		}

		// A bridge sandbox reaches the listener as 169.254.170.2:80.
		sb, err := m.Setup(bg(), SetupRequest{})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Teardown(bg(), *sb)
		if got := httpGet(t, sb.NetnsPath, CredentialsAddress+":80"); got != "creds for /" {
			t.Fatalf("GET 169.254.170.2:80 from a sandbox: got %q", got)
		}
		// A restart on another listener port (dev mode binds a free one)
		// without a clean stop: the old port's DNAT rules must go.
		moved := route
		moved.ListenPort = route.ListenPort + 1
		if err := moved.Install(bg()); err != nil {
			t.Fatal(err)
		}
		lines = ruleLines(t, route.Comment)
		oldDst, newDst := 0, 0
		for _, l := range lines {
			if strings.HasSuffix(l, fmt.Sprintf(" 127.0.0.1:%d", route.ListenPort)) {
				oldDst++
			}
			if strings.HasSuffix(l, fmt.Sprintf(" 127.0.0.1:%d", moved.ListenPort)) {
				newDst++
			}
		}
		if len(lines) != 4 || oldDst != 0 || newDst != 2 {
			t.Fatalf("after installing on port %d: want 4 rules, DNAT only to the new port; got:\n%s", moved.ListenPort, strings.Join(lines, "\n"))
		}
		if err := route.Install(bg()); err != nil {
			t.Fatal(err)
		}

		// Remove with the other port still finds the DNAT rules.
		if err := moved.Remove(bg()); err != nil {
			t.Fatal(err)
		}
		if err := route.Remove(bg()); err != nil {
			t.Fatalf("second remove: %v", err)
		}
		if lines := ruleLines(t, route.Comment); len(lines) != 0 {
			t.Fatalf("after remove: want no rules, got:\n%s", strings.Join(lines, "\n"))
		}
	})
}

// TestCredentialsRouteInstallIsAllOrNothing: when adding a rule fails part
// of the way through Install (here an injected iptables failure on the
// INPUT guard, after the DNAT rule went in), the rules already added are
// removed again.
func TestCredentialsRouteInstallIsAllOrNothing(t *testing.T) {
	requireHost(t)
	real, err := exec.LookPath("iptables")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wrapper := "#!/bin/sh\nprev=\nfor a in \"$@\"; do\n\tif [ \"$prev\" = -I ] && [ \"$a\" = INPUT ]; then echo 'injected failure' >&2; exit 1; fi\n\tprev=$a\ndone\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "iptables"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	bridge := fmt.Sprintf("btpf%d", os.Getpid()%100000)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	route := CredentialsRoute{Bridge: bridge, ListenPort: 1, Comment: "berth:test-creds:" + bridge}
	t.Cleanup(func() { _ = route.Remove(bg()) }) // whatever a failure left
	err = route.Install(bg())
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Install with a failing INPUT rule: %v, want the injected failure", err)
	}
	if lines := ruleLines(t, route.Comment); len(lines) != 0 {
		t.Fatalf("after the failed install, rules remain:\n%s", strings.Join(lines, "\n"))
	}
}
