package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests below run the log daemon as containerd's shim meets it: a
// separate process (this test binary in its hidden mode, started by
// Captures), FIFOs opened for writing by a stand-in for the shim, which
// like the shim holds a read end of its own while it writes.

// fakeShim writes a task's output into the FIFOs of a capture.
type fakeShim struct {
	w, r [2]*os.File
}

func openShim(t *testing.T, stdout, stderr string) *fakeShim {
	t.Helper()
	s := &fakeShim{}
	for i, p := range []string{stdout, stderr} {
		// Captures holds a read end, so opening for writing does not block.
		w, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatalf("open %s for writing: %v", p, err)
		}
		r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.w[i], s.r[i] = w, r
	}
	t.Cleanup(s.exit)
	return s
}

func (s *fakeShim) printf(stream int, format string, args ...any) {
	fmt.Fprintf(s.w[stream], format, args...)
}

// exit closes the shim's ends, as the shim does when the task is gone.
func (s *fakeShim) exit() {
	for i := range s.w {
		if s.w[i] != nil {
			s.w[i].Close()
			s.r[i].Close()
			s.w[i], s.r[i] = nil, nil
		}
	}
}

type daemonFixture struct {
	dir, logDir string
	caps        *Captures
}

func newDaemonFixture(t *testing.T, binary string) *daemonFixture {
	t.Helper()
	base := t.TempDir()
	f := &daemonFixture{dir: filepath.Join(base, "logd"), logDir: filepath.Join(base, "logs")}
	if err := os.MkdirAll(f.logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if binary == "" {
		binary = testBinary(t)
	}
	f.caps = NewCaptures(CapturesOptions{Dir: f.dir, Binary: binary})
	t.Cleanup(func() {
		f.caps.Close()
		f.waitDaemonGone(t)
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(f.dir, daemonLog))
			t.Logf("daemon log:\n%s", b)
		}
	})
	return f
}

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// waitDaemonGone waits for an idle daemon to exit by itself.
func (f *daemonFixture) waitDaemonGone(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := dialDaemon(context.Background(), f.dir)
		if err != nil {
			return
		}
		conn.Close()
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("log daemon of %s still runs 20 s after its last capture and client", f.dir)
}

func (f *daemonFixture) daemonPID(t *testing.T) int {
	t.Helper()
	conn, rep, err := f.caps.hello(t.Context())
	if err != nil {
		t.Fatalf("hello: %v", err)
	}
	conn.Close()
	return rep.PID
}

func (f *daemonFixture) logPath(id string) string { return filepath.Join(f.logDir, id+"-json.log") }

// start registers a capture and opens it as a shim would, then arms it.
func (f *daemonFixture) start(t *testing.T, id string, cfg Config) *fakeShim {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = f.logPath(id)
	}
	out, errp, err := f.caps.Prepare(id, cfg)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	shim := openShim(t, out, errp)
	if err := f.caps.Arm(t.Context(), id); err != nil {
		t.Fatalf("Arm: %v", err)
	}
	return shim
}

func (f *daemonFixture) finish(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := f.caps.Finish(ctx, id); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if _, err := os.Stat(containerDir(f.dir, id)); err == nil {
		if refs, _ := listCaptures(f.dir, id); len(refs) > 0 {
			t.Errorf("captures %v still on disk after Finish", refs)
		}
	}
}

// waitLines waits until the log holds n entries.
func waitLines(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	got := 0
	for time.Now().Before(deadline) {
		got = 0
		Read(context.Background(), path, ReadOptions{}, func(Entry) error { got++; return nil })
		if got >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("log %s has %d entries, waited for %d", path, got, n)
}

func expectStreams(t *testing.T, path, stdout, stderr string) {
	t.Helper()
	es := readAll(t, path, ReadOptions{})
	if got := joinStream(es, "stdout"); got != stdout {
		t.Errorf("stdout: got %d bytes, want %d; first difference at %d", len(got), len(stdout), firstDifference(got, stdout))
	}
	if got := joinStream(es, "stderr"); got != stderr {
		t.Errorf("stderr: got %d bytes, want %d; first difference at %d", len(got), len(stderr), firstDifference(got, stderr))
	}
}

func firstDifference(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func lines(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s %d\n", prefix, i)
	}
	return b.String()
}

func TestDaemonCapturesBothStreamsUntilTheTaskEnds(t *testing.T) {
	f := newDaemonFixture(t, "")
	shim := f.start(t, "c1", Config{})
	io.WriteString(shim.w[0], lines("out", 0, 20000))
	io.WriteString(shim.w[1], lines("err", 0, 20000))
	shim.printf(0, "%s\nno newline", strings.Repeat("y", 3*MaxLineSize))
	shim.exit()
	f.finish(t, "c1")
	expectStreams(t, f.logPath("c1"), lines("out", 0, 20000)+strings.Repeat("y", 3*MaxLineSize)+"\nno newline", lines("err", 0, 20000))
}

// TestDaemonWaitsForTheWriterBeforeTheTaskExists: a FIFO nobody writes to
// yet reads as ended; before the capture is armed that must not end it.
func TestDaemonWaitsForTheWriterBeforeTheTaskExists(t *testing.T) {
	f := newDaemonFixture(t, "")
	out, errp, err := f.caps.Prepare("c2", Config{Path: f.logPath("c2")})
	if err != nil {
		t.Fatal(err)
	}
	// The daemon opens the capture now, long before a writer comes.
	if err := f.caps.request(t.Context(), daemonRequest{Op: opSync, Container: "c2"}, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	shim := openShim(t, out, errp)
	shim.printf(0, "late\n")
	waitLines(t, f.logPath("c2"), 1)
	if _, err := os.Stat(filesOf(f.dir, captureRef{"c2", strings.TrimSuffix(filepath.Base(out), ".stdout")}).armed); err != nil {
		t.Errorf("data arrived but the capture is not marked armed: %v", err)
	}
	shim.exit()
	f.finish(t, "c2")
	expectStreams(t, f.logPath("c2"), "late\n", "")
}

// TestDaemonKilledLosesNothingBufferedInItsFIFOs kills the daemon (SIGKILL)
// while output waits in the FIFOs and the task has ended (the shim closed
// its ends): Captures starts a new daemon, which must write all of it. The
// FIFO's data survives only because Captures holds a read end.
func TestDaemonKilledLosesNothingBufferedInItsFIFOs(t *testing.T) {
	f := newDaemonFixture(t, "")
	shim := f.start(t, "c3", Config{})
	io.WriteString(shim.w[0], lines("before", 0, 1000))
	waitLines(t, f.logPath("c3"), 1000)

	pid := f.daemonPID(t)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	io.WriteString(shim.w[0], lines("while stopped", 0, 2000))
	io.WriteString(shim.w[1], lines("err while stopped", 0, 2000))
	shim.exit() // the task ends while no daemon reads
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	f.finish(t, "c3")
	if newPID := f.daemonPID(t); newPID == pid {
		t.Fatalf("daemon pid %d still answers after SIGKILL", pid)
	}
	expectStreams(t, f.logPath("c3"), lines("before", 0, 1000)+lines("while stopped", 0, 2000), lines("err while stopped", 0, 2000))
}

// TestDaemonOutlivesItsClient: the agent (the Captures' process) goes away
// while a container writes; the daemon keeps writing the log, ends the
// capture when the task ends and exits once idle. A new client then finds
// nothing left to wait for.
func TestDaemonOutlivesItsClient(t *testing.T) {
	f := newDaemonFixture(t, "")
	shim := f.start(t, "c4", Config{})
	shim.printf(0, "one\n")
	waitLines(t, f.logPath("c4"), 1)
	pid := f.daemonPID(t)
	f.caps.Close()

	io.WriteString(shim.w[0], lines("after the agent", 0, 5000))
	waitLines(t, f.logPath("c4"), 5001)
	shim.exit()
	f.waitDaemonGone(t)
	for i := 0; syscall.Kill(pid, 0) == nil; i++ {
		if i == 500 {
			t.Fatalf("daemon pid %d still exists 5 s after it stopped answering", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if refs, _ := listCaptures(f.dir, "c4"); len(refs) != 0 {
		t.Errorf("captures %v left after the task ended", refs)
	}
	expectStreams(t, f.logPath("c4"), "one\n"+lines("after the agent", 0, 5000), "")

	again := NewCaptures(CapturesOptions{Dir: f.dir, Binary: testBinary(t)})
	defer again.Close()
	if err := again.Finish(t.Context(), "c4"); err != nil {
		t.Errorf("Finish after the capture ended by itself: %v", err)
	}
}

// TestDaemonRotates checks max-size and max-file through the daemon.
func TestDaemonRotates(t *testing.T) {
	f := newDaemonFixture(t, "")
	shim := f.start(t, "c5", Config{MaxSize: 16 << 10, MaxFile: 3})
	io.WriteString(shim.w[0], lines("rotating", 0, 20000))
	shim.exit()
	f.finish(t, "c5")
	files, _ := filepath.Glob(f.logPath("c5") + "*")
	if len(files) != 3 {
		t.Errorf("log files %v, want max-file=3", files)
	}
	got := joinStream(readAll(t, f.logPath("c5"), ReadOptions{}), "stdout")
	if !strings.HasSuffix(lines("rotating", 0, 20000), got) || !strings.HasSuffix(got, "rotating 19999\n") {
		t.Errorf("rotated log is not the newest suffix of the output (%d bytes)", len(got))
	}
}

// TestDropEndsACaptureThatNeverGotATask: creating the task failed, so
// nobody will ever write; Drop must free it and let the daemon go idle.
func TestDropEndsACaptureThatNeverGotATask(t *testing.T) {
	f := newDaemonFixture(t, "")
	if _, _, err := f.caps.Prepare("c6", Config{Path: f.logPath("c6")}); err != nil {
		t.Fatal(err)
	}
	if err := f.caps.request(t.Context(), daemonRequest{Op: opSync, Container: "c6"}, true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.caps.Drop(ctx, "c6"); err != nil {
		t.Fatalf("Drop: %v", err)
	}
	if _, err := os.Stat(containerDir(f.dir, "c6")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("capture directory after Drop: %v", err)
	}
}

// TestNewBuildReplacesTheDaemonWithoutLoss: a daemon started from another
// program file (the agent before an upgrade) is replaced by the client of
// the new one, while a container keeps writing.
func TestNewBuildReplacesTheDaemonWithoutLoss(t *testing.T) {
	oldBin := filepath.Join(t.TempDir(), "old-agent")
	src, err := os.ReadFile(testBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(oldBin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	f := newDaemonFixture(t, oldBin)
	shim := f.start(t, "c7", Config{})
	io.WriteString(shim.w[0], lines("old build", 0, 3000))
	shim.printf(0, "half a line from the old build, ")
	waitLines(t, f.logPath("c7"), 3000)
	oldPID := f.daemonPID(t)
	f.caps.Close() // the old agent is gone

	upgraded := NewCaptures(CapturesOptions{Dir: f.dir, Binary: testBinary(t)})
	defer upgraded.Close()
	if err := upgraded.Arm(t.Context(), "c7"); err != nil { // recovery of the running container
		t.Fatal(err)
	}
	conn, rep, err := upgraded.hello(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if rep.PID == oldPID {
		t.Fatalf("daemon of the old build (pid %d) still runs", oldPID)
	}
	shim.printf(0, "the rest from the new one\n")
	io.WriteString(shim.w[1], lines("new build", 0, 3000))
	shim.exit()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := upgraded.Finish(ctx, "c7"); err != nil {
		t.Fatal(err)
	}
	expectStreams(t, f.logPath("c7"), lines("old build", 0, 3000)+"half a line from the old build, the rest from the new one\n", lines("new build", 0, 3000))
}

// TestDaemonManyCapturesAtOnce runs the daemon in this process (so that
// the race detector sees it) with twenty containers writing both streams at
// once into rotating logs.
func TestDaemonManyCapturesAtOnce(t *testing.T) {
	base := t.TempDir()
	dir, logDir := filepath.Join(base, "logd"), filepath.Join(base, "logs")
	os.MkdirAll(logDir, 0o755)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- RunDaemon(ctx, DaemonOptions{Dir: dir, IdleExit: time.Hour}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunDaemon: %v", err)
		}
	}()
	caps := NewCaptures(CapturesOptions{Dir: dir, Binary: testBinary(t)})
	defer caps.Close()
	for i := 0; ; i++ {
		if _, err := caps.DaemonPID(t.Context()); err == nil {
			break
		} else if i == 100 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pid, _ := caps.DaemonPID(t.Context()); pid != os.Getpid() {
		t.Fatalf("daemon pid %d, want this process (%d)", pid, os.Getpid())
	}
	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id := fmt.Sprintf("m%d", i)
			cfg := Config{Path: filepath.Join(logDir, id+"-json.log"), MaxSize: 256 << 10, MaxFile: 50}
			stdout, stderr, err := caps.Prepare(id, cfg)
			if err != nil {
				errs <- err
				return
			}
			var w [2]*os.File
			for k, p := range []string{stdout, stderr} {
				if w[k], err = os.OpenFile(p, os.O_WRONLY, 0); err != nil {
					errs <- err
					return
				}
			}
			if err := caps.Arm(t.Context(), id); err != nil {
				errs <- err
				return
			}
			for k := range w {
				io.WriteString(w[k], lines(id+" "+streamName(k), 0, 5000))
				w[k].Close()
			}
			fctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			errs <- caps.Finish(fctx, id)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		id := fmt.Sprintf("m%d", i)
		expectStreams(t, filepath.Join(logDir, id+"-json.log"), lines(id+" stdout", 0, 5000), lines(id+" stderr", 0, 5000))
	}
}

// TestDropAndStopDoNotWaitForAQuietWriter: a task that is alive but
// silent must not hold up Drop, nor the daemon's stop (a read of its FIFO
// must never sit blocked in the kernel).
func TestDropAndStopDoNotWaitForAQuietWriter(t *testing.T) {
	f := newDaemonFixture(t, "")
	shim := f.start(t, "q1", Config{})
	shim.printf(0, "said something\n")
	waitLines(t, f.logPath("q1"), 1)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := f.caps.Drop(ctx, "q1"); err != nil {
		t.Fatalf("Drop with a quiet writer: %v", err)
	}

	shim2 := f.start(t, "q2", Config{})
	shim2.printf(0, "half a line")
	pid := f.daemonPID(t)
	conn, err := dialDaemon(ctx, f.dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.call(ctx, daemonRequest{Op: opStop}); err != nil {
		t.Fatalf("stop: %v", err)
	}
	conn.Close()
	for i := 0; syscall.Kill(pid, 0) == nil; i++ {
		if i == 500 {
			t.Fatalf("daemon pid %d still runs 5 s after stop, with a quiet writer", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	shim2.printf(0, " and the rest\n")
	shim2.exit()
	f.finish(t, "q2") // started again by the Captures
	expectStreams(t, f.logPath("q2"), "half a line and the rest\n", "")
}

func TestDaemonBinaryPrefersTheDaemonProgramNextToTheAgent(t *testing.T) {
	dir := t.TempDir()
	agent := filepath.Join(dir, "berth-agent")
	logd := filepath.Join(dir, DaemonProgram)
	if err := os.WriteFile(agent, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := DaemonBinary(agent); got != agent {
		t.Errorf("without %s: DaemonBinary = %q, want the agent %q", DaemonProgram, got, agent)
	}
	// Not executable: not a program to run.
	if err := os.WriteFile(logd, []byte("#!/bin/true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := DaemonBinary(agent); got != agent {
		t.Errorf("with a %s that is not executable: DaemonBinary = %q, want the agent %q", DaemonProgram, got, agent)
	}
	if err := os.Chmod(logd, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := DaemonBinary(agent); got != logd {
		t.Errorf("with %s next to the agent: DaemonBinary = %q, want %q", DaemonProgram, got, logd)
	}
	// A directory of that name is not a program either.
	other := filepath.Join(t.TempDir(), "berth-agent")
	if err := os.Mkdir(filepath.Join(filepath.Dir(other), DaemonProgram), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := DaemonBinary(other); got != other {
		t.Errorf("with a directory named %s: DaemonBinary = %q, want the agent %q", DaemonProgram, got, other)
	}
}
