package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/network"
)

// command runs name with args in its own process group, so that a Ctrl-C
// in the terminal reaches only this program, which then cleans up in
// order. It returns standard output; a failure names the command and
// carries its standard error.
func command(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// daemonProc is a long-running child (dockerd, berth-agent --dev) in its
// own process group, with its output in a log file.
type daemonProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startDaemonProc(env []string, logPath, name string, args ...string) (*daemonProc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemonProc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		_ = cmd.Wait()
	}()
	return d, nil
}

func (d *daemonProc) pid() int { return d.cmd.Process.Pid }

func (d *daemonProc) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace, then kills.
func (d *daemonProc) stop(grace time.Duration) {
	if d.exited() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(grace):
		_ = d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
	}
}

// logTail returns the last lines of the daemon's log, for error messages.
func (d *daemonProc) logTail() string {
	b, _ := os.ReadFile(d.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}

// waitFor polls ready every 100 ms until it returns nil, the daemon exits,
// or limit passes; what takes it names the thing awaited.
func (d *daemonProc) waitFor(ctx context.Context, what string, limit time.Duration, ready func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if d.exited() {
			return fmt.Errorf("%s: the process exited; its log ends with:\n%s", what, d.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s: %w; the log ends with:\n%s", what, limit, err, d.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePort asks the kernel for a free TCP port on all addresses. Another
// process may take it before the container binds it; the benchmark's
// engines run one after another, so only outsiders could.
func freePort() (int, error) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// newAnswerClient returns a client that makes one fresh connection per
// request, as a first client of a new container would.
func newAnswerClient() *http.Client {
	return &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// marker is in the page every benchmark container serves; an answer
// without it (a proxy's error page, another server on a reused port) does
// not count.
const marker = "berth-bench-peers"

// pollInterval is the time between two GETs of a port that does not answer
// yet: the measured times are late by half of it on average, for every
// engine alike.
const pollInterval = 10 * time.Millisecond

// waitAnswer polls GET http://addr/ until it returns 200 with the marker,
// and returns the time of that answer.
func waitAnswer(ctx context.Context, client *http.Client, addr string, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	var last error
	for {
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			var body bytes.Buffer
			_, err = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if err == nil && (resp.StatusCode != http.StatusOK || !strings.Contains(body.String(), marker)) {
				err = fmt.Errorf("status %d, body %.60q", resp.StatusCode, body.String())
			}
			if err == nil {
				return time.Now(), nil
			}
		}
		last = err
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("GET http://%s/: no answer within %s: %w", addr, limit, last)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// findBinary returns the first of paths that exists, or looks up the last
// one's base name in PATH.
func findBinary(paths ...string) (string, error) {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return exec.LookPath(filepath.Base(paths[len(paths)-1]))
}

// ensurePackages installs Debian's docker.io and podman (without the
// recommended extras) when their programs are missing.
func ensurePackages(ctx context.Context, install bool) error {
	var missing []string
	for pkg, bins := range map[string][]string{
		"docker.io": {"/usr/sbin/dockerd", "/usr/bin/docker", "/usr/sbin/docker-proxy"},
		"podman":    {"/usr/bin/podman", "/usr/bin/conmon"},
	} {
		for _, b := range bins {
			if _, err := os.Stat(b); err != nil {
				missing = append(missing, pkg)
				break
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	if !install {
		return fmt.Errorf("missing Debian packages %s (run without -install=false, or apt-get install --no-install-recommends %[1]s)", strings.Join(missing, " "))
	}
	fmt.Printf("installing %s (apt-get install --no-install-recommends)\n", strings.Join(missing, " "))
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	args := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)
	if _, err := command(ctx, env, "apt-get", args...); err != nil {
		// A stale package index is the usual cause; refresh it once.
		if _, uerr := command(ctx, env, "apt-get", "update", "-qq"); uerr != nil {
			return errors.Join(err, uerr)
		}
		if _, err := command(ctx, env, "apt-get", args...); err != nil {
			return err
		}
	}
	return nil
}

// procsNamed returns the processes whose program's base name is base and
// whose arguments satisfy match (nil matches all).
func procsNamed(base string, match func(args []string) bool) ([]int, error) {
	return testenv.FindProcs(func(a []string) bool {
		return filepath.Base(a[0]) == base && (match == nil || match(a))
	})
}

// anyArgHas reports whether an argument contains s.
func anyArgHas(args []string, s string) bool {
	return slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, s) })
}

// removeIPTables deletes, in the nat and filter tables, every rule for
// which rule returns true, then flushes and deletes every chain for which
// chain returns true. It is what Docker and netavark leave behind when they
// stop: their chains and the rules that jump to them or name their bridge.
func removeIPTables(ctx context.Context, rule func(chain string, args []string) bool, chain func(string) bool) error {
	var errs []error
	for _, table := range []string{"nat", "filter"} {
		out, err := command(ctx, nil, "iptables-save", "-t", table)
		if err != nil {
			return err
		}
		var chains []string
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			line := sc.Text()
			if name, ok := strings.CutPrefix(line, ":"); ok {
				if c := strings.Fields(name)[0]; chain(c) {
					chains = append(chains, c)
				}
				continue
			}
			if !strings.HasPrefix(line, "-A ") {
				continue
			}
			f := network.SplitSaveLine(line)
			if len(f) < 2 || !rule(f[1], f[2:]) {
				continue
			}
			if _, err := command(ctx, nil, "iptables", append([]string{"-w", "-t", table, "-D", f[1]}, f[2:]...)...); err != nil {
				errs = append(errs, err)
			}
		}
		for _, c := range chains {
			if _, err := command(ctx, nil, "iptables", "-w", "-t", table, "-F", c); err != nil {
				errs = append(errs, err)
			}
		}
		for _, c := range chains {
			if _, err := command(ctx, nil, "iptables", "-w", "-t", table, "-X", c); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// jumpsTo returns the -j target of a saved rule's arguments, or "".
func jumpsTo(args []string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-j" {
			return args[i+1]
		}
	}
	return ""
}

// addBridge creates a Linux bridge with address cidr (for dockerd -b).
func addBridge(ctx context.Context, name, cidr string) error {
	if _, err := command(ctx, nil, "ip", "link", "add", "name", name, "type", "bridge"); err != nil {
		return err
	}
	if _, err := command(ctx, nil, "ip", "addr", "add", cidr, "dev", name); err != nil {
		return err
	}
	_, err := command(ctx, nil, "ip", "link", "set", name, "up")
	return err
}

// delLink removes a network link; one that is not there is fine.
func delLink(ctx context.Context, name string) error {
	if _, err := os.Stat("/sys/class/net/" + name); err != nil {
		return nil
	}
	_, err := command(ctx, nil, "ip", "link", "del", name)
	return err
}

// unmountUnder detaches every mount point below dir (deepest first): what
// an engine killed on its way down may have left mounted.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// sysctls remembers kernel settings an engine may change (Docker turns on
// bridge netfilter) so that they can be put back.
type sysctls map[string]string

func saveSysctls(names ...string) sysctls {
	s := sysctls{}
	for _, n := range names {
		if b, err := os.ReadFile(sysctlPath(n)); err == nil {
			s[n] = strings.TrimSpace(string(b))
		}
	}
	return s
}

func (s sysctls) restore() error {
	var errs []error
	for n, v := range s {
		if b, err := os.ReadFile(sysctlPath(n)); err == nil && strings.TrimSpace(string(b)) == v {
			continue
		}
		if err := os.WriteFile(sysctlPath(n), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore %s=%s: %w", n, v, err))
		}
	}
	return errors.Join(errs...)
}

func sysctlPath(name string) string {
	return "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
}
