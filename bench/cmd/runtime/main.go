// Command runtime benchmarks pkg/runtime and the pkg/logs capture path
// against raw baselines measured in the same run:
//
//   - container lifecycle (create, start, wait for exit, remove of /bin/true)
//     through pkg/runtime versus the raw containerd client doing the same;
//   - log capture: a container writing N lines to stdout (captured by the
//     log daemon into json-file) versus the same container writing them to
//     /dev/null, through pkg/runtime;
//   - capture designs, through the raw containerd client: no capture, the
//     per-container logger Berth used before, the log daemon, and the shim
//     writing a raw file for an in-process converter;
//   - memory and start time with -running containers under each design.
//
// It uses the containerd and registry of BERTH_TEST_* variables when set
// (make bench under the testenv runner), otherwise starts private ones via
// internal/testenv. Run as root: go run ./bench/cmd/runtime
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/logs"
	"github.com/berth-dev/berth/pkg/runtime"
)

func main() {
	// This binary is the runtime's LoggerBinary: it serves the log daemon.
	if code, ok := logs.ServeMode(context.Background(), "bench-runtime", os.Args[1:], os.Stderr); ok {
		os.Exit(code)
	}
	iterations := flag.Int("n", 20, "lifecycle iterations per side")
	lines := flag.Int("lines", 500000, "lines written per log-capture run")
	rounds := flag.Int("rounds", 3, "log-capture rounds per side")
	running := flag.Int("running", 100, "running containers per design for the launch and memory benchmark (0 skips it)")
	launchRounds := flag.Int("launch-rounds", 2, "rounds of the launch and memory benchmark")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *iterations, *lines, *rounds, *running, *launchRounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench runtime:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n, lines, rounds, running, launchRounds int) (retErr error) {
	b, err := testenv.StartBench(ctx, "runtime", testenv.ImageSpec{Cmd: []string{"/bin/true"}})
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, b.Close(ctx)) }()
	dir, self, ns, img := b.Dir, b.Self, b.Namespace, b.Image
	rt, err := runtime.New(ctx, runtime.Options{
		Address: b.Address, Namespace: ns, Snapshotter: b.Snapshotter, ConnectTimeout: time.Minute,
		StateDir: filepath.Join(dir, "state"), LoggerBinary: self,
	})
	if err != nil {
		return err
	}
	defer rt.Close()
	if _, err := rt.Pull(ctx, img.Ref); err != nil {
		return err
	}
	fmt.Printf("containerd %s, snapshotter %s, image %s\n\n", b.Address, b.Snapshotter, img.Ref)

	if err := benchLifecycle(ctx, rt, ns, img.Ref, n); err != nil {
		return err
	}
	if err := benchLogs(ctx, rt, img.Ref, filepath.Join(dir, "logs"), lines, rounds); err != nil {
		return err
	}
	if err := benchDesigns(ctx, rt.Client(), ns, img.Ref, filepath.Join(dir, "designs"), self, lines, rounds); err != nil {
		return err
	}
	if running > 0 {
		return benchMemory(ctx, rt.Client(), ns, img.Ref, filepath.Join(dir, "memory"), self, running, launchRounds)
	}
	return nil
}

// benchLine is what the log benchmarks' containers write: 64 bytes and "\n".
const benchLine = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqr"

// benchLifecycle interleaves raw and pkg/runtime runs of /bin/true.
func benchLifecycle(ctx context.Context, rt *runtime.Runtime, ns, ref string, n int) error {
	cli := rt.Client()
	nctx := namespaces.WithNamespace(ctx, ns)
	image, err := cli.GetImage(nctx, ref)
	if err != nil {
		return err
	}
	var raw, berth []time.Duration
	for i := range n {
		d, err := timed(func() error { return rawLifecycle(nctx, cli, image, fmt.Sprintf("raw-%d", i)) })
		if err != nil {
			return fmt.Errorf("raw lifecycle: %w", err)
		}
		raw = append(raw, d)
		d, err = timed(func() error { return berthLifecycle(ctx, rt, ref, fmt.Sprintf("berth-%d", i)) })
		if err != nil {
			return fmt.Errorf("berth lifecycle: %w", err)
		}
		berth = append(berth, d)
	}
	mr, mb := median(raw), median(berth)
	fmt.Printf("lifecycle (create, start, wait exit, remove of /bin/true), %d runs each, median:\n", n)
	fmt.Printf("  raw containerd client  %8.1f ms\n", ms(mr))
	fmt.Printf("  pkg/runtime            %8.1f ms\n", ms(mb))
	fmt.Printf("  ratio                  %8.2fx\n\n", float64(mb)/float64(mr))
	return nil
}

func rawLifecycle(ctx context.Context, cli *containerd.Client, image containerd.Image, id string) error {
	c, err := cli.NewContainer(ctx, id,
		containerd.WithNewSnapshot(id, image),
		containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("/bin/true")))
	if err != nil {
		return err
	}
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		return err
	}
	exit, err := task.Wait(ctx)
	if err != nil {
		return err
	}
	if err := task.Start(ctx); err != nil {
		return err
	}
	<-exit
	if _, err := task.Delete(ctx); err != nil {
		return err
	}
	return c.Delete(ctx, containerd.WithSnapshotCleanup)
}

func berthLifecycle(ctx context.Context, rt *runtime.Runtime, ref, id string) error {
	if err := rt.Create(ctx, container.Spec{ID: id, Image: ref, Command: []string{"/bin/true"}}); err != nil {
		return err
	}
	if _, err := rt.Start(ctx, id); err != nil {
		return err
	}
	if _, err := rt.Wait(ctx, id); err != nil {
		return err
	}
	return rt.Remove(ctx, id)
}

// benchLogs compares a container writing lines to its captured stdout with
// the same container writing them to /dev/null.
func benchLogs(ctx context.Context, rt *runtime.Runtime, ref, logDir string, lines, rounds int) error {
	script := fmt.Sprintf("yes %s | head -n %d", benchLine, lines)
	var captured, devnull, capturedRan, devnullRan []time.Duration
	for r := range rounds {
		for _, toNull := range []bool{false, true} {
			id := fmt.Sprintf("logs-%d-%t", r, toNull)
			cmd := script
			if toNull {
				cmd += " > /dev/null"
			}
			spec := container.Spec{ID: id, Image: ref, Command: []string{"/bin/sh", "-c", cmd},
				LogPath: runtime.LogPath(logDir, id), Log: container.LogConfig{Options: map[string]string{"max-size": "64m", "max-file": "2"}}}
			if err := rt.Create(ctx, spec); err != nil {
				return err
			}
			start := time.Now()
			if _, err := rt.Start(ctx, id); err != nil {
				return err
			}
			// The exit arrives once the log daemon has written the whole
			// output and the task is deleted: the log is complete here.
			st, err := rt.Wait(ctx, id)
			if err != nil {
				return err
			}
			d, ran := time.Since(start), st.At.Sub(start)
			if err := rt.Remove(ctx, id); err != nil {
				return err
			}
			if toNull {
				devnull, devnullRan = append(devnull, d), append(devnullRan, ran)
				continue
			}
			captured, capturedRan = append(captured, d), append(capturedRan, ran)
			if err := checkLog(ctx, runtime.LogPath(logDir, id), lines); err != nil {
				return err
			}
		}
	}
	mc, mn := median(captured), median(devnull)
	mb := float64(lines*len(benchLine+"\n")) / (1 << 20)
	fmt.Printf("log capture of %d lines (%.1f MiB) on stdout through pkg/runtime, %d rounds each, medians of start→exit delivered (log complete) and of start→the container's exit:\n", lines, mb, rounds)
	fmt.Printf("  to /dev/null           %8.1f ms  (container ran %.1f ms)  %s\n", ms(mn), ms(median(devnullRan)), msList(devnull))
	fmt.Printf("  captured to json-file  %8.1f ms  (container ran %.1f ms, %.1f MiB/s)  %s\n", ms(mc), ms(median(capturedRan)), mb/mc.Seconds(), msList(captured))
	fmt.Printf("  ratio                  %8.2fx (throughput %.2fx of /dev/null; container ran %.2fx)\n\n", float64(mc)/float64(mn), float64(mn)/float64(mc),
		float64(median(capturedRan))/float64(median(devnullRan)))
	return nil
}

func timed(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// msList shows every run, for the spread.
func msList(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.0f", ms(d))
	}
	return "[" + strings.Join(parts, " ") + "]"
}
