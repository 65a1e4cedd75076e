package runtime

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/container"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/remotes/docker"
	remoteerrors "github.com/containerd/containerd/remotes/errors"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestProcessArgsFollowDockerRules(t *testing.T) {
	img := ocispec.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"img-cmd", "arg"}}
	noEntry := ocispec.ImageConfig{Cmd: []string{"img-cmd"}}
	cases := []struct {
		name       string
		entrypoint []string
		command    []string
		img        ocispec.ImageConfig
		want       []string
	}{
		{"image defaults", nil, nil, img, []string{"/entry", "img-cmd", "arg"}},
		{"command replaces CMD only", nil, []string{"c"}, img, []string{"/entry", "c"}},
		{"entrypoint drops image CMD", []string{"/e"}, nil, img, []string{"/e"}},
		{"entrypoint and command", []string{"/e"}, []string{"c"}, img, []string{"/e", "c"}},
		{"command without image entrypoint", nil, []string{"c", "d"}, noEntry, []string{"c", "d"}},
		{"nothing at all", nil, nil, ocispec.ImageConfig{}, nil},
	}
	for _, c := range cases {
		got := processArgs(container.Spec{Entrypoint: c.entrypoint, Command: c.command}, c.img)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: args = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestResolvConf(t *testing.T) {
	stub := []byte("# systemd-resolved\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example\n")
	mixed := []byte("nameserver 127.0.0.1\nnameserver 10.0.0.2\nsearch a.example b.example\n")
	cases := []struct {
		name     string
		host     []byte
		dns      container.Spec
		ownNetNS bool
		want     string
	}{
		{"stub dropped in own netns, defaults used", stub, container.Spec{}, true,
			"nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch corp.example\noptions edns0 trust-ad\n"},
		{"stub kept with host network", stub, container.Spec{}, false,
			"nameserver 127.0.0.53\nsearch corp.example\noptions edns0 trust-ad\n"},
		{"loopback dropped, others kept", mixed, container.Spec{}, true,
			"nameserver 10.0.0.2\nsearch a.example b.example\n"},
		{"explicit settings win", mixed, container.Spec{DNS: []string{"192.0.2.1"}, DNSSearch: []string{"svc.local"}, DNSOptions: []string{"ndots:2"}}, true,
			"nameserver 192.0.2.1\nsearch svc.local\noptions ndots:2\n"},
	}
	for _, c := range cases {
		got, err := resolvConf(c.host, c.dns, c.ownNetNS)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
	if _, err := resolvConf(nil, container.Spec{DNS: []string{"dns.example"}}, true); err == nil {
		t.Error("a DNS server that is not an IP was accepted")
	}
}

func TestSystemdStubIsReplacedByUpstreamList(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "resolv.conf")
	upstream := filepath.Join(dir, "upstream.conf")
	os.WriteFile(host, []byte("nameserver 127.0.0.53\n"), 0o644)
	os.WriteFile(upstream, []byte("nameserver 10.1.2.3\n"), 0o644)
	r := &Runtime{opts: Options{HostResolvConf: host, SystemdResolvConf: upstream}}
	b, err := r.hostResolvConf()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "nameserver 10.1.2.3\n" {
		t.Errorf("host resolv.conf = %q, want the systemd-resolved upstream list", b)
	}
}

func TestHostsFile(t *testing.T) {
	got, err := hostsFile(nil, "web", []string{"db:10.0.0.5", "v6:fd00::1"})
	if err != nil {
		t.Fatal(err)
	}
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tweb\n10.0.0.5\tdb\nfd00::1\tv6\n"
	if string(got) != want {
		t.Errorf("hosts:\n got %q\nwant %q", got, want)
	}
	got, _ = hostsFile([]byte("10.0.0.1 myhost"), "ignored", []string{"db:10.0.0.5"})
	if want := "10.0.0.1 myhost\n10.0.0.5\tdb\n"; string(got) != want {
		t.Errorf("host-network hosts:\n got %q\nwant %q", got, want)
	}
	for _, bad := range []string{"noip", ":1.2.3.4", "x:not-an-ip"} {
		if _, err := hostsFile(nil, "", []string{bad}); err == nil {
			t.Errorf("extra host %q accepted", bad)
		}
	}
}

func TestParseEngineAuth(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte("bob:s3:cret"))
	cases := []struct {
		name, typ, data string
		want            EngineAuth
	}{
		{"docker", "docker", `{"https://index.docker.io/v1/":{"username":"u","password":"p","email":"e@x"}}`,
			EngineAuth{"docker.io": {Username: "u", Password: "p"}}},
		{"dockercfg", "dockercfg", `{"registry.example.com:5000":{"auth":"` + b64 + `","email":"e@x"}}`,
			EngineAuth{"registry.example.com:5000": {Username: "bob", Password: "s3:cret"}}},
		{"dockercfg url key", "dockercfg", `{"https://127.0.0.1:5000/v2/":{"auth":"` + b64 + `"}}`,
			EngineAuth{"127.0.0.1:5000": {Username: "bob", Password: "s3:cret"}}},
		{"nothing", "", "", nil},
	}
	for _, c := range cases {
		got, err := ParseEngineAuth(c.typ, c.data)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
	for _, bad := range []struct{ typ, data string }{
		{"basic", `{}`},
		{"docker", `not json`},
		{"docker", `{"r":{"password":"p"}}`},
		{"dockercfg", `{"r":{"auth":"!!"}}`},
		{"dockercfg", `{"r":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("nocolon")) + `"}}`},
	} {
		if _, err := ParseEngineAuth(bad.typ, bad.data); err == nil {
			t.Errorf("ParseEngineAuth(%q, %q) accepted bad input", bad.typ, bad.data)
		}
	}
}

func TestLoadDockerConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	b64 := base64.StdEncoding.EncodeToString([]byte("al:pw"))
	os.WriteFile(p, []byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"`+b64+`"},"https://helper.example":{},"tok.example":{"identitytoken":"T"}},`+
		`"credsStore":"desktop","credHelpers":{"ecr.example":"ecr-login"}}`), 0o600)
	got, err := LoadDockerConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	want := &DockerConfig{
		Auths:       EngineAuth{"docker.io": {Username: "al", Password: "pw"}, "tok.example": {IdentityToken: "T"}},
		CredsStore:  "desktop",
		CredHelpers: map[string]string{"ecr.example": "ecr-login"},
		authKeys:    map[string]string{"docker.io": "https://index.docker.io/v1/", "helper.example": "https://helper.example", "tok.example": "tok.example"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if a, err := LoadDockerConfig(filepath.Join(t.TempDir(), "missing.json")); err != nil || a != nil {
		t.Errorf("missing file: %v, %v", a, err)
	}
	os.WriteFile(p, []byte(`{"credHelpers":["not","a","map"]}`), 0o600)
	if _, err := LoadDockerConfig(p); err == nil {
		t.Error("credHelpers of the wrong type: no error")
	}
}

func TestNormalizeReference(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":            "docker.io/library/busybox:latest",
		"user/app:1.2":       "docker.io/user/app:1.2",
		"127.0.0.1:5000/x/y": "127.0.0.1:5000/x/y:latest",
		"quay.io/a/b@sha256:" + strings.Repeat("a", 64): "quay.io/a/b@sha256:" + strings.Repeat("a", 64),
	} {
		got, err := NormalizeReference(in)
		if err != nil || got != want {
			t.Errorf("NormalizeReference(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := NormalizeReference("bad ref:"); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("invalid reference error = %v, want ErrImageNotFound", err)
	}
}

func TestClassifyPullError(t *testing.T) {
	inactive := fmt.Errorf("%w for 1s", errInactive)
	cases := []struct {
		name          string
		err, cause    error
		overall, want error
	}{
		{"inactivity", errors.New("context canceled"), inactive, nil, ErrPullTimeout},
		{"overall deadline", errors.New("x"), nil, errors.New("deadline"), ErrPullTimeout},
		{"bad credentials", fmt.Errorf("fetch: %w", docker.ErrInvalidAuthorization), nil, nil, ErrUnauthorized},
		{"401 status", remoteerrors.ErrUnexpectedStatus{StatusCode: 401, Status: "401 Unauthorized"}, nil, nil, ErrUnauthorized},
		{"404 status", remoteerrors.ErrUnexpectedStatus{StatusCode: 404}, nil, nil, ErrImageNotFound},
		{"resolve not found", errors.New("failed to resolve reference \"x\": x: not found"), nil, nil, ErrImageNotFound},
		{"refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, nil, nil, ErrRegistryUnreachable},
	}
	for _, c := range cases {
		got := classifyPullError("ref", c.err, c.cause, c.overall)
		if !errors.Is(got, c.want) {
			t.Errorf("%s: %v does not wrap %v", c.name, got, c.want)
		}
		var status remoteerrors.ErrUnexpectedStatus
		if !errors.Is(got, c.err) && !errors.As(got, &status) {
			t.Errorf("%s: %v lost the original error", c.name, got)
		}
	}
}

func TestRlimitsAndCapabilities(t *testing.T) {
	if n, err := rlimitName("nofile"); err != nil || n != "RLIMIT_NOFILE" {
		t.Errorf("rlimitName(nofile) = %q, %v", n, err)
	}
	if _, err := rlimitName("bogus"); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown ulimit error = %v, want ErrUnsupported naming it", err)
	}
	got, err := capNames("capAdd", []string{"net_admin", "CAP_SYS_TIME"})
	if err != nil || !reflect.DeepEqual(got, []string{"CAP_NET_ADMIN", "CAP_SYS_TIME"}) {
		t.Errorf("capNames = %q, %v", got, err)
	}
	if _, err := capNames("capDrop", []string{"FLY"}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "capDrop") {
		t.Errorf("unknown capability error = %v", err)
	}
	if _, err := resourceOpts(container.Spec{MemoryLimit: 10, MemoryReservation: 20}); err == nil {
		t.Error("reservation above limit accepted")
	}
}

func TestExitLabelRoundTrip(t *testing.T) {
	in := ExitStatus{ExitCode: 137, ExitedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), OOMKilled: true}
	out, ok := parseExitLabel(in.label())
	if !ok || out != in {
		t.Errorf("round trip: %+v, %v; want %+v", out, ok, in)
	}
	if _, ok := parseExitLabel("garbage"); ok {
		t.Error("garbage label parsed")
	}
}

func TestInsecureRegistries(t *testing.T) {
	r := &Runtime{opts: Options{Registry: RegistryOptions{InsecureRegistries: []string{"reg.lan", "http://other.lan:5000/"}}}}
	for host, want := range map[string]bool{"reg.lan": true, "reg.lan:8080": true, "other.lan:5000": true, "other.lan": false, "docker.io": false} {
		if got := r.insecureRegistry(host); got != want {
			t.Errorf("insecureRegistry(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2"}, []string{"B=3", "C=4"})
	if want := []string{"A=1", "B=3", "C=4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
}

func TestParsePullBehavior(t *testing.T) {
	for in, want := range map[string]PullBehavior{"": PullDefault, "default": PullDefault, "always": PullAlways, "once": PullOnce, "prefer-cached": PullPreferCached} {
		if got, err := ParsePullBehavior(in); err != nil || got != want {
			t.Errorf("ParsePullBehavior(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParsePullBehavior("sometimes"); err == nil {
		t.Error("ParsePullBehavior accepted an unknown behaviour")
	}
}

// TestReadSpec covers the Docker-format strings Create reads: tmpfs options
// with a size, the json-file's max-size and max-file, and the errors that
// name the setting.
func TestReadSpec(t *testing.T) {
	cs, err := readSpec(container.Spec{ID: "c1", Image: "busybox",
		Tmpfs:   []container.Tmpfs{{Path: "/run", Options: "rw, size=16m,mode=1777"}, {Path: "/tmp"}},
		LogPath: "/var/log/berth/c1-json.log",
		Log:     container.LogConfig{Driver: "json-file", Options: map[string]string{"max-size": "1.5k", "max-file": "3"}}})
	if err != nil {
		t.Fatal(err)
	}
	if cs.Image != "docker.io/library/busybox:latest" {
		t.Errorf("image %q, want it normalised", cs.Image)
	}
	want := []tmpfsMount{{Destination: "/run", Size: 16 << 20, Options: []string{"rw", "mode=1777"}}, {Destination: "/tmp"}}
	if !reflect.DeepEqual(cs.tmpfs, want) {
		t.Errorf("tmpfs %+v, want %+v", cs.tmpfs, want)
	}
	if cs.log == nil || *cs.log != (logOptions{Dir: "/var/log/berth", MaxSize: 1536, MaxFile: 3}) {
		t.Errorf("log %+v, want /var/log/berth, 1536 bytes, 3 files", cs.log)
	}
	for _, off := range []container.Spec{
		{Image: "busybox", LogPath: "/var/log/berth/c1-json.log", Log: container.LogConfig{Driver: "none"}},
		{Image: "busybox"},
	} {
		if cs, err := readSpec(off); err != nil || cs.log != nil {
			t.Errorf("readSpec(%+v) = log %+v, %v; want no log", off, cs.log, err)
		}
	}
	for setting, spec := range map[string]container.Spec{
		"tmpfs /run size":     {Image: "busybox", Tmpfs: []container.Tmpfs{{Path: "/run", Options: "size=lots"}}},
		"log option max-size": {Image: "busybox", LogPath: "/l/c-json.log", Log: container.LogConfig{Options: map[string]string{"max-size": "-1m"}}},
		"log option max-file": {Image: "busybox", LogPath: "/l/c-json.log", Log: container.LogConfig{Options: map[string]string{"max-file": "many"}}},
		"image reference":     {Image: "Not A Reference"},
	} {
		if _, err := readSpec(spec); err == nil || !strings.Contains(err.Error(), setting) {
			t.Errorf("readSpec error = %v, want one naming %q", err, setting)
		}
	}
	for in, want := range map[string]int64{"512": 512, "64k": 64 << 10, "10m": 10 << 20, "1g": 1 << 30, "2MB": 2 << 20, "7b": 7} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestSecurityOptionsInTheSpec(t *testing.T) {
	apply := func(opts []oci.SpecOpts) *oci.Spec {
		t.Helper()
		s := &oci.Spec{Process: &specs.Process{}, Linux: &specs.Linux{}}
		for _, o := range opts {
			if err := o(context.Background(), nil, nil, s); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	opts, err := securityOpts(container.Spec{AppArmorProfile: "berth-web", NoNewPrivileges: true}, lsms{apparmor: true})
	if err != nil {
		t.Fatal(err)
	}
	if s := apply(opts); s.Process.ApparmorProfile != "berth-web" || !s.Process.NoNewPrivileges {
		t.Errorf("process apparmor profile %q, no_new_privs %v; want berth-web and true", s.Process.ApparmorProfile, s.Process.NoNewPrivileges)
	}
	if s := apply(mustOpts(t)(securityOpts(container.Spec{}, lsms{apparmor: true, selinux: true}))); s.Process.ApparmorProfile != "" || s.Process.SelinuxLabel != "" {
		t.Errorf("no security options gave apparmor %q, selinux %q", s.Process.ApparmorProfile, s.Process.SelinuxLabel)
	}
	// On a host without the module the option is refused by name, never
	// dropped.
	for name, spec := range map[string]container.Spec{
		"apparmor:berth-web": {AppArmorProfile: "berth-web"},
		"label:type:spc_t":   {SELinuxOptions: []string{"type:spc_t"}},
	} {
		_, err := securityOpts(spec, lsms{})
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s on a host without it: %v, want ErrUnsupported naming it", name, err)
		}
	}
}

func mustOpts(t *testing.T) func([]oci.SpecOpts, error) []oci.SpecOpts {
	return func(opts []oci.SpecOpts, err error) []oci.SpecOpts {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return opts
	}
}
