// Package stats samples the resource usage of the agent's running
// containers (containerd's cgroup metrics through pkg/runtime) on a fixed
// interval, ECS_POLLING_METRICS_WAIT_DURATION, and keeps a bounded window of
// samples per container. From that window come the statistic sets that
// pkg/registration publishes on TCS (PublishMetricsRequest) and the
// Docker-format figures of task metadata /stats (pkg/agent/iam_lookup.go), so both
// show the same numbers. pkg/agent builds and runs it; it knows nothing of
// the engine, which it sees through Targets.
package stats

import (
	"context"
	"errors"
	"log/slog"
	"math"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/berth-dev/berth/pkg/runtime"
)

// Reader reads one running container's usage (*runtime.Runtime).
type Reader interface {
	Stats(ctx context.Context, id string) (runtime.Stats, error)
}

var _ Reader = (*runtime.Runtime)(nil)

// Target is one running container to sample and what its samples are
// published under.
type Target struct {
	// ID is the container's runtime id.
	ID string
	// Name is the container's name in its task definition.
	Name                                 string
	TaskArn, ClusterArn, Family, Version string
	ContainerArn                         string
	// Network says whether the container's network figures are its own:
	// false for host-network tasks, whose namespace is the host's.
	Network bool
}

// Targets lists the containers to sample now (pkg/agent over the engine's
// running containers). A container no longer listed is forgotten.
type Targets interface {
	Targets() []Target
}

// Options configure a Sampler.
type Options struct {
	Reader  Reader
	Targets Targets
	// Interval is the time between two samples of every container; zero
	// means DefaultInterval.
	Interval time.Duration
	// Window is how many samples a container keeps; zero means what the
	// upstream agent keeps: four publication intervals' worth.
	Window int
	// CPUs is the number of CPUs the CPU percentage is taken over; zero
	// means the host's (runtime.NumCPU).
	CPUs int
	// ReadTimeout bounds one container's read; zero means 5 seconds.
	ReadTimeout time.Duration
	// Now is the clock; nil means time.Now. Samples carry containerd's
	// timestamp when it has one.
	Now    func() time.Time
	Logger *slog.Logger
}

// DefaultInterval is ECS_POLLING_METRICS_WAIT_DURATION's default (the
// upstream agent's: half the publication interval).
const DefaultInterval = 10 * time.Second

// PublishInterval is how often the upstream agent publishes metrics; the
// default window holds four of them.
const PublishInterval = 20 * time.Second

// Sample is one reading of a container with the rates derived from the
// reading before it.
type Sample struct {
	runtime.Stats
	// CPUPercent is the share of the instance's whole CPU capacity used
	// since the previous sample, in percent (100 means every CPU busy), as
	// the upstream agent computes it; NaN for a container's first sample.
	CPUPercent float64
	// RxBytesPerSecond and TxBytesPerSecond are the network rates since
	// the previous sample (summed over interfaces); NaN for the first.
	RxBytesPerSecond, TxBytesPerSecond float64
	// SystemCPUNanos is the host's cumulative CPU time (all CPUs, idle
	// included) when the sample was taken, from /proc/stat: Docker's
	// system_cpu_usage, which its clients divide CPU deltas by.
	SystemCPUNanos uint64
	// published marks samples already in a publication (TaskMetrics).
	published bool
}

// MemoryUsedBytes is the memory the container uses without reclaimable
// page cache: usage minus inactive_file on cgroup v2, minus cache on v1,
// as the upstream agent (and the docker CLI) count it.
func (s *Sample) MemoryUsedBytes() uint64 {
	if v := s.MemoryInactiveFileBytes; v > 0 && v < s.MemoryUsageBytes {
		return s.MemoryUsageBytes - v
	}
	if v := s.MemoryCacheBytes; v < s.MemoryUsageBytes {
		return s.MemoryUsageBytes - v
	}
	return s.MemoryUsageBytes
}

// series is one container's window of samples.
type series struct {
	target  Target
	samples []Sample // oldest first, at most Window
}

// Sampler samples containers and keeps their windows. Run drives it.
type Sampler struct {
	o Options

	// mu guards containers.
	mu         sync.Mutex
	containers map[string]*series
}

// New checks the options and returns a Sampler; Run starts it.
func New(o Options) (*Sampler, error) {
	if o.Reader == nil || o.Targets == nil {
		return nil, errors.New("stats sampler: Reader and Targets are required")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Window <= 0 {
		o.Window = max(2, int(4*PublishInterval/o.Interval))
	}
	if o.CPUs <= 0 {
		o.CPUs = goruntime.NumCPU()
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Sampler{o: o, containers: map[string]*series{}}, nil
}

// Interval returns the time between two samples.
func (s *Sampler) Interval() time.Duration { return s.o.Interval }

// Run samples every container at once and then every Interval until ctx
// ends; it returns ctx's error. A container that cannot be read is skipped
// for that round (it may just have stopped).
func (s *Sampler) Run(ctx context.Context) error {
	t := time.NewTicker(s.o.Interval)
	defer t.Stop()
	for {
		s.SampleOnce(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// SampleOnce reads every target once, one after the other (a read is a
// containerd round trip of well under a millisecond; the benchmark in
// bench/ measures a round of 100), and forgets containers no longer
// listed.
func (s *Sampler) SampleOnce(ctx context.Context) {
	targets := s.o.Targets.Targets()
	live := make(map[string]bool, len(targets))
	system := HostCPUNanos()
	for _, tg := range targets {
		if ctx.Err() != nil {
			return
		}
		live[tg.ID] = true
		rctx, cancel := context.WithTimeout(ctx, s.o.ReadTimeout)
		st, err := s.o.Reader.Stats(rctx, tg.ID)
		cancel()
		if err != nil {
			if !errors.Is(err, runtime.ErrNotRunning) && !errors.Is(err, context.Canceled) {
				s.o.Logger.Debug("sample container", "container", tg.ID, "err", err)
			}
			continue
		}
		s.add(tg, st, system)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.containers {
		if !live[id] {
			delete(s.containers, id)
		}
	}
}

// add appends one reading to its container's window, deriving the rates
// from the reading before it.
func (s *Sampler) add(tg Target, st runtime.Stats, system uint64) {
	if st.Time.IsZero() {
		st.Time = s.o.Now()
	}
	if !tg.Network {
		st.Networks = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sr := s.containers[tg.ID]
	if sr == nil {
		sr = &series{}
		s.containers[tg.ID] = sr
	}
	sr.target = tg
	smp := Sample{Stats: st, SystemCPUNanos: system,
		CPUPercent: math.NaN(), RxBytesPerSecond: math.NaN(), TxBytesPerSecond: math.NaN()}
	if n := len(sr.samples); n > 0 {
		prev := &sr.samples[n-1]
		dt := st.Time.Sub(prev.Time)
		switch {
		case dt <= 0:
			// A repeated timestamp: the rates stay what they were.
			smp.CPUPercent, smp.RxBytesPerSecond, smp.TxBytesPerSecond = prev.CPUPercent, prev.RxBytesPerSecond, prev.TxBytesPerSecond
		case st.CPUUsageNanos < prev.CPUUsageNanos:
			// The counter went back: a new cgroup under the same id
			// (the container was recreated). Start the window over.
			sr.samples = sr.samples[:0]
		default:
			cpu := float64(st.CPUUsageNanos-prev.CPUUsageNanos) / float64(s.o.CPUs)
			smp.CPUPercent = 100 * cpu / float64(dt.Nanoseconds())
			if st.Networks != nil && prev.Networks != nil {
				rx, tx := netTotals(st.Networks)
				prx, ptx := netTotals(prev.Networks)
				smp.RxBytesPerSecond = rate(rx, prx, dt)
				smp.TxBytesPerSecond = rate(tx, ptx, dt)
			}
		}
	}
	if len(sr.samples) >= s.o.Window {
		copy(sr.samples, sr.samples[1:])
		sr.samples = sr.samples[:len(sr.samples)-1]
	}
	sr.samples = append(sr.samples, smp)
}

func rate(cur, prev uint64, dt time.Duration) float64 {
	if cur < prev {
		return math.NaN()
	}
	return float64(cur-prev) / dt.Seconds()
}

// netTotals sums the byte counters over interfaces.
func netTotals(n map[string]runtime.NetworkCounters) (rx, tx uint64) {
	for _, c := range n {
		rx += c.RxBytes
		tx += c.TxBytes
	}
	return rx, tx
}

// Latest returns a container's newest sample and the one before it (ok2
// false when there is only one), for Docker's stats document with its
// precpu_stats. ok is false for a container without samples.
func (s *Sampler) Latest(id string) (cur, prev Sample, ok, ok2 bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sr := s.containers[id]
	if sr == nil || len(sr.samples) == 0 {
		return Sample{}, Sample{}, false, false
	}
	n := len(sr.samples)
	cur = sr.samples[n-1]
	if n > 1 {
		return cur, sr.samples[n-2], true, true
	}
	return cur, Sample{}, true, false
}

// Window returns a copy of a container's samples, oldest first.
func (s *Sampler) Window(id string) []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	sr := s.containers[id]
	if sr == nil {
		return nil
	}
	return append([]Sample(nil), sr.samples...)
}
