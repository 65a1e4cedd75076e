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
		wantDebug     bool
		wantWarn      bool
		check         func(t *testing.T, out string)
	}{
		{"info", "logfmt", false, true, func(t *testing.T, out string) {
			if !strings.Contains(out, `level=warning msg=w k=v`) {
				t.Errorf("logfmt output %q", out)
			}
		}},
		{"debug", "json", true, true, func(t *testing.T, out string) {
			var m map[string]any
			if err := json.Unmarshal([]byte(strings.Split(out, "\n")[0]), &m); err != nil || m["msg"] != "d" || m["k"] != "v" {
				t.Errorf("json output %q (%v)", out, err)
			}
		}},
		{"error", "logfmt", false, false, nil},
		{"crit", "json", false, false, nil},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		log := NewLogger(LogConfig{Level: tt.level, Format: tt.format}, &b)
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
