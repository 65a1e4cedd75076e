package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultConfigPath is where the berth-lb package installs its
// configuration.
const DefaultConfigPath = "/etc/berth/lb.toml"

// Config is /etc/berth/lb.toml.
type Config struct {
	// Endpoint is the cluster endpoint's URL (https://host:port).
	Endpoint string `toml:"endpoint"`
	// Region is the endpoint's region (SigV4 scope).
	Region string `toml:"region"`
	// AccessKeyID and SecretAccessKey are an lb key
	// (berth-cluster keys create --role lb).
	AccessKeyID     string `toml:"access_key_id"`
	SecretAccessKey string `toml:"secret_access_key"`
	// CAFile, when set, is the CA bundle that verifies the endpoint's
	// certificate (else the system's trust store).
	CAFile string `toml:"ca_file"`
	// LoadBalancers are the names (or ARNs) of the load balancers this host
	// serves; each gets its own HAProxy.
	LoadBalancers []string `toml:"load_balancers"`
	// BindAddress is the address listeners bind; "" binds every address.
	BindAddress string `toml:"bind_address"`
	// HAProxy is the haproxy binary.
	HAProxy string `toml:"haproxy"`
	// RunDir holds one directory per load balancer: HAProxy's
	// configuration, sockets, pid file, server state and certificates.
	RunDir string `toml:"run_dir"`
	// PollInterval is how often the state is read and health reported.
	PollInterval duration `toml:"poll_interval"`
	// MetricsInterval is how often HAProxy's counters are reported as the
	// load balancer's metrics.
	MetricsInterval duration `toml:"metrics_interval"`
	LogLevel        string   `toml:"log_level"`
	LogFormat       string   `toml:"log_format"`
}

// duration is a time.Duration written as a Go duration string ("2s").
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q %s", b, errNotDuration)
	}
	d.Duration = v
	return nil
}

const errNotDuration = "is not a duration (e.g. 2s, 500ms)"

// Defaults are the values of the settings a file leaves out.
func Defaults() Config {
	return Config{Region: "us-east-1", HAProxy: "/usr/sbin/haproxy", RunDir: "/run/berth-lb",
		PollInterval: duration{2 * time.Second}, MetricsInterval: duration{10 * time.Second}, LogLevel: "info", LogFormat: "logfmt"}
}

// ConfigError lists every problem of a configuration file, one per line,
// each as "file:line: key: what is wrong".
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string { return strings.Join(e.Problems, "\n") }

var (
	typeErrRE = regexp.MustCompile(`line ([0-9]+) \(last key "([^"]*)"\): (.*)$`)
	regionRE  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	lbNameRE  = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$`)
)

const knownKeys = "endpoint, region, access_key_id, secret_access_key, ca_file, load_balancers, bind_address, haproxy, run_dir, poll_interval, metrics_interval, log_level, log_format"

// LoadConfig reads the file at path over Defaults and validates it.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig decodes data (named path in errors) over Defaults and
// validates it.
func ParseConfig(path string, data []byte) (Config, error) {
	cfg := Defaults()
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) && pe.Position.Line > 0 && pe.LastKey != "" && strings.Contains(pe.Message, errNotDuration) {
			return Config{}, &ConfigError{[]string{fmt.Sprintf("%s:%d: %s: %s", path, pe.Position.Line, pe.LastKey, pe.Message)}}
		}
		if errors.As(err, &pe) && pe.Position.Line > 0 {
			return Config{}, &ConfigError{[]string{fmt.Sprintf("%s:%d: TOML syntax: %s", path, pe.Position.Line, pe.Message)}}
		}
		if m := typeErrRE.FindStringSubmatch(err.Error()); m != nil {
			return Config{}, &ConfigError{[]string{fmt.Sprintf("%s:%s: %s: %s", path, m[1], m[2], m[3])}}
		}
		return Config{}, &ConfigError{[]string{fmt.Sprintf("%s: %v", path, err)}}
	}
	var problems []string
	add := func(key, format string, args ...any) {
		where := path
		if line := assignedLine(data, key); line > 0 {
			where = fmt.Sprintf("%s:%d", path, line)
		}
		problems = append(problems, fmt.Sprintf("%s: %s: %s", where, key, fmt.Sprintf(format, args...)))
	}
	for _, k := range md.Undecoded() {
		add(k.String(), "unknown setting; allowed: %s", knownKeys)
	}
	if u, err := url.Parse(cfg.Endpoint); cfg.Endpoint == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("endpoint", "%q is not the endpoint's URL (http:// or https://host:port)", cfg.Endpoint)
	}
	if !regionRE.MatchString(cfg.Region) {
		add("region", "%q is not a region name (e.g. us-east-1)", cfg.Region)
	}
	if cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
		for _, k := range []string{"access_key_id", "secret_access_key"} {
			if !md.IsDefined(k) {
				add(k, "required: an lb key (berth-cluster keys create --role lb)")
			}
		}
		if md.IsDefined("access_key_id") && md.IsDefined("secret_access_key") {
			add("access_key_id", "the key and its secret must not be empty")
		}
	}
	if len(cfg.LoadBalancers) == 0 {
		add("load_balancers", "required: the names of the load balancers this host serves")
	}
	seen := map[string]bool{}
	for _, n := range cfg.LoadBalancers {
		if !lbNameRE.MatchString(n) && !strings.HasPrefix(n, "arn:") {
			add("load_balancers", "%q is not a load balancer name (1-32 letters, digits, hyphens) or ARN", n)
		}
		if seen[n] {
			add("load_balancers", "%q is listed twice", n)
		}
		seen[n] = true
	}
	if cfg.BindAddress != "" {
		if _, err := netip.ParseAddr(cfg.BindAddress); err != nil {
			add("bind_address", "%q is not an IP address (or \"\" for every address)", cfg.BindAddress)
		}
	}
	if !filepath.IsAbs(cfg.HAProxy) {
		add("haproxy", "%q is not an absolute path", cfg.HAProxy)
	}
	if !filepath.IsAbs(cfg.RunDir) {
		add("run_dir", "%q is not an absolute path", cfg.RunDir)
	}
	if cfg.PollInterval.Duration < 100*time.Millisecond || cfg.PollInterval.Duration > 5*time.Minute {
		add("poll_interval", "%s: allowed from 100ms to 5m", cfg.PollInterval.Duration)
	}
	if cfg.MetricsInterval.Duration < time.Second || cfg.MetricsInterval.Duration > time.Minute {
		add("metrics_interval", "%s: allowed from 1s to 1m", cfg.MetricsInterval.Duration)
	}
	if cfg.CAFile != "" && !filepath.IsAbs(cfg.CAFile) {
		add("ca_file", "%q is not an absolute path", cfg.CAFile)
	}
	switch cfg.LogLevel {
	case "debug", "info", "warn", "error", "crit":
	default:
		add("log_level", "%q: allowed are debug, info, warn, error, crit", cfg.LogLevel)
	}
	if cfg.LogFormat != "logfmt" && cfg.LogFormat != "json" {
		add("log_format", "%q: allowed are logfmt, json", cfg.LogFormat)
	}
	if len(problems) > 0 {
		return Config{}, &ConfigError{problems}
	}
	return cfg, nil
}

// assignedLine returns the line where a top-level key is assigned, or 0
// (lb.toml has no tables).
func assignedLine(data []byte, key string) int {
	re := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(key) + `"?\s*=`)
	for i, line := range strings.Split(string(data), "\n") {
		if re.MatchString(line) {
			return i + 1
		}
	}
	return 0
}
