// Command stats benchmarks the agent's container metrics (pkg/stats): the
// agent's CPU and memory to sample N running containers, against the raw
// baseline of the containerd client asking each container's task for its
// metrics in the same run (the least any sampler must do), and against the
// agent's process when it is not sampling (idle). It also shows what the
// reads cost containerd and the containers' shims.
//
// It uses the containerd and registry of BERTH_TEST_* variables when set
// (make bench under the testenv runner), otherwise starts private ones via
// internal/testenv. Run as root: go run ./bench/cmd/stats -n 100
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/logs"
	"github.com/berth-dev/berth/pkg/runtime"
	"github.com/berth-dev/berth/pkg/stats"
)

func main() {
	// This binary is the runtime's LoggerBinary: it serves the log daemon.
	if code, ok := logs.ServeMode(context.Background(), "bench-stats", os.Args[1:], os.Stderr); ok {
		os.Exit(code)
	}
	n := flag.Int("n", 100, "running containers")
	rounds := flag.Int("rounds", 20, "sampling rounds per side")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *n, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench stats:", err)
		os.Exit(1)
	}
}

type targets []stats.Target

func (t targets) Targets() []stats.Target { return t }

func run(ctx context.Context, n, rounds int) (retErr error) {
	b, err := testenv.StartBench(ctx, "stats", testenv.ImageSpec{Cmd: []string{"/bin/sleep", "100000"}})
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, b.Close(ctx)) }()
	ns, img := b.Namespace, b.Image
	rt, err := runtime.New(ctx, runtime.Options{Address: b.Address, Namespace: ns, Snapshotter: b.Snapshotter,
		ConnectTimeout: time.Minute, StateDir: filepath.Join(b.Dir, "state"), LoggerBinary: b.Self})
	if err != nil {
		return err
	}
	defer rt.Close()
	if _, err := rt.Pull(ctx, img.Ref); err != nil {
		return err
	}
	var ts targets
	for i := range n {
		id := fmt.Sprintf("c%03d", i)
		if err := rt.Create(ctx, container.Spec{ID: id, Image: img.Ref}); err != nil {
			return err
		}
		if _, err := rt.Start(ctx, id); err != nil {
			return err
		}
		ts = append(ts, stats.Target{ID: id, Name: "app", TaskArn: fmt.Sprintf("task-%03d", i), Network: true})
	}

	cli := rt.Client()
	nctx := namespaces.WithNamespace(ctx, ns)
	tasks := make([]containerd.Task, 0, n)
	for _, tg := range ts {
		c, err := cli.LoadContainer(nctx, tg.ID)
		if err != nil {
			return err
		}
		t, err := c.Task(nctx, nil)
		if err != nil {
			return err
		}
		tasks = append(tasks, t)
	}
	sampler, err := stats.New(stats.Options{Reader: rt, Targets: ts})
	if err != nil {
		return err
	}
	shimPIDs := func() []int {
		pids, _ := testenv.FindProcs(func(a []string) bool {
			return strings.Contains(a[0], "containerd-shim") && slices.Contains(a, ns)
		})
		return pids
	}()
	cdPIDs, _ := testenv.FindProcs(func(a []string) bool {
		return filepath.Base(a[0]) == "containerd" && strings.Contains(strings.Join(a, " "), b.Address)
	})

	fmt.Printf("containerd %s, %d running containers, %d CPUs, %d rounds per side; CPU of %d containerd and %d shim processes watched\n\n",
		b.Address, n, goruntime.NumCPU(), rounds, len(cdPIDs), len(shimPIDs))

	// Idle: the process with the containers running and nothing sampled.
	idleWall := 5 * time.Second
	c0 := cpuTime()
	time.Sleep(idleWall)
	idleCPU := cpuTime() - c0

	var rawWall, rawCPU, berthWall, berthCPU, hostRaw, hostBerth []time.Duration
	for range rounds {
		h0, c0, w0 := procsCPU(append(shimPIDs, cdPIDs...)), cpuTime(), time.Now()
		for _, t := range tasks {
			if _, err := t.Metrics(nctx); err != nil {
				return fmt.Errorf("raw metrics: %w", err)
			}
		}
		rawWall, rawCPU = append(rawWall, time.Since(w0)), append(rawCPU, cpuTime()-c0)
		hostRaw = append(hostRaw, procsCPU(append(shimPIDs, cdPIDs...))-h0)

		h0, c0, w0 = procsCPU(append(shimPIDs, cdPIDs...)), cpuTime(), time.Now()
		sampler.SampleOnce(ctx)
		berthWall, berthCPU = append(berthWall, time.Since(w0)), append(berthCPU, cpuTime()-c0)
		hostBerth = append(hostBerth, procsCPU(append(shimPIDs, cdPIDs...))-h0)
		time.Sleep(200 * time.Millisecond)
	}
	if tm, _ := sampler.TaskMetrics(); len(tm) != n {
		return fmt.Errorf("published %d tasks, want %d", len(tm), n)
	}
	// Memory: the windows at their full size, on the heap after a GC.
	goruntime.GC()
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	full, err := stats.New(stats.Options{Reader: rt, Targets: ts})
	if err != nil {
		return err
	}
	for range 8 { // the default window
		full.SampleOnce(ctx)
	}
	goruntime.GC()
	goruntime.ReadMemStats(&after)
	goruntime.KeepAlive(full)

	interval := stats.DefaultInterval.Seconds()
	mr, mb := median(rawCPU), median(berthCPU)
	fmt.Printf("one round over %d containers, median of %d (interleaved):\n", n, rounds)
	fmt.Printf("  raw containerd client Task.Metrics  wall %7.1f ms  agent CPU %6.1f ms  containerd+shims CPU %6.1f ms\n",
		ms(median(rawWall)), ms(mr), ms(median(hostRaw)))
	fmt.Printf("  pkg/stats SampleOnce                wall %7.1f ms  agent CPU %6.1f ms  containerd+shims CPU %6.1f ms\n",
		ms(median(berthWall)), ms(mb), ms(median(hostBerth)))
	fmt.Printf("  ratio berth/raw (agent CPU)         %.2fx\n", float64(mb)/float64(mr))
	fmt.Printf("at the default interval (%.0fs): agent %.3f%% of one CPU sampling vs %.3f%% idle (%.1f ms CPU over %s idle)\n",
		interval, 100*mb.Seconds()/interval, 100*idleCPU.Seconds()/idleWall.Seconds(), ms(idleCPU), idleWall)
	fmt.Printf("memory: windows of %d containers at 8 samples each: %.0f KiB on the heap (%.0f bytes per container)\n",
		n, float64(after.HeapAlloc-before.HeapAlloc)/1024, float64(after.HeapAlloc-before.HeapAlloc)/float64(n))
	return nil
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procsCPU sums the user+system time of pids from /proc (10 ms ticks).
func procsCPU(pids []int) time.Duration {
	var ticks uint64
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		u, _ := strconv.ParseUint(f[11], 10, 64)
		k, _ := strconv.ParseUint(f[12], 10, 64)
		ticks += u + k
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// median of ds (sorted in place).
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func ms(d time.Duration) float64 { return d.Seconds() * 1000 }
