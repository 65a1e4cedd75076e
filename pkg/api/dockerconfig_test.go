package api

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeDockerConfigFixture(t *testing.T) {
	cfg := `{"Healthcheck": {"Test": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1"], "Interval": 5000000000, "Timeout": 2000000000, "Retries": 3, "StartPeriod": 1000000000}, "User": "0", "WorkingDir": "/www", "Hostname": "web"}`
	host := `{"LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}, "Ulimits": [{"Name": "nofile", "Soft": 4096, "Hard": 8192}], "CapAdd": ["NET_BIND_SERVICE"], "CapDrop": ["MKNOD"], "MemoryReservation": 33554432, "ReadonlyRootfs": false, "Dns": ["10.0.0.2"], "ExtraHosts": ["db.internal:10.0.0.9"], "Tmpfs": {"/run": "rw,size=16m"}, "ShmSize": 67108864, "Init": true}`
	s, err := DecodeDockerConfig(cfg, host)
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	want := &ContainerSettings{
		Config: DockerConfig{
			Hostname: "web", User: "0", WorkingDir: "/www",
			Healthcheck: &HealthConfig{
				Test:     []string{"CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1"},
				Interval: 5 * time.Second, Timeout: 2 * time.Second, Retries: 3, StartPeriod: time.Second,
			},
		},
		HostConfig: DockerHostConfig{
			LogConfig:         &LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "3"}},
			Ulimits:           []Ulimit{{Name: "nofile", Soft: 4096, Hard: 8192}},
			CapAdd:            []string{"NET_BIND_SERVICE"},
			CapDrop:           []string{"MKNOD"},
			MemoryReservation: 32 << 20,
			DNS:               []string{"10.0.0.2"},
			ExtraHosts:        []string{"db.internal:10.0.0.9"},
			Tmpfs:             map[string]string{"/run": "rw,size=16m"},
			ShmSize:           64 << 20,
			Init:              &yes,
		},
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", s, want)
	}
	raw, err := EncodeDockerConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Version != DockerAPIVersion {
		t.Fatalf("version %q", raw.Version)
	}
	back, err := raw.Decode()
	if err != nil || !reflect.DeepEqual(back, s) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

func TestDecodeDockerConfigEmpty(t *testing.T) {
	for _, in := range [][2]string{{"", ""}, {"{}", "{}"}, {"null", " null "}, {`{"Env":[],"Cmd":null,"Tty":false}`, `{"Devices":[],"Privileged":false,"CpuShares":0,"SecurityOpt":null}`}} {
		s, err := DecodeDockerConfig(in[0], in[1])
		if err != nil {
			t.Fatalf("DecodeDockerConfig(%q, %q): %v", in[0], in[1], err)
		}
		if !reflect.DeepEqual(s, &ContainerSettings{}) {
			t.Fatalf("DecodeDockerConfig(%q, %q) = %+v, want zero settings", in[0], in[1], s)
		}
	}
}

func TestDecodeDockerConfigUnsupported(t *testing.T) {
	cases := []struct {
		config, host   string
		section, field string
	}{
		{"", `{"Devices":[{"PathOnHost":"/dev/fuse"}]}`, "hostConfig", "Devices"},
		{"", `{"LogConfig":{"Type":"json-file"},"CgroupParent":"/other"}`, "hostConfig", "CgroupParent"},
		{"", `{"Sysctls":{"net.core.somaxconn":"1024"}}`, "hostConfig", "Sysctls"},
		{"", `{"CpuShares":512}`, "hostConfig", "CpuShares"},
		{`{"Tty":true}`, "", "config", "Tty"},
		{`{"Env":["A=b"]}`, "", "config", "Env"},
		{`{"Healthcheck":{"Test":["CMD","true"],"StartInterval":1000}}`, "", "config", "Healthcheck.StartInterval"},
		{"", `{"LogConfig":{"Type":"json-file","Extra":"x"}}`, "hostConfig", "LogConfig.Extra"},
	}
	for _, c := range cases {
		_, err := DecodeDockerConfig(c.config, c.host)
		var ufe *UnsupportedFieldError
		if !errors.As(err, &ufe) || ufe.Section != c.section || ufe.Field != c.field {
			t.Fatalf("DecodeDockerConfig(%q, %q) = %v; want unsupported %s field %q", c.config, c.host, err, c.section, c.field)
		}
		if !strings.Contains(err.Error(), `"`+c.field+`"`) {
			t.Fatalf("error %q does not name the field", err)
		}
	}
	// The message is what the engine puts in the stop reason.
	_, err := DecodeDockerConfig("", `{"Devices":[{"PathOnHost":"/dev/fuse"}]}`)
	if err == nil || err.Error() != `unsupported hostConfig field "Devices"` {
		t.Fatalf("got %v", err)
	}
}

func TestDecodeDockerConfigCaseInsensitive(t *testing.T) {
	s, err := DecodeDockerConfig(`{"user":"1000","workingdir":"/app"}`, `{"shmsize":1024}`)
	if err != nil {
		t.Fatal(err)
	}
	if s.Config.User != "1000" || s.Config.WorkingDir != "/app" || s.HostConfig.ShmSize != 1024 {
		t.Fatalf("got %+v", s)
	}
}

func TestDecodeDockerConfigInvalid(t *testing.T) {
	cases := [][2]string{
		{`{"User":`, ""},
		{`[]`, ""},
		{`{"User":5}`, ""},
		{`{"Healthcheck":{"Test":["CURL","x"]}}`, ""},
		{`{"Healthcheck":{"Test":["CMD"]}}`, ""},
		{`{"Healthcheck":{"Test":["CMD","x"],"Interval":-1}}`, ""},
		{"", `{"Ulimits":[{"Name":"nofile","Soft":10,"Hard":5}]}`},
		{"", `{"Ulimits":[{"Soft":1,"Hard":5}]}`},
		{"", `{"MemoryReservation":-1}`},
		{"", `{"ShmSize":-5}`},
		{"", `{"Tmpfs":{"run":"rw"}}`},
		{"", `{"ExtraHosts":["nohost"]}`},
		{"", `{"ExtraHosts":["db:not-an-ip"]}`},
		{"", `{"LogConfig":{"Config":{"a":"b"}}}`},
	}
	for _, c := range cases {
		_, err := DecodeDockerConfig(c[0], c[1])
		if !errors.Is(err, ErrInvalidDockerConfig) {
			t.Errorf("DecodeDockerConfig(%q, %q) = %v; want ErrInvalidDockerConfig", c[0], c[1], err)
		}
	}
	if _, err := EncodeDockerConfig(&ContainerSettings{HostConfig: DockerHostConfig{ShmSize: -1}}); !errors.Is(err, ErrInvalidDockerConfig) {
		t.Errorf("EncodeDockerConfig with negative ShmSize = %v", err)
	}
}

func TestEncodeDockerConfigNames(t *testing.T) {
	raw, err := EncodeDockerConfig(&ContainerSettings{
		Config:     DockerConfig{StopSignal: "SIGTERM", Labels: map[string]string{"a": "b"}},
		HostConfig: DockerHostConfig{DNSSearch: []string{"lab"}, ReadonlyRootfs: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if raw.Config != `{"Labels":{"a":"b"},"StopSignal":"SIGTERM"}` || raw.HostConfig != `{"DnsSearch":["lab"],"ReadonlyRootfs":true}` {
		t.Fatalf("got %+v", raw)
	}
	empty, err := EncodeDockerConfig(nil)
	if err != nil || empty.Config != "{}" || empty.HostConfig != "{}" {
		t.Fatalf("empty settings encoded to %+v, %v", empty, err)
	}
}

func FuzzDecodeDockerConfig(f *testing.F) {
	f.Add(`{"Healthcheck":{"Test":["CMD","true"],"Interval":1000},"User":"0"}`, `{"LogConfig":{"Type":"json-file"},"Tmpfs":{"/run":"rw"}}`)
	f.Add(`{}`, `{"Devices":[{"PathOnHost":"/dev/null"}]}`)
	f.Add(``, `{"Ulimits":[{"Name":"nofile","Soft":1,"Hard":2}],"ExtraHosts":["a:1.2.3.4"]}`)
	f.Fuzz(func(t *testing.T, config, host string) {
		s, err := DecodeDockerConfig(config, host)
		if err != nil {
			var ufe *UnsupportedFieldError
			if !errors.As(err, &ufe) && !errors.Is(err, ErrInvalidDockerConfig) {
				t.Fatalf("error of unexpected kind: %v", err)
			}
			return
		}
		// What decodes also encodes, and decodes back to the same settings.
		raw, err := EncodeDockerConfig(s)
		if err != nil {
			t.Fatalf("decoded settings do not encode: %v", err)
		}
		back, err := raw.Decode()
		if err != nil {
			t.Fatalf("re-encoded settings do not decode: %v\n%+v", err, raw)
		}
		if !reflect.DeepEqual(normalizeSettings(s), normalizeSettings(back)) {
			t.Fatalf("round trip changed the settings:\n%+v\n%+v", s, back)
		}
	})
}

// normalizeSettings re-encodes settings so that empty and nil collections
// compare equal.
func normalizeSettings(s *ContainerSettings) string {
	raw, _ := EncodeDockerConfig(s)
	return raw.Config + raw.HostConfig
}

func TestContainerSettingsFoldsACSMembers(t *testing.T) {
	yes, no := true, false
	shm := int64(32)
	c := &Container{
		Name:       "x",
		Privileged: &yes,
		LinuxParameters: &LinuxParameters{
			Capabilities:       &KernelCapabilities{Add: []string{"NET_ADMIN", "NET_BIND_SERVICE"}, Drop: []string{"MKNOD"}},
			InitProcessEnabled: &yes,
			SharedMemorySize:   &shm,
		},
		DockerConfig: RawDockerConfig{HostConfig: `{"CapAdd":["NET_BIND_SERVICE"],"Init":false}`},
	}
	s, err := c.Settings()
	if err != nil {
		t.Fatal(err)
	}
	h := s.HostConfig
	if !h.Privileged || !reflect.DeepEqual(h.CapAdd, []string{"NET_BIND_SERVICE", "NET_ADMIN"}) ||
		!reflect.DeepEqual(h.CapDrop, []string{"MKNOD"}) || h.Init == nil || *h.Init != no || h.ShmSize != 32<<20 {
		t.Fatalf("settings %+v", h)
	}
	c.LinuxParameters.Devices = []Device{{HostPath: "/dev/fuse"}}
	_, err = c.Settings()
	if err == nil || err.Error() != `unsupported container field "linuxParameters.devices"` {
		t.Fatalf("devices: %v", err)
	}
	// The fixture's app container: hostConfig and linuxParameters agree.
	p, err := DecodeFrame(fixtureFrames(t)["PayloadMessage-berth-web-task.json"])
	if err != nil {
		t.Fatal(err)
	}
	app := p.(*PayloadMessage).Tasks[0].Container("app")
	s, err = app.Settings()
	if err != nil || s.HostConfig.ShmSize != 64<<20 || s.HostConfig.Init == nil || !*s.HostConfig.Init {
		t.Fatalf("app settings %+v, %v", s, err)
	}
}
