package network

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// noListeners is a Listeners func for unit tests of pure allocation logic.
func noListeners(Protocol) (map[uint16]bool, error) { return map[uint16]bool{}, nil }

func TestAllocateRoundRobinSkipsReservedHeldAndListening(t *testing.T) {
	a, err := NewPortAllocator(AllocatorOptions{
		Range:       PortRange{First: 100, Last: 109},
		ReservedTCP: []uint16{101},
		Listeners: func(p Protocol) (map[uint16]bool, error) {
			if p == TCP {
				return map[uint16]bool{102: true}, nil
			}
			return map[uint16]bool{}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Allocate("static", []PortRequest{{ContainerPort: 1, HostPort: 104}}); err != nil {
		t.Fatal(err)
	}
	var got []uint16
	for i := 0; i < 6; i++ {
		b, err := a.Allocate(fmt.Sprintf("o%d", i), []PortRequest{{ContainerPort: 80}})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b[0].HostPort)
	}
	want := []uint16{100, 103, 105, 106, 107, 108}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dynamic ports: want %v (skipping reserved 101, listening 102, held 104), got %v", want, got)
	}
	// UDP is a separate space with its own cursor: 100, then 101 (reserved
	// for TCP only) and 102 (a TCP listener) are free for it.
	var udp []uint16
	for i := 0; i < 3; i++ {
		b, err := a.Allocate(fmt.Sprintf("u%d", i), []PortRequest{{ContainerPort: 53, Protocol: UDP}})
		if err != nil {
			t.Fatal(err)
		}
		udp = append(udp, b[0].HostPort)
	}
	if fmt.Sprint(udp) != "[100 101 102]" {
		t.Fatalf("udp ports: want [100 101 102], got %v", udp)
	}
	// Round robin wraps and reuses released ports only after the cursor passes them.
	if err := a.Release("o0"); err != nil {
		t.Fatal(err)
	}
	b, err := a.Allocate("x", []PortRequest{{ContainerPort: 80}})
	if err != nil {
		t.Fatal(err)
	}
	if b[0].HostPort != 109 {
		t.Fatalf("next tcp port: want 109 (round robin continues), got %d", b[0].HostPort)
	}
	b, err = a.Allocate("y", []PortRequest{{ContainerPort: 80}})
	if err != nil {
		t.Fatal(err)
	}
	if b[0].HostPort != 100 {
		t.Fatalf("after wrap: want released 100, got %d", b[0].HostPort)
	}
	if _, err := a.Allocate("z", []PortRequest{{ContainerPort: 80}}); !errors.Is(err, ErrNoFreePort) {
		t.Fatalf("exhausted range: want ErrNoFreePort, got %v", err)
	}
}

func TestAllocateStaticConflictNamesPortAndHolder(t *testing.T) {
	a, err := NewPortAllocator(AllocatorOptions{Range: PortRange{First: 100, Last: 199}, Listeners: noListeners})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Allocate("task-a", []PortRequest{{ContainerPort: 80, HostPort: 8080}}); err != nil {
		t.Fatal(err)
	}
	_, err = a.Allocate("task-b", []PortRequest{{ContainerPort: 81}, {ContainerPort: 80, HostPort: 8080}})
	var pc *PortConflictError
	if !errors.As(err, &pc) || pc.Port != 8080 || pc.Holder != "task-a" || !errors.Is(err, ErrPortInUse) {
		t.Fatalf("want PortConflictError for 8080 held by task-a, got %v", err)
	}
	if want := "host port 8080/tcp is already allocated to task-a"; err.Error() != want {
		t.Fatalf("message: want %q, got %q", want, err)
	}
	// All or nothing: task-b's dynamic port was rolled back.
	for _, al := range a.Allocations() {
		if al.Owner == "task-b" {
			t.Fatalf("failed Allocate left %+v behind", al)
		}
	}
	// The same port over UDP is free.
	if _, err := a.Allocate("task-b", []PortRequest{{ContainerPort: 80, HostPort: 8080, Protocol: UDP}}); err != nil {
		t.Fatalf("8080/udp: %v", err)
	}
}

func TestAllocateStaticConflictWithHostListener(t *testing.T) {
	a, err := NewPortAllocator(AllocatorOptions{Range: PortRange{First: 100, Last: 199}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tcpPort := uint16(ln.Addr().(*net.TCPAddr).Port)
	pc, err := net.ListenPacket("udp", "[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	udpPort := uint16(pc.LocalAddr().(*net.UDPAddr).Port)

	for _, tc := range []struct {
		port  uint16
		proto Protocol
	}{{tcpPort, TCP}, {udpPort, UDP}} {
		_, err = a.Allocate("task", []PortRequest{{ContainerPort: 80, HostPort: tc.port, Protocol: tc.proto}})
		want := fmt.Sprintf("host port %d/%s is in use by a process listening on the host", tc.port, tc.proto)
		if err == nil || err.Error() != want {
			t.Fatalf("want %q, got %v", want, err)
		}
	}
}

func TestAllocateContiguousRange(t *testing.T) {
	a, err := NewPortAllocator(AllocatorOptions{Range: PortRange{First: 100, Last: 119}, Listeners: noListeners})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Allocate("s", []PortRequest{{ContainerPort: 1, HostPort: 103}}); err != nil {
		t.Fatal(err)
	}
	b, err := a.Allocate("r", []PortRequest{{ContainerPort: 8000, ContainerPortEnd: 8004}})
	if err != nil {
		t.Fatal(err)
	}
	want := Binding{BindIP: "0.0.0.0", Protocol: TCP, ContainerPortRange: "8000-8004", HostPortRange: "104-108"}
	if b[0] != want {
		t.Fatalf("range binding: want %+v (first run of 5 free ports after 103), got %+v", want, b[0])
	}
	if _, err := a.Allocate("big", []PortRequest{{ContainerPort: 1, ContainerPortEnd: 20}}); !errors.Is(err, ErrNoFreePort) {
		t.Fatalf("20 ports with 15 free: want ErrNoFreePort, got %v", err)
	}
	if got := len(portMappings(b)); got != 5 {
		t.Fatalf("portmap entries for a 5-port range: got %d", got)
	}
}

func TestConcurrentAllocationsNeverDuplicate(t *testing.T) {
	a, err := NewPortAllocator(AllocatorOptions{Range: PortRange{First: 40000, Last: 41999}, Listeners: noListeners})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	ports := make([]uint16, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := a.Allocate(fmt.Sprintf("owner-%d", i), []PortRequest{{ContainerPort: 80}})
			if err == nil {
				ports[i] = b[0].HostPort
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	seen := map[uint16]int{}
	for i, p := range ports {
		if errs[i] != nil {
			t.Fatalf("allocation %d: %v", i, errs[i])
		}
		if p < 40000 || p > 41999 {
			t.Fatalf("allocation %d: port %d outside 40000-41999", i, p)
		}
		if j, dup := seen[p]; dup {
			t.Fatalf("port %d handed to owner-%d and owner-%d", p, j, i)
		}
		seen[p] = i
	}
	if got := len(a.Allocations()); got != n {
		t.Fatalf("allocations held: want %d, got %d", n, got)
	}
}

func TestRestartNeverReissuesLivePorts(t *testing.T) {
	store := &FilePortStore{Path: filepath.Join(t.TempDir(), "ports.json")}
	opts := AllocatorOptions{Range: PortRange{First: 100, Last: 139}, Store: store, Listeners: noListeners}
	a, err := NewPortAllocator(opts)
	if err != nil {
		t.Fatal(err)
	}
	live := map[uint16]bool{}
	for i := 0; i < 20; i++ {
		b, err := a.Allocate(fmt.Sprintf("task-%d", i), []PortRequest{{ContainerPort: 80}})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			live[b[0].HostPort] = true
		} else if err := a.Release(fmt.Sprintf("task-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The "restart": a new allocator over the same store, allocating until the range is full.
	a2, err := NewPortAllocator(opts)
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for {
		b, err := a2.Allocate(fmt.Sprintf("new-%d", count), []PortRequest{{ContainerPort: 80}})
		if errors.Is(err, ErrNoFreePort) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if live[b[0].HostPort] {
			t.Fatalf("port %d of a live task was handed out again after restart", b[0].HostPort)
		}
		count++
	}
	if want := 40 - len(live); count != want {
		t.Fatalf("free ports after restart: want %d, got %d", want, count)
	}
}

func TestReservedPortsFileEdit(t *testing.T) {
	f := filepath.Join(t.TempDir(), "reserved")
	if err := os.WriteFile(f, []byte("80,1000-1010\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := NewPortAllocator(AllocatorOptions{Range: PortRange{First: 1005, Last: 1020}, Listeners: noListeners,
		ReserveInKernel: true, ReservedPortsFile: f})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(f); string(b) != "80,1000-1020" {
		t.Fatalf("after reserve: got %q", b)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Close removes the whole dynamic range, including the overlap that was
	// reserved before; documented in docs/network.md.
	if b, _ := os.ReadFile(f); string(b) != "80,1000-1004" {
		t.Fatalf("after close: got %q", b)
	}
}

func TestReserveInKernel(t *testing.T) {
	requireHost(t)
	rng := PortRange{First: 39990, Last: 39995}
	a, err := NewPortAllocator(AllocatorOptions{Range: rng, ReserveInKernel: true})
	if err != nil {
		t.Fatal(err)
	}
	read := func() []PortRange {
		b, err := os.ReadFile(defaultReservedPortsFile)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := parsePortList(string(b))
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	covered := func(rs []PortRange) bool {
		for _, r := range rs {
			if r.First <= rng.First && r.Last >= rng.Last {
				return true
			}
		}
		return false
	}
	if !covered(read()) {
		t.Fatalf("ip_local_reserved_ports %v does not cover %s", read(), rng)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range read() {
		if r.Last >= rng.First && r.First <= rng.Last {
			t.Fatalf("after Close, ip_local_reserved_ports still holds %s", r)
		}
	}
}

func TestSplitSaveLine(t *testing.T) {
	line := `-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"bt\" id: \"bt1-00\"" -m multiport --dports 4364 -j CNI-DN-4b`
	got := strings.Join(SplitSaveLine(line), "|")
	want := `-A|CNI-HOSTPORT-DNAT|-p|tcp|-m|comment|--comment|dnat name: "bt" id: "bt1-00"|-m|multiport|--dports|4364|-j|CNI-DN-4b`
	if got != want {
		t.Fatalf("split:\nwant %s\ngot  %s", want, got)
	}
}
