package member

import (
	"io/fs"
	goruntime "runtime"
	"slices"
	"testing"

	"github.com/berth-dev/berth/pkg/agent"
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
	full, _ := agent.HostResources(0)
	if o.Resources.CPU != int64(goruntime.NumCPU())*1024 || o.Resources.CPU != full {
		t.Errorf("CPU = %d, want %d (cores x 1024)", o.Resources.CPU, goruntime.NumCPU()*1024)
	}
	_, memAll := agent.HostResources(0)
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
