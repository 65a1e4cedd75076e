package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestDemoCtrlC runs `make demo` in a pseudo-terminal, as a user does,
// and presses Ctrl-C there at three moments. The terminal's line
// discipline turns ^C into SIGINT for the whole foreground process group
// (make, berth-testenv, scripts/demo.sh, berth-democtl), so whichever of
// them reacts first, the demo must stop its tasks, then berth-lb and its
// HAProxy, then dev mode, then its network, and only then containerd.
// Afterwards no process of the demo (agent, berth-lb, HAProxy, containerd,
// shims, registry) may be left, nor its load balancer's port open, nor its
// bridge, nor an iptables or nftables rule of its bridge or subnet
// (credentials DNAT, host ports, the built-in datapath's table and forward
// rules).
// (The containers of the STOPPED tasks stay in containerd, as the agent
// keeps them for ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION; berth-testenv
// deletes them with containerd.)
//
// The demo runs with its own bridge and subnet (BERTH_DEMO_BRIDGE,
// BERTH_DEMO_SUBNET), named so that the test runner's sweep of leftovers
// never matches them, and builds its tools into a temporary directory.
func TestDemoCtrlC(t *testing.T) {
	requireDemo(t)
	root := repoRoot(t)
	bin := t.TempDir() // shared by the cases: later builds are up to date

	// The stop's steps in order once the service exists: it is deleted, its
	// tasks drain from the load balancer and stop, then berth-lb and its
	// HAProxy stop, then dev mode.
	withTasks := []string{"==> deleting service berth-demo", "==> stopping the tasks", " STOPPED: ", " STOPPED: ",
		"==> stopping berth-lb and its HAProxy", "==> stopping dev mode", "berth-testenv: teardown clean"}
	for _, tc := range []struct {
		name string
		// after is the output that must appear before ^C is pressed.
		after []string
		// steps must appear in this order after ^C (with no second ^C).
		steps []string
		// again is the output after which ^C is pressed a second time.
		again string
	}{
		{name: "while the log streams", after: []string{"streaming the log of task", "tick "}, steps: withTasks},
		{name: "while the tasks are replaced", after: []string{"==> replacing both tasks"}, steps: withTasks},
		// The service may have placed no task yet: whatever it placed
		// stops before berth-lb and dev mode do (checked by the stop's
		// own order when there are any).
		{name: "while the tasks start", after: []string{"==> running two tasks"},
			steps: []string{"==> deleting service berth-demo", "==> stopping berth-lb and its HAProxy", "==> stopping dev mode", "berth-testenv: teardown clean"}},
		{name: "while dev mode starts", after: []string{"    dev mode runs as pid"}, steps: []string{"==> stopping dev mode", "berth-testenv: teardown clean"}},
		// The second ^C kills make (it restored the default action after
		// the first); make leads the terminal's session, so the terminal
		// hangs up and the rest of the group gets SIGHUP, as when a user
		// gives up and closes the terminal. What follows is not shown.
		{name: "twice", after: []string{"streaming the log of task", "tick "}, again: "==> stopping the tasks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startDemo(t, root, bin)
			for _, s := range tc.after {
				d.waitFor(t, s, 4*time.Minute)
			}
			d.interrupt(t)
			if tc.again != "" {
				d.waitFor(t, tc.again, time.Minute)
				d.interrupt(t)
			}
			code := d.wait(t, 3*time.Minute)
			t.Logf("make demo exited %d after ^C", code)
			d.waitGone(t, 3*time.Minute)
			d.waitOutput(t, time.Minute)
			out := d.out.String()

			if tc.again == "" {
				checkOrder(t, out, tc.steps)
			}
			d.checkNothingLeft(t)
			t.Logf("terminal output:\n%s", out)
		})
	}
}

// TestDemoWithoutTerminal runs `make demo` with standard input that is not
// a terminal, where nobody can press Ctrl-C: the demo follows the log for
// BERTH_DEMO_FOLLOW_FOR and ends by itself, exit 0, with the same clean-up.
// From the moment the demo prints its load balancer's URL until it says
// the tasks were replaced, this test requests that URL itself, one request
// after another: every one must be answered (200, a container's page), by
// at least three containers (the two first tasks and a replacement).
func TestDemoWithoutTerminal(t *testing.T) {
	requireDemo(t)
	d := newDemo(t)
	d.cmd = exec.Command("make", "--no-print-directory", "-C", repoRoot(t), "demo")
	d.cmd.Env = append(d.env(t.TempDir()), "BERTH_DEMO_FOLLOW_FOR=3s")
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out // stdin: /dev/null
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start make demo: %v", err)
	}
	close(d.copied)
	d.watch(t, nil)

	d.waitFor(t, "==> the service answers at ", 5*time.Minute)
	url := fmt.Sprintf("http://127.0.0.1:%d/", d.lbPort)
	if !strings.Contains(d.out.String(), "==> the service answers at "+url+" ") {
		t.Errorf("the demo did not print its load balancer's URL %s", url)
	}
	ok, failed, bodies := 0, []string{}, map[string]int{}
	c := &http.Client{Timeout: 5 * time.Second}
	for !strings.Contains(d.out.String(), "==> tasks replaced: ") {
		select {
		case <-d.done:
			t.Fatalf("make demo exited (%v) before replacing its tasks:\n%s", d.err, d.out)
		default:
		}
		resp, err := c.Get(url)
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "Hello from Berth (container ") {
			failed = append(failed, fmt.Sprintf("%d %q", resp.StatusCode, b))
			continue
		}
		ok++
		bodies[string(b)]++
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%s while the tasks were replaced: %d requests answered, %d failed, by %d containers: %v", url, ok, len(failed), len(bodies), bodies)
	if len(failed) > 0 || len(bodies) < 3 {
		t.Errorf("%s while the tasks were replaced: %d of %d requests failed (first: %v); answered by %d containers, want at least 3",
			url, len(failed), ok+len(failed), failed[:min(len(failed), 5)], len(bodies))
	}
	if !regexp.MustCompile(`==> tasks replaced: [1-9][0-9]* requests to ` + regexp.QuoteMeta(url) + `, 0 failed`).MatchString(d.out.String()) {
		t.Errorf("the demo's own count of requests while it replaced the tasks is missing or not 0 failed")
	}

	if code := d.wait(t, 5*time.Minute); code != 0 {
		t.Errorf("make demo without a terminal exited %d, want 0", code)
	}
	d.waitGone(t, 3*time.Minute)
	checkOrder(t, d.out.String(), []string{"followed the log for 3s", "==> deleting service berth-demo", "==> stopping the tasks",
		" STOPPED: ", " STOPPED: ", "==> stopping berth-lb and its HAProxy", "==> stopping dev mode", "berth-testenv: teardown clean"})
	d.checkNothingLeft(t)
	t.Logf("output:\n%s", d.out)
}

// requireDemo stops the test unless make demo can run here.
func requireDemo(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping make demo")
	}
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "make", "go", "setsid", "containerd", "containerd-shim-runc-v2", "runc",
		"docker-registry", "iptables", "iptables-save", "ip", "nft", "haproxy")
	testenv.RequireBusyboxStatic(t)
}

// demo is one `make demo` in a pseudo-terminal.
type demo struct {
	cmd    *exec.Cmd
	tty    *os.File // the terminal's master side
	out    *terminalOutput
	copied chan struct{} // closed when the output copy has ended
	done   chan struct{} // closed when make has exited
	err    error         // make's Wait result, valid once done is closed
	bridge string
	subnet string
	lbPort int // the load balancer's listener (BERTH_DEMO_LB_PORT)
}

// terminalOutput collects what the demo writes to its terminal.
type terminalOutput struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func (o *terminalOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	close(o.changed)
	o.changed = make(chan struct{})
	return o.b.Write(p)
}

func (o *terminalOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// since returns the output and a channel closed on the next write.
func (o *terminalOutput) since() (string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String(), o.changed
}

// newDemo returns a demo with its own bridge and subnet.
func newDemo(t *testing.T) *demo {
	return &demo{
		out:    &terminalOutput{changed: make(chan struct{})},
		copied: make(chan struct{}),
		done:   make(chan struct{}),
		// "bd" and hex: not the demo's default; the test runner's sweep,
		// which runs only before the tests, takes a killed run's leftovers
		// by it (berth-testenv's devTestBridges).
		bridge: fmt.Sprintf("bd%06x", rand.IntN(1<<24)),
		subnet: fmt.Sprintf("10.232.%d.0/24", rand.IntN(256)),
		lbPort: freePort(),
	}
}

// freePort is a loopback TCP port free now, for the demo's load balancer
// (not its default 8480: a demo may run beside the test).
func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// env is the environment of make demo: this process's without the outer
// make's variables, plus the demo's tools directory, bridge and subnet.
func (d *demo) env(bin string) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		// `make test` runs this test; its make's jobserver is not ours.
		if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" {
			env = append(env, kv)
		}
	}
	return append(env, "BERTH_DEMO_BIN="+bin, "BERTH_DEMO_BRIDGE="+d.bridge, "BERTH_DEMO_SUBNET="+d.subnet,
		fmt.Sprintf("BERTH_DEMO_LB_PORT=%d", d.lbPort), "TERM=dumb")
}

func startDemo(t *testing.T, root, bin string) *demo {
	t.Helper()
	d := newDemo(t)
	d.cmd = exec.Command("make", "--no-print-directory", "-C", root, "demo")
	d.cmd.Env = d.env(bin)
	// pty.Start makes make the leader of a new session with the terminal
	// as its controlling terminal, in the foreground process group.
	tty, err := pty.StartWithSize(d.cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		t.Fatalf("start make demo in a pseudo-terminal: %v", err)
	}
	d.tty = tty
	go func() {
		defer close(d.copied)
		// Ends with EIO once every process holding the terminal has exited.
		_, _ = io.Copy(d.out, tty)
	}()
	d.watch(t, tty)
	return d
}

// watch waits for make in the background and registers the clean-up of a
// demo that a failed test left running.
func (d *demo) watch(t *testing.T, tty *os.File) {
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			// A failed case: SIGTERM lets the demo clean up as it can;
			// SIGKILL only after two minutes (that would leave its agent,
			// tasks and network behind).
			_ = d.signal(syscall.SIGTERM)
			select {
			case <-d.done:
			case <-time.After(2 * time.Minute):
				t.Errorf("make demo ignored SIGTERM for 2 minutes; killing it")
				_ = d.signal(syscall.SIGKILL)
				<-d.done
			}
		}
		if tty != nil {
			tty.Close()
		}
		<-d.copied
		// Best effort for a failed case; a passing one left nothing.
		_ = exec.Command("ip", "link", "del", d.bridge).Run()
	})
}

// signal signals make's process group: the session it leads in a
// pseudo-terminal, or make alone.
func (d *demo) signal(sig syscall.Signal) error {
	if d.tty != nil {
		return syscall.Kill(-d.cmd.Process.Pid, sig)
	}
	return d.cmd.Process.Signal(sig)
}

// waitFor waits until the terminal shows s.
func (d *demo) waitFor(t *testing.T, s string, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for {
		out, changed := d.out.since()
		if strings.Contains(out, s) {
			return
		}
		select {
		case <-changed:
		case <-d.done:
			t.Fatalf("make demo exited (%v) before printing %q:\n%s", d.err, s, d.out)
		case <-deadline:
			t.Fatalf("make demo did not print %q within %v:\n%s\nits processes:\n%s", s, limit, d.out, d.diagnose())
		}
	}
}

// diagnose lists the processes of the demo's session (pid, state, kernel
// wait channel, command line), for a failure message, and asks each
// berth-democtl for its goroutines (SIGQUIT; the dump goes to the terminal).
func (d *demo) diagnose() string {
	entries, _ := os.ReadDir("/proc")
	var b strings.Builder
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...; comm may hold spaces.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 4 || f[3] != fmt.Sprint(d.cmd.Process.Pid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		wchan, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "wchan"))
		args := strings.Fields(strings.ReplaceAll(string(cmdline), "\x00", " "))
		fmt.Fprintf(&b, "%s %s %s %s\n", e.Name(), f[0], wchan, strings.Join(args, " "))
		if len(args) > 0 && strings.HasSuffix(args[0], "/berth-democtl") {
			var pid int
			if _, err := fmt.Sscan(e.Name(), &pid); err == nil {
				_ = syscall.Kill(pid, syscall.SIGQUIT)
			}
		}
	}
	time.Sleep(2 * time.Second)
	return b.String()
}

// interrupt types ^C on the terminal.
func (d *demo) interrupt(t *testing.T) {
	t.Helper()
	if _, err := d.tty.Write([]byte{0x03}); err != nil {
		t.Fatalf("type ^C: %v", err)
	}
}

// wait waits for make to exit and returns its exit status (128+N for
// signal N).
func (d *demo) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(limit):
		t.Fatalf("make demo did not exit within %v of ^C:\n%s", limit, d.out)
	}
	var ee *exec.ExitError
	switch {
	case d.err == nil:
		return 0
	case errors.As(d.err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	t.Fatalf("wait for make demo: %v", d.err)
	return 0
}

// dirs returns the directories of the demo named in its output: dev
// mode's and berth-testenv's.
func (d *demo) dirs(t *testing.T) []string {
	t.Helper()
	out := d.out.String()
	var dirs []string
	for _, re := range []*regexp.Regexp{devDirRE, containerdRE} {
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Errorf("the output names no directory matching %v", re)
			continue
		}
		dirs = append(dirs, m[1])
	}
	return dirs
}

// waitGone waits until no process mentions the demo's directories: what
// runs after make has exited (the clean-up after a hang-up) may take its
// time, but must end.
func (d *demo) waitGone(t *testing.T, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for _, dir := range d.dirs(t) {
		for len(processesMentioning(t, dir)) > 0 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// waitOutput waits until the terminal has no writer left and all that was
// written to it has been read.
func (d *demo) waitOutput(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-d.copied:
	case <-time.After(limit):
		t.Errorf("the terminal still had a writer %v after make exited", limit)
	}
}

var (
	devDirRE     = regexp.MustCompile(`berth-agent --dev --dev-dir (\S+)`)
	containerdRE = regexp.MustCompile(`BERTHTEST_CONTAINERD_ADDRESS=(\S+)/containerd/containerd\.sock`)
)

// checkNothingLeft looks for every trace of the demo on the host.
func (d *demo) checkNothingLeft(t *testing.T) {
	t.Helper()
	for _, dir := range d.dirs(t) {
		if procs := processesMentioning(t, dir); len(procs) > 0 {
			t.Errorf("processes of the demo left running (command line mentions %s):\n  %s", dir, strings.Join(procs, "\n  "))
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (stat: %v)", dir, err)
		}
	}
	// HAProxy, which outlives berth-lb by design, must be gone with the demo.
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", d.lbPort), time.Second); err == nil {
		c.Close()
		t.Errorf("the demo's load balancer port 127.0.0.1:%d still accepts connections", d.lbPort)
	}
	if out, err := exec.Command("ip", "link", "show", d.bridge).CombinedOutput(); err == nil {
		t.Errorf("the demo's bridge is left:\n%s", out)
	}
	// The built-in datapath's table (named after dev mode's owner tag,
	// which dies with its directory) names the bridge and the subnet, as
	// do the credentials and host-port rules.
	for _, r := range testenv.NetworkRulesMentioning(t, d.bridge, strings.TrimSuffix(d.subnet, "0/24")) {
		t.Errorf("rule of the demo left: %s", r)
	}
}

// processesMentioning lists the processes whose command line contains s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // exited meanwhile
		}
		if line := strings.ReplaceAll(string(cmdline), "\x00", " "); strings.Contains(line, s) {
			found = append(found, e.Name()+": "+line)
		}
	}
	return found
}

// checkOrder checks that the steps appear in out in this order.
func checkOrder(t *testing.T, out string, steps []string) {
	t.Helper()
	rest := out
	for _, s := range steps {
		i := strings.Index(rest, s)
		if i < 0 {
			t.Errorf("after ^C the output lacks %q (or has it out of the order %q)", s, steps)
			return
		}
		rest = rest[i+len(s):]
	}
}

// repoRoot is the repository's top directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}
