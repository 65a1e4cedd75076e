package agent

import (
	"io/fs"
	"net"
	"net/netip"
	goruntime "runtime"
	"slices"
	"testing"

	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/registration"
)

func loadConfig(t *testing.T, env ...string) *config.Config {
	t.Helper()
	cfg, _, err := config.Load(config.LoadOptions{Env: env, ReadFile: func(string) ([]byte, error) { return nil, fs.ErrNotExist }})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRegisterOptionsFromConfig(t *testing.T) {
	cfg := loadConfig(t, "ECS_CLUSTER=lab", "ECS_RESERVED_MEMORY=256", "ECS_RESERVED_PORTS=[22,2375]",
		"ECS_RESERVED_PORTS_UDP=[53]", "ECS_DYNAMIC_HOST_PORT_RANGE=40000-40002", "BERTH_RESERVE_DYNAMIC_PORTS=true",
		`ECS_INSTANCE_ATTRIBUTES={"stack":"prod"}`, `ECS_CONTAINER_INSTANCE_TAGS={"team":"a"}`,
		"ECS_DISABLE_PRIVILEGED=true", `ECS_AVAILABLE_LOGGING_DRIVERS=["json-file","awslogs","splunk"]`,
		"ECS_DETAILED_OS_FAMILY=debian_12")
	o := registerOptions(cfg, &registration.Client{}, nil, nil)
	full, _ := HostResources(0)
	if o.Resources.CPU != int64(goruntime.NumCPU())*1024 || o.Resources.CPU != full {
		t.Errorf("CPU = %d, want %d (cores x 1024)", o.Resources.CPU, goruntime.NumCPU()*1024)
	}
	_, memAll := HostResources(0)
	if o.Resources.MemoryMiB != memAll-256 {
		t.Errorf("MEMORY = %d, want host %d - ECS_RESERVED_MEMORY 256", o.Resources.MemoryMiB, memAll)
	}
	if want := []uint16{22, 2375, 40000, 40001, 40002}; !slices.Equal(o.Resources.Ports, want) {
		t.Errorf("PORTS = %v, want %v (reserved plus the dynamic range)", o.Resources.Ports, want)
	}
	if !slices.Equal(o.Resources.PortsUDP, []uint16{53}) {
		t.Errorf("PORTS_UDP = %v, want [53]", o.Resources.PortsUDP)
	}
	if o.Cluster != "lab" || o.Attributes["stack"] != "prod" || o.Tags["team"] != "a" || o.Attributes["ecs.os-type-detailed"] != "debian_12" {
		t.Errorf("cluster %q attributes %v tags %v", o.Cluster, o.Attributes, o.Tags)
	}
	if slices.Contains(o.Capabilities, "com.amazonaws.ecs.capability.privileged-container") {
		t.Error("privileged capability registered with ECS_DISABLE_PRIVILEGED=true")
	}
	if !slices.Contains(o.Capabilities, "com.amazonaws.ecs.capability.logging-driver.json-file") ||
		!slices.Contains(o.Capabilities, "com.amazonaws.ecs.capability.logging-driver.awslogs") ||
		slices.Contains(o.Capabilities, "com.amazonaws.ecs.capability.logging-driver.splunk") {
		t.Errorf("capabilities %v: want json-file and awslogs (allowed and shipped) but not splunk (allowed, not implemented)", o.Capabilities)
	}
}

// TestHostAddressAttribute: the agent registers berth.host-address, which
// the load balancing API resolves instance targets with: BERTH_HOST_ADDRESS,
// else 127.0.0.1 with an endpoint on loopback (dev mode), else an address
// of an interface that is up; an ECS_INSTANCE_ATTRIBUTES value wins.
func TestHostAddressAttribute(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"set", []string{"BERTH_HOST_ADDRESS=10.0.0.5", "ECS_BACKEND_HOST=http://127.0.0.1:8080"}, "10.0.0.5"},
		{"dev endpoint", []string{"ECS_BACKEND_HOST=http://127.0.0.1:8080"}, "127.0.0.1"},
		{"localhost endpoint", []string{"ECS_BACKEND_HOST=localhost:8443"}, "127.0.0.1"},
		{"attribute wins", []string{`ECS_INSTANCE_ATTRIBUTES={"berth.host-address":"192.0.2.1"}`, "BERTH_HOST_ADDRESS=10.0.0.5"}, "192.0.2.1"},
	}
	for _, tc := range tests {
		cfg := loadConfig(t, append([]string{"ECS_CLUSTER=lab"}, tc.env...)...)
		if got := instanceAttributes(cfg)[HostAddressAttribute]; got != tc.want {
			t.Errorf("%s: %s = %q, want %q", tc.name, HostAddressAttribute, got, tc.want)
		}
	}
	cfg := loadConfig(t, "ECS_CLUSTER=lab", "ECS_BACKEND_HOST=https://cluster.example:8443")
	got := hostAddress(cfg, net.Interfaces)
	if a, err := netip.ParseAddr(got); got != "" && (err != nil || a.IsLoopback() || !a.Is4()) {
		t.Errorf("remote endpoint: host address %q, want a non-loopback IPv4 address or none", got)
	}
	if got := hostAddress(cfg, func() ([]net.Interface, error) { return nil, nil }); got != "" {
		t.Errorf("no interfaces: %q, want none", got)
	}
	if _, _, err := config.Load(config.LoadOptions{Env: []string{"BERTH_HOST_ADDRESS=web.example"}, ReadFile: func(string) ([]byte, error) { return nil, fs.ErrNotExist }}); err == nil {
		t.Error("BERTH_HOST_ADDRESS=web.example accepted")
	}
}
