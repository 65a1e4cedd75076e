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

// benchMemory starts n containers running sleep under each design in turn
// and reports the time to create and start each (median) and the memory of
// the processes the design adds: the per-container loggers, or the one log
// daemon; the shims (containerd's, the same for every design) for scale.
func benchMemory(ctx context.Context, cli *containerd.Client, ns, ref, dir, self string, n int) error {
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
	ds := designs(self, dir, caps)[:3] // the raw-file design has no process of its own
	fmt.Printf("%d containers running `sleep 3600`, started one after another:\n", n)
	for i, d := range ds {
		var starts []time.Duration
		var ids []string
		stopAll := func() {
			var wg sync.WaitGroup
			for _, id := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					stopContainer(context.WithoutCancel(nctx), cli, caps, id)
				}()
			}
			wg.Wait()
		}
		for k := range n {
			id := fmt.Sprintf("mem-%d-%d", i, k)
			d, err := startSleeper(nctx, cli, image, d, id, filepath.Join(dir, id+"-json.log"))
			if err != nil {
				stopAll()
				return err
			}
			ids = append(ids, id)
			starts = append(starts, d)
		}
		time.Sleep(2 * time.Second) // let start-up garbage be collected
		added, shims, err := designMemory(ctx, caps, i, self, ns)
		if err != nil {
			stopAll()
			return err
		}
		fmt.Printf("  %-42s create+start median %6.1f ms\n", d.name, ms(median(starts)))
		fmt.Printf("    added by the design: %s\n", added)
		fmt.Printf("    containerd shims:    %s\n", shims)
		stopAll()
	}
	fmt.Println()
	return nil
}

func startSleeper(ctx context.Context, cli *containerd.Client, image containerd.Image, d captureDesign, id, logPath string) (time.Duration, error) {
	start := time.Now()
	c, err := cli.NewContainer(ctx, id, containerd.WithNewSnapshot(id, image),
		containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("/bin/sleep", "3600")))
	if err != nil {
		return 0, err
	}
	taskIO, hooks, err := d.prepare(id, logPath)
	if err != nil {
		return 0, err
	}
	task, err := c.NewTask(ctx, taskIO)
	if err != nil {
		return 0, err
	}
	if hooks.armed != nil {
		if err := hooks.armed(ctx); err != nil {
			return 0, err
		}
	}
	if err := task.Start(ctx); err != nil {
		return 0, err
	}
	return time.Since(start), nil
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
