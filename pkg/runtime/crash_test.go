package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/logs"
)

// agentHelperEnv carries a helperJob to a re-executed test binary that plays
// the agent: it creates and starts a container, then waits to be killed.
const agentHelperEnv = "BERTH_RUNTIME_TEST_AGENT"

type helperJob struct {
	Options Options
	Spec    container.Spec
	// CrashAt is a point of Create or Start (see Runtime.stepHook) where
	// the helper prints CRASHPOINT and blocks until it is killed.
	CrashAt string
}

func runAgentHelper(raw string) int {
	var job helperJob
	if err := json.Unmarshal([]byte(raw), &job); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	ctx := context.Background()
	rt, err := New(ctx, job.Options)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	rt.stepHook = func(ctx context.Context, point string) {
		if point == job.CrashAt {
			fmt.Println("CRASHPOINT")
			select {} // the test kills us
		}
	}
	if err := rt.Create(ctx, job.Spec); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	if _, err := rt.Start(ctx, job.Spec.ID); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	fmt.Println("started")
	select {} // the test kills us
}

// startHelper runs the test binary as a stand-in agent doing job and
// returns it once its first line is want; otherwise it is killed and the
// test fails.
func startHelper(t *testing.T, job helperJob, want string) *exec.Cmd {
	t.Helper()
	raw, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), agentHelperEnv+"="+string(raw))
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != want+"\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper agent did not print %q (said %q)", want, line)
	}
	return cmd
}

// TestAgentKilledWhileContainerLogs kills (SIGKILL) the process that created
// and started a logging container. The container must run on unblocked, and
// its log must be complete: output never flowed through that process.
func TestAgentKilledWhileContainerLogs(t *testing.T) {
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	const lines = 3000
	img := testenv.BuildImage(t, reg, "rt/crash", testenv.ImageSpec{
		Cmd: []string{"/bin/sh", "-c", fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "line $i"; i=$((i+1)); usleep 1000; done`, lines)},
	})
	tr.pull(t, img.Ref)
	spec := container.Spec{ID: "crash", Image: img.Ref, LogPath: LogPath(tr.logDir, "crash")}
	defer tr.Remove(t.Context(), spec.ID)
	cmd := startHelper(t, helperJob{Options: tr.opts, Spec: spec}, "started")
	// Kill the "agent" mid-stream, once some output is on disk.
	logPath := LogPath(tr.logDir, spec.ID)
	for i := 0; ; i++ {
		if n := countLines(t, logPath); n >= 100 {
			break
		}
		if i > 600 {
			t.Fatal("container produced no output")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killedAt := countLines(t, logPath)

	ch, err := tr.Attach(t.Context(), spec.ID)
	if err != nil {
		t.Fatalf("Attach after the agent died: %v", err)
	}
	st := waitExit(t, ch, 2*time.Minute)
	if st.ExitCode != 0 {
		t.Errorf("container exit %+v, want 0", st)
	}
	out := tr.logsOf(t, spec.ID)
	var want strings.Builder
	for i := range lines {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if out.stdout != want.String() {
		t.Errorf("log after agent SIGKILL has %d bytes, want %d (all %d lines in order)", len(out.stdout), want.Len(), lines)
	}
	if killedAt >= lines {
		t.Errorf("the agent was killed only after the container finished (%d lines); the test proves nothing", killedAt)
	}
	t.Logf("agent killed after %d of %d lines", killedAt, lines)
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	n := 0
	logs.Read(t.Context(), path, logs.ReadOptions{}, func(logs.Entry) error { n++; return nil })
	return n
}

func TestLogCapture(t *testing.T) {
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/logs", testenv.ImageSpec{Cmd: []string{"/bin/true"}})
	tr.pull(t, img.Ref)

	t.Run("100k interleaved lines and a 1 MiB line, exact and in order", func(t *testing.T) {
		const perStream = 50000
		script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; head -c 1048576 /dev/zero | tr '\0' x; echo; echo tail`, perStream)
		st, out := tr.run(t, container.Spec{Image: img.Ref, Command: []string{"/bin/sh", "-c", script}})
		if st.ExitCode != 0 {
			t.Fatalf("exit %+v", st)
		}
		var wantOut, wantErr strings.Builder
		for i := range perStream {
			fmt.Fprintf(&wantOut, "out %d\n", i)
			fmt.Fprintf(&wantErr, "err %d\n", i)
		}
		wantOut.WriteString(strings.Repeat("x", 1<<20) + "\ntail\n")
		if out.stdout != wantOut.String() {
			t.Errorf("stdout: got %d bytes, want %d; first difference at byte %d", len(out.stdout), wantOut.Len(), firstDiff(out.stdout, wantOut.String()))
		}
		if out.stderr != wantErr.String() {
			t.Errorf("stderr: got %d bytes, want %d; first difference at byte %d", len(out.stderr), wantErr.Len(), firstDiff(out.stderr, wantErr.String()))
		}
	})
	t.Run("rotation keeps at most max-file files", func(t *testing.T) {
		spec := container.Spec{ID: "rot", Image: img.Ref, Command: []string{"/bin/sh", "-c", `i=0; while [ $i -lt 20000 ]; do echo "rotating line $i"; i=$((i+1)); done`},
			LogPath: LogPath(filepath.Join(tr.logDir, "rot"), "rot"), Log: container.LogConfig{Options: map[string]string{"max-size": "64k", "max-file": "3"}}}
		st, _ := tr.run(t, spec)
		if st.ExitCode != 0 {
			t.Fatalf("exit %+v", st)
		}
		files, _ := filepath.Glob(spec.LogPath + "*")
		if len(files) != 3 {
			t.Errorf("log files %v, want exactly max-file=3 after 20000 lines of 64 KiB files", files)
		}
		var got strings.Builder
		logs.Read(t.Context(), spec.LogPath, logs.ReadOptions{}, func(e logs.Entry) error {
			got.WriteString(e.Log)
			return nil
		})
		if !strings.HasSuffix(got.String(), "rotating line 19999\n") || !strings.HasPrefix(got.String(), "rotating line ") {
			t.Errorf("rotated logs do not end with the last line")
		}
	})
	t.Run("follow sees new lines", func(t *testing.T) {
		spec := container.Spec{Image: img.Ref, Command: []string{"/bin/sh", "-c", `i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done`}}
		id := tr.create(t, &spec)
		defer tr.Remove(t.Context(), id)
		if _, err := tr.Start(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		var got []string
		err := logs.Read(ctx, LogPath(tr.logDir, id), logs.ReadOptions{Follow: true, PollInterval: 20 * time.Millisecond}, func(e logs.Entry) error {
			got = append(got, e.Log)
			if len(got) == 5 {
				return errStop
			}
			return nil
		})
		if err != errStop {
			t.Fatalf("follow ended with %v after %q", err, got)
		}
		for i, l := range got {
			if l != fmt.Sprintf("tick %d\n", i) {
				t.Errorf("followed line %d = %q", i, l)
			}
		}
		// sh as PID 1 ignores SIGTERM: a short timeout ends it with SIGKILL.
		if err := tr.Stop(t.Context(), id, 500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	})
}

var errStop = fmt.Errorf("enough lines")

func firstDiff(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
