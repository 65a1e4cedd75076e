package devmode

import (
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/pkg/config"
)

// TestKeepAddresses: the first start chooses free loopback ports and writes
// them down, a restart gets the same ones, and a kept address that
// something else holds is an error naming it and the file.
func TestKeepAddresses(t *testing.T) {
	file := filepath.Join(t.TempDir(), AddressesFile)
	names := []string{addrEndpoint, addrIntrospection, addrCredentials}
	first, err := keepAddresses(file, names)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.AddrPort]bool{}
	for _, name := range names {
		ap := first[name]
		if !ap.Addr().IsLoopback() || ap.Port() == 0 || seen[ap] {
			t.Fatalf("%s address %s: want a distinct loopback port (all: %v)", name, ap, first)
		}
		seen[ap] = true
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if want := name + "=" + first[name].String() + "\n"; !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q:\n%s", file, want, b)
		}
	}

	again, err := keepAddresses(file, names)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if again[name] != first[name] {
			t.Errorf("restart: %s address %s, want the kept %s", name, again[name], first[name])
		}
	}

	ln, err := net.Listen("tcp", first[addrIntrospection].String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = keepAddresses(file, names)
	if err == nil || !strings.Contains(err.Error(), "introspection address "+first[addrIntrospection].String()) ||
		!strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "delete that line") {
		t.Errorf("kept address taken: error %v, want it to name the address, %s and the way out", err, file)
	}
}

func TestReadAddressesErrors(t *testing.T) {
	tests := []struct {
		content, want string
	}{
		{"# comment\nendpoint=127.0.0.1:4000\nproxy=127.0.0.1:5\n", ":3: \"proxy=127.0.0.1:5\" is not endpoint=, introspection= or credentials=IP:PORT"},
		{"introspection=localhost:80\n", ":1: introspection: \"localhost:80\" is not an IP:PORT address with a port"},
		{"credentials=127.0.0.1:0\n", ":1: credentials: \"127.0.0.1:0\" is not an IP:PORT address with a port"},
	}
	for _, tc := range tests {
		file := filepath.Join(t.TempDir(), AddressesFile)
		if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := keepAddresses(file, []string{addrEndpoint})
		if err == nil || !strings.Contains(err.Error(), file+tc.want) {
			t.Errorf("%q: error %v, want %q", tc.content, err, file+tc.want)
		}
	}
}

// TestDevSettings: where the configuration leaves a setting at its
// default, dev mode's agent gets its own bridge, subnet, containerd
// namespace, host port range and kept addresses, so it shares none with a
// system agent; settings the configuration names are kept.
func TestDevSettings(t *testing.T) {
	load := func(env ...string) *config.Config {
		cfg, _, err := config.Load(config.LoadOptions{Env: env, ReadFile: func(string) ([]byte, error) { return nil, fs.ErrNotExist }})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	intro, creds := netip.MustParseAddrPort("127.0.0.1:41001"), netip.MustParseAddrPort("127.0.0.1:41002")
	kept := keptAddresses{addrIntrospection: intro, addrCredentials: creds}

	def := load()
	if got := addressesToKeep(def, ""); !slices.Equal(got, []string{addrEndpoint, addrIntrospection, addrCredentials}) {
		t.Errorf("defaults: addresses to keep %v, want all three", got)
	}
	applyDevSettings(def, "/d", kept)
	if def.Network.BridgeName != DevBridge || def.Network.BridgeSubnet.String() != DevSubnet ||
		def.Containerd.Namespace != DevNamespace || def.Ports.DynamicRange != (config.PortRange{First: DevPortFirst, Last: DevPortLast}) ||
		def.Listen.Introspection != intro || def.Listen.Credentials != creds || !def.IAM.EnableTaskRole ||
		def.DataDir != "/d/agent" || def.IAM.AuditLogFile != "/d/audit.log" {
		t.Errorf("defaults: bridge %s subnet %s namespace %s ports %v introspection %s credentials %s roles %v data %s audit %s; want dev mode's own",
			def.Network.BridgeName, def.Network.BridgeSubnet, def.Containerd.Namespace, def.Ports.DynamicRange,
			def.Listen.Introspection, def.Listen.Credentials, def.IAM.EnableTaskRole, def.DataDir, def.IAM.AuditLogFile)
	}

	set := load("BERTH_BRIDGE_NAME=mine0", "BERTH_BRIDGE_SUBNET=10.9.0.0/24", "BERTH_CONTAINERD_NAMESPACE=mine",
		"ECS_DYNAMIC_HOST_PORT_RANGE=30000-30010", "BERTH_INTROSPECTION_ADDRESS=127.0.0.1:7001",
		"ECS_ENABLE_TASK_IAM_ROLE=false", "ECS_DATADIR=/data")
	if got := addressesToKeep(set, "127.0.0.1:9"); len(got) != 0 {
		t.Errorf("explicit settings: addresses to keep %v, want none", got)
	}
	applyDevSettings(set, "/d", keptAddresses{})
	if set.Network.BridgeName != "mine0" || set.Network.BridgeSubnet.String() != "10.9.0.0/24" || set.Containerd.Namespace != "mine" ||
		set.Ports.DynamicRange != (config.PortRange{First: 30000, Last: 30010}) || set.Listen.Introspection.String() != "127.0.0.1:7001" ||
		set.IAM.EnableTaskRole || set.DataDir != "/data" {
		t.Errorf("explicit settings were overridden: %+v %+v %+v %+v", set.Network, set.Containerd, set.Ports.DynamicRange, set.Listen)
	}
}
