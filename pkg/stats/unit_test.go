package stats

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/runtime"
)

// fakeReader serves scripted readings (pure logic: the rates and sets).
type fakeReader map[string][]runtime.Stats

func (f fakeReader) Stats(_ context.Context, id string) (runtime.Stats, error) {
	q := f[id]
	if len(q) == 0 {
		return runtime.Stats{}, runtime.ErrNotRunning
	}
	f[id] = q[1:]
	return q[0], nil
}

type fixedTargets []Target

func (t fixedTargets) Targets() []Target { return t }

// TestStatisticSets: CPU is the share of all CPUs between samples, memory
// is MiB without page cache, network rates come from byte deltas, and a
// publication covers only samples not yet published.
func TestStatisticSets(t *testing.T) {
	t0 := time.Unix(1000, 0)
	net := func(rx, tx uint64) map[string]runtime.NetworkCounters {
		return map[string]runtime.NetworkCounters{"eth0": {RxBytes: rx, TxBytes: tx, RxPackets: 1}}
	}
	reads := fakeReader{"a": {
		{Time: t0, CPUUsageNanos: 0, MemoryUsageBytes: 30 << 20, MemoryCacheBytes: 10 << 20, Networks: net(0, 0), BlockReadBytes: 10},
		// 10 s later: 5 s of CPU on 2 CPUs = 25 %.
		{Time: t0.Add(10 * time.Second), CPUUsageNanos: 5e9, MemoryUsageBytes: 40 << 20, MemoryCacheBytes: 10 << 20, Networks: net(1000, 500), BlockReadBytes: 20},
		// 10 s later: 10 s of CPU on 2 CPUs = 50 %.
		{Time: t0.Add(20 * time.Second), CPUUsageNanos: 15e9, MemoryUsageBytes: 50 << 20, MemoryCacheBytes: 10 << 20, Networks: net(3000, 500), BlockReadBytes: 30},
	}}
	s, err := New(Options{Reader: reads, Targets: fixedTargets{{ID: "a", Name: "web", TaskArn: "t1", Family: "f", Version: "2", Network: true}},
		CPUs: 2, Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if tasks, idle := s.TaskMetrics(); !idle || len(tasks) != 0 {
		t.Fatalf("before any sample: tasks %v idle %v, want idle", tasks, idle)
	}
	for range 3 {
		s.SampleOnce(t.Context())
	}
	tasks, idle := s.TaskMetrics()
	if idle || len(tasks) != 1 || len(tasks[0].ContainerMetrics) != 1 {
		t.Fatalf("tasks %+v idle %v, want one task with one container", tasks, idle)
	}
	tm := tasks[0]
	if tm.TaskArn != "t1" || tm.TaskDefinitionFamily != "f" || tm.TaskDefinitionVersion != "2" {
		t.Fatalf("task metric %+v", tm)
	}
	cm := tm.ContainerMetrics[0]
	cpu, mem := cm.CPUStatsSet, cm.MemoryStatsSet
	if *cpu.SampleCount != 2 || *cpu.Min != 25 || *cpu.Max != 50 || *cpu.Sum != 75 {
		t.Errorf("cpu set min %v max %v sum %v n %v, want 25 50 75 2", *cpu.Min, *cpu.Max, *cpu.Sum, *cpu.SampleCount)
	}
	if *mem.SampleCount != 3 || *mem.Min != 20 || *mem.Max != 40 || *mem.Sum != 90 {
		t.Errorf("memory set min %v max %v sum %v n %v, want 20 40 90 3 (MiB without cache)", *mem.Min, *mem.Max, *mem.Sum, *mem.SampleCount)
	}
	rx := cm.NetworkStatsSet.RxBytesPerSecond
	if rx.SampleCount != 2 || rx.Min != 100 || rx.Max != 200 || cm.NetworkStatsSet.RxBytes.Max != 3000 {
		t.Errorf("rx rate %+v, rx bytes %+v, want 100..200 B/s and max 3000", rx, cm.NetworkStatsSet.RxBytes)
	}
	if r := cm.StorageStatsSet.ReadSizeBytes; r.Min != 10 || r.Max != 30 || r.Sum != 60 || r.SampleCount != 3 {
		t.Errorf("read bytes set %+v, want 10 30 60 3", r)
	}
	// Everything is published: the next call has nothing new.
	if tasks, idle := s.TaskMetrics(); idle || len(tasks) != 0 {
		t.Errorf("second publication without new samples: %+v idle %v, want none", tasks, idle)
	}
	cur, prev, ok, ok2 := s.Latest("a")
	if !ok || !ok2 || cur.CPUUsageNanos != 15e9 || prev.CPUUsageNanos != 5e9 {
		t.Errorf("Latest: %+v %+v %v %v", cur.Stats, prev.Stats, ok, ok2)
	}
}

// TestWindowAndForget: the window is bounded, a counter that goes back
// restarts it, host-network containers carry no network figures, and a
// container no longer listed is forgotten (the instance turns idle).
func TestWindowAndForget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var q []runtime.Stats
	for i := range 10 {
		q = append(q, runtime.Stats{Time: t0.Add(time.Duration(i) * time.Second), CPUUsageNanos: uint64(i) * 1e9,
			Networks: map[string]runtime.NetworkCounters{"eth0": {}}})
	}
	q = append(q, runtime.Stats{Time: t0.Add(20 * time.Second), CPUUsageNanos: 1})
	reads := fakeReader{"a": q}
	targets := &movingTargets{list: []Target{{ID: "a", TaskArn: "t"}}}
	s, err := New(Options{Reader: reads, Targets: targets, Window: 4, CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		s.SampleOnce(t.Context())
	}
	w := s.Window("a")
	if len(w) != 4 || w[3].CPUUsageNanos != 9e9 || w[3].CPUPercent != 100 || w[3].Networks != nil {
		t.Fatalf("window: %d samples, last %+v", len(w), w[len(w)-1])
	}
	s.SampleOnce(t.Context())
	if w := s.Window("a"); len(w) != 1 || !math.IsNaN(w[0].CPUPercent) {
		t.Fatalf("after the counter went back: %+v, want one sample without a rate", w)
	}
	targets.list = nil
	s.SampleOnce(t.Context())
	if _, idle := s.TaskMetrics(); !idle {
		t.Fatal("no container listed any more, want idle")
	}
}

// movingTargets is a target list the test changes between rounds.
type movingTargets struct{ list []Target }

func (t *movingTargets) Targets() []Target { return t.list }

func TestParseProcStat(t *testing.T) {
	got := parseProcStat([]byte("cpu  100 2 30 400 5 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	if want := uint64(100+2+30+400+5+6+7+8) * 1e7; got != want {
		t.Fatalf("parseProcStat = %d, want %d", got, want)
	}
}
