package network

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestInNetns: fn runs inside the namespace (it sees only that namespace's
// loopback), a listener opened there stays there, and a missing namespace
// is an error that names it.
func TestInNetns(t *testing.T) {
	testenv.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "netns")
	t.Cleanup(func() {
		if err := ReleaseNetnsDir(dir); err != nil {
			t.Error(err)
		}
	})
	path, err := CreateNetns(dir, "innetns")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = RemoveNetns(path) })
	self, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var inside []string
	var ln net.Listener
	err = InNetns(path, func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			inside = append(inside, i.Name)
		}
		if err != nil {
			return err
		}
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if strings.Join(inside, ",") != "lo" {
		t.Fatalf("interfaces inside the new namespace: %v, want only lo", inside)
	}
	// The listener is not reachable from this (the host's) namespace.
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatalf("dialled %s from the host namespace: the listener is not in the new one", ln.Addr())
	}
	if now, _ := os.Readlink("/proc/thread-self/ns/net"); now != self {
		t.Fatalf("the caller's thread moved from %s to %s", self, now)
	}
	if err := InNetns(path+"-missing", func() error { return nil }); err == nil || !strings.Contains(err.Error(), path+"-missing") {
		t.Fatalf("missing namespace: got %v", err)
	}
}
