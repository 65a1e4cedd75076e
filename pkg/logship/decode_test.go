package logship

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/pkg/logs"
)

// The fast decoder agrees with encoding/json on what pkg/logs writes,
// escapes and odd bytes included.
func TestDecodeFastMatchesJSON(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	in := "plain\n" + "tab\there \"quoted\" back\\slash\n" + "ctl \x01\x1f and é ☃ 😀\n" + "bad utf8 \xff\xfe\n" + "</script>&\n" + "no newline"
	if _, err := logs.Capture(logs.CaptureOptions{Config: logs.Config{Path: path}, Stdout: bytes.NewReader([]byte(in))}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	fast := 0
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var want entry
		if err := json.Unmarshal(bytes.TrimSpace(line), &want); err != nil {
			t.Fatal(err)
		}
		got, err := decodeEntry(line)
		if err != nil || got.Log != want.Log || got.Stream != want.Stream || !got.Time.Equal(want.Time) {
			t.Fatalf("line %q: got %+v (%v), want %+v", line, got, err, want)
		}
		if _, ok := decodeFast(line); ok {
			fast++
		}
	}
	if fast < 3 { // plain, simple escapes, unterminated; \u escapes take the slow path
		t.Fatalf("only %d lines took the fast path", fast)
	}
}
