package logship

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Driver names.
const (
	DriverJSONFile = "json-file"
	DriverNone     = "none"
	DriverAWSLogs  = "awslogs"
	DriverJournald = "journald"
	DriverSyslog   = "syslog"
	DriverFluentd  = "fluentd"
)

// CapabilityPrefix is the attribute prefix ECS uses for logging drivers.
const CapabilityPrefix = "com.amazonaws.ecs.capability.logging-driver."

// ErrInvalidOption is wrapped by every option validation error.
var ErrInvalidOption = errors.New("invalid log option")

// ErrDriverNotAllowed is wrapped when a driver is unknown or not listed in
// ECS_AVAILABLE_LOGGING_DRIVERS.
var ErrDriverNotAllowed = errors.New("log driver not available")

type optionCheck func(v string) error

// driverOptions lists the options each driver accepts with their checks.
func driverOptions(driver string) (map[string]optionCheck, bool) {
	common := map[string]optionCheck{
		"mode":            oneOf("blocking", "non-blocking"),
		"max-buffer-size": checkSize,
	}
	var own map[string]optionCheck
	switch driver {
	case DriverJSONFile:
		own = map[string]optionCheck{"max-size": checkSize, "max-file": checkPositiveInt,
			"compress": oneOf("false"), "labels": anyValue, "env": anyValue, "env-regex": checkRegexp, "tag": anyValue}
	case DriverNone:
		return map[string]optionCheck{}, true
	case DriverAWSLogs:
		own = map[string]optionCheck{
			"awslogs-region": anyValue, "awslogs-endpoint": checkURL, "awslogs-group": nonEmpty,
			"awslogs-stream": nonEmpty, "awslogs-stream-prefix": nonEmpty, "awslogs-create-group": checkBool,
			"awslogs-datetime-format": nonEmpty, "awslogs-multiline-pattern": checkRegexp,
			"awslogs-force-flush-interval-seconds": checkPositiveInt, "awslogs-max-buffered-events": checkPositiveInt,
			"awslogs-credentials-endpoint": anyValue,
		}
	case DriverJournald:
		own = map[string]optionCheck{"tag": anyValue, "labels": anyValue, "labels-regex": checkRegexp, "env": anyValue, "env-regex": checkRegexp}
	case DriverSyslog:
		own = map[string]optionCheck{
			"syslog-address": checkSyslogAddress, "syslog-facility": checkFacility,
			"syslog-format": oneOf("rfc3164", "rfc5424", "rfc5424micro"), "tag": anyValue,
			"syslog-tls-ca-cert": nonEmpty, "syslog-tls-cert": nonEmpty, "syslog-tls-key": nonEmpty,
			"syslog-tls-skip-verify": checkBool, "labels": anyValue, "env": anyValue, "env-regex": checkRegexp,
		}
	case DriverFluentd:
		own = map[string]optionCheck{
			"fluentd-address": checkFluentdAddress, "tag": anyValue, "fluentd-async": checkBool,
			"fluentd-async-connect": checkBool, "fluentd-buffer-limit": checkPositiveInt,
			"fluentd-retry-wait": checkDuration, "fluentd-max-retries": checkPositiveInt,
			"fluentd-sub-second-precision": checkBool, "fluentd-request-ack": checkBool,
			"fluentd-write-timeout": checkDuration, "labels": anyValue, "env": anyValue, "env-regex": checkRegexp,
		}
	default:
		return nil, false
	}
	for k, v := range own {
		common[k] = v
	}
	return common, true
}

// KnownDrivers lists the drivers this package understands.
func KnownDrivers() []string {
	return []string{DriverAWSLogs, DriverFluentd, DriverJournald, DriverJSONFile, DriverNone, DriverSyslog}
}

// ValidateOptions checks a container's logConfiguration options: an unknown
// option or a bad value returns an error naming it (wrapping
// ErrInvalidOption), so the task stops with a reason that says what to fix.
func ValidateOptions(driver string, opts map[string]string) error {
	checks, ok := driverOptions(driver)
	if !ok {
		return fmt.Errorf("log driver %q: %w", driver, ErrDriverNotAllowed)
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		check, ok := checks[k]
		if !ok {
			return fmt.Errorf("log driver %s: unknown log opt %q: %w", driver, k, ErrInvalidOption)
		}
		if err := check(opts[k]); err != nil {
			return fmt.Errorf("log driver %s: log opt %q=%q: %v: %w", driver, k, opts[k], err, ErrInvalidOption)
		}
	}
	switch driver {
	case DriverAWSLogs:
		if opts["awslogs-group"] == "" {
			return fmt.Errorf("log driver awslogs: log opt \"awslogs-group\" is required: %w", ErrInvalidOption)
		}
		if opts["awslogs-datetime-format"] != "" && opts["awslogs-multiline-pattern"] != "" {
			return fmt.Errorf("log driver awslogs: log opts \"awslogs-datetime-format\" and \"awslogs-multiline-pattern\" are mutually exclusive: %w", ErrInvalidOption)
		}
	case DriverSyslog:
		if !strings.HasPrefix(opts["syslog-address"], "tcp+tls://") {
			for _, k := range []string{"syslog-tls-ca-cert", "syslog-tls-cert", "syslog-tls-key", "syslog-tls-skip-verify"} {
				if _, ok := opts[k]; ok {
					return fmt.Errorf("log driver syslog: log opt %q needs a tcp+tls:// syslog-address: %w", k, ErrInvalidOption)
				}
			}
		}
	}
	return nil
}

// CheckAllowed reports whether driver may be used on an agent whose
// ECS_AVAILABLE_LOGGING_DRIVERS is allowed. The engine calls it when a
// task starts; the error wraps ErrDriverNotAllowed.
func CheckAllowed(driver string, allowed []string) error {
	if _, ok := driverOptions(driver); !ok {
		return fmt.Errorf("log driver %q is not supported by this agent: %w", driver, ErrDriverNotAllowed)
	}
	if !slices.Contains(allowed, driver) {
		return fmt.Errorf("log driver %q is not in ECS_AVAILABLE_LOGGING_DRIVERS %v: %w", driver, allowed, ErrDriverNotAllowed)
	}
	return nil
}

// CapabilityAttributes returns the attribute names an agent advertises for
// its allowed drivers (those this package supports), sorted.
func CapabilityAttributes(allowed []string) []string {
	var out []string
	for _, d := range allowed {
		if _, ok := driverOptions(d); ok && !slices.Contains(out, CapabilityPrefix+d) {
			out = append(out, CapabilityPrefix+d)
		}
	}
	sort.Strings(out)
	return out
}

// Mode returns whether opts ask for non-blocking delivery and its buffer
// bound in bytes (DefaultMaxBufferSize when unset). Call after
// ValidateOptions.
func Mode(opts map[string]string) (nonBlocking bool, maxBuffer int64) {
	if opts["mode"] != "non-blocking" {
		return false, 0
	}
	maxBuffer = DefaultMaxBufferSize
	if v := opts["max-buffer-size"]; v != "" {
		if n, err := ParseSize(v); err == nil {
			maxBuffer = n
		}
	}
	return true, maxBuffer
}

// ParseSize parses a Docker size ("64k", "1m", "2g", "512", "1MiB", "10MB");
// units are powers of 1024 as in Docker's RAMInBytes.
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	mult := map[string]float64{"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m[2]]
	return int64(f * mult), nil
}

var sizeRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?$`)

func anyValue(string) error { return nil }

func nonEmpty(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func oneOf(vals ...string) optionCheck {
	return func(v string) error {
		if !slices.Contains(vals, v) {
			return fmt.Errorf("must be one of %s", strings.Join(vals, ", "))
		}
		return nil
	}
}

func checkSize(v string) error { _, err := ParseSize(v); return err }

func checkBool(v string) error {
	if _, err := strconv.ParseBool(v); err != nil {
		return errors.New("must be true or false")
	}
	return nil
}

func checkPositiveInt(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return errors.New("must be a positive integer")
	}
	return nil
}

func checkDuration(v string) error {
	if d, err := time.ParseDuration(v); err != nil || d < 0 {
		return errors.New("must be a duration such as 1s")
	}
	return nil
}

func checkRegexp(v string) error {
	if _, err := regexp.Compile(v); err != nil {
		return fmt.Errorf("bad regular expression: %v", err)
	}
	return nil
}

func checkURL(v string) error {
	if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
		return errors.New("must be an http:// or https:// URL")
	}
	return nil
}

func checkSyslogAddress(v string) error {
	_, _, err := parseSyslogAddress(v)
	return err
}

func checkFacility(v string) error {
	_, err := parseFacility(v)
	return err
}

func checkFluentdAddress(v string) error {
	_, _, err := parseFluentdAddress(v)
	return err
}
