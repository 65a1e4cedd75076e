package config

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		level, format string
		// file and fileLevel are ECS_LOGFILE and ECS_LOGLEVEL_ON_INSTANCE.
		file, fileLevel string
		wantDebug       bool
		wantWarn        bool
		check           func(t *testing.T, out string)
	}{
		{"info", "logfmt", "", "", false, true, func(t *testing.T, out string) {
			if !strings.Contains(out, `level=warning msg=w k=v`) {
				t.Errorf("logfmt output %q", out)
			}
		}},
		{"debug", "json", "", "", true, true, func(t *testing.T, out string) {
			var m map[string]any
			if err := json.Unmarshal([]byte(strings.Split(out, "\n")[0]), &m); err != nil || m["msg"] != "d" || m["k"] != "v" {
				t.Errorf("json output %q (%v)", out, err)
			}
		}},
		{"error", "logfmt", "", "", false, false, nil},
		{"crit", "json", "", "", false, false, nil},
		{"none", "logfmt", "", "", false, false, nil},
		// ECS_LOGLEVEL_ON_INSTANCE is the level of the log file...
		{"info", "logfmt", "/var/log/ecs/ecs-agent.log", "debug", true, true, nil},
		{"debug", "logfmt", "/var/log/ecs/ecs-agent.log", "none", false, false, nil},
		// ...and means nothing without one.
		{"info", "logfmt", "", "debug", false, true, nil},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		log := NewLogger(LogConfig{Level: tt.level, Format: tt.format, File: tt.file, FileLevel: tt.fileLevel}, &b)
		log.WithField("k", "v").Debug("d")
		log.WithField("k", "v").Warn("w")
		out := b.String()
		if got := logged(out, "d"); got != tt.wantDebug {
			t.Errorf("%s/%s: debug logged = %v, want %v:\n%s", tt.level, tt.format, got, tt.wantDebug, out)
		}
		if got := logged(out, "w"); got != tt.wantWarn {
			t.Errorf("%s/%s: warning logged = %v, want %v:\n%s", tt.level, tt.format, got, tt.wantWarn, out)
		}
		if tt.check != nil {
			tt.check(t, out)
		}
	}
}

// logged reports whether out has a line with message msg in either format.
func logged(out, msg string) bool {
	return strings.Contains(out, " msg="+msg+" ") || strings.Contains(out, `"msg":"`+msg+`"`)
}
