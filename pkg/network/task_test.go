package network

import (
	"os"
	"strings"
	"testing"

	"github.com/berth-dev/berth/pkg/container"
)

// TestTaskNetworkThroughHandles covers the engine's side of the
// Sandboxer (SetupNetwork, TeardownNetwork, CleanupHandles): the result
// carries the namespace, the address and the bound host port; the handle
// alone tears the sandbox down; CleanupHandles keeps the sandboxes whose
// handles it is given, removes the others and refuses a handle it cannot
// read; a request without a handle (set-up never returned) is a no-op.
func TestTaskNetworkThroughHandles(t *testing.T) {
	requireHost(t)
	tn := newTestNet(t, "tasknet", 21)
	m := tn.manager(t)
	req := container.NetworkRequest{TaskID: "task-a", Mode: "bridge", Ports: []container.PortMapping{{ContainerPort: 80, Protocol: "tcp"}}}
	res, err := m.SetupNetwork(bg(), req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.TeardownNetwork(bg(), container.NetworkRequest{TaskID: "task-a", Handle: res.Handle}) })
	if _, err := os.Stat(res.NetNSPath); err != nil || res.IPv4 == "" || len(res.Handle) == 0 {
		t.Fatalf("result %+v: want an existing namespace (%v), an address and a handle", res, err)
	}
	if len(res.Bindings) != 1 || res.Bindings[0].ContainerPort != 80 || res.Bindings[0].Protocol != "tcp" ||
		res.Bindings[0].HostPort < tn.rng.First || res.Bindings[0].HostPort > tn.rng.Last {
		t.Fatalf("bindings %+v: want container port 80/tcp on a host port in %s", res.Bindings, tn.rng)
	}
	other, err := m.SetupNetwork(bg(), container.NetworkRequest{TaskID: "task-b", Mode: "bridge"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.TeardownNetwork(bg(), container.NetworkRequest{TaskID: "task-b", Handle: other.Handle}) })

	if err := m.CleanupHandles(bg(), [][]byte{[]byte("{not json")}); err == nil || !strings.Contains(err.Error(), "decode sandbox") {
		t.Fatalf("CleanupHandles of an unreadable handle: %v, want a decode error", err)
	}
	if err := m.CleanupHandles(bg(), [][]byte{res.Handle}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(res.NetNSPath); err != nil {
		t.Fatalf("CleanupHandles removed a live sandbox: %v", err)
	}
	if _, err := os.Stat(other.NetNSPath); !os.IsNotExist(err) {
		t.Fatalf("CleanupHandles left the sandbox no handle holds: %v", err)
	}

	if err := m.TeardownNetwork(bg(), container.NetworkRequest{TaskID: "task-c"}); err != nil {
		t.Fatalf("teardown without a handle: %v", err)
	}
	if err := m.TeardownNetwork(bg(), container.NetworkRequest{TaskID: "task-a", Handle: res.Handle}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(res.NetNSPath); !os.IsNotExist(err) {
		t.Fatalf("namespace still there after TeardownNetwork: %v", err)
	}
	if a, err := tn.store.LoadPorts(); err != nil || len(a) != 0 {
		t.Fatalf("ports after teardown: %v, %v; want none", a, err)
	}
}
