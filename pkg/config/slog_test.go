package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestNewSlog(t *testing.T) {
	var b bytes.Buffer
	log := NewSlog(NewLogger(LogConfig{Level: "info", Format: "json"}, &b))
	log.Debug("hidden")
	log.With("task", "t1").WithGroup("pull").Warn("slow", "ref", "busybox", "err", errors.New("boom"))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one line (debug filtered by ECS_LOGLEVEL=info), got:\n%s", b.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"level": "warning", "msg": "slow", "task": "t1", "pull.ref": "busybox", "pull.err": "boom"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("field %s = %v, want %v (line %s)", k, m[k], v, lines[0])
		}
	}
}
