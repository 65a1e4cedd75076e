package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/logs"
)

func TestRunArguments(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"--version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "berth-logd ") {
		t.Errorf("--version: exit %d, output %q", code, stdout.String())
	}
	for _, args := range [][]string{nil, {"serve"}, {logs.DaemonMode}, {logs.DaemonMode, "go", "/tmp/x"}} {
		stdout.Reset()
		stderr.Reset()
		if code := run(t.Context(), args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage: berth-logd") {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and the usage", args, code, stderr.String())
		}
	}
}

// TestCaptureThroughTheProgram runs the log daemon as the built berth-logd,
// as the agent does when the program is installed next to it: a task's
// output written into its FIFOs (by a stand-in for containerd's shim)
// reaches the json-file, and the daemon process is that program.
func TestCaptureThroughTheProgram(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program; skipped with -short")
	}
	base := t.TempDir()
	bin := filepath.Join(base, logs.DaemonProgram)
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := filepath.Join(base, "logd")
	caps := logs.NewCaptures(logs.CapturesOptions{Dir: dir, Binary: bin})
	t.Cleanup(func() {
		caps.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "daemon.log"))
			t.Logf("daemon log:\n%s", b)
		}
	})
	logPath := filepath.Join(base, "c1-json.log")
	stdout, stderr, err := caps.Prepare("c1", logs.Config{Path: logPath})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	// Like the shim: a write end and a read end of its own on each FIFO.
	var ends []*os.File
	for _, p := range []string{stdout, stderr} {
		w, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, w, r)
	}
	if err := caps.Arm(t.Context(), "c1"); err != nil {
		t.Fatalf("Arm: %v", err)
	}
	pid, err := caps.DaemonPID(t.Context())
	if err != nil {
		t.Fatalf("DaemonPID: %v", err)
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != bin {
		t.Errorf("log daemon (pid %d) runs %q (%v), want %q", pid, exe, err, bin)
	}
	const n = 1000
	for i := range n {
		fmt.Fprintf(ends[0], "out %d\n", i)
		fmt.Fprintf(ends[2], "err %d\n", i)
	}
	for _, f := range ends {
		f.Close()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := caps.Finish(ctx, "c1"); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	got := map[string][]string{}
	if err := logs.Read(t.Context(), logPath, logs.ReadOptions{}, func(e logs.Entry) error {
		got[e.Stream] = append(got[e.Stream], strings.TrimSuffix(e.Log, "\n"))
		return nil
	}); err != nil {
		t.Fatalf("read %s: %v", logPath, err)
	}
	for stream, prefix := range map[string]string{"stdout": "out", "stderr": "err"} {
		lines := got[stream]
		if len(lines) != n {
			t.Fatalf("%s: %d lines in the log, want %d", stream, len(lines), n)
		}
		for i, l := range lines {
			if want := fmt.Sprintf("%s %d", prefix, i); l != want {
				t.Fatalf("%s line %d = %q, want %q", stream, i, l, want)
			}
		}
	}
}
