package metrics

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The AWS/ECS namespace and its metrics.
const (
	ECSNamespace      = "AWS/ECS"
	CPUUtilization    = "CPUUtilization"
	MemoryUtilization = "MemoryUtilization"
	CPUReservation    = "CPUReservation"
	MemoryReservation = "MemoryReservation"
	// UnitPercent is the unit of all four.
	UnitPercent = "Percent"
)

// stats returns a statistic set's average, minimum and maximum; false
// when it has no samples.
func stats(c *api.CWStatsSet) (avg, lo, hi float64, ok bool) {
	if c == nil || c.SampleCount == nil || *c.SampleCount <= 0 || c.Sum == nil {
		return 0, 0, 0, false
	}
	avg = *c.Sum / float64(*c.SampleCount)
	lo, hi = avg, avg
	if c.Min != nil {
		lo = *c.Min
	}
	if c.Max != nil {
		hi = *c.Max
	}
	return avg, lo, hi, true
}

// cpuUnitsPerCore is what one fully used CPU is in ECS CPU units.
const cpuUnitsPerCore = 1024

// RecordPublish turns one TCS PublishMetricsRequest frame (the model's
// shape, pkg/api) of the agent of instanceArn into AWS/ECS samples at the
// endpoint's clock. The agent reports a container's CPU as a percentage of
// the whole instance (all its cores) and its memory in MiB, as the ECS
// agent does; the instance's registered CPU units turn the first into CPU
// units. For each RUNNING task of a service that the frame reports (and
// that runs on that instance), its CPU use over its CPU reservation (a
// task without one: over one CPU, 1024 units) and its memory use over its
// memory reservation, in percent, is one sample of CPUUtilization and
// MemoryUtilization for {ClusterName, ServiceName}. Over a period the
// Average is the service's utilisation (ECS's tasks of a service share
// one reservation), Minimum and Maximum those of its least and most busy
// task. Tasks of no service, unknown tasks and tasks of other instances
// are skipped. It returns how many tasks were recorded.
func (s *Store) RecordPublish(instanceArn string, p *api.PublishMetricsRequest) (int, error) {
	if p == nil || len(p.TaskMetrics) == 0 {
		return 0, nil
	}
	now := s.o.Now()
	var samples []Sample
	tasks := 0
	err := s.o.Store.View(func(tx store.Tx) error {
		samples, tasks = nil, 0
		var instanceCPU int64
		if key, _, ok := records.InstanceKeyOf(instanceArn); ok {
			in, found, err := records.Get[records.Instance](tx, records.Instances, key)
			if err != nil {
				return fmt.Errorf("read instance %s: %w", instanceArn, err)
			}
			if found {
				instanceCPU = records.ResourceInt(in.Instance.RegisteredResources, "CPU")
			}
		}
		for _, tm := range p.TaskMetrics {
			if tm == nil {
				continue
			}
			key, ok := records.TaskKeyOf(tm.TaskArn)
			if !ok {
				continue
			}
			t, found, err := records.Get[records.Task](tx, records.Tasks, key)
			if err != nil {
				return fmt.Errorf("read task %s: %w", tm.TaskArn, err)
			}
			if !found {
				continue
			}
			service, isService := strings.CutPrefix(aws.ToString(t.Task.Group), "service:")
			if !isService || aws.ToString(t.Task.ContainerInstanceArn) != instanceArn ||
				aws.ToString(t.Task.LastStatus) != "RUNNING" {
				continue
			}
			id := func(name string) MetricID {
				return MetricID{Namespace: ECSNamespace, MetricName: name,
					Dimensions: []Dimension{{"ClusterName", t.Cluster}, {"ServiceName", service}}}
			}
			recorded := false
			if instanceCPU > 0 {
				if st, ok := taskShare(tm, func(c *api.ContainerMetric) *api.CWStatsSet { return c.CPUStatsSet },
					float64(instanceCPU)/100, float64(cpuReservation(t))); ok {
					samples = append(samples, Sample{MetricID: id(CPUUtilization), Unit: UnitPercent, Time: now, Stat: st})
					recorded = true
				}
			}
			if t.Demand.Memory > 0 {
				if st, ok := taskShare(tm, func(c *api.ContainerMetric) *api.CWStatsSet { return c.MemoryStatsSet },
					1, float64(t.Demand.Memory)); ok {
					samples = append(samples, Sample{MetricID: id(MemoryUtilization), Unit: UnitPercent, Time: now, Stat: st})
					recorded = true
				}
			}
			if recorded {
				tasks++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("record TCS metrics: %w", err)
	}
	if err := s.Put(samples); err != nil {
		return 0, fmt.Errorf("record TCS metrics: %w", err)
	}
	return tasks, nil
}

// cpuReservation is a task's CPU units, or one CPU for a task that
// reserves none (ECS then gives it a minimal share, so the figure says how
// much of a CPU it used).
func cpuReservation(t *records.Task) int64 {
	if t.Demand.CPU > 0 {
		return t.Demand.CPU
	}
	return cpuUnitsPerCore
}

// taskShare is one task's use of a resource over its reservation in
// percent: the containers' averages (and minimums, maximums) added up,
// times scale (to the reservation's unit), over reserved.
func taskShare(tm *api.TaskMetric, set func(*api.ContainerMetric) *api.CWStatsSet, scale, reserved float64) (StatSet, bool) {
	var avg, lo, hi float64
	any := false
	for _, c := range tm.ContainerMetrics {
		if c == nil {
			continue
		}
		a, l, h, ok := stats(set(c))
		if !ok {
			continue
		}
		avg, lo, hi, any = avg+a, lo+l, hi+h, true
	}
	if !any || reserved <= 0 {
		return StatSet{}, false
	}
	pct := func(v float64) float64 { return v * scale * 100 / reserved }
	return StatSet{Count: 1, Sum: pct(avg), Min: pct(lo), Max: pct(hi)}, true
}

// SampleReservations records each cluster's CPUReservation and
// MemoryReservation (units reserved by its tasks over the units its
// ACTIVE and DRAINING instances registered, in percent) for
// {ClusterName}, as ECS does every minute. Clusters without registered
// resources are skipped.
func (s *Store) SampleReservations() error {
	now := s.o.Now()
	type sums struct{ cpu, mem, usedCPU, usedMem int64 }
	byCluster := map[string]*sums{}
	err := s.o.Store.View(func(tx store.Tx) error {
		clear(byCluster)
		return records.Each(tx, records.Instances, "", func(in *records.Instance) error {
			if st := in.Status(); st != "ACTIVE" && st != "DRAINING" {
				return nil
			}
			c := byCluster[in.Cluster]
			if c == nil {
				c = &sums{}
				byCluster[in.Cluster] = c
			}
			c.cpu += records.ResourceInt(in.Instance.RegisteredResources, "CPU")
			c.mem += records.ResourceInt(in.Instance.RegisteredResources, "MEMORY")
			c.usedCPU += in.UsedCPU
			c.usedMem += in.UsedMemory
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("sample reservations: %w", err)
	}
	var samples []Sample
	for cluster, c := range byCluster {
		dims := []Dimension{{"ClusterName", cluster}}
		if c.cpu > 0 {
			samples = append(samples, Sample{MetricID: MetricID{ECSNamespace, CPUReservation, dims}, Unit: UnitPercent,
				Time: now, Stat: Value(float64(c.usedCPU) * 100 / float64(c.cpu))})
		}
		if c.mem > 0 {
			samples = append(samples, Sample{MetricID: MetricID{ECSNamespace, MemoryReservation, dims}, Unit: UnitPercent,
				Time: now, Stat: Value(float64(c.usedMem) * 100 / float64(c.mem))})
		}
	}
	if err := s.Put(samples); err != nil {
		return fmt.Errorf("sample reservations: %w", err)
	}
	return nil
}

// RunSampler samples the reservations every interval until ctx ends;
// failures go to fail.
func (s *Store) RunSampler(ctx context.Context, interval time.Duration, fail func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.SampleReservations(); err != nil {
			fail(err)
		}
	}
}
