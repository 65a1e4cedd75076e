package stats

import (
	"math"
	"slices"
	"strings"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/runtime"
)

// bytesInMiB converts memory to the MiB the upstream agent reports.
const bytesInMiB = 1 << 20

// TaskMetrics returns, per task, each container's statistic sets over the
// samples not yet published, and marks those samples published, for one
// PublishMetricsRequest (pkg/registration pages it). Like the upstream
// agent it needs two samples in a container's window (CPU is a rate) and
// leaves out a container without a new sample. Tasks are sorted by ARN and
// containers by name. idle reports that no container is sampled at all
// (the instance runs no task); tasks may be empty without idle, when no
// container has a new sample yet.
func (s *Sampler) TaskMetrics() (tasks []*api.TaskMetric, idle bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.containers) == 0 {
		return nil, true
	}
	byTask := map[string]*api.TaskMetric{}
	for _, sr := range s.containers {
		cm := sr.metric()
		if cm == nil {
			continue
		}
		tg := sr.target
		tm := byTask[tg.TaskArn]
		if tm == nil {
			tm = &api.TaskMetric{TaskArn: tg.TaskArn, ClusterArn: tg.ClusterArn,
				TaskDefinitionFamily: tg.Family, TaskDefinitionVersion: tg.Version}
			byTask[tg.TaskArn] = tm
			tasks = append(tasks, tm)
		}
		tm.ContainerMetrics = append(tm.ContainerMetrics, cm)
	}
	slices.SortFunc(tasks, func(a, b *api.TaskMetric) int { return strings.Compare(a.TaskArn, b.TaskArn) })
	for _, tm := range tasks {
		slices.SortFunc(tm.ContainerMetrics, func(a, b *api.ContainerMetric) int {
			return strings.Compare(a.ContainerName, b.ContainerName)
		})
	}
	return tasks, false
}

// metric builds the container's statistic sets from its unpublished
// samples and marks them published; nil when there is nothing to report.
// The caller holds the sampler's lock.
func (sr *series) metric() *api.ContainerMetric {
	if len(sr.samples) < 2 {
		return nil
	}
	var fresh []*Sample
	for i := range sr.samples {
		if !sr.samples[i].published {
			fresh = append(fresh, &sr.samples[i])
		}
	}
	cpu := floatSet(fresh, func(s *Sample) float64 { return s.CPUPercent })
	if cpu == nil {
		return nil
	}
	mem := floatSet(fresh, func(s *Sample) float64 { return float64(s.MemoryUsedBytes() / bytesInMiB) })
	for _, s := range fresh {
		s.published = true
	}
	cm := &api.ContainerMetric{ContainerName: sr.target.Name, ContainerArn: sr.target.ContainerArn,
		CPUStatsSet: cpu, MemoryStatsSet: mem,
		StorageStatsSet: &api.StorageStatsSet{
			ReadSizeBytes:  ulongSet(fresh, func(s *Sample) uint64 { return s.BlockReadBytes }),
			WriteSizeBytes: ulongSet(fresh, func(s *Sample) uint64 { return s.BlockWriteBytes }),
		}}
	if sr.target.Network && fresh[0].Networks != nil {
		cm.NetworkStatsSet = networkSet(fresh)
	}
	return cm
}

// networkSet builds the network statistic sets; counters are summed over
// the container's interfaces.
func networkSet(fresh []*Sample) *api.NetworkStatsSet {
	sum := func(f func(runtime.NetworkCounters) uint64) func(*Sample) uint64 {
		return func(s *Sample) uint64 {
			var t uint64
			for _, c := range s.Networks {
				t += f(c)
			}
			return t
		}
	}
	return &api.NetworkStatsSet{
		RxBytes:          ulongSet(fresh, sum(func(c runtime.NetworkCounters) uint64 { return c.RxBytes })),
		RxPackets:        ulongSet(fresh, sum(func(c runtime.NetworkCounters) uint64 { return c.RxPackets })),
		RxErrors:         ulongSet(fresh, sum(func(c runtime.NetworkCounters) uint64 { return c.RxErrors })),
		RxDropped:        ulongSet(fresh, sum(func(c runtime.NetworkCounters) uint64 { return c.RxDropped })),
		TxBytes:          ulongSet(fresh, sum(func(c runtime.NetworkCounters) uint64 { return c.TxBytes })),
		TxPackets:        ulongSet(fresh, sum(func(c runtime.NetworkCounters) uint64 { return c.TxPackets })),
		TxErrors:         ulongSet(fresh, sum(func(c runtime.NetworkCounters) uint64 { return c.TxErrors })),
		TxDropped:        ulongSet(fresh, sum(func(c runtime.NetworkCounters) uint64 { return c.TxDropped })),
		RxBytesPerSecond: udoubleSet(fresh, func(s *Sample) float64 { return s.RxBytesPerSecond }),
		TxBytesPerSecond: udoubleSet(fresh, func(s *Sample) float64 { return s.TxBytesPerSecond }),
	}
}

// floatSet is the statistic set of the non-NaN values; nil when none.
func floatSet(samples []*Sample, value func(*Sample) float64) *api.CWStatsSet {
	lo, hi, sum, n := math.Inf(1), math.Inf(-1), 0.0, int64(0)
	for _, s := range samples {
		v := value(s)
		if math.IsNaN(v) {
			continue
		}
		lo, hi, sum, n = math.Min(lo, v), math.Max(hi, v), sum+v, n+1
	}
	if n == 0 {
		return nil
	}
	return &api.CWStatsSet{Min: &lo, Max: &hi, Sum: &sum, SampleCount: &n}
}

// udoubleSet is floatSet with every member required (zero when empty).
func udoubleSet(samples []*Sample, value func(*Sample) float64) *api.UDoubleCWStatsSet {
	set := floatSet(samples, value)
	if set == nil {
		return &api.UDoubleCWStatsSet{}
	}
	return &api.UDoubleCWStatsSet{Min: *set.Min, Max: *set.Max, Sum: *set.Sum, SampleCount: *set.SampleCount}
}

// ulongSet is the statistic set of counters, with values past int64 split
// into base and overflow as the upstream agent does.
func ulongSet(samples []*Sample, value func(*Sample) uint64) *api.ULongStatsSet {
	lo, hi, sum := uint64(math.MaxUint64), uint64(0), uint64(0)
	for _, s := range samples {
		v := value(s)
		lo, hi, sum = min(lo, v), max(hi, v), sum+v
	}
	set := &api.ULongStatsSet{SampleCount: int64(len(samples))}
	var oMin, oMax, oSum int64
	set.Min, oMin = splitOverflow(lo)
	set.Max, oMax = splitOverflow(hi)
	set.Sum, oSum = splitOverflow(sum)
	set.OverflowMin, set.OverflowMax, set.OverflowSum = &oMin, &oMax, &oSum
	return set
}

func splitOverflow(v uint64) (base, overflow int64) {
	if v > math.MaxInt64 {
		return math.MaxInt64, int64(v % math.MaxInt64)
	}
	return int64(v), 0
}
