package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/logs"
)

// benchMemory starts n containers running sleep at once under each design
// in turn, rounds times: it reports the time until all n are started
// (median of the rounds) and the memory of the processes the design adds
// (the per-container loggers, or the one log daemon) with, for scale, the
// shims (containerd's, the same for every design).
func benchMemory(ctx context.Context, cli *containerd.Client, ns, ref, dir, self string, n, rounds int) error {
	nctx := namespaces.WithNamespace(ctx, ns)
	image, err := cli.GetImage(nctx, ref)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	caps := logs.NewCaptures(logs.CapturesOptions{Dir: filepath.Join(dir, "logd-mem"), Binary: self})
	defer caps.Close()
	// The agent's daemon runs for as long as the agent: start it untimed.
	if _, err := caps.DaemonPID(ctx); err != nil {
		return err
	}
	ds := designs(self, dir, caps)[:3] // the raw-file design has no process of its own
	launch := make([][]time.Duration, len(ds))
	mem := make([][2]testenv.Memory, len(ds))
	for r := range rounds {
		for i, d := range ds {
			ids := make([]string, n)
			for k := range ids {
				ids[k] = fmt.Sprintf("mem-%d-%d-%d", r, i, k)
			}
			start := time.Now()
			errs := make(chan error, n)
			for _, id := range ids {
				go func() { errs <- startSleeper(nctx, cli, image, d, id, filepath.Join(dir, id+"-json.log")) }()
			}
			var startErr error
			for range ids {
				if err := <-errs; err != nil && startErr == nil {
					startErr = fmt.Errorf("%s: %w", d.name, err)
				}
			}
			launch[i] = append(launch[i], time.Since(start))
			if startErr == nil && r == 0 {
				time.Sleep(2 * time.Second) // let start-up garbage be collected
				added, shims, err := designMemory(ctx, caps, i, self, ns)
				mem[i] = [2]testenv.Memory{added, shims}
				startErr = err
			}
			var wg sync.WaitGroup
			for _, id := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					stopContainer(context.WithoutCancel(nctx), cli, caps, id)
				}()
			}
			wg.Wait()
			if startErr != nil {
				return startErr
			}
		}
	}
	fmt.Printf("%d containers running `sleep 3600`, created and started all at once, %d rounds:\n", n, rounds)
	for i, d := range ds {
		fmt.Printf("  %-42s all started in %6.0f ms (median; %.2fx of no capture)  %s\n", d.name, ms(median(launch[i])),
			float64(median(launch[i]))/float64(median(launch[0])), msList(launch[i]))
		fmt.Printf("    added by the design: %s\n", mem[i][0])
		fmt.Printf("    containerd shims:    %s\n", mem[i][1])
	}
	fmt.Println()
	return nil
}

func startSleeper(ctx context.Context, cli *containerd.Client, image containerd.Image, d captureDesign, id, logPath string) error {
	c, err := cli.NewContainer(ctx, id, containerd.WithNewSnapshot(id, image),
		containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("/bin/sleep", "3600")))
	if err != nil {
		return err
	}
	taskIO, hooks, err := d.prepare(id, logPath)
	if err != nil {
		return err
	}
	task, err := c.NewTask(ctx, taskIO)
	if err != nil {
		return err
	}
	if hooks.armed != nil {
		if err := hooks.armed(ctx); err != nil {
			return err
		}
	}
	return task.Start(ctx)
}

func stopContainer(ctx context.Context, cli *containerd.Client, caps *logs.Captures, id string) {
	c, err := cli.LoadContainer(ctx, id)
	if err != nil {
		return
	}
	if task, err := c.Task(ctx, nil); err == nil {
		if ch, err := task.Wait(ctx); err == nil {
			task.Kill(ctx, syscall.SIGKILL)
			<-ch
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		caps.Finish(fctx, id)
		cancel()
		task.Delete(ctx)
	}
	c.Delete(ctx, containerd.WithSnapshotCleanup)
}

// designMemory sums the processes that design i added (the loggers, or the
// log daemon) and, for scale, the namespace's shims.
func designMemory(ctx context.Context, caps *logs.Captures, i int, self, ns string) (added, shims testenv.Memory, err error) {
	var pids []int
	switch i {
	case 1:
		pids, err = testenv.FindProcs(func(a []string) bool { return len(a) > 1 && a[0] == self && a[1] == logs.LoggerMode })
	case 2:
		var pid int
		pid, err = caps.DaemonPID(ctx)
		pids = []int{pid}
	}
	if err != nil {
		return added, shims, err
	}
	for _, pid := range pids {
		if err := added.Add(pid); err != nil {
			return added, shims, err
		}
	}
	shimPIDs, err := testenv.FindProcs(func(a []string) bool {
		return strings.Contains(filepath.Base(a[0]), "containerd-shim") && strings.Contains(strings.Join(a, " "), " "+ns+" ")
	})
	for _, pid := range shimPIDs {
		_ = shims.Add(pid) // a shim may be gone by now
	}
	return added, shims, err
}
