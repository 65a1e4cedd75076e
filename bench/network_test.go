package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/berth-dev/berth/pkg/network"
)

// loopbackConfList is the loopback network go-cni adds with WithLoNetwork;
// the raw baseline runs it too so both sides invoke the same plugins.
const loopbackConfList = `{"cniVersion": "0.3.1", "name": "cni-loopback", "plugins": [{"type": "loopback"}]}`

// BenchmarkNetworkBridgeSandbox measures one bridge-mode sandbox with one
// dynamic port mapping set up and torn down through pkg/network on each
// datapath: built-in (netns, host port allocation, sandbox record, address
// lease, veth and routes by netlink, the DNAT rule in the Sandboxer's
// nftables table) and CNI (the same first three, then go-cni ADD/DEL of
// loopback and of bridge+host-local+portmap+firewall), against the raw
// baseline doing the same netns creation and libcni ADD/DEL of the same two
// config lists with the same port mapping, all interleaved in the same run.
// It reports the ratios as "x-raw-cni" (built-in) and "cni-x-raw-cni".
func BenchmarkNetworkBridgeSandbox(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root, CNI plugins in /usr/lib/cni and iptables (scripts/test-deps.sh)")
	}
	for _, bin := range []string{"iptables", "/usr/lib/cni/bridge", "/usr/lib/cni/portmap"} {
		if _, err := exec.LookPath(bin); err != nil {
			b.Skipf("missing %s (scripts/test-deps.sh)", bin)
		}
	}
	// Under /run, like the defaults for netns, IPAM and sandbox records
	// (tmpfs on most hosts; the root disk on the machine measured).
	dir, err := os.MkdirTemp("/run", "berth-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"netns", "rawns"} {
		defer network.ReleaseNetnsDir(filepath.Join(dir, d)) // the binds CreateNetns made
	}
	const bridge = "bbench0"
	defer exec.Command("ip", "link", "del", bridge).Run()
	ports, err := network.NewPortAllocator(network.AllocatorOptions{
		Range: network.PortRange{First: 45000, Last: 45999},
		Store: &network.FilePortStore{Path: filepath.Join(dir, "ports.json")},
	})
	if err != nil {
		b.Fatal(err)
	}
	opts := network.Options{
		ConfDir: filepath.Join(dir, "conf"), NetworkName: "berth-bench", Bridge: bridge,
		Subnet: "10.252.0.0/24", IPAMDir: filepath.Join(dir, "ipam"), NetnsDir: filepath.Join(dir, "netns"),
		StateDir: filepath.Join(dir, "state"), NamePrefix: "bbench-", Ports: ports, Datapath: network.DatapathCNI,
	}
	m, err := network.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	opts.NamePrefix, opts.Datapath = "bbenchf-", network.DatapathBuiltin
	fast, err := network.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer fast.Uninstall(context.Background())
	bridgeList, err := libcni.ConfListFromFile(m.ConfPath())
	if err != nil {
		b.Fatal(err)
	}
	loList, err := libcni.ConfListFromBytes([]byte(loopbackConfList))
	if err != nil {
		b.Fatal(err)
	}
	cni := libcni.NewCNIConfig(network.DefaultPluginDirs, nil)
	ctx := context.Background()

	raw := func(i int) {
		id := fmt.Sprintf("rawbench-%d", i)
		netns, err := network.CreateNetns(filepath.Join(dir, "rawns"), id)
		if err != nil {
			b.Fatal(err)
		}
		lo := &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "lo"}
		eth := &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "eth0",
			CapabilityArgs: map[string]any{"portMappings": []map[string]any{
				{"hostPort": 46001 + i%1000, "containerPort": 80, "protocol": "tcp"}}}}
		if _, err := cni.AddNetworkList(ctx, loList, lo); err != nil {
			b.Fatal(err)
		}
		if _, err := cni.AddNetworkList(ctx, bridgeList, eth); err != nil {
			b.Fatal(err)
		}
		if err := cni.DelNetworkList(ctx, bridgeList, eth); err != nil {
			b.Fatal(err)
		}
		if err := cni.DelNetworkList(ctx, loList, lo); err != nil {
			b.Fatal(err)
		}
		if err := network.RemoveNetns(netns); err != nil {
			b.Fatal(err)
		}
	}
	berthOn := func(m *network.Sandboxer) func() {
		return func() {
			sb, err := m.Setup(ctx, network.SetupRequest{Ports: []network.PortRequest{{ContainerPort: 80}}})
			if err != nil {
				b.Fatal(err)
			}
			if err := m.Teardown(ctx, *sb); err != nil {
				b.Fatal(err)
			}
		}
	}
	berth, berthCNI := berthOn(fast), berthOn(m)
	// One untimed round of each, so the bridge exists and the plugin
	// binaries are in the page cache before measuring.
	raw(-1)
	berth()
	berthCNI()

	var rawDur, berthDur, cniDur time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		raw(i)
		rawDur += time.Since(start)
		start = time.Now()
		berth()
		berthDur += time.Since(start)
		start = time.Now()
		berthCNI()
		cniDur += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(berthDur.Microseconds())/float64(b.N)/1000, "berth-ms/op")
	b.ReportMetric(float64(rawDur.Microseconds())/float64(b.N)/1000, "raw-ms/op")
	b.ReportMetric(float64(cniDur.Microseconds())/float64(b.N)/1000, "berth-cni-ms/op")
	b.ReportMetric(float64(berthDur)/float64(rawDur), "x-raw-cni")
	b.ReportMetric(float64(cniDur)/float64(rawDur), "cni-x-raw-cni")
}
