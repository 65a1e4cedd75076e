package logship

import (
	"errors"
	"strings"
	"testing"
)

// Bad options are refused with an error naming the option, so the task
// stops with a reason that says what to fix.
func TestValidateOptionsNamesTheOption(t *testing.T) {
	cases := []struct {
		driver string
		opts   map[string]string
		name   string // "" when valid
	}{
		{DriverAWSLogs, map[string]string{"awslogs-group": "g", "awslogs-region": "eu-west-1", "awslogs-stream-prefix": "p", "mode": "non-blocking", "max-buffer-size": "4m"}, ""},
		{DriverAWSLogs, map[string]string{"awslogs-group": "g", "awslogs-regoin": "x"}, "awslogs-regoin"},
		{DriverAWSLogs, map[string]string{"awslogs-stream-prefix": "p"}, "awslogs-group"},
		{DriverAWSLogs, map[string]string{"awslogs-group": "g", "awslogs-create-group": "yes"}, "awslogs-create-group"},
		{DriverAWSLogs, map[string]string{"awslogs-group": "g", "awslogs-force-flush-interval-seconds": "0"}, "awslogs-force-flush-interval-seconds"},
		{DriverAWSLogs, map[string]string{"awslogs-group": "g", "awslogs-multiline-pattern": "("}, "awslogs-multiline-pattern"},
		{DriverAWSLogs, map[string]string{"awslogs-group": "g", "awslogs-multiline-pattern": "^x", "awslogs-datetime-format": "%Y"}, "awslogs-datetime-format"},
		{DriverAWSLogs, map[string]string{"awslogs-group": "g", "awslogs-endpoint": "ftp://x"}, "awslogs-endpoint"},
		{DriverAWSLogs, map[string]string{"awslogs-group": "g", "mode": "fast"}, "mode"},
		{DriverAWSLogs, map[string]string{"awslogs-group": "g", "max-buffer-size": "lots"}, "max-buffer-size"},
		{DriverSyslog, map[string]string{"syslog-address": "udp://127.0.0.1:514", "syslog-facility": "local3", "syslog-format": "rfc5424micro", "tag": "{{.Name}}"}, ""},
		{DriverSyslog, map[string]string{"syslog-address": "http://x"}, "syslog-address"},
		{DriverSyslog, map[string]string{"syslog-facility": "local9"}, "syslog-facility"},
		{DriverSyslog, map[string]string{"syslog-format": "rfc9999"}, "syslog-format"},
		{DriverSyslog, map[string]string{"syslog-address": "tcp://h:1", "syslog-tls-skip-verify": "true"}, "syslog-tls-skip-verify"},
		{DriverFluentd, map[string]string{"fluentd-address": "tcp://127.0.0.1:24224", "fluentd-async": "true", "fluentd-retry-wait": "1s", "fluentd-max-retries": "3", "fluentd-buffer-limit": "100", "fluentd-sub-second-precision": "true"}, ""},
		{DriverFluentd, map[string]string{"fluentd-retry-wait": "soon"}, "fluentd-retry-wait"},
		{DriverFluentd, map[string]string{"fluentd-address": "udp://x:1"}, "fluentd-address"},
		{DriverJournald, map[string]string{"tag": "x", "labels": "a,b", "env": "A"}, ""},
		{DriverJournald, map[string]string{"journald-nope": "1"}, "journald-nope"},
		{DriverJSONFile, map[string]string{"max-size": "10m", "max-file": "3"}, ""},
		{DriverJSONFile, map[string]string{"max-file": "-1"}, "max-file"},
	}
	for _, tc := range cases {
		err := ValidateOptions(tc.driver, tc.opts)
		switch {
		case tc.name == "" && err != nil:
			t.Errorf("%s %v: %v, want valid", tc.driver, tc.opts, err)
		case tc.name != "" && (err == nil || !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), `"`+tc.name+`"`)):
			t.Errorf("%s %v: %v, want an ErrInvalidOption naming %q", tc.driver, tc.opts, err, tc.name)
		}
	}
}

// ECS_AVAILABLE_LOGGING_DRIVERS limits the drivers, and the agent
// advertises exactly those it supports.
func TestAllowedDriversAndCapabilities(t *testing.T) {
	allowed := []string{"json-file", "awslogs", "splunk"}
	if err := CheckAllowed("awslogs", allowed); err != nil {
		t.Fatal(err)
	}
	if err := CheckAllowed("syslog", allowed); !errors.Is(err, ErrDriverNotAllowed) || !strings.Contains(err.Error(), "ECS_AVAILABLE_LOGGING_DRIVERS") {
		t.Fatalf("syslog not in the list: %v", err)
	}
	if err := CheckAllowed("splunk", allowed); !errors.Is(err, ErrDriverNotAllowed) || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("splunk is unsupported: %v", err)
	}
	got := strings.Join(CapabilityAttributes(allowed), ",")
	want := "com.amazonaws.ecs.capability.logging-driver.awslogs,com.amazonaws.ecs.capability.logging-driver.json-file"
	if got != want {
		t.Fatalf("attributes %s, want %s", got, want)
	}
}

func TestParseSizeAndMode(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "64k": 64 << 10, "1m": 1 << 20, "1MiB": 1 << 20, "2g": 2 << 30, "1.5k": 1536} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if nb, max := Mode(map[string]string{"mode": "non-blocking", "max-buffer-size": "2m"}); !nb || max != 2<<20 {
		t.Errorf("Mode = %v %d", nb, max)
	}
	if nb, _ := Mode(map[string]string{}); nb {
		t.Error("default mode is blocking")
	}
}

func TestStreamNameAndDatetimeFormat(t *testing.T) {
	info := ContainerInfo{ID: "abc", Name: "web", TaskID: "f00"}
	if got := StreamName(map[string]string{"awslogs-stream-prefix": "lab"}, info); got != "lab/web/f00" {
		t.Errorf("stream %q", got)
	}
	o, err := awsLogsOptions(map[string]string{"awslogs-group": "g", "awslogs-datetime-format": "%Y-%m-%d %H:%M:%S"}, info)
	if err != nil || !o.Multiline.MatchString("2026-11-22 10:00:00 x") || o.Multiline.MatchString("\tat x") {
		t.Errorf("datetime format regexp %v: %v", o.Multiline, err)
	}
}
