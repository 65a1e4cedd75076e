package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/berth-dev/berth/pkg/config"
)

// logFiles lists the agent log and its rotated copies in dir.
func logFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestLogFileRotatesBySize writes 5 MiB through a 1 MB / 3 rolls log: the
// file is rotated and only 3 rotated copies are kept, as
// ECS_LOG_MAX_FILE_SIZE_MB and ECS_LOG_MAX_ROLL_COUNT say.
func TestLogFileRotatesBySize(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ecs-agent.log")
	out, err := openLogOutput(config.LogConfig{File: file, RolloverType: "size", MaxFileSizeMB: 0.5, MaxRollCount: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 1023) + "\n")
	for i := 0; i < 5*1024; i++ {
		if _, err := out.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	out.close()
	// lumberjack removes old copies in the background after a rotation.
	deadline := time.Now().Add(10 * time.Second)
	for len(logFiles(t, dir)) != 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	names := logFiles(t, dir)
	if len(names) != 4 {
		t.Fatalf("files %q, want ecs-agent.log and 3 rotated copies", names)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Size() > 1<<20 {
		t.Errorf("ecs-agent.log: %v, %v; want at most 1 MiB (0.5 MB rounds up to 1 MiB)", fi, err)
	}
}

// TestLogFileRotatesHourly runs the hourly rotation with a clock that is
// always just before the top of an hour: it rotates, and stops on close.
func TestLogFileRotatesHourly(t *testing.T) {
	dir := t.TempDir()
	lj := &lumberjack.Logger{Filename: filepath.Join(dir, "ecs-agent.log"), MaxSize: 100, MaxBackups: 24}
	defer lj.Close()
	if _, err := lj.Write([]byte("first hour\n")); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	hour := time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)
	now := func() time.Time {
		calls.Add(1)
		return hour.Add(-5 * time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rotateHourly(ctx, lj, now) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(logFiles(t, dir)) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if names := logFiles(t, dir); len(names) < 2 {
		t.Fatalf("files %q after the top of the hour, want a rotated copy", names)
	}
	if calls.Load() < 2 {
		t.Errorf("clock read %d times, want the loop to continue after a rotation", calls.Load())
	}
}

// TestLogFileNoRollover: rollover type none appends to the file.
func TestLogFileNoRollover(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ecs-agent.log")
	if err := os.WriteFile(file, []byte("before\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	out, err := openLogOutput(config.LogConfig{File: file, RolloverType: "none"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	out.close()
	if b, _ := os.ReadFile(file); string(b) != "before\nafter\n" {
		t.Errorf("file %q, want the line appended", b)
	}
	if _, err := openLogOutput(config.LogConfig{File: filepath.Join(t.TempDir(), "no", "such", "dir", "log"), RolloverType: "size"}, nil); err == nil ||
		!strings.Contains(err.Error(), "ECS_LOGFILE") {
		t.Errorf("unwritable ECS_LOGFILE: %v, want an error naming ECS_LOGFILE", err)
	}
}
