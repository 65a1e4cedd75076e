package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
)

// DockerAPIVersion is the Docker Engine API version written into
// RawDockerConfig.Version by EncodeDockerConfig; it is the version ECS uses.
const DockerAPIVersion = "1.17"

// Health check test forms (first element of HealthConfig.Test).
const (
	HealthTestNone     = "NONE"
	HealthTestCmd      = "CMD"
	HealthTestCmdShell = "CMD-SHELL"
)

// DockerConfig is the subset of the Docker Engine API container config
// ("Config" in POST /containers/create) that Berth honours. JSON names are
// Docker's.
type DockerConfig struct {
	Hostname    string            `json:"Hostname,omitempty"`
	User        string            `json:"User,omitempty"`
	WorkingDir  string            `json:"WorkingDir,omitempty"`
	Labels      map[string]string `json:"Labels,omitempty"`
	StopSignal  string            `json:"StopSignal,omitempty"`
	Healthcheck *HealthConfig     `json:"Healthcheck,omitempty"`
}

// HealthConfig is Docker's health check. Durations are nanoseconds on the
// wire, which is how time.Duration marshals.
type HealthConfig struct {
	// Test is [] (inherit the image's), ["NONE"], ["CMD", arg...] or
	// ["CMD-SHELL", command].
	Test        []string      `json:"Test,omitempty"`
	Interval    time.Duration `json:"Interval,omitempty"`
	Timeout     time.Duration `json:"Timeout,omitempty"`
	Retries     int           `json:"Retries,omitempty"`
	StartPeriod time.Duration `json:"StartPeriod,omitempty"`
}

// DockerHostConfig is the subset of the Docker Engine API host config that
// Berth honours. JSON names are Docker's.
type DockerHostConfig struct {
	LogConfig *LogConfig `json:"LogConfig,omitempty"`
	Ulimits   []Ulimit   `json:"Ulimits,omitempty"`
	// MemoryReservation is the soft memory limit in bytes.
	MemoryReservation int64    `json:"MemoryReservation,omitempty"`
	CapAdd            []string `json:"CapAdd,omitempty"`
	CapDrop           []string `json:"CapDrop,omitempty"`
	DNS               []string `json:"Dns,omitempty"`
	DNSSearch         []string `json:"DnsSearch,omitempty"`
	// ExtraHosts are "host:ip" entries added to /etc/hosts.
	ExtraHosts []string `json:"ExtraHosts,omitempty"`
	// Tmpfs maps a container path to mount options ("rw,size=16m").
	Tmpfs map[string]string `json:"Tmpfs,omitempty"`
	// ShmSize is the size of /dev/shm in bytes.
	ShmSize        int64 `json:"ShmSize,omitempty"`
	ReadonlyRootfs bool  `json:"ReadonlyRootfs,omitempty"`
	// Init runs an init process as PID 1; nil means the default (no init).
	Init       *bool `json:"Init,omitempty"`
	Privileged bool  `json:"Privileged,omitempty"`
	// SecurityOpt are the container's dockerSecurityOptions
	// ("no-new-privileges", "apparmor:PROFILE", "label:type:T", ...); the
	// engine reads and checks them.
	SecurityOpt []string `json:"SecurityOpt,omitempty"`
}

// LogConfig selects a log driver and its options.
type LogConfig struct {
	Type   string            `json:"Type,omitempty"`
	Config map[string]string `json:"Config,omitempty"`
}

// Ulimit is one resource limit (Name is e.g. "nofile", without "RLIMIT_").
type Ulimit struct {
	Name string `json:"Name"`
	Soft int64  `json:"Soft"`
	Hard int64  `json:"Hard"`
}

// ContainerSettings is what a container's dockerConfig strings decode to.
type ContainerSettings struct {
	Config     DockerConfig
	HostConfig DockerHostConfig
}

// UnsupportedFieldError reports a Docker config member that is set but that
// Berth cannot honour. Its message names the field so that it can be used
// as (part of) a task's stop reason.
type UnsupportedFieldError struct {
	// Section is "config" or "hostConfig" (the dockerConfig strings), or
	// "container" for an ACS container member (see Container.Settings).
	Section string
	// Field is the member's name as sent, with its parent for nested
	// members (e.g. "Healthcheck.StartInterval").
	Field string
}

func (e *UnsupportedFieldError) Error() string {
	return fmt.Sprintf("unsupported %s field %q", e.Section, e.Field)
}

// ErrInvalidDockerConfig is wrapped by DecodeDockerConfig and
// EncodeDockerConfig for malformed JSON or values out of range.
var ErrInvalidDockerConfig = errors.New("invalid dockerConfig")

// supportedConfig and supportedHostConfig list the members (lower-cased,
// because Docker matches member names case-insensitively) that Berth
// honours; nested lists name the members of nested objects.
func supportedConfig() map[string][]string {
	return map[string][]string{
		"hostname":    nil,
		"user":        nil,
		"workingdir":  nil,
		"labels":      nil,
		"stopsignal":  nil,
		"healthcheck": {"test", "interval", "timeout", "retries", "startperiod"},
	}
}

func supportedHostConfig() map[string][]string {
	return map[string][]string{
		"logconfig":         {"type", "config"},
		"ulimits":           nil,
		"memoryreservation": nil,
		"capadd":            nil,
		"capdrop":           nil,
		"dns":               nil,
		"dnssearch":         nil,
		"extrahosts":        nil,
		"tmpfs":             nil,
		"shmsize":           nil,
		"readonlyrootfs":    nil,
		"init":              nil,
		"privileged":        nil,
		"securityopt":       nil,
	}
}

// DecodeDockerConfig decodes a container's dockerConfig.config and
// dockerConfig.hostConfig strings (Docker Engine API JSON; either may be
// empty). A member that Berth does not support is an error of type
// *UnsupportedFieldError when it is set to anything but its zero value
// (null, false, 0, "", [] and {} count as not set, since Docker clients
// often send every member). Malformed JSON and out-of-range values wrap
// ErrInvalidDockerConfig.
func DecodeDockerConfig(config, hostConfig string) (*ContainerSettings, error) {
	s := &ContainerSettings{}
	if err := decodeSection("config", config, supportedConfig(), &s.Config); err != nil {
		return nil, err
	}
	if err := decodeSection("hostConfig", hostConfig, supportedHostConfig(), &s.HostConfig); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// EncodeDockerConfig renders settings as the dockerConfig strings of an ACS
// container. The values are validated the way DecodeDockerConfig would.
func EncodeDockerConfig(s *ContainerSettings) (RawDockerConfig, error) {
	if s == nil {
		s = &ContainerSettings{}
	}
	if err := s.Validate(); err != nil {
		return RawDockerConfig{}, err
	}
	cfg, err := json.Marshal(s.Config)
	if err != nil {
		return RawDockerConfig{}, fmt.Errorf("encode dockerConfig.config: %w", err)
	}
	host, err := json.Marshal(s.HostConfig)
	if err != nil {
		return RawDockerConfig{}, fmt.Errorf("encode dockerConfig.hostConfig: %w", err)
	}
	return RawDockerConfig{Version: DockerAPIVersion, Config: string(cfg), HostConfig: string(host)}, nil
}

func decodeSection(section, text string, supported map[string][]string, into any) error {
	text = strings.TrimSpace(text)
	if text == "" || text == "null" {
		return nil
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &members); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidDockerConfig, section, err)
	}
	// Check in a stable order so that the error names the same field
	// every time.
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		nested, ok := supported[strings.ToLower(k)]
		if !ok {
			if isSet(members[k]) {
				return &UnsupportedFieldError{Section: section, Field: k}
			}
			continue
		}
		if nested == nil {
			continue
		}
		if err := checkNested(section, k, members[k], nested); err != nil {
			return err
		}
	}
	if err := json.Unmarshal([]byte(text), into); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidDockerConfig, section, err)
	}
	return nil
}

// checkNested applies the supported-member rule to a nested object.
func checkNested(section, parent string, raw json.RawMessage, supported []string) error {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil // null, or a type error that json.Unmarshal reports
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &members); err != nil {
		return fmt.Errorf("%w: %s: %s: %w", ErrInvalidDockerConfig, section, parent, err)
	}
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.Contains(supported, strings.ToLower(k)) {
			continue
		}
		if isSet(members[k]) {
			return &UnsupportedFieldError{Section: section, Field: parent + "." + k}
		}
	}
	return nil
}

// isSet reports whether a JSON value is anything but a zero value.
func isSet(raw json.RawMessage) bool {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return true
	}
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case float64:
		return x != 0
	case string:
		return x != ""
	case []any:
		return len(x) != 0
	case map[string]any:
		return len(x) != 0
	}
	return true
}

// Validate checks the values of the settings: health check form and
// durations, ulimits, sizes, tmpfs paths and extra hosts. Errors wrap
// ErrInvalidDockerConfig.
func (s *ContainerSettings) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidDockerConfig, fmt.Sprintf(format, args...))
	}
	if hc := s.Config.Healthcheck; hc != nil {
		if len(hc.Test) > 0 {
			switch hc.Test[0] {
			case HealthTestNone:
			case HealthTestCmd, HealthTestCmdShell:
				if len(hc.Test) < 2 {
					return bad("Healthcheck.Test %q has no command", hc.Test[0])
				}
			default:
				return bad("Healthcheck.Test must start with NONE, CMD or CMD-SHELL, not %q", hc.Test[0])
			}
		}
		if hc.Interval < 0 || hc.Timeout < 0 || hc.StartPeriod < 0 || hc.Retries < 0 {
			return bad("Healthcheck durations and retries must not be negative")
		}
	}
	h := &s.HostConfig
	for _, u := range h.Ulimits {
		if u.Name == "" {
			return bad("Ulimits: a limit has no Name")
		}
		if u.Soft < -1 || u.Hard < -1 || (u.Hard != -1 && u.Soft > u.Hard) {
			return bad("Ulimits %q: soft %d and hard %d are not a valid pair", u.Name, u.Soft, u.Hard)
		}
	}
	if h.MemoryReservation < 0 {
		return bad("MemoryReservation %d is negative", h.MemoryReservation)
	}
	if h.ShmSize < 0 {
		return bad("ShmSize %d is negative", h.ShmSize)
	}
	for p := range h.Tmpfs {
		if !path.IsAbs(p) {
			return bad("Tmpfs path %q is not absolute", p)
		}
	}
	for _, e := range h.ExtraHosts {
		name, addr, ok := strings.Cut(e, ":")
		if !ok || name == "" {
			return bad("ExtraHosts entry %q is not host:ip", e)
		}
		if addr != "host-gateway" {
			if _, err := netip.ParseAddr(addr); err != nil {
				return bad("ExtraHosts entry %q: %v", e, err)
			}
		}
	}
	if lc := h.LogConfig; lc != nil && lc.Type == "" && len(lc.Config) > 0 {
		return bad("LogConfig has options but no Type")
	}
	return nil
}

// Settings decodes the container's dockerConfig and folds in the ACS
// members that say the same things in ECS's own words: privileged and
// linuxParameters (capabilities, initProcessEnabled, sharedMemorySize in
// MiB). Where both forms are present, hostConfig wins for single values and
// capability lists are merged. linuxParameters.devices is not supported and
// is reported as an *UnsupportedFieldError with Section "container".
func (c *Container) Settings() (*ContainerSettings, error) {
	s, err := c.DockerConfig.Decode()
	if err != nil {
		return nil, err
	}
	h := &s.HostConfig
	if c.Privileged != nil && *c.Privileged {
		h.Privileged = true
	}
	lp := c.LinuxParameters
	if lp == nil {
		return s, nil
	}
	if len(lp.Devices) > 0 {
		return nil, &UnsupportedFieldError{Section: "container", Field: "linuxParameters.devices"}
	}
	if caps := lp.Capabilities; caps != nil {
		h.CapAdd = mergeUnique(h.CapAdd, caps.Add)
		h.CapDrop = mergeUnique(h.CapDrop, caps.Drop)
	}
	if h.Init == nil && lp.InitProcessEnabled != nil {
		v := *lp.InitProcessEnabled
		h.Init = &v
	}
	if h.ShmSize == 0 && lp.SharedMemorySize != nil {
		if *lp.SharedMemorySize < 0 {
			return nil, fmt.Errorf("%w: linuxParameters.sharedMemorySize %d is negative", ErrInvalidDockerConfig, *lp.SharedMemorySize)
		}
		h.ShmSize = *lp.SharedMemorySize << 20
	}
	return s, nil
}

func mergeUnique(a, b []string) []string {
	for _, v := range b {
		if !slices.Contains(a, v) {
			a = append(a, v)
		}
	}
	return a
}
