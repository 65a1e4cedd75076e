package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/logs"
)

// captureDesign is one way of capturing a task's output, driven through the
// raw containerd client so that the designs differ only in their IO.
type captureDesign struct {
	name string
	// prepare returns the task's IO for a container logging to logPath;
	// armed runs once the task exists, finish once it exited and before it
	// is deleted, complete after the deletion (each may be nil). The log is
	// complete when complete returns.
	prepare func(id, logPath string) (taskIO cio.Creator, hooks designHooks, err error)
}

type designHooks struct {
	armed, finish, complete func(ctx context.Context) error
}

// designs are the ones measured: no capture, the per-container logger that
// Berth used before, the log daemon it uses now, and the shim writing a raw
// file that an in-process converter turns into json-file (the design that
// was measured and not taken: it cannot tell stdout from stderr, stamps
// lines when it converts them, and its raw file grows without bound while
// no converter runs).
func designs(self, logdDir string, caps *logs.Captures) []captureDesign {
	return []captureDesign{
		{name: "/dev/null (no capture)", prepare: func(string, string) (cio.Creator, designHooks, error) {
			return cio.NullIO, designHooks{}, nil
		}},
		{name: "per-container logger (binary://, before)", prepare: func(_, logPath string) (cio.Creator, designHooks, error) {
			args, err := logs.ShimArgs(logs.Config{Path: logPath})
			return cio.BinaryIO(self, args), designHooks{}, err
		}},
		{name: "log daemon (FIFOs, now)", prepare: func(id, logPath string) (cio.Creator, designHooks, error) {
			stdout, stderr, err := caps.Prepare(id, logs.Config{Path: logPath})
			if err != nil {
				return nil, designHooks{}, err
			}
			io := func(string) (cio.IO, error) { return fifoIO{cio.Config{Stdout: stdout, Stderr: stderr}}, nil }
			return io, designHooks{
				armed:  func(ctx context.Context) error { return caps.Arm(ctx, id) },
				finish: func(ctx context.Context) error { return caps.Finish(ctx, id) },
			}, nil
		}},
		{name: "raw file (file://) + converter", prepare: func(id, logPath string) (cio.Creator, designHooks, error) {
			raw := filepath.Join(logdDir, id+".raw")
			var deleted atomic.Bool
			done := make(chan error, 1)
			started := false
			return cio.LogFile(raw), designHooks{
				armed: func(context.Context) error {
					f, err := os.Open(raw)
					if err != nil {
						return err
					}
					started = true
					go func() {
						defer f.Close()
						_, err := logs.Capture(logs.CaptureOptions{Config: logs.Config{Path: logPath},
							Stdout: &tailReader{f: f, deleted: &deleted}})
						done <- err
					}()
					return nil
				},
				complete: func(context.Context) error {
					deleted.Store(true)
					if !started {
						return errors.New("converter never started")
					}
					defer os.Remove(raw)
					return <-done
				},
			}, nil
		}},
	}
}

// fifoIO is a task IO naming FIFOs (as pkg/runtime's).
type fifoIO struct{ cfg cio.Config }

func (f fifoIO) Config() cio.Config { return f.cfg }
func (fifoIO) Cancel()              {}
func (fifoIO) Wait()                {}
func (fifoIO) Close() error         { return nil }

// tailReader follows a growing file until the task that writes it is
// deleted (then everything the shim copied is in it).
type tailReader struct {
	f       *os.File
	deleted *atomic.Bool
}

func (t *tailReader) Read(p []byte) (int, error) {
	for {
		last := t.deleted.Load()
		n, err := t.f.Read(p)
		if n > 0 {
			return n, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if last {
			return 0, io.EOF
		}
		time.Sleep(time.Millisecond)
	}
}

// designRun is one timed run: total is start → log complete (and task
// deleted), running is start → the exit time containerd recorded, i.e. how
// long the container itself took to write its output. The CPU times say
// where the work went: the container's processes (its cgroup), its shim,
// and the capture's own process (the logger, or the log daemon's share).
type designRun struct {
	total, running                    time.Duration
	containerCPU, shimCPU, captureCPU time.Duration
}

func runDesign(ctx context.Context, cli *containerd.Client, ns string, image containerd.Image, d captureDesign, id, logPath, script string) (designRun, error) {
	ctx = namespaces.WithNamespace(ctx, ns)
	c, err := cli.NewContainer(ctx, id, containerd.WithNewSnapshot(id, image),
		containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("/bin/sh", "-c", script)))
	if err != nil {
		return designRun{}, err
	}
	defer c.Delete(context.WithoutCancel(ctx), containerd.WithSnapshotCleanup)
	taskIO, hooks, err := d.prepare(id, logPath)
	if err != nil {
		return designRun{}, err
	}
	call := func(f func(context.Context) error) error {
		if f == nil {
			return nil
		}
		return f(ctx)
	}
	start := time.Now()
	task, err := c.NewTask(ctx, taskIO)
	if err != nil {
		return designRun{}, err
	}
	if err := call(hooks.armed); err != nil {
		return designRun{}, err
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return designRun{}, err
	}
	if err := task.Start(ctx); err != nil {
		return designRun{}, err
	}
	shim := parentOf(int(task.Pid()))
	st := <-exitCh
	_, exitedAt, _ := st.Result()
	if err := call(hooks.finish); err != nil {
		return designRun{}, err
	}
	run := designRun{running: exitedAt.Sub(start), shimCPU: cpuOf(shim),
		containerCPU: cgroupCPU(ns, id)}
	loggers, _ := testenv.FindProcs(func(a []string) bool { return len(a) > 1 && a[1] == logs.LoggerMode })
	for _, pid := range loggers {
		if parentOf(pid) == shim {
			run.captureCPU += cpuOf(pid)
		}
	}
	if _, err := task.Delete(ctx); err != nil {
		return designRun{}, err
	}
	if err := call(hooks.complete); err != nil {
		return designRun{}, err
	}
	run.total = time.Since(start)
	return run, nil
}

// benchDesigns runs every design in turn, rounds times, on a container
// writing lines 65-byte lines to stdout, and checks every captured log.
func benchDesigns(ctx context.Context, cli *containerd.Client, ns, ref, dir, self string, lines, rounds int) error {
	image, err := cli.GetImage(namespaces.WithNamespace(ctx, ns), ref)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	caps := logs.NewCaptures(logs.CapturesOptions{Dir: filepath.Join(dir, "logd"), Binary: self})
	defer caps.Close()
	ds := designs(self, dir, caps)
	results := make([][]designRun, len(ds))
	script := fmt.Sprintf("yes %s | head -n %d", benchLine, lines)
	daemonPID, err := caps.DaemonPID(ctx)
	if err != nil {
		return err
	}
	for r := range rounds {
		for i, d := range ds {
			daemonBefore := cpuOf(daemonPID)
			id := fmt.Sprintf("design-%d-%d", i, r)
			logPath := filepath.Join(dir, id+"-json.log")
			s := script
			if i == 0 {
				s += " > /dev/null"
			}
			run, err := runDesign(ctx, cli, ns, image, d, id, logPath, s)
			if err != nil {
				return fmt.Errorf("%s: %w", d.name, err)
			}
			if i == 2 {
				run.captureCPU = cpuOf(daemonPID) - daemonBefore
			}
			if i > 0 {
				if err := checkLog(ctx, logPath, lines); err != nil {
					return fmt.Errorf("%s: %w", d.name, err)
				}
			}
			os.Remove(logPath)
			results[i] = append(results[i], run)
		}
	}
	mb := float64(lines*len(benchLine+"\n")) / (1 << 20)
	fmt.Printf("capture designs, raw containerd client, %d lines (%.1f MiB) on stdout, %d rounds each, medians:\n", lines, mb, rounds)
	fmt.Printf("  %-42s %12s %8s %14s %8s\n", "design", "start→log", "ratio", "container ran", "ratio")
	base := results[0]
	for i, d := range ds {
		total, running := median(pick(results[i], true)), median(pick(results[i], false))
		fmt.Printf("  %-42s %9.1f ms %7.2fx %11.1f ms %7.2fx  %s\n", d.name, ms(total), float64(total)/float64(median(pick(base, true))),
			ms(running), float64(running)/float64(median(pick(base, false))), msList(pick(results[i], true)))
	}
	fmt.Printf("  CPU time, medians: container / shim / capture process\n")
	for i, d := range ds {
		cpu := func(f func(designRun) time.Duration) float64 {
			var v []time.Duration
			for _, r := range results[i] {
				v = append(v, f(r))
			}
			return ms(median(v))
		}
		fmt.Printf("  %-42s %6.0f / %5.0f / %5.0f ms\n", d.name, cpu(func(r designRun) time.Duration { return r.containerCPU }),
			cpu(func(r designRun) time.Duration { return r.shimCPU }), cpu(func(r designRun) time.Duration { return r.captureCPU }))
	}
	fmt.Println()
	return nil
}

func pick(runs []designRun, total bool) []time.Duration {
	out := make([]time.Duration, len(runs))
	for i, r := range runs {
		out[i] = r.running
		if total {
			out[i] = r.total
		}
	}
	return out
}

func checkLog(ctx context.Context, path string, lines int) error {
	got := 0
	if err := logs.Read(ctx, path, logs.ReadOptions{}, func(logs.Entry) error { got++; return nil }); err != nil {
		return err
	}
	if got != lines {
		return fmt.Errorf("log capture kept %d of %d lines", got, lines)
	}
	return nil
}

// cpuOf is the CPU time (user and system) a process has used so far.
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// parentOf is a process's parent PID (0 if it is gone).
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// cgroupCPU is the CPU time of a container's cgroup (containerd's default
// path /<namespace>/<id>; cgroup v2, else v1's cpuacct).
func cgroupCPU(ns, id string) time.Duration {
	if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", ns, id, "cpu.stat")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
				us, _ := strconv.ParseInt(v, 10, 64)
				return time.Duration(us) * time.Microsecond
			}
		}
	}
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuacct", ns, id, "cpuacct.usage"))
	if err != nil {
		return 0
	}
	nsec, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return time.Duration(nsec)
}
