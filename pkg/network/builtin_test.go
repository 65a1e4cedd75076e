package network

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestBuiltinSetupFailureUndoesEverything fails the built-in setup after
// each of its steps and checks that Setup's undo leaves nothing behind:
// no rule, veth, lease, namespace, record or port.
func TestBuiltinSetupFailureUndoesEverything(t *testing.T) {
	requireHost(t)
	tn := newTestNetOn(t, "bfail", 118, DatapathBuiltin)
	m := tn.manager(t)
	before := snapshot(t, tn)
	for _, step := range []string{stepLease, stepVeth, stepNft} {
		m.stepHook = func(s string) error {
			if s == step {
				return errors.New("injected failure")
			}
			return nil
		}
		_, err := m.Setup(bg(), SetupRequest{Ports: []PortRequest{{ContainerPort: 80}}})
		if err == nil || !strings.Contains(err.Error(), step+": injected failure") {
			t.Fatalf("failure after %s: want the injected failure, got %v", step, err)
		}
		if after := snapshot(t, tn); before.String() != after.String() {
			t.Fatalf("setup failed after %s left state behind:\nbefore:\n%s\nafter:\n%s", step, before, after)
		}
		if got := m.Ports().Allocations(); len(got) != 0 {
			t.Fatalf("failure after %s: ports still held: %+v", step, got)
		}
		entries, _ := os.ReadDir(tn.opts.NetnsDir)
		recs, _ := os.ReadDir(tn.opts.StateDir)
		if len(entries) != 0 || len(recs) != 0 {
			t.Fatalf("failure after %s: netns files %v and records %v left", step, entries, recs)
		}
	}
}

// TestBuiltinKill9DuringSetup kills the "agent" (a child process) with
// SIGKILL after each step of the built-in setup and checks that the next
// start's Cleanup leaves nothing: the lease, veth, DNAT rules, namespace,
// record and ports of the half-made sandbox all go.
func TestBuiltinKill9DuringSetup(t *testing.T) {
	requireHost(t)
	tn := newTestNetOn(t, "bkill", 122, DatapathBuiltin)
	before := snapshot(t, tn)
	for _, step := range []string{stepLease, stepVeth, stepNft} {
		out, err := crashChild(t, tn, tn.opts, step).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("the child was to be killed after %s; it ended with %v:\n%s", step, err, out)
		}
		during := snapshot(t, tn)
		if len(during.ipam) != 1 {
			t.Fatalf("killed after %s: want the child's lease; got\n%s", step, during)
		}
		if step != stepLease && len(during.links) != 1 {
			t.Fatalf("killed after %s: want the child's veth on the bridge; got\n%s", step, during)
		}
		if step == stepNft && len(during.nft) != 2 {
			t.Fatalf("killed after %s: want the child's two DNAT rules; got\n%s", step, during)
		}
		m := tn.manager(t)
		rep, err := m.Cleanup(bg(), nil, nil)
		if err != nil || len(rep.Pending) != 0 {
			t.Fatalf("clean-up after a kill after %s: %v %+v", step, err, rep.Pending)
		}
		if len(rep.TornDown) != 1 {
			t.Fatalf("killed after %s: want the crashed sandbox torn down, got %+v", step, rep)
		}
		if after := snapshot(t, tn); before.String() != after.String() {
			t.Fatalf("killed after %s, clean-up left state behind:\nbefore:\n%s\nafter:\n%s", step, before, after)
		}
		if got := m.Ports().Allocations(); len(got) != 0 {
			t.Fatalf("killed after %s: ports still held: %+v", step, got)
		}
		if entries, _ := os.ReadDir(tn.opts.NetnsDir); len(entries) != 0 {
			t.Fatalf("killed after %s: netns files left: %v", step, entries)
		}
	}
}

// TestBuiltinTwoOwnersKeepApart runs two Sandboxers with different owners on
// one bridge, subnet and set of directories, as two agents on one host
// with default settings do: each has its own nftables table, and the
// clean-up of one (with nothing live) removes nothing of the other's.
func TestBuiltinTwoOwnersKeepApart(t *testing.T) {
	requireHost(t)
	tn := newTestNetOn(t, "bowners", 123, DatapathBuiltin)
	managers := map[string]*Sandboxer{}
	sbs := map[string]*Sandbox{}
	for _, owner := range []string{"aaaa1111", "bbbb2222"} {
		o := tn.opts
		o.Owner = owner
		ports, err := NewPortAllocator(AllocatorOptions{Range: tn.rng, Store: &FilePortStore{Path: tn.store.Path + "." + owner}})
		if err != nil {
			t.Fatal(err)
		}
		o.Ports = ports
		m, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		table := m.nft.table.Name
		t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip", table).Run() })
		// Different host ports: the allocators are the agents' own.
		sb, err := m.Setup(bg(), SetupRequest{Ports: []PortRequest{{ContainerPort: 80, HostPort: tn.rng.First + uint16(len(managers))}}})
		if err != nil {
			t.Fatal(err)
		}
		managers[owner], sbs[owner] = m, sb
	}
	a, b := managers["aaaa1111"], managers["bbbb2222"]
	if a.nft.table.Name == b.nft.table.Name {
		t.Fatalf("both owners use nftables table %s", a.nft.table.Name)
	}
	bRules := nftRulesOf(t, b.nft.table.Name)
	if len(bRules) != 1 || !strings.Contains(bRules[0], sbs["bbbb2222"].ID) {
		t.Fatalf("owner b's table: want its one rule, got %v", bRules)
	}
	// a restarts having lost track of everything: its clean-up takes its
	// own sandbox and nothing of b's.
	rep, err := a.Cleanup(bg(), nil, nil)
	if err != nil || len(rep.Pending) != 0 {
		t.Fatalf("clean-up of a: %v %+v", err, rep.Pending)
	}
	if len(rep.TornDown) != 1 || rep.TornDown[0] != sbs["aaaa1111"].ID {
		t.Fatalf("clean-up of a: want only its own sandbox torn down, got %+v", rep)
	}
	if got := nftRulesOf(t, a.nft.table.Name); len(got) != 0 {
		t.Fatalf("owner a's rules left: %v", got)
	}
	if got := nftRulesOf(t, b.nft.table.Name); fmt.Sprint(got) != fmt.Sprint(bRules) {
		t.Fatalf("owner b's rules changed by a's clean-up: want %v, got %v", bRules, got)
	}
	sbB := sbs["bbbb2222"]
	if _, err := os.Stat(sbB.NetnsPath); err != nil {
		t.Fatalf("owner b's netns gone after a's clean-up: %v", err)
	}
	if holder := a.leaseHolder(sbB.IP); holder != sbB.ID {
		t.Fatalf("owner b's lease of %s: want %s, got %q", sbB.IP, sbB.ID, holder)
	}
	if _, err := os.Stat("/sys/class/net/" + hostVethName(sbB.ID)); err != nil {
		t.Fatalf("owner b's veth gone after a's clean-up: %v", err)
	}
	if err := b.Teardown(bg(), *sbB); err != nil {
		t.Fatal(err)
	}
	if got := nftRulesOf(t, b.nft.table.Name); len(got) != 0 {
		t.Fatalf("owner b's rules left after its teardown: %v", got)
	}
}

// TestBuiltinTeardownForgetsFlows: a UDP client sending to a sandbox's host
// port has a conntrack entry that carries the DNAT to the sandbox's
// address; teardown deletes it, so the client's next datagram is not sent
// to an address that is gone (or leased to the next sandbox).
func TestBuiltinTeardownForgetsFlows(t *testing.T) {
	requireHost(t)
	tn := newTestNetOn(t, "bflows", 124, DatapathBuiltin)
	m := tn.manager(t)
	sb, err := m.Setup(bg(), SetupRequest{Ports: []PortRequest{{ContainerPort: 53, Protocol: UDP}}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", sb.Bindings[0].HostPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("query")); err != nil {
		t.Fatal(err)
	}
	flows := func() int {
		entries, err := netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
		if err != nil {
			t.Fatalf("list conntrack table: %v", err)
		}
		n := 0
		for _, e := range entries {
			if e.Reverse.SrcIP.String() == sb.IP {
				n++
			}
		}
		return n
	}
	if n := flows(); n == 0 {
		t.Fatalf("no conntrack entry towards %s after a datagram to its host port", sb.IP)
	}
	if err := m.Teardown(bg(), *sb); err != nil {
		t.Fatal(err)
	}
	if n := flows(); n != 0 {
		t.Fatalf("%d conntrack entries towards %s left after teardown", n, sb.IP)
	}
}
