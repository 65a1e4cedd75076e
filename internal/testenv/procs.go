package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// proc is one process read from /proc.
type proc struct {
	pid, ppid int
	args      []string
}

// String names the process the way an operator would look it up.
func (p proc) String() string {
	return fmt.Sprintf("pid %d: %s", p.pid, strings.Join(p.args, " "))
}

// listProcs reads every process's command line and parent from /proc.
// Processes that vanish while being read are ignored.
func listProcs() ([]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name in stat is in parentheses and may contain spaces,
		// so the fields after the last ')' are parsed.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		var args []string
		for _, a := range bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0}) {
			if len(a) > 0 {
				args = append(args, string(a))
			}
		}
		out = append(out, proc{pid: pid, ppid: ppid, args: args})
	}
	return out, nil
}

// procsReferencing returns the processes (not this one) with an argument
// that contains dir, e.g. a containerd started with a config in dir or a shim
// given an -address in dir.
func procsReferencing(dir string) ([]proc, error) {
	all, err := listProcs()
	if err != nil {
		return nil, err
	}
	var out []proc
	for _, p := range all {
		if p.pid == os.Getpid() {
			continue
		}
		for _, a := range p.args {
			if strings.Contains(a, dir) {
				out = append(out, p)
				break
			}
		}
	}
	return out, nil
}

// descendants returns the pids of every process below the given roots.
func descendants(all []proc, roots []int) []int {
	children := map[int][]int{}
	for _, p := range all {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var out []int
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// killProcsReferencing SIGKILLs every process that references dir and all
// their descendants (containers below a shim), and returns what it killed.
func killProcsReferencing(dir string) ([]proc, error) {
	refs, err := procsReferencing(dir)
	if err != nil || len(refs) == 0 {
		return refs, err
	}
	all, err := listProcs()
	if err != nil {
		return refs, err
	}
	roots := make([]int, 0, len(refs))
	for _, p := range refs {
		roots = append(roots, p.pid)
	}
	// Children first, so a shim does not see its container die and
	// react before it is killed itself.
	pids := append(descendants(all, roots), roots...)
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill pid %d: %w", pid, err))
		}
	}
	return refs, errors.Join(errs...)
}

// mountsUnder returns the mount points at or below dir, deepest first, from
// /proc/self/mountinfo.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// unescapeMountinfo decodes the octal escapes (\040 for space) that the
// kernel uses in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountUnder detaches every mount at or below dir.
func unmountUnder(dir string) error {
	mps, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// ProcCPUTicks reads a process's user+system time from /proc/<pid>/stat
// (clock ticks, 100 a second): the kernel's account of the process,
// independent of the cgroup figures Berth's sampler reads.
func ProcCPUTicks(t testing.TB, pid uint32) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at state.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	return utime + stime
}
