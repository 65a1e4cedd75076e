package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/oci"
	"github.com/containernetworking/plugins/pkg/ns"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// startContainer runs image as container id inside the network namespace at
// netnsPath with BODY=body, and kills and deletes it when the test ends.
func startContainer(t *testing.T, ctx context.Context, cli *containerd.Client, image containerd.Image, id, netnsPath, body string) {
	t.Helper()
	// t.Context ends before clean-up functions run; the task's wait and
	// clean-up must outlive it.
	ctx = context.WithoutCancel(ctx)
	ctr, err := cli.NewContainer(ctx, id,
		containerd.WithNewSnapshot(id+"-snap", image),
		containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithEnv([]string{"BODY=" + body}),
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netnsPath})))
	if err != nil {
		t.Fatalf("create container %s: %v", id, err)
	}
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		_ = ctr.Delete(ctx, containerd.WithSnapshotCleanup)
		t.Fatalf("create task %s: %v", id, err)
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		t.Fatalf("wait task %s: %v", id, err)
	}
	t.Cleanup(func() {
		_ = task.Kill(ctx, syscall.SIGKILL)
		select {
		case <-exitCh:
		case <-time.After(10 * time.Second):
		}
		if _, err := task.Delete(ctx); err != nil {
			t.Errorf("delete task %s: %v", id, err)
		}
		if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			t.Errorf("delete container %s: %v", id, err)
		}
	})
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start task %s: %v", id, err)
	}
}

// peerNetns creates a namespace standing in for another machine, linked to
// the host by a veth pair on 10.251.n.0/30 (host .1, peer .2), and returns
// its path and the host-side address.
func peerNetns(t *testing.T, tn *testNet, n int) (string, string) {
	t.Helper()
	path, err := CreateNetns(tn.opts.NetnsDir, fmt.Sprintf("peer%d", n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = RemoveNetns(path) })
	host, peer := fmt.Sprintf("vbh%d", n), fmt.Sprintf("vbp%d", n)
	hostIP := fmt.Sprintf("10.251.%d.1", n)
	in := func(args ...string) { run(t, "nsenter", append([]string{"--net=" + path}, args...)...) }
	in("ip", "link", "add", peer, "type", "veth", "peer", "name", host, "netns", strconv.Itoa(os.Getpid()))
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", host).Run() })
	in("ip", "addr", "add", fmt.Sprintf("10.251.%d.2/30", n), "dev", peer)
	in("ip", "link", "set", peer, "up")
	in("ip", "link", "set", "lo", "up")
	run(t, "ip", "addr", "add", hostIP+"/30", "dev", host)
	run(t, "ip", "link", "set", host, "up")
	return path, hostIP
}

func TestBridgeTwoSandboxesDynamicPorts(t *testing.T) {
	requireHost(t)
	eachDatapath(t, func(t *testing.T, dp Datapath, off int) {
		tn := newTestNetOn(t, "two", 11+off, dp)
		m := tn.manager(t)
		var sbs []*Sandbox
		for i := 0; i < 2; i++ {
			sb, err := m.Setup(bg(), SetupRequest{Owner: fmt.Sprintf("task-%d", i), Ports: []PortRequest{{ContainerPort: 80}}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Teardown(bg(), *sb) })
			sbs = append(sbs, sb)
		}
		// Real containers joining the sandboxes' namespaces, as the engine runs them.
		cd := testenv.Containerd(t)
		reg := testenv.Registry(t)
		img := testenv.BuildImage(t, reg, "berth/network-httpd", testenv.ImageSpec{
			Cmd: []string{"/bin/sh", "-c", "echo -n \"$BODY\" > /tmp/index.html && exec httpd -f -p 80 -h /tmp"},
		})
		cli := cd.Client(t)
		ctx := testenv.Context(t, cd.Namespace(t))
		image, err := cli.Pull(ctx, img.Ref, containerd.WithPullUnpack, containerd.WithResolver(reg.Resolver()))
		if err != nil {
			t.Fatalf("pull %s: %v", img.Ref, err)
		}
		for i, sb := range sbs {
			startContainer(t, ctx, cli, image, fmt.Sprintf("httpd-%d", i), sb.NetnsPath, fmt.Sprintf("sandbox %d", i))
		}
		p0, p1 := sbs[0].Bindings[0].HostPort, sbs[1].Bindings[0].HostPort
		if p0 == p1 {
			t.Fatalf("both sandboxes got host port %d", p0)
		}
		for _, p := range []uint16{p0, p1} {
			if p < tn.rng.First || p > tn.rng.Last {
				t.Fatalf("host port %d outside the range %s", p, tn.rng)
			}
		}
		peer, hostIP := peerNetns(t, tn, 11+off)
		for i, sb := range sbs {
			want := fmt.Sprintf("sandbox %d", i)
			port := strconv.Itoa(int(sb.Bindings[0].HostPort))
			if got := httpGet(t, "", "127.0.0.1:"+port); got != want {
				t.Fatalf("127.0.0.1:%s: want %q, got %q", port, want, got)
			}
			if got := httpGet(t, peer, net.JoinHostPort(hostIP, port)); got != want {
				t.Fatalf("from the peer netns to %s:%s: want %q, got %q", hostIP, port, want, got)
			}
			other := sbs[1-i]
			if got := httpGet(t, other.NetnsPath, sb.IP+":80"); got != want {
				t.Fatalf("from sandbox %s to %s:80: want %q, got %q", other.ID, sb.IP, want, got)
			}
		}
		// Hairpin: each sandbox reaches its own and the other's host port
		// through the host's address.
		for _, from := range sbs {
			for i, sb := range sbs {
				want := fmt.Sprintf("sandbox %d", i)
				addr := net.JoinHostPort(hostIP, strconv.Itoa(int(sb.Bindings[0].HostPort)))
				if got := httpGet(t, from.NetnsPath, addr); got != want {
					t.Fatalf("hairpin from sandbox %s to %s: want %q, got %q", from.ID, addr, want, got)
				}
			}
		}
		// Outbound: the peer (another machine) has no route to the bridge
		// subnet, so its answer proves the masquerade.
		startHTTPD(t, peer, "peer")
		peerAddr := net.JoinHostPort(strings.TrimSuffix(hostIP, ".1")+".2", "80")
		if got := httpGet(t, sbs[0].NetnsPath, peerAddr); got != "peer" {
			t.Fatalf("outbound from sandbox %s to %s: want %q, got %q", sbs[0].ID, peerAddr, "peer", got)
		}
		for _, sb := range sbs {
			if err := m.Teardown(bg(), *sb); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(sb.NetnsPath); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("netns %s still there after teardown: %v", sb.NetnsPath, err)
			}
		}
		if got := m.Ports().Allocations(); len(got) != 0 {
			t.Fatalf("ports held after teardown: %+v", got)
		}
	})
}

func TestStaticHostPortCollision(t *testing.T) {
	requireHost(t)
	eachDatapath(t, func(t *testing.T, dp Datapath, off int) {
		tn := newTestNetOn(t, "static", 12+off, dp)
		m := tn.manager(t)
		static := tn.rng.First + 50
		a, err := m.Setup(bg(), SetupRequest{Ports: []PortRequest{{ContainerPort: 80, HostPort: static}}})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Teardown(bg(), *a)
		_, err = m.Setup(bg(), SetupRequest{Ports: []PortRequest{{ContainerPort: 80, HostPort: static}}})
		want := fmt.Sprintf("host port %d/tcp is already allocated to %s", static, a.ID)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("second static %d: want error containing %q, got %v", static, want, err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		busy := uint16(ln.Addr().(*net.TCPAddr).Port)
		_, err = m.Setup(bg(), SetupRequest{Ports: []PortRequest{{ContainerPort: 80, HostPort: busy}}})
		want = fmt.Sprintf("host port %d/tcp is in use by a process listening on the host", busy)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("static port with a host listener: want error containing %q, got %v", want, err)
		}
		// Host mode collides the same way.
		_, err = m.Setup(bg(), SetupRequest{Mode: ModeHost, Ports: []PortRequest{{ContainerPort: static}}})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("host port %d/tcp", static)) {
			t.Fatalf("host mode on a held port: want a conflict naming %d, got %v", static, err)
		}
		if _, err := m.Setup(bg(), SetupRequest{Mode: ModeHost, Ports: []PortRequest{{ContainerPort: 80, HostPort: 81}}}); err == nil {
			t.Fatal("host mode with host port != container port: want an error")
		}
	})
}

func TestModes(t *testing.T) {
	requireHost(t)
	eachDatapath(t, func(t *testing.T, dp Datapath, off int) {
		tn := newTestNetOn(t, "modes", 13+off, dp)
		m := tn.manager(t)

		t.Run("awsvpc", func(t *testing.T) {
			sb, err := m.Setup(bg(), SetupRequest{Mode: ModeAWSVPC, Ports: []PortRequest{{ContainerPort: 80}}})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Teardown(bg(), *sb)
			if len(sb.PortMappings) != 0 || len(m.Ports().Allocations()) != 0 {
				t.Fatalf("awsvpc took host ports: %+v %+v", sb.PortMappings, m.Ports().Allocations())
			}
			if !strings.HasPrefix(sb.IP, strings.TrimSuffix(tn.opts.Subnet, "0/24")) {
				t.Fatalf("awsvpc IP %q not in the test subnet", sb.IP)
			}
			want := Binding{BindIP: sb.IP, Protocol: TCP, ContainerPort: 80, HostPort: 80}
			if len(sb.Bindings) != 1 || sb.Bindings[0] != want {
				t.Fatalf("awsvpc bindings: want [%+v], got %+v", want, sb.Bindings)
			}
			startHTTPD(t, sb.NetnsPath, "awsvpc")
			if got := httpGet(t, "", sb.IP+":80"); got != "awsvpc" {
				t.Fatalf("GET %s:80 from the host: got %q", sb.IP, got)
			}
		})
		t.Run("none", func(t *testing.T) {
			sb, err := m.Setup(bg(), SetupRequest{Mode: ModeNone})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Teardown(bg(), *sb)
			if sb.IP != "" {
				t.Fatalf("none mode got IP %s", sb.IP)
			}
			var names []string
			var loUp bool
			err = ns.WithNetNSPath(sb.NetnsPath, func(ns.NetNS) error {
				ifs, err := net.Interfaces()
				for _, i := range ifs {
					names = append(names, i.Name)
					loUp = loUp || (i.Name == "lo" && i.Flags&net.FlagUp != 0)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(names) != "[lo]" || !loUp {
				t.Fatalf("none mode interfaces: want only lo, up; got %v (lo up: %v)", names, loUp)
			}
			if err := m.Teardown(bg(), *sb); err != nil {
				t.Fatal(err)
			}
			if left, _ := filepath.Glob("/var/lib/cni/results/*" + sb.ID + "*"); len(left) != 0 {
				t.Fatalf("none mode: CNI caches left after teardown: %v", left)
			}
		})
		t.Run("host", func(t *testing.T) {
			sb, err := m.Setup(bg(), SetupRequest{Mode: ModeHost, Ports: []PortRequest{{ContainerPort: tn.rng.First + 7}}})
			if err != nil {
				t.Fatal(err)
			}
			if sb.NetnsPath != "" || sb.IP != "" {
				t.Fatalf("host mode got netns %q IP %q", sb.NetnsPath, sb.IP)
			}
			// No netns: the sandbox sees the host's interfaces, the test bridge among them.
			ifs, err := net.Interfaces()
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, i := range ifs {
				found = found || i.Name == tn.opts.Bridge
			}
			if !found {
				t.Fatalf("host mode: bridge %s not among the host's interfaces", tn.opts.Bridge)
			}
			p := tn.rng.First + 7
			want := Binding{BindIP: "0.0.0.0", Protocol: TCP, ContainerPort: p, HostPort: p}
			if len(sb.Bindings) != 1 || sb.Bindings[0] != want {
				t.Fatalf("host bindings: want [%+v], got %+v", want, sb.Bindings)
			}
			if err := m.Teardown(bg(), *sb); err != nil {
				t.Fatal(err)
			}
			if got := m.Ports().Allocations(); len(got) != 0 {
				t.Fatalf("host-mode ports held after teardown: %+v", got)
			}
		})
	})
}

// hostSnapshot is the part of host state one test's sandboxes can touch.
type hostSnapshot struct {
	iptables []string // rules naming the test network, subnet or ID prefix
	netns    []string // `ip netns` entries with the ID prefix
	links    []string // links enslaved to the test bridge
	ipam     []string // lease files
	cache    []string // libcni result caches with the ID prefix
	nft      []string // rules of the test's nftables table naming a sandbox
}

func snapshot(t *testing.T, tn *testNet) hostSnapshot {
	t.Helper()
	var s hostSnapshot
	subnet := strings.TrimSuffix(tn.opts.Subnet, "0/24")
	for _, table := range []string{"nat", "filter"} {
		for _, line := range strings.Split(run(t, "iptables-save", "-t", table), "\n") {
			if strings.Contains(line, tn.opts.NamePrefix) || strings.Contains(line, subnet) ||
				strings.Contains(line, `"`+tn.opts.NetworkName+`\"`) {
				s.iptables = append(s.iptables, line)
			}
		}
	}
	for _, line := range strings.Split(run(t, "ip", "netns", "list"), "\n") {
		if strings.HasPrefix(line, tn.opts.NamePrefix) {
			s.netns = append(s.netns, line)
		}
	}
	if _, err := os.Stat("/sys/class/net/" + tn.opts.Bridge); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(run(t, "ip", "-o", "link", "show", "master", tn.opts.Bridge)), "\n") {
			if line != "" {
				s.links = append(s.links, line)
			}
		}
	}
	entries, _ := os.ReadDir(filepath.Join(tn.opts.IPAMDir, tn.opts.NetworkName))
	for _, e := range entries {
		if e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip") {
			s.ipam = append(s.ipam, e.Name())
		}
	}
	cache, _ := filepath.Glob("/var/lib/cni/results/*" + tn.opts.NamePrefix + "*")
	s.cache = cache
	s.nft = nftRulesOf(t, tn.nftTable())
	return s
}

// nftRulesOf returns the rules of table that carry a comment (a sandbox
// ID); a missing table has none.
func nftRulesOf(t *testing.T, table string) []string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "ip", table).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No such file or directory") {
			return nil
		}
		t.Fatalf("nft list table ip %s: %v\n%s", table, err, out)
	}
	var rules []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "comment") {
			rules = append(rules, strings.TrimSpace(line))
		}
	}
	return rules
}

// leftoverChains returns the chains the plugins would name after one of ids
// that still exist. Chain declarations carry no ID, so the snapshot cannot
// attribute them; the names are derived like the plugins do.
func leftoverChains(t *testing.T, tn *testNet, ids []string) []string {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		for _, c := range chainNames(tn.opts.NetworkName, id) {
			want[c] = true
		}
	}
	var left []string
	for _, table := range []string{"nat", "filter"} {
		for _, line := range strings.Split(run(t, "iptables-save", "-t", table), "\n") {
			if name, ok := strings.CutPrefix(line, ":"); ok && want[strings.Fields(name)[0]] {
				left = append(left, table+"/"+strings.Fields(name)[0])
			}
		}
	}
	return left
}

func (s hostSnapshot) String() string {
	return fmt.Sprintf("iptables:\n  %s\nnft:\n  %s\nnetns: %v\nlinks: %v\nipam: %v\ncache: %v",
		strings.Join(s.iptables, "\n  "), strings.Join(s.nft, "\n  "), s.netns, s.links, s.ipam, s.cache)
}

// parallel runs f(0..n-1) on workers goroutines and waits for them.
func parallel(n, workers int, f func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

func TestFiftySandboxesLeaveNothing(t *testing.T) {
	requireHost(t)
	eachDatapath(t, func(t *testing.T, dp Datapath, off int) {
		tn := newTestNetOn(t, "fifty", 14+off, dp)
		// This test uses the real /run/netns so that `ip netns` lists the
		// namespaces; the ID prefix keeps the comparison to what it created.
		tn.opts.NetnsDir = DefaultNetnsDir
		m := tn.manager(t)
		before := snapshot(t, tn)
		const n, workers = 50, 4
		// Four at a time, as an engine starting several tasks would.
		sbs := make([]*Sandbox, n)
		errs := make([]error, n)
		parallel(n, workers, func(i int) {
			sbs[i], errs[i] = m.Setup(bg(), SetupRequest{Ports: []PortRequest{{ContainerPort: 80}, {ContainerPort: 53, Protocol: UDP}}})
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("setup %d: %v", i, err)
			}
		}
		during := snapshot(t, tn)
		rules := len(during.iptables)
		if dp == DatapathBuiltin {
			rules = len(during.nft)
		}
		if len(during.netns) != n || len(during.ipam) != n || len(during.links) != n || rules < 2*n {
			t.Fatalf("with %d sandboxes: want %d netns, leases and bridge ports; got\n%s", n, n, during)
		}
		var ids []string
		for _, sb := range sbs {
			ids = append(ids, sb.ID)
		}
		if left := leftoverChains(t, tn, ids); dp == DatapathCNI && len(left) != 2*n {
			t.Fatalf("with %d sandboxes: want a masquerade and a DNAT chain each, found %d", n, len(left))
		}
		parallel(n, workers, func(i int) { errs[i] = m.Teardown(bg(), *sbs[i]) })
		for i, err := range errs {
			if err != nil {
				t.Fatalf("teardown %d: %v", i, err)
			}
		}
		if left := leftoverChains(t, tn, ids); len(left) != 0 {
			t.Fatalf("chains left after teardown: %v", left)
		}
		after := snapshot(t, tn)
		if before.String() != after.String() {
			t.Fatalf("host state changed by %d setups and teardowns:\nbefore:\n%s\nafter:\n%s", n, before, after)
		}
	})
}
