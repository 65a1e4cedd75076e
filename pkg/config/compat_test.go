package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// everyKeyFile holds every upstream key with a typical value; its key list
// is the upstream catalogue this package must know (read from the ECS
// agent v1.105.1 and ecs-init, independently of keys.go).
const everyKeyFile = "testdata/every-upstream-key.ecs.config"

// TestEveryUpstreamKey loads an ecs.config that sets every upstream key to
// a typical value: it must load without errors, know every key (no
// "unknown key"), and warn only about keys whose status says Berth refuses,
// does not enforce, or differs, each warning naming its key.
func TestEveryUpstreamKey(t *testing.T) {
	data, err := os.ReadFile(everyKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	entries, problems := ParseEnvFile(data, everyKeyFile)
	if len(problems) != 0 {
		t.Fatalf("%s: %q", everyKeyFile, problemStrings(problems))
	}
	byName := map[string]Key{}
	for _, k := range Keys() {
		byName[k.Name] = k
	}
	inFile := map[string]bool{}
	for _, e := range entries {
		inFile[e.Key] = true
		k, ok := byName[e.Key]
		if !ok || !k.Upstream {
			t.Errorf("upstream key %s is not an upstream row of the key table", e.Key)
		}
	}
	for _, k := range Keys() {
		if k.Upstream && !inFile[k.Name] {
			t.Errorf("%s is marked Upstream but is not in %s", k.Name, everyKeyFile)
		}
	}

	opts := files(t, string(data), "")
	cfg, problems, err := Load(opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	warned := map[string]bool{}
	for _, p := range problems {
		k, ok := byName[p.Key]
		switch {
		case p.Severity != SeverityWarning:
			t.Errorf("not a warning: %s", p)
		case !ok || strings.Contains(p.Message, "unknown key"):
			t.Errorf("warning about an unknown key: %s", p)
		case k.Status == StatusHonoured:
			t.Errorf("warning about a key Berth honours as upstream does: %s", p)
		case !strings.HasPrefix(p.Where, opts.ConfigPath+":"):
			t.Errorf("warning without its file:line: %s", p)
		}
		warned[p.Key] = true
	}
	// A value that asks for what Berth lacks is never silent.
	for _, name := range []string{"ECS_ENABLE_CONTAINER_METADATA", "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION_JITTER",
		"ECS_EBSTA_SUPPORTED", "ECS_VOLUME_PLUGIN_CAPABILITIES", "ECS_CNI_PLUGINS_PATH", "DOCKER_HOST"} {
		if !warned[name] {
			t.Errorf("no warning for %s, which asks for what Berth lacks", name)
		}
	}
	// Harmless values of refused keys are accepted silently.
	for _, name := range []string{"ECS_ENABLE_GPU_SUPPORT", "ECS_ENABLE_TASK_ENI", "ECS_NVIDIA_RUNTIME", "ECS_CGROUP_PATH", "ECS_LOG_DRIVER"} {
		if warned[name] {
			t.Errorf("warning for %s, whose value needs nothing Berth lacks", name)
		}
	}
	if got := strings.Join(cfg.ProxyEnv(), " "); got != "HTTP_PROXY=10.0.0.131:3128 HTTPS_PROXY=10.0.0.131:3128 NO_PROXY=169.254.169.254,169.254.170.2,/var/run/docker.sock" {
		t.Errorf("ProxyEnv() = %q, want the three proxy variables of the file", got)
	}
	if cfg.Tasks.PidsLimit != 100 || !cfg.Containers.ContainerMetadata || cfg.Log.FileLevel != "debug" ||
		!cfg.Instance.External || len(cfg.Network.AWSVPCLocalRoutes) != 1 || cfg.Containers.TaskCleanupJitter != time.Hour {
		t.Errorf("typed fields not filled: %+v %+v %+v", cfg.Tasks, cfg.Containers, cfg.Log)
	}
	t.Logf("%d upstream keys, %d warnings", len(entries), len(problems))
}

// TestToleratedValues: values the ECS agent accepts with a warning do not
// stop Berth; it warns and uses upstream's clamp or default.
func TestToleratedValues(t *testing.T) {
	tests := []struct {
		line, warning string
		got           func(c *Config) any
		want          any
	}{
		{"ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION=500ms", "500ms is below the minimum of 1s; using the default 3h",
			func(c *Config) any { return c.Containers.TaskCleanupWait }, 3 * time.Hour},
		{"ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION=30s", "", func(c *Config) any { return c.Containers.TaskCleanupWait }, 30 * time.Second},
		{"ECS_IMAGE_CLEANUP_INTERVAL=5m", "5m is below the minimum of 10m; using the default 30m",
			func(c *Config) any { return c.Images.CleanupInterval }, 30 * time.Minute},
		{"ECS_NUM_IMAGES_DELETE_PER_CYCLE=0", "0 is below the minimum of 1; using the default 5",
			func(c *Config) any { return c.Images.DeletePerCycle }, 5},
		{"ECS_CONTAINER_START_TIMEOUT=10s", "10s is below the minimum of 45s; using 45s",
			func(c *Config) any { return c.Containers.StartTimeout }, 45 * time.Second},
		{"ECS_CONTAINER_CREATE_TIMEOUT=-5s", "-5s is below the minimum of 1m; using 1m",
			func(c *Config) any { return c.Containers.CreateTimeout }, time.Minute},
		{"ECS_CONTAINER_STOP_TIMEOUT=100ms", "100ms is below the minimum of 1s; using 1s",
			func(c *Config) any { return c.Containers.StopTimeout }, time.Second},
		{"ECS_CONTAINER_STOP_TIMEOUT=2s", "", func(c *Config) any { return c.Containers.StopTimeout }, 2 * time.Second},
		{"ECS_IMAGE_PULL_INACTIVITY_TIMEOUT=5s", "5s is below the minimum of 1m; using 1m",
			func(c *Config) any { return c.Images.PullInactivityTimeout }, time.Minute},
		{"ECS_TASK_METADATA_RPS_LIMIT=0,10", "0,10 is not two positive integers; using the default 40,60",
			func(c *Config) any { return c.IAM.MetadataRateLimit }, RateLimit{RPS: 40, Burst: 60}},
		{"ECS_TASK_PIDS_LIMIT=5000000", "5000000 is outside 1-4194304; treated as unset",
			func(c *Config) any { return c.Tasks.PidsLimit }, 0},
		{"ECS_POLLING_METRICS_WAIT_DURATION=1s", "1s is below the minimum of 5s; using 5s",
			func(c *Config) any { return c.Metrics.PollInterval }, 5 * time.Second},
		{"ECS_POLLING_METRICS_WAIT_DURATION=1m", "1m is above the maximum of 20s; using 20s",
			func(c *Config) any { return c.Metrics.PollInterval }, 20 * time.Second},
		{"ECS_POLLING_METRICS_WAIT_DURATION=15s", "", func(c *Config) any { return c.Metrics.PollInterval }, 15 * time.Second},
		{"ECS_CGROUP_CPU_PERIOD=1s", "1s is outside 8ms-100ms; using the default 100ms",
			func(c *Config) any { return c.Tasks.CgroupCPUPeriod }, 100 * time.Millisecond},
		{"ECS_LOGLEVEL=WARN", "", func(c *Config) any { return c.Log.Level }, "warn"},
		{"ECS_LOGLEVEL=none", "", func(c *Config) any { return c.Log.Level }, "none"},
		{"ECS_ENABLE_GPU_SUPPORT=yes-please", "not supported by Berth: GPU tasks are not supported",
			func(c *Config) any { return c.unsupported["ECS_ENABLE_GPU_SUPPORT"] }, "yes-please"},
		{"ECS_AVAILABLE_LOGGING_DRIVERS=[\"json-file\",\"gelf\",\"splunk\"]", "gelf, splunk: not supported by Berth",
			func(c *Config) any { return strings.Join(c.Containers.AvailableLoggingDrivers, ",") }, "json-file"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			opts := files(t, "ECS_CLUSTER=lab\n"+tt.line+"\n", "")
			cfg, problems, err := Load(opts)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := tt.got(cfg); got != tt.want {
				t.Errorf("value %v, want %v", got, tt.want)
			}
			key, _, _ := strings.Cut(tt.line, "=")
			prefix := opts.ConfigPath + ":2: " + key + ": warning: "
			ps := problemStrings(problems)
			if tt.warning == "" {
				if len(ps) != 0 {
					t.Errorf("problems %q, want none", ps)
				}
				return
			}
			if len(ps) != 1 || !strings.HasPrefix(ps[0], prefix) || !strings.Contains(ps[0], tt.warning) {
				t.Errorf("problems %q, want one starting %q containing %q", ps, prefix, tt.warning)
			}
		})
	}
}

// TestNotEnforcedWarnsOnlyWhenAsked: a not-enforced key warns when a source
// asks for the missing part, and not for its default or a value Berth
// already behaves like.
func TestNotEnforcedWarnsOnlyWhenAsked(t *testing.T) {
	tests := []struct {
		env  string
		warn bool
	}{
		{"ECS_ENABLE_CONTAINER_METADATA=true", true},
		{"ECS_ENABLE_CONTAINER_METADATA=false", false},
		{"ECS_ENABLE_TASK_CPU_MEM_LIMIT=true", false},
		{"ECS_ENABLE_TASK_CPU_MEM_LIMIT=false", false},
		{"ECS_SELINUX_CAPABLE=true", false},
		{"ECS_APPARMOR_CAPABLE=true", false},
		{"ECS_ENABLE_UNTRACKED_IMAGE_CLEANUP=true", true},
		{"ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION_JITTER=0s", false},
		{"ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION_JITTER=10m", true},
		{"ECS_AWSVPC_BLOCK_IMDS=true", true}, // task roles off: the block is not installed
		{"ECS_DISABLE_METRICS=true", false},
		{"ECS_DISABLE_METRICS=false", false},
		{"ECS_POLL_METRICS=true", false},
		{"ECS_POLL_METRICS=false", true},
		{"ECS_PULL_DEPENDENT_CONTAINERS_UPFRONT=false", true},
		{"ECS_EXCLUDE_IPV6_PORTBINDING=false", true},
		{"ECS_WARM_POOLS_CHECK=true", true},
		{"HTTP_PROXY=http://proxy:3128", false},
		{"ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE=true", true}, // task roles off: no execution role credentials
	}
	for _, tt := range tests {
		_, problems, err := Load(files(t, "", "", tt.env))
		if err != nil {
			t.Fatalf("%s: %v", tt.env, err)
		}
		key, _, _ := strings.Cut(tt.env, "=")
		got := len(problems) == 1 && problems[0].Key == key && strings.Contains(problems[0].Message, "Berth")
		if got != tt.warn || (!tt.warn && len(problems) != 0) {
			t.Errorf("%s: problems %q, want a warning: %v", tt.env, problemStrings(problems), tt.warn)
		}
	}
	_, problems, _ := Load(files(t, "", "", "ECS_AWSVPC_BLOCK_IMDS=true", "ECS_ENABLE_TASK_IAM_ROLE=true"))
	if len(problems) != 0 {
		t.Errorf("ECS_AWSVPC_BLOCK_IMDS with task roles on: %q, want no warning", problemStrings(problems))
	}
}

// TestPackagedDefaults: under the package's /etc/berth/agent.toml, an
// ecs.config holding only ECS_CLUSTER gives what an ECS-optimised host
// gives: task roles (also for host networking), the usual logging drivers
// and awslogs with the execution role; and the file sets exactly the keys
// whose PackageDefault the key table names.
func TestPackagedDefaults(t *testing.T) {
	const packaged = "../../packaging/agent/agent.toml"
	data, err := os.ReadFile(packaged)
	if err != nil {
		t.Fatal(err)
	}
	opts := files(t, "ECS_CLUSTER=prod\n", string(data))
	cfg, problems, err := Load(opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(problems) != 0 {
		t.Errorf("problems %q, want none", problemStrings(problems))
	}
	if !cfg.IAM.EnableTaskRole || !cfg.IAM.EnableTaskRoleNetworkHost || !cfg.Containers.AWSLogsExecutionRole {
		t.Errorf("task roles %v, host-network task roles %v, awslogs execution role %v; want all true",
			cfg.IAM.EnableTaskRole, cfg.IAM.EnableTaskRoleNetworkHost, cfg.Containers.AWSLogsExecutionRole)
	}
	wantDrivers := []string{"json-file", "syslog", "awslogs", "fluentd", "journald", "none"}
	if !slices.Equal(cfg.Containers.AvailableLoggingDrivers, wantDrivers) {
		t.Errorf("logging drivers %q, want %q", cfg.Containers.AvailableLoggingDrivers, wantDrivers)
	}
	if cfg.Cluster != "prod" {
		t.Errorf("cluster %q", cfg.Cluster)
	}
	for _, k := range Keys() {
		src := cfg.Source(k.Name)
		switch {
		case k.PackageDefault != "" && (src.Kind != SourceTOML || k.get(cfg) != k.PackageDefault):
			t.Errorf("%s = %s from %s; want the package default %s from %s", k.Name, k.get(cfg), src, k.PackageDefault, packaged)
		case k.PackageDefault == "" && src.Kind == SourceTOML:
			t.Errorf("%s sets %s, which has no PackageDefault in the key table", packaged, k.Name)
		}
	}
	// ecs.config wins over the package's defaults.
	cfg, _, _ = Load(files(t, "ECS_ENABLE_TASK_IAM_ROLE=false\n", string(data)))
	if cfg.IAM.EnableTaskRole {
		t.Error("ECS_ENABLE_TASK_IAM_ROLE=false in ecs.config did not win over agent.toml")
	}
}

func TestDetailedOSFamily(t *testing.T) {
	read := func(content string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if p == osReleasePath && content != "" {
				return []byte(content), nil
			}
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
	}
	tests := []struct{ osRelease, env, want string }{
		{"PRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\nVERSION_ID=\"12\"\n", "", "debian_12"},
		{"ID=amzn\nVERSION_ID=\"2023\"\n", "", "amzn_2023"},
		{"ID=arch\n", "", "linux"},
		{"", "", "linux"},
		{"ID=debian\nVERSION_ID=12\n", "ECS_DETAILED_OS_FAMILY=custom_1", "custom_1"},
	}
	for _, tt := range tests {
		var env []string
		if tt.env != "" {
			env = []string{tt.env}
		}
		cfg, _, err := Load(LoadOptions{Env: env, ReadFile: read(tt.osRelease)})
		if err != nil || cfg.Instance.DetailedOSFamily != tt.want {
			t.Errorf("os-release %q env %q: %q (%v), want %q", tt.osRelease, tt.env, cfg.Instance.DetailedOSFamily, err, tt.want)
		}
	}
}

func TestOffhostIntrospection(t *testing.T) {
	cfg, _, _ := Load(files(t, "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS=true\n", ""))
	if got := cfg.Listen.Introspection.String(); got != "0.0.0.0:51678" {
		t.Errorf("introspection address %s, want 0.0.0.0:51678", got)
	}
	cfg, _, _ = Load(files(t, "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS=true\nBERTH_INTROSPECTION_ADDRESS=127.0.0.1:9\n", ""))
	if got := cfg.Listen.Introspection.String(); got != "127.0.0.1:9" {
		t.Errorf("introspection address %s, want the explicit 127.0.0.1:9", got)
	}
}

// TestNotSettings: variables the agent sets inside task containers are
// named as such, not as unknown keys.
func TestNotSettings(t *testing.T) {
	opts := files(t, "ECS_CONTAINER_METADATA_FILE=/x\n", "")
	_, problems, err := Load(opts)
	want := opts.ConfigPath + ":1: ECS_CONTAINER_METADATA_FILE: warning: is set by the agent inside task containers, not read as configuration; ignored"
	if err != nil || len(problems) != 1 || problems[0].String() != want {
		t.Errorf("problems %q (%v), want %q", problemStrings(problems), err, want)
	}
}

// TestRefusedInTOML: refused keys are accepted in agent.toml too, with
// their TOML types.
func TestRefusedInTOML(t *testing.T) {
	opts := files(t, "", "enable_gpu_support = true\nvolume_plugin_capabilities = [\"efsAuth\"]\nagent_labels = {a = \"b\"}\n")
	_, problems, err := Load(opts)
	if err != nil || len(problems) != 3 {
		t.Fatalf("problems %q (%v), want 3 warnings", problemStrings(problems), err)
	}
	if !strings.HasPrefix(problems[0].String(), filepath.Clean(opts.TOMLPath)+":1: enable_gpu_support: warning: not supported by Berth: GPU") {
		t.Errorf("first problem %q", problems[0])
	}
	if errors.Is(err, ErrInvalid) {
		t.Error("refused keys made the configuration invalid")
	}
}
