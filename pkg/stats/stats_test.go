package stats_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testenv/agentproc"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/runtime"
	"github.com/berth-dev/berth/pkg/stats"
)

// TestMain doubles the test binary as the shim-started logger.
func TestMain(m *testing.M) { os.Exit(agentproc.Main(m, "", nil)) }

// lab is a runtime on the test containerd in a fresh namespace.
type lab struct {
	rt  *runtime.Runtime
	ns  string
	img string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	cd := testenv.Containerd(t)
	ns := cd.Namespace(t)
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	rt, err := runtime.New(t.Context(), runtime.Options{Address: cd.Address, Namespace: ns, Snapshotter: cd.Snapshotter,
		ConnectTimeout: 30 * time.Second, StateDir: filepath.Join(dir, "state"), HostResolvConf: resolv,
		SystemdResolvConf: filepath.Join(dir, "absent"), LoggerBinary: self,
		Registry: runtime.RegistryOptions{HostsDir: filepath.Join(dir, "certs.d")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	img := testenv.BuildImage(t, testenv.Registry(t), "stats/busybox", testenv.ImageSpec{Cmd: []string{"/bin/sh"}})
	if _, err := rt.Pull(t.Context(), img.Ref); err != nil {
		t.Fatal(err)
	}
	return &lab{rt: rt, ns: ns, img: img.Ref}
}

// start runs script in a new container and returns its id and the pid of
// its shell; the container is removed at the end of the test.
func (l *lab) start(t *testing.T, id, script string) (string, uint32) {
	t.Helper()
	if err := l.rt.Create(t.Context(), container.Spec{ID: id, Image: l.img, Entrypoint: []string{"/bin/sh", "-c", script}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.WithoutCancel(t.Context())
		_ = l.rt.Stop(ctx, id, time.Second)
		_ = l.rt.Remove(ctx, id)
	})
	if _, err := l.rt.Start(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	task := l.task(t, id)
	return id, task.Pid()
}

func (l *lab) task(t *testing.T, id string) containerd.Task {
	t.Helper()
	ctx := namespaces.WithNamespace(t.Context(), l.ns)
	c, err := l.rt.Client().LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

type targets []stats.Target

func (ts targets) Targets() []stats.Target { return ts }

// TestBurnerCPUAndMemory: a busybox loop held to half a CPU by a CFS quota
// is published at the share of the host's CPUs that the kernel says the
// process used (and never above its quota), and an awk holding a 64 MB
// string is published at those 61 MiB (plus the processes' own few).
func TestBurnerCPUAndMemory(t *testing.T) {
	l := newLab(t)
	burner, pid := l.start(t, "burner", "while :; do :; done")
	quota, period := int64(50000), uint64(100000)
	if err := l.task(t, burner).Update(namespaces.WithNamespace(t.Context(), l.ns),
		containerd.WithResources(&specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}})); err != nil {
		t.Fatalf("set the CPU quota: %v", err)
	}
	const allocated = 64_000_000
	// awk holds a string of that many spaces (resident: it wrote them).
	hog, _ := l.start(t, "hog", fmt.Sprintf(`awk 'BEGIN{s=sprintf("%%%ds",""); system("sleep 600")}'`, allocated))

	cpus := goruntime.NumCPU()
	s, err := stats.New(stats.Options{Reader: l.rt, CPUs: cpus, Interval: time.Second, Targets: targets{
		{ID: burner, Name: "burner", TaskArn: "task-burn"}, {ID: hog, Name: "hog", TaskArn: "task-hog"}}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the quota is in force and the variable filled
	s.SampleOnce(t.Context())
	_, _ = s.TaskMetrics() // start the publication after the settling sample
	start, ticks0 := time.Now(), testenv.ProcCPUTicks(t, pid)
	first := s.Window(burner)
	for range 8 {
		time.Sleep(time.Second)
		s.SampleOnce(t.Context())
	}
	ticks1 := testenv.ProcCPUTicks(t, pid)
	last := s.Window(burner)
	tasks, idle := s.TaskMetrics()
	if idle || len(tasks) != 2 {
		t.Fatalf("published %d tasks (idle %v), want 2", len(tasks), idle)
	}
	byTask := map[string]float64{}
	for _, tm := range tasks {
		cm := tm.ContainerMetrics[0]
		if cm.CPUStatsSet == nil || cm.MemoryStatsSet == nil || *cm.CPUStatsSet.SampleCount != 8 {
			t.Fatalf("%s: sets %+v %+v, want 8 CPU samples", tm.TaskArn, cm.CPUStatsSet, cm.MemoryStatsSet)
		}
		if tm.TaskArn == "task-burn" {
			byTask["cpu"] = *cm.CPUStatsSet.Sum / float64(*cm.CPUStatsSet.SampleCount)
			byTask["cpuMax"] = *cm.CPUStatsSet.Max
		} else {
			byTask["memMin"] = *cm.MemoryStatsSet.Min
			byTask["memMax"] = *cm.MemoryStatsSet.Max
		}
	}
	// The kernel's figure over the same span (the samples' own timestamps).
	span := last[len(last)-1].Time.Sub(first[len(first)-1].Time)
	kernel := float64(ticks1-ticks0) * 1e7 / float64(span.Nanoseconds()) / float64(cpus) * 100
	quotaShare := 50.0 / float64(cpus)
	t.Logf("burner: published mean %.2f%% (max %.2f%%), kernel %.2f%% over %s, quota %.2f%% of %d CPUs; hog: %.0f-%.0f MiB (start %s)",
		byTask["cpu"], byTask["cpuMax"], kernel, span, quotaShare, cpus, byTask["memMin"], byTask["memMax"], start.Format(time.StampMilli))
	if math.Abs(byTask["cpu"]-kernel) > 1+0.1*kernel {
		t.Errorf("published CPU %.2f%%, kernel says %.2f%% (tolerance 1 point + 10%%)", byTask["cpu"], kernel)
	}
	if byTask["cpuMax"] > quotaShare*1.1+1 || byTask["cpu"] < quotaShare*0.2 {
		t.Errorf("published CPU mean %.2f%% max %.2f%%, want within the quota of %.2f%% and burning", byTask["cpu"], byTask["cpuMax"], quotaShare)
	}
	if want := float64(allocated >> 20); byTask["memMin"] < want || byTask["memMax"] > want+8 {
		t.Errorf("published memory %.0f-%.0f MiB, want the %.0f MiB held plus at most 8 MiB of awk and sh", byTask["memMin"], byTask["memMax"], want)
	}
}
