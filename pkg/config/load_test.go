package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// files writes an ecs.config and a TOML file (either may be "" for absent)
// and returns options that name both explicitly.
func files(t *testing.T, ecsConfig, agentTOML string, env ...string) LoadOptions {
	t.Helper()
	dir := t.TempDir()
	opts := LoadOptions{
		Env:        env,
		ConfigPath: filepath.Join(dir, "ecs.config"), ConfigPathSet: ecsConfig != "",
		TOMLPath: filepath.Join(dir, "agent.toml"), TOMLPathSet: agentTOML != "",
	}
	if ecsConfig != "" {
		if err := os.WriteFile(opts.ConfigPath, []byte(ecsConfig), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if agentTOML != "" {
		if err := os.WriteFile(opts.TOMLPath, []byte(agentTOML), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return opts
}

func problemStrings(ps Problems) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func TestDefaults(t *testing.T) {
	cfg, problems, err := Load(files(t, "", ""))
	if err != nil || len(problems) != 0 {
		t.Fatalf("Load with no sources: err=%v problems=%q", err, problemStrings(problems))
	}
	want := Config{
		Cluster:    "default",
		DataDir:    "/var/lib/berth",
		Checkpoint: true,
		Log:        LogConfig{Level: "info", Format: "logfmt", RolloverType: "size", MaxFileSizeMB: 5, MaxRollCount: 24},
		Ports: PortsConfig{
			Reserved:            []uint16{22, 2375, 2376, 51678, 51679},
			ReservedUDP:         []uint16{},
			DynamicRange:        PortRange{First: 49153, Last: 65535},
			ExcludeIPv6Bindings: true,
		},
		Containers: ContainersConfig{
			AvailableLoggingDrivers: []string{"json-file", "none"},
			StopTimeout:             30 * time.Second,
			StartTimeout:            3 * time.Minute,
			CreateTimeout:           4 * time.Minute,
			TaskCleanupWait:         3 * time.Hour,
			PullDependentUpfront:    true,
		},
		Tasks:   TasksConfig{CPUMemLimit: true, CgroupCPUPeriod: 100 * time.Millisecond},
		Metrics: MetricsConfig{PollInterval: 10 * time.Second},
		Images: ImagesConfig{
			PullBehavior:          "default",
			PullInactivityTimeout: time.Minute,
			PullTimeout:           2 * time.Hour,
			InsecureRegistries:    []string{},
			ECRRegistries:         map[string]string{},
			CleanupInterval:       30 * time.Minute,
			MinimumCleanupAge:     time.Hour,
			DeletePerCycle:        5,
			ManifestPullTimeout:   time.Minute,
			UntrackedMinimumAge:   time.Hour,

			UntrackedContainersPerCycle: 5,
		},
		Instance: InstanceConfig{Attributes: map[string]string{}, Tags: map[string]string{}, CredentialProfile: "default"},
		IAM: IAMConfig{
			AuditLogFile:      "/var/log/ecs/audit.log",
			MetadataRateLimit: RateLimit{RPS: 40, Burst: 60},
		},
		Containerd: ContainerdConfig{Address: "/run/containerd/containerd.sock", Namespace: "berth"},
		Network: NetworkConfig{
			Datapath:     "builtin",
			CNIPath:      []string{"/usr/lib/cni", "/opt/cni/bin"},
			BridgeName:   "berth0",
			BridgeSubnet: netip.MustParsePrefix("10.203.0.0/16"),

			IPCompatibility:   "ipv4",
			AWSVPCLocalRoutes: []netip.Prefix{},
		},
		Listen: ListenConfig{
			Introspection: netip.MustParseAddrPort("127.0.0.1:51678"),
			Credentials:   netip.MustParseAddrPort("127.0.0.1:51679"),
		},
	}
	got := *cfg
	got.sources, got.unsupported = nil, nil
	got.Instance.DetailedOSFamily = "" // the host's /etc/os-release: TestDetailedOSFamily
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got  %+v\n want %+v", got, want)
	}
	for _, k := range Keys() {
		if s := cfg.Source(k.Name); s.Kind != SourceDefault || s.String() != "default" {
			t.Errorf("%s: source %v, want default", k.Name, s)
		}
	}
}

// TestPrecedence proves env beats the ecs.config file, the file beats TOML,
// and TOML beats the defaults, key by key, with the source recorded.
func TestPrecedence(t *testing.T) {
	opts := files(t,
		"ECS_CLUSTER=from-file\nECS_LOGLEVEL=warn\n",
		"cluster = \"from-toml\"\nloglevel = \"error\"\ncontainer_stop_timeout = \"45s\"\n",
		"ECS_CLUSTER=from-env", "PATH=/bin")
	cfg, problems, err := Load(opts)
	if err != nil || len(problems) != 0 {
		t.Fatalf("Load: err=%v problems=%q", err, problemStrings(problems))
	}
	tests := []struct {
		key, got, want, source string
	}{
		{"ECS_CLUSTER", cfg.Cluster, "from-env", "environment"},
		{"ECS_LOGLEVEL", cfg.Log.Level, "warn", opts.ConfigPath + ":2"},
		{"ECS_CONTAINER_STOP_TIMEOUT", cfg.Containers.StopTimeout.String(), "45s", opts.TOMLPath + ":3"},
		{"ECS_DATADIR", cfg.DataDir, "/var/lib/berth", "default"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.key, tt.got, tt.want)
		}
		if s := cfg.Source(tt.key).String(); s != tt.source {
			t.Errorf("%s source = %q, want %q", tt.key, s, tt.source)
		}
	}
}

func TestRegion(t *testing.T) {
	tests := []struct {
		env  []string
		want string
	}{
		{nil, ""},
		{[]string{"AWS_DEFAULT_REGION=eu-west-1"}, "eu-west-1"},
		{[]string{"AWS_DEFAULT_REGION=eu-west-1", "AWS_REGION=us-east-2"}, "us-east-2"},
	}
	for _, tt := range tests {
		cfg, _, err := Load(files(t, "", "", tt.env...))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Region(); got != tt.want {
			t.Errorf("env %q: Region() = %q, want %q", tt.env, got, tt.want)
		}
	}
}

func TestTypedValues(t *testing.T) {
	opts := files(t, strings.Join([]string{
		`ECS_RESERVED_PORTS=[22, 2375]`,
		`ECS_INSTANCE_ATTRIBUTES={"zone":"a"}`,
		`ECS_AVAILABLE_LOGGING_DRIVERS=["json-file","awslogs"]`,
		`ECS_DYNAMIC_HOST_PORT_RANGE=30000-30100`,
		`ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION=90m`,
		`ECS_DISABLE_PRIVILEGED=1`,
		`ECS_RESERVED_MEMORY=256`,
		`ECS_TASK_METADATA_RPS_LIMIT=100,150`,
		`BERTH_CNI_PATH=/a:/b/c`,
		`ECS_BACKEND_HOST=ecs.example.test`,
		`BERTH_INSECURE_REGISTRIES=["127.0.0.1:5000","registry.lab"]`,
		`BERTH_ECR_REGISTRIES={"registry.lab:5000":"https://ecr-api.lab"}`,
	}, "\n"), "")
	cfg, problems, err := Load(opts)
	if err != nil || len(problems) != 0 {
		t.Fatalf("Load: err=%v problems=%q", err, problemStrings(problems))
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"reserved ports", cfg.Ports.Reserved, []uint16{22, 2375}},
		{"attributes", cfg.Instance.Attributes, map[string]string{"zone": "a"}},
		{"logging drivers", cfg.Containers.AvailableLoggingDrivers, []string{"json-file", "awslogs"}},
		{"port range", cfg.Ports.DynamicRange, PortRange{First: 30000, Last: 30100}},
		{"cleanup wait", cfg.Containers.TaskCleanupWait, 90 * time.Minute},
		{"disable privileged", cfg.Containers.DisablePrivileged, true},
		{"reserved memory", cfg.Containers.ReservedMemoryMiB, 256},
		{"rps", cfg.IAM.MetadataRateLimit, RateLimit{RPS: 100, Burst: 150}},
		{"cni path", cfg.Network.CNIPath, []string{"/a", "/b/c"}},
		{"backend host gets a scheme", cfg.BackendHost, "https://ecs.example.test"},
		{"insecure registries", cfg.Images.InsecureRegistries, []string{"127.0.0.1:5000", "registry.lab"}},
		{"ECR registries", cfg.Images.ECRRegistries, map[string]string{"registry.lab:5000": "https://ecr-api.lab"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestTOMLValues(t *testing.T) {
	opts := files(t, "", `
reserved_ports = [22, 2375]
disable_privileged = true
reserved_memory = 128
available_logging_drivers = ["json-file"]
aws_region = "eu-central-1"

[instance_attributes]
zone = "a"
rack = "r1"
`)
	cfg, problems, err := Load(opts)
	if err != nil || len(problems) != 0 {
		t.Fatalf("Load: err=%v problems=%q", err, problemStrings(problems))
	}
	if !reflect.DeepEqual(cfg.Ports.Reserved, []uint16{22, 2375}) || !cfg.Containers.DisablePrivileged ||
		cfg.Containers.ReservedMemoryMiB != 128 || !reflect.DeepEqual(cfg.Containers.AvailableLoggingDrivers, []string{"json-file"}) ||
		cfg.Region() != "eu-central-1" || !reflect.DeepEqual(cfg.Instance.Attributes, map[string]string{"zone": "a", "rack": "r1"}) {
		t.Errorf("TOML values not applied: %+v", cfg)
	}
	if got, want := cfg.Source("ECS_INSTANCE_ATTRIBUTES").String(), opts.TOMLPath+":8"; got != want {
		t.Errorf("table source = %q, want %q", got, want)
	}
}

// TestProblems checks the exact text of each kind of problem, and that all
// of them are reported by one Load.
func TestECRRegistriesChecked(t *testing.T) {
	for _, v := range []string{`{"registry.lab":"ftp://x"}`, `{"registry.lab":"ecr-api.lab"}`, `{"not a host":"https://x"}`} {
		_, problems, err := Load(LoadOptions{Env: []string{"BERTH_ECR_REGISTRIES=" + v},
			ReadFile: func(string) ([]byte, error) { return nil, fs.ErrNotExist }})
		if !errors.Is(err, ErrInvalid) || len(problems) != 1 || !strings.Contains(problems[0].String(), "BERTH_ECR_REGISTRIES") {
			t.Errorf("BERTH_ECR_REGISTRIES=%s: err=%v problems=%q; want one problem", v, err, problemStrings(problems))
		}
	}
}

func TestProblems(t *testing.T) {
	opts := files(t,
		"ECS_CLUSTER=ok\n"+
			"ECS_LOGLEVEL=info\n"+
			"ECS_RESERVED_PORTS=22,abc\n"+
			"ECS_CLUSTR=typo\n"+
			"ECS_RESERVED_PORTS_UDP=[53, 70000]\n"+
			"not a setting\n"+
			"ECS_CONTAINER_STOP_TIMEOUT=soon\n"+
			"ECS_IMAGE_PULL_BEHAVIOR=sometimes\n"+
			"ECS_CONTAINERD_ADDRESS=/x.sock\n"+
			"HTTP_PROXY=http://proxy:3128\n",
		"clustr = \"x\"\n"+
			"reserved_ports = \"22\"\n"+
			"loglevel = \"loud\"\n",
		"ECS_LOGLEVEL=verbose", "ECS_DYNAMIC_HOST_PORT_RANGE=65535-1024", "BERTH_BRIDGE_SUBNET=10.1.2.3/16")
	_, problems, err := Load(opts)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Load error = %v, want ErrInvalid", err)
	}
	c, tm := opts.ConfigPath, opts.TOMLPath
	want := []string{
		tm + `:1: clustr: unknown key; did you mean cluster?`,
		tm + `:2: reserved_ports: is a TOML String, not a JSON array of ports (1-65535)`,
		tm + `:3: loglevel: "loud" is not a valid log level (allowed: debug, info, warn, error, crit, none)`,
		c + `:3: ECS_RESERVED_PORTS: "22,abc" is not a JSON array of ports (1-65535)`,
		c + `:4: ECS_CLUSTR: warning: unknown key, ignored; did you mean ECS_CLUSTER?`,
		c + `:5: ECS_RESERVED_PORTS_UDP: "[53, 70000]" is not a JSON array of ports (1-65535): 70000 is out of range`,
		c + `:6: line has no "=" (expected KEY=VALUE, a # comment or a blank line)`,
		c + `:7: ECS_CONTAINER_STOP_TIMEOUT: "soon" is not a duration (e.g. 30s, 5m, 3h)`,
		c + `:8: ECS_IMAGE_PULL_BEHAVIOR: "sometimes" is not a valid pull behavior (allowed: default, always, once, prefer-cached)`,
		c + `:9: ECS_CONTAINERD_ADDRESS: warning: unknown key, ignored; did you mean BERTH_CONTAINERD_ADDRESS?`,
		`environment: BERTH_BRIDGE_SUBNET: "10.1.2.3/16" is not an IPv4 subnet in CIDR form with a prefix of /8 to /30 (e.g. 10.203.0.0/16): host bits are set; did you mean 10.1.0.0/16?`,
		`environment: ECS_DYNAMIC_HOST_PORT_RANGE: "65535-1024" is not a port range first-last (1-65535, first <= last)`,
		`environment: ECS_LOGLEVEL: "verbose" is not a valid log level (allowed: debug, info, warn, error, crit, none)`,
	}
	if got := problemStrings(problems); !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got:\n  %s\n want:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestInvalidValueKeepsLowerSource(t *testing.T) {
	cfg, _, _ := Load(files(t, "ECS_LOGLEVEL=debug\n", "", "ECS_LOGLEVEL=verbose"))
	if cfg.Log.Level != "debug" || cfg.Source("ECS_LOGLEVEL").Kind != SourceFile {
		t.Errorf("level = %q from %v, want debug from the file", cfg.Log.Level, cfg.Source("ECS_LOGLEVEL"))
	}
}

func TestEmptyValueIsUnset(t *testing.T) {
	cfg, problems, err := Load(files(t, "ECS_CLUSTER=\nECS_LOGLEVEL=''\n", "", "ECS_DATADIR="))
	if err != nil || len(problems) != 0 {
		t.Fatalf("Load: err=%v problems=%q", err, problemStrings(problems))
	}
	if cfg.Cluster != "default" || cfg.Log.Level != "info" || cfg.DataDir != "/var/lib/berth" {
		t.Errorf("empty values should leave defaults: %q %q %q", cfg.Cluster, cfg.Log.Level, cfg.DataDir)
	}
}

func TestMissingFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	tests := []struct {
		name string
		opts LoadOptions
		want []string
	}{
		{"missing default files are fine", LoadOptions{ConfigPath: missing, TOMLPath: missing}, nil},
		{"missing named ecs.config", LoadOptions{ConfigPath: missing, ConfigPathSet: true, TOMLPath: missing},
			[]string{missing + ": cannot read configuration file: no such file or directory"}},
		{"missing named TOML", LoadOptions{ConfigPath: missing, TOMLPath: missing, TOMLPathSet: true},
			[]string{missing + ": cannot read configuration file: no such file or directory"}},
		{"unreadable default is not silently skipped", LoadOptions{ConfigPath: dir, TOMLPath: missing},
			[]string{dir + ": cannot read configuration file: is a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, problems, err := Load(tt.opts)
			if got := problemStrings(problems); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems = %q, want %q", got, tt.want)
			}
			if (err != nil) != (len(tt.want) > 0) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestTOMLTypeErrors(t *testing.T) {
	opts := files(t, "", "disable_privileged = \"yes\"\nreserved_ports = [22, \"ssh\"]\n[instance_attributes]\nzone = 1\n")
	_, problems, _ := Load(opts)
	got := problemStrings(problems)
	want := []string{
		opts.TOMLPath + `:1: disable_privileged: is a TOML String, not a boolean (allowed: true, false)`,
		opts.TOMLPath + `:2: reserved_ports: is not a JSON array of ports (1-65535): toml: line 2 (last key "reserved_ports"): incompatible types`,
		opts.TOMLPath + `:3: instance_attributes: is not a JSON object of attribute names to values: `,
	}
	if len(got) != len(want) {
		t.Fatalf("problems = %q, want %d", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}

func TestTOMLSyntaxError(t *testing.T) {
	opts := files(t, "", "cluster = \"a\"\nloglevel = \n")
	_, problems, err := Load(opts)
	if err == nil || len(problems) != 1 || !strings.HasPrefix(problems[0].String(), opts.TOMLPath+":2: TOML syntax: ") {
		t.Errorf("problems = %q, want one TOML syntax error on line 2", problemStrings(problems))
	}
}

// TestSecretsNeverPrinted covers the secret keys in every output path:
// problems, print-config settings, and fmt verbs on Config.
func TestSecretsNeverPrinted(t *testing.T) {
	const secret = "s3cr3t-value-XYZ"
	authData := `{"https://index.docker.io/v1/":{"username":"u","password":"` + secret + `"}}`
	opts := files(t,
		"ECS_ENGINE_AUTH_TYPE=docker\nECS_ENGINE_AUTH_DATA="+authData+"\nAWS_SECRET_ACCESS_KEY="+secret+"\n",
		"", "AWS_SESSION_TOKEN="+secret)
	cfg, problems, err := Load(opts)
	if err != nil || len(problems) != 0 {
		t.Fatalf("Load: err=%v problems=%q", err, problemStrings(problems))
	}
	if cfg.Images.AuthData.Reveal() != authData || cfg.AWS.SessionToken.Reveal() != secret {
		t.Fatalf("secrets not loaded")
	}
	var b strings.Builder
	if err := cfg.WriteSettings(&b); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x"} {
		fmt.Fprintf(&b, verb+"\n", cfg)
		fmt.Fprintf(&b, verb+"\n", cfg.Images.AuthData)
	}
	if strings.Contains(b.String(), secret) {
		t.Fatalf("secret value printed:\n%s", b.String())
	}
	for _, k := range []string{"ECS_ENGINE_AUTH_DATA", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		if !strings.Contains(b.String(), k+"  ") || !strings.Contains(b.String(), Redacted) {
			t.Errorf("%s not shown as %s:\n%s", k, Redacted, b.String())
		}
	}

	// An invalid secret is reported without its value.
	_, problems, _ = Load(files(t, "ECS_ENGINE_AUTH_DATA=not-json-"+secret+"\n", ""))
	got := strings.Join(problemStrings(problems), "\n")
	if strings.Contains(got, secret) || !strings.Contains(got, "ECS_ENGINE_AUTH_DATA: value <redacted> is not a JSON object") {
		t.Errorf("problems for a bad secret: %s", got)
	}
}

func TestCrossChecks(t *testing.T) {
	opts := files(t, "ECS_ENGINE_AUTH_DATA={}\nECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST=true\nECS_CHECKPOINT=false\n", "",
		"BERTH_CREDENTIALS_ADDRESS=127.0.0.1:51678")
	_, problems, err := Load(opts)
	if err == nil {
		t.Fatal("want an error")
	}
	want := []string{
		opts.ConfigPath + ":1: ECS_ENGINE_AUTH_DATA: is set but ECS_ENGINE_AUTH_TYPE is not (allowed: docker, dockercfg)",
		opts.ConfigPath + ":2: ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST: warning: has no effect unless ECS_ENABLE_TASK_IAM_ROLE=true",
		`environment: BERTH_CREDENTIALS_ADDRESS: "127.0.0.1:51678" is also BERTH_INTROSPECTION_ADDRESS; the two listeners need different addresses`,
		opts.ConfigPath + ":3: ECS_CHECKPOINT: warning: false is not supported: Berth always persists task state (it is how a restart adopts running containers)",
	}
	if got := problemStrings(problems); !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got  %q\n want %q", got, want)
	}
}

// TestDefaultsParse guards the table: every default parses, renders back to
// itself (so the document shows canonical values), and every TOML name is
// unique and derived from the environment name.
func TestDefaultsParse(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Keys() {
		if seen[k.TOMLName] {
			t.Errorf("TOML name %q used twice", k.TOMLName)
		}
		seen[k.TOMLName] = true
		if k.Doc == "" || k.Type == "" {
			t.Errorf("%s lacks a doc or type", k.Name)
		}
		if k.Default == "" {
			continue
		}
		var c Config
		if err := k.set(&c, k.Default); err != nil {
			t.Errorf("%s default %q does not parse: %v", k.Name, k.Default, err)
			continue
		}
		if got := k.get(&c); got != k.Default {
			t.Errorf("%s default %q renders as %q", k.Name, k.Default, got)
		}
	}
}

func TestSuggest(t *testing.T) {
	keys := Keys()
	tests := []struct {
		name string
		toml bool
		want string
	}{
		{"ECS_CLUSTR", false, "ECS_CLUSTER"},
		{"ECS_RESERVED_PORT", false, "ECS_RESERVED_PORTS"},
		{"BERTH_CNI_PATHS", false, "BERTH_CNI_PATH"},
		{"ECS_TOTALLY_DIFFERENT_THING", false, ""},
		{"reserved_port", true, "reserved_ports"},
		{"ECS_LOGLEVEL", true, "loglevel"},
		{"zzz", true, ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.name, keys, tt.toml); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRegionNames(t *testing.T) {
	for _, ok := range []string{"us-east-1", "us-gov-west-1", "lab"} {
		if _, _, err := Load(files(t, "", "", "AWS_REGION="+ok)); err != nil {
			t.Errorf("AWS_REGION=%s rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"us east", "-x", "a/b"} {
		if _, _, err := Load(files(t, "", "", "AWS_REGION="+bad)); err == nil {
			t.Errorf("AWS_REGION=%q accepted", bad)
		}
	}
}

// ECS_BACKEND_HOST may name replicas of one cluster endpoint, separated by
// commas; each gets a scheme, and a bad entry is named as for one URL.
func TestBackendHostList(t *testing.T) {
	cfg, problems, err := Load(files(t, "ECS_BACKEND_HOST=http://127.0.0.1:1, r2.lab:8443\n", ""))
	if err != nil || len(problems) != 0 {
		t.Fatalf("Load: err=%v problems=%q", err, problemStrings(problems))
	}
	if want := "http://127.0.0.1:1,https://r2.lab:8443"; cfg.BackendHost != want {
		t.Errorf("BackendHost = %q, want %q", cfg.BackendHost, want)
	}
	_, problems, err = Load(files(t, "ECS_BACKEND_HOST=http://127.0.0.1:1,ftp://x\n", ""))
	if len(problems) != 1 || !strings.Contains(problemStrings(problems)[0], "ECS_BACKEND_HOST: ") {
		t.Fatalf("a list with a bad URL: err=%v problems=%q", err, problemStrings(problems))
	}
}
