package network

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/berth-dev/berth/internal/testenv"
)

// requireHost skips (or, under CI=true, fails) a test that needs root, the
// CNI plugins and the iptables and iproute2 tools.
func requireHost(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (root, CNI plugins, iptables) skipped with -short")
	}
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, bin := range []string{"iptables", "iptables-save", "ip", "busybox"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "firewall", "loopback"} {
		found := false
		for _, d := range DefaultPluginDirs {
			if _, err := os.Stat(filepath.Join(d, p)); err == nil {
				found = true
			}
		}
		if !found {
			missing = append(missing, "CNI plugin "+p)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("missing %s; run as root after scripts/test-deps.sh (installs containernetworking-plugins, iptables, iproute2, busybox-static)", strings.Join(missing, ", "))
	if testenv.InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// testNet is one test's private slice of host networking: bridge, subnet,
// IPAM dir, netns dir, name prefix and port range, all derived from n
// (1..199), so tests in this and other packages cannot collide.
type testNet struct {
	opts  Options
	store *FilePortStore
	rng   PortRange
}

// eachDatapath runs f as one subtest per datapath, with off 0 for CNI and
// 100 for the built-in one: added to the test's net index, the two never
// share a bridge, subnet, directory or port range.
func eachDatapath(t *testing.T, f func(t *testing.T, dp Datapath, off int)) {
	for _, dp := range []Datapath{DatapathCNI, DatapathBuiltin} {
		off := 0
		if dp == DatapathBuiltin {
			off = 100
		}
		t.Run(string(dp), func(t *testing.T) { f(t, dp, off) })
	}
}

// newTestNet returns test net n on the CNI datapath.
func newTestNet(t *testing.T, name string, n int) *testNet {
	t.Helper()
	return newTestNetOn(t, name, n, DatapathCNI)
}

// newTestNetOn returns test net n on datapath dp.
func newTestNetOn(t *testing.T, name string, n int, dp Datapath) *testNet {
	t.Helper()
	if dp == DatapathBuiltin {
		name += "-b"
	}
	if n < 1 || n > 199 {
		t.Fatalf("test net index %d out of 1..199", n)
	}
	// The dir is the same on every run, so that the clean-up below reclaims
	// what an earlier, interrupted run of this test left.
	dir := filepath.Join("/run/berth-nettest", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// CreateNetns made the test's own netns dir a mount point; undo that
	// once the test's sandboxes are gone (this runs before the RemoveAll).
	t.Cleanup(func() {
		if err := ReleaseNetnsDir(filepath.Join(dir, "netns")); err != nil {
			t.Errorf("namespaces left by the test: %v", err)
		}
	})
	tn := &testNet{
		store: &FilePortStore{Path: filepath.Join(dir, "ports.json")},
		// 100 ports per test in 20100-39999, away from the default dynamic range.
		rng: PortRange{First: uint16(20000 + 100*n), Last: uint16(20000 + 100*n + 99)},
	}
	tn.opts = Options{
		ConfDir:     filepath.Join(dir, "conf"),
		NetworkName: fmt.Sprintf("bt-%s", name),
		Bridge:      fmt.Sprintf("btbr%d", n),
		Subnet:      fmt.Sprintf("10.250.%d.0/24", n),
		IPAMDir:     filepath.Join(dir, "ipam"),
		NetnsDir:    filepath.Join(dir, "netns"),
		StateDir:    filepath.Join(dir, "state"),
		NamePrefix:  fmt.Sprintf("bt%d-", n),
		Datapath:    dp,
	}
	t.Cleanup(func() {
		// The bridge, its forward rules and the Sandboxer's table outlive
		// their sandboxes by design; Uninstall removes the rules and the
		// table, and must leave none of them.
		if err := tn.manager(t).Uninstall(context.Background()); err != nil {
			t.Errorf("uninstall: %v", err)
		}
		if out, err := exec.Command("nft", "list", "table", "ip", tn.nftTable()).CombinedOutput(); err == nil {
			t.Errorf("table ip %s left after Uninstall:\n%s", tn.nftTable(), out)
		}
		if save := run(t, "iptables-save", "-t", "filter"); strings.Contains(save, forwardComment(tn.opts.Bridge)) {
			t.Errorf("forward rules of %s left after Uninstall:\n%s", tn.opts.Bridge, save)
		}
		_ = exec.Command("ip", "link", "del", tn.opts.Bridge).Run()
	})
	m := tn.manager(t)
	if rep, err := m.Cleanup(bg(), nil, nil); err != nil || len(rep.Pending) > 0 {
		t.Fatalf("clean up leftovers of an earlier run: %v %+v", err, rep.Pending)
	}
	return tn
}

// nftTable is the name of the test Sandboxers' nftables table.
func (tn *testNet) nftTable() string { return strings.TrimSuffix(tn.opts.NamePrefix, "-") }

// manager returns a Sandboxer over a new allocator on the test's store, as an
// agent (re)start would build it.
func (tn *testNet) manager(t *testing.T) *Sandboxer {
	t.Helper()
	ports, err := NewPortAllocator(AllocatorOptions{Range: tn.rng, Store: tn.store})
	if err != nil {
		t.Fatal(err)
	}
	o := tn.opts
	o.Ports = ports
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startHTTPD runs busybox httpd inside netns, serving a file whose content
// is body, and stops it when the test ends.
func startHTTPD(t *testing.T, netnsPath, body string) {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net="+netnsPath, "busybox", "httpd", "-f", "-p", "80", "-h", root)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start httpd in %s: %v", netnsPath, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// httpGet fetches http://addr/ from inside netnsPath ("" = the host's netns),
// retrying for a few seconds while the server starts.
func httpGet(t *testing.T, netnsPath, addr string) string {
	t.Helper()
	var body string
	var lastErr error
	get := func() error {
		d := net.Dialer{Timeout: time.Second}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		var sb strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		resp := sb.String()
		if !strings.HasPrefix(resp, "HTTP/1.") {
			return fmt.Errorf("not an HTTP response: %q", resp)
		}
		_, body, _ = strings.Cut(resp, "\r\n\r\n")
		return nil
	}
	for i := 0; i < 50; i++ {
		if netnsPath == "" {
			lastErr = get()
		} else {
			lastErr = ns.WithNetNSPath(netnsPath, func(ns.NetNS) error { return get() })
		}
		if lastErr == nil {
			return body
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET http://%s/ from netns %q: %v", addr, netnsPath, lastErr)
	return ""
}

func bg() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	_ = cancel // the deadline bounds a hung plugin; tests are short-lived
	return ctx
}
