package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// tomlShape is the TOML value shape a key accepts.
type tomlShape int

const (
	tomlString tomlShape = iota
	tomlBool
	tomlInt
	tomlIntArray
	tomlStringArray
	tomlStringTable
)

// valueType is how one kind of setting is parsed from its environment-syntax
// text, rendered back, described in the document and in errors.
type valueType[T any] struct {
	// name is the type column of docs/configuration.md.
	name string
	// want completes the error sentence `"value" is not <want>`.
	want string
	// toml is the TOML shape accepted for the key.
	toml tomlShape
	// parse converts text to a value; a non-empty error text is appended to
	// the message as a detail.
	parse func(string) (T, error)
	// format renders a value as the text parse accepts.
	format func(T) string
	// secret values are never printed, logged or echoed in problems.
	secret bool
}

var errNoDetail = errors.New("")

func stringType(name, want string, check func(string) error) valueType[string] {
	return valueType[string]{name: name, want: want, toml: tomlString,
		parse: func(s string) (string, error) {
			if check != nil {
				if err := check(s); err != nil {
					return "", err
				}
			}
			return s, nil
		},
		format: func(s string) string { return s }}
}

func anyString() valueType[string] { return stringType("string", "a string", nil) }

func absPath() valueType[string] {
	return stringType("path", "an absolute path", func(s string) error {
		if !filepath.IsAbs(s) {
			return errNoDetail
		}
		return nil
	})
}

func secretType(want string, check func(string) error) valueType[Secret] {
	return valueType[Secret]{name: "string (secret)", want: want, toml: tomlString,
		parse: func(s string) (Secret, error) {
			if check != nil {
				if err := check(s); err != nil {
					return "", err
				}
			}
			return Secret(s), nil
		},
		format: func(s Secret) string { return s.Reveal() }, secret: true}
}

func boolType() valueType[bool] {
	return valueType[bool]{name: "bool", want: "a boolean (allowed: true, false)", toml: tomlBool,
		// strconv.ParseBool is what the ECS agent uses, so 1/0/t/f/TRUE are accepted too.
		parse:  func(s string) (bool, error) { b, err := strconv.ParseBool(s); return b, noDetail(err) },
		format: strconv.FormatBool}
}

func intType(lo, hi int) valueType[int] {
	return valueType[int]{name: "integer", want: fmt.Sprintf("an integer from %d to %d", lo, hi), toml: tomlInt,
		parse: func(s string) (int, error) {
			n, err := strconv.Atoi(s)
			if err != nil || n < lo || n > hi {
				return 0, errNoDetail
			}
			return n, nil
		},
		format: strconv.Itoa}
}

func durationType(minimum time.Duration) valueType[time.Duration] {
	want := "a duration (e.g. 30s, 5m, 3h)"
	if minimum > 0 {
		want = fmt.Sprintf("a duration of at least %s (e.g. 30s, 5m, 3h)", formatDuration(minimum))
	}
	return valueType[time.Duration]{name: "duration", want: want, toml: tomlString,
		parse: func(s string) (time.Duration, error) {
			d, err := time.ParseDuration(s)
			if err != nil || d < minimum || d < 0 {
				return 0, errNoDetail
			}
			return d, nil
		},
		format: formatDuration}
}

// formatDuration renders whole hours, minutes and seconds the way people
// write them ("3h", "30m") instead of time.Duration's "3h0m0s".
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}

// signedDurationType accepts any duration, negative ones too: the keys that
// use it clamp or reset small values with a warning, as the ECS agent does,
// rather than refusing them.
func signedDurationType() valueType[time.Duration] {
	return valueType[time.Duration]{name: "duration", want: "a duration (e.g. 30s, 5m, 3h)", toml: tomlString,
		parse:  func(s string) (time.Duration, error) { d, err := time.ParseDuration(s); return d, noDetail(err) },
		format: formatDuration}
}

// logLevelType is the ECS agent's log levels, in any case, as it accepts them.
func logLevelType() valueType[string] {
	allowed := []string{"debug", "info", "warn", "error", "crit", "none"}
	return valueType[string]{name: "enum: " + strings.Join(allowed, ", "),
		want: fmt.Sprintf("a valid log level (allowed: %s)", strings.Join(allowed, ", ")), toml: tomlString,
		parse: func(s string) (string, error) {
			l := strings.ToLower(s)
			if !slices.Contains(allowed, l) {
				return "", errNoDetail
			}
			return l, nil
		},
		format: func(s string) string { return s }}
}

// positiveFloatType is a number above zero, such as a size in MB.
func positiveFloatType() valueType[float64] {
	return valueType[float64]{name: "number", want: "a number above 0 (e.g. 5 or 0.5)", toml: tomlString,
		parse: func(s string) (float64, error) {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || !(f > 0) || math.IsInf(f, 0) {
				return 0, errNoDetail
			}
			return f, nil
		},
		format: func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }}
}

// commaListType is a comma-separated list of names, as the ECS agent's
// ECS_EXCLUDE_UNTRACKED_IMAGE.
func commaListType() valueType[[]string] {
	return valueType[[]string]{name: "comma-separated list", want: "a comma-separated list of image names (name:tag)", toml: tomlString,
		parse: func(s string) ([]string, error) {
			var out []string
			for _, item := range strings.Split(s, ",") {
				if item = strings.TrimSpace(item); item != "" {
					out = append(out, item)
				}
			}
			return out, nil
		},
		format: func(l []string) string { return strings.Join(l, ",") }}
}

// prefixListType is a JSON array of IPv4 or IPv6 CIDR prefixes.
func prefixListType() valueType[[]netip.Prefix] {
	return valueType[[]netip.Prefix]{name: "JSON array of CIDRs", want: `a JSON array of CIDR prefixes (e.g. ["10.0.15.0/24"])`, toml: tomlStringArray,
		parse: func(s string) ([]netip.Prefix, error) {
			var list []string
			if err := strictJSON(s, &list); err != nil {
				return nil, errNoDetail
			}
			out := []netip.Prefix{}
			for _, item := range list {
				p, err := netip.ParsePrefix(item)
				if err != nil {
					return nil, fmt.Errorf("%q is not a CIDR prefix", item)
				}
				out = append(out, p)
			}
			return out, nil
		},
		format: func(ps []netip.Prefix) string {
			list := make([]string, 0, len(ps))
			for _, p := range ps {
				list = append(list, p.String())
			}
			b, _ := json.Marshal(list)
			return string(b)
		}}
}

func enumType(name string, allowed ...string) valueType[string] {
	return stringType("enum: "+strings.Join(allowed, ", "),
		fmt.Sprintf("a valid %s (allowed: %s)", name, strings.Join(allowed, ", ")),
		func(s string) error {
			if !slices.Contains(allowed, s) {
				return errNoDetail
			}
			return nil
		})
}

func portListType() valueType[[]uint16] {
	return valueType[[]uint16]{name: "JSON array of ports", want: "a JSON array of ports (1-65535)", toml: tomlIntArray,
		parse: func(s string) ([]uint16, error) {
			var raw []json.Number
			dec := json.NewDecoder(strings.NewReader(s))
			dec.UseNumber()
			if err := dec.Decode(&raw); err != nil || dec.More() {
				return nil, errNoDetail
			}
			ports := make([]uint16, 0, len(raw))
			for _, n := range raw {
				p, err := strconv.ParseUint(n.String(), 10, 16)
				if err != nil || p == 0 {
					return nil, fmt.Errorf("%s is out of range", n)
				}
				ports = append(ports, uint16(p))
			}
			return ports, nil
		},
		format: func(ps []uint16) string { b, _ := json.Marshal(ps); return string(b) }}
}

func portRangeType() valueType[PortRange] {
	return valueType[PortRange]{name: "port range", want: "a port range first-last (1-65535, first <= last)", toml: tomlString,
		parse: func(s string) (PortRange, error) {
			a, b, ok := strings.Cut(s, "-")
			if !ok {
				return PortRange{}, errNoDetail
			}
			first, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
			last, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
			if err1 != nil || err2 != nil || first == 0 || first > last {
				return PortRange{}, errNoDetail
			}
			return PortRange{First: uint16(first), Last: uint16(last)}, nil
		},
		format: PortRange.String}
}

func jsonStringListType(name, want string, check func(string) error) valueType[[]string] {
	return valueType[[]string]{name: name, want: want, toml: tomlStringArray,
		parse: func(s string) ([]string, error) {
			var list []string
			if err := strictJSON(s, &list); err != nil {
				return nil, errNoDetail
			}
			for _, item := range list {
				if err := check(item); err != nil {
					return nil, fmt.Errorf("%q %w", item, err)
				}
			}
			if list == nil {
				list = []string{}
			}
			return list, nil
		},
		format: func(l []string) string { b, _ := json.Marshal(l); return string(b) }}
}

func jsonStringMapType(name, want string, check func(k, v string) error) valueType[map[string]string] {
	return valueType[map[string]string]{name: name, want: want, toml: tomlStringTable,
		parse: func(s string) (map[string]string, error) {
			var m map[string]string
			if err := strictJSON(s, &m); err != nil {
				return nil, errNoDetail
			}
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				if err := check(k, m[k]); err != nil {
					return nil, err
				}
			}
			if m == nil {
				m = map[string]string{}
			}
			return m, nil
		},
		// encoding/json sorts map keys, so the rendering is stable.
		format: func(m map[string]string) string { b, _ := json.Marshal(m); return string(b) }}
}

// strictJSON decodes exactly one JSON value and nothing after it.
func strictJSON(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

func rateLimitType() valueType[RateLimit] {
	return valueType[RateLimit]{name: "rps,burst", want: "a rate limit rps,burst (two integers)", toml: tomlString,
		parse: func(s string) (RateLimit, error) {
			a, b, ok := strings.Cut(s, ",")
			if !ok {
				return RateLimit{}, errNoDetail
			}
			rps, err1 := strconv.Atoi(strings.TrimSpace(a))
			burst, err2 := strconv.Atoi(strings.TrimSpace(b))
			if err1 != nil || err2 != nil {
				return RateLimit{}, errNoDetail
			}
			return RateLimit{RPS: rps, Burst: burst}, nil
		},
		format: func(r RateLimit) string { return fmt.Sprintf("%d,%d", r.RPS, r.Burst) }}
}

func pathListType() valueType[[]string] {
	return valueType[[]string]{name: "path list", want: "a :-separated list of absolute paths", toml: tomlString,
		parse: func(s string) ([]string, error) {
			parts := strings.Split(s, ":")
			for _, p := range parts {
				if !filepath.IsAbs(p) {
					return nil, fmt.Errorf("%q is not absolute", p)
				}
			}
			return parts, nil
		},
		format: func(ps []string) string { return strings.Join(ps, ":") }}
}

func subnetType() valueType[netip.Prefix] {
	return valueType[netip.Prefix]{name: "IPv4 CIDR", want: "an IPv4 subnet in CIDR form with a prefix of /8 to /30 (e.g. 10.203.0.0/16)", toml: tomlString,
		parse: func(s string) (netip.Prefix, error) {
			p, err := netip.ParsePrefix(s)
			if err != nil || !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 30 {
				return netip.Prefix{}, errNoDetail
			}
			if p != p.Masked() {
				return netip.Prefix{}, fmt.Errorf("host bits are set; did you mean %s?", p.Masked())
			}
			return p, nil
		},
		format: netip.Prefix.String}
}

func addrPortType() valueType[netip.AddrPort] {
	return valueType[netip.AddrPort]{name: "ip:port", want: "an IP:port address (e.g. 127.0.0.1:51678)", toml: tomlString,
		parse: func(s string) (netip.AddrPort, error) {
			ap, err := netip.ParseAddrPort(s)
			if err != nil || ap.Port() == 0 {
				return netip.AddrPort{}, errNoDetail
			}
			return ap, nil
		},
		format: netip.AddrPort.String}
}

func ipAddrType() valueType[netip.Addr] {
	return valueType[netip.Addr]{name: "ip", want: "an IPv4 address (e.g. 10.0.0.5)", toml: tomlString,
		parse: func(s string) (netip.Addr, error) {
			a, err := netip.ParseAddr(s)
			if err != nil || !a.Is4() {
				return netip.Addr{}, errNoDetail
			}
			return a, nil
		},
		format: func(a netip.Addr) string {
			if !a.IsValid() {
				return ""
			}
			return a.String()
		}}
}

// noDetail drops a foreign error's text, which would only repeat the value.
func noDetail(err error) error {
	if err != nil {
		return errNoDetail
	}
	return nil
}

var (
	clusterNameRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	regionRE       = regexp.MustCompile(`^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$`)
	namespaceRE    = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)
	attrNameRE     = regexp.MustCompile(`^[A-Za-z0-9_./-]{1,128}$`)
	attrValueRE    = regexp.MustCompile(`^[A-Za-z0-9_.@/: -]{1,128}$`)
	registryHostRE = regexp.MustCompile(`^[A-Za-z0-9.-]+(:[0-9]{1,5})?$`)
)

func checkCluster(s string) error {
	if clusterNameRE.MatchString(s) || strings.HasPrefix(s, "arn:") {
		return nil
	}
	return errNoDetail
}

func checkRegion(s string) error {
	if regionRE.MatchString(s) {
		return nil
	}
	return errNoDetail
}

func checkNamespace(s string) error {
	if len(s) <= 76 && namespaceRE.MatchString(s) {
		return nil
	}
	return errNoDetail
}

func checkInterfaceName(s string) error {
	// Linux limits interface names to IFNAMSIZ-1 bytes and forbids / and whitespace.
	if len(s) == 0 || len(s) > 15 || strings.ContainsAny(s, "/: \t\n") {
		return errNoDetail
	}
	return nil
}

// backendHostType accepts what the ECS agent accepts, a URL or a bare host,
// and a comma-separated list of them naming replicas of one Berth cluster
// endpoint (the agent moves to the next when one cannot be reached).
func backendHostType() valueType[string] {
	return valueType[string]{name: "URL", want: "an http(s) URL or a host name, or several separated by commas", toml: tomlString,
		parse: func(s string) (string, error) {
			parts := strings.Split(s, ",")
			for i, p := range parts {
				p = withScheme(strings.TrimSpace(p))
				u, err := url.Parse(p)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return "", errNoDetail
				}
				parts[i] = p
			}
			return strings.Join(parts, ","), nil
		},
		format: func(s string) string { return s }}
}

func withScheme(s string) string {
	if strings.Contains(s, "://") {
		return s
	}
	return "https://" + s
}

func checkLoggingDriver(s string) error {
	known := knownLoggingDrivers()
	if slices.Contains(known, s) {
		return nil
	}
	return fmt.Errorf("is not a logging driver (allowed: %s)", strings.Join(known, ", "))
}

// knownLoggingDrivers are the values the ECS agent accepts.
func checkAWSLogsEndpoint(s string) error {
	if s == "" || s == "cluster" || strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		return nil
	}
	return errors.New(`must be empty, "cluster", or an http:// or https:// URL`)
}

func knownLoggingDrivers() []string {
	return []string{"json-file", "syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "logentries", "awsfirelens", "none"}
}

func checkRegistryHost(s string) error {
	if registryHostRE.MatchString(s) {
		return nil
	}
	return errors.New("is not a registry host or host:port")
}

func checkECRRegistry(host, endpoint string) error {
	if err := checkRegistryHost(host); err != nil {
		return fmt.Errorf("%q %w", host, err)
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("registry %q: endpoint %q is not an http(s) URL", host, endpoint)
	}
	return nil
}

func checkAttribute(k, v string) error {
	if !attrNameRE.MatchString(k) {
		return fmt.Errorf("attribute name %q is not allowed (1-128 letters, digits, _ . / -)", k)
	}
	if !attrValueRE.MatchString(v) {
		return fmt.Errorf("attribute %q value %q is not allowed (1-128 letters, digits, spaces, _ . @ / : -)", k, v)
	}
	return nil
}

func checkTag(k, v string) error {
	if k == "" || len(k) > 128 {
		return fmt.Errorf("tag key %q must be 1-128 characters", k)
	}
	if strings.HasPrefix(strings.ToLower(k), "aws:") {
		return fmt.Errorf("tag key %q uses the reserved aws: prefix", k)
	}
	if len(v) > 256 {
		return fmt.Errorf("tag %q value is longer than 256 characters", k)
	}
	return nil
}

// checkAuthData validates ECS_ENGINE_AUTH_DATA's shape, a JSON object keyed by
// registry, without echoing any part of it.
func checkAuthData(s string) error {
	var m map[string]json.RawMessage
	if err := strictJSON(s, &m); err != nil {
		return errNoDetail
	}
	return nil
}
