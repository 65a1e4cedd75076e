package agent

import (
	"context"
	"net/netip"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/iam"
	"github.com/berth-dev/berth/pkg/runtime"
	"github.com/berth-dev/berth/pkg/stats"
)

// statsReader reads a running container's usage (*runtime.Runtime).
type statsReader interface {
	Stats(ctx context.Context, id string) (runtime.Stats, error)
}

var _ statsReader = (*runtime.Runtime)(nil)

// sampleSource hands out the stats sampler's newest samples
// (*stats.Sampler).
type sampleSource interface {
	Latest(id string) (cur, prev stats.Sample, ok, ok2 bool)
}

var _ sampleSource = (*stats.Sampler)(nil)

// taskLookup answers pkg/iam's questions (the source address check, task
// metadata and stats) from the engine's task states.
type taskLookup struct {
	tasks taskStates
	// samples is optional: the sampler's figures for /stats.
	samples sampleSource
	// stats is optional; without it and samples, /stats answers empty
	// documents.
	stats statsReader
	// availabilityZone is reported in task metadata when known.
	availabilityZone string
	// timeout bounds one stats read; zero means 2 seconds.
	timeout time.Duration
}

var (
	_ iam.TaskLookup     = (*taskLookup)(nil)
	_ iam.MetadataSource = (*taskLookup)(nil)
)

// TaskAddresses implements iam.TaskLookup.
func (l *taskLookup) TaskAddresses(taskArn string) ([]netip.Addr, bool) {
	t, ok := l.tasks.Task(taskArn)
	if !ok {
		return nil, false
	}
	a, ok := addressOf(&t)
	if !ok {
		return nil, false
	}
	return []netip.Addr{a}, true
}

// TaskByAddress implements iam.TaskLookup.
func (l *taskLookup) TaskByAddress(ip netip.Addr) (string, bool) {
	for _, t := range l.tasks.Tasks() {
		if t.KnownStatus == engine.TaskStopped {
			continue
		}
		if a, ok := addressOf(&t); ok && a == ip {
			return t.Def.ARN, true
		}
	}
	return "", false
}

// find returns the task and container index holding metadata id.
func (l *taskLookup) find(id string) (engine.TaskState, int, bool) {
	if id == "" {
		return engine.TaskState{}, 0, false
	}
	for _, t := range l.tasks.Tasks() {
		for i := range t.Def.Containers {
			if metadataID(&t.Def.Containers[i]) == id {
				return t, i, true
			}
		}
	}
	return engine.TaskState{}, 0, false
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// TaskMetadata implements iam.MetadataSource.
func (l *taskLookup) TaskMetadata(id string) (iam.TaskMetadata, string, bool) {
	t, idx, ok := l.find(id)
	if !ok {
		return iam.TaskMetadata{}, "", false
	}
	cluster := t.Def.Cluster
	md := iam.TaskMetadata{
		Cluster: cluster, TaskARN: t.Def.ARN, Family: t.Def.Family, Revision: t.Def.Version,
		DesiredStatus: t.DesiredStatus.String(), KnownStatus: t.KnownStatus.String(),
		PullStartedAt: timePtr(t.PullStartedAt), PullStoppedAt: timePtr(t.PullStoppedAt),
		ExecutionStopped: timePtr(t.ExecutionStoppedAt), AvailabilityZone: l.availabilityZone, LaunchType: "EC2",
	}
	if t.Def.CPU > 0 || t.Def.MemoryMiB > 0 {
		lim := &iam.Limits{}
		if t.Def.CPU > 0 {
			cpu := float64(t.Def.CPU) / 1024
			lim.CPU = &cpu
		}
		if t.Def.MemoryMiB > 0 {
			mem := t.Def.MemoryMiB
			lim.Memory = &mem
		}
		md.Limits = lim
	}
	mode := t.Def.NetworkMode
	if mode == "" {
		mode = "bridge"
	}
	var dockerID string
	for i := range t.Def.Containers {
		def := &t.Def.Containers[i]
		c := iam.ContainerMetadata{
			Name: def.Name, Image: def.Image, Labels: def.Spec.Labels, Type: "NORMAL",
			DesiredStatus: "", KnownStatus: "NONE",
			LogDriver: def.Spec.Log.Driver, LogOptions: def.Spec.Log.Options,
		}
		cpu := float64(def.CPU)
		c.Limits.CPU = &cpu
		if def.MemoryMiB > 0 {
			mem := def.MemoryMiB
			c.Limits.Memory = &mem
		}
		network := iam.Network{NetworkMode: mode}
		if t.IPv4 != "" {
			network.IPv4Addresses = []string{t.IPv4}
		}
		c.Networks = []iam.Network{network}
		for _, st := range t.Containers {
			if st.Name != def.Name {
				continue
			}
			c.DockerID, c.DockerName = st.RuntimeID, st.RuntimeID
			c.ImageID = st.ImageDigest
			c.DesiredStatus, c.KnownStatus = st.DesiredStatus.String(), st.KnownStatus.String()
			c.ExitCode = st.ExitCode
			c.StartedAt, c.FinishedAt = timePtr(st.StartedAt), timePtr(st.FinishedAt)
			for _, b := range st.Bindings {
				c.Ports = append(c.Ports, iam.PortMapping{ContainerPort: b.ContainerPort, HostPort: b.HostPort,
					Protocol: strings.ToLower(b.Protocol), HostIP: b.BindIP})
			}
		}
		if c.DockerID == "" {
			// Not created yet: the engine's deterministic runtime id.
			c.DockerID = engine.ContainerID(t.Def.ARN, def.Name)
		}
		if i == idx {
			dockerID = c.DockerID
		}
		md.Containers = append(md.Containers, c)
	}
	return md, dockerID, true
}

// TaskStats implements iam.MetadataSource. With Samples set the figures
// are the sampler's newest two samples (the numbers published on TCS);
// a container the sampler has not reached yet, or every container when
// metrics are off (ECS_DISABLE_METRICS), is read from Stats at once.
func (l *taskLookup) TaskStats(ctx context.Context, id string) (map[string]*iam.ContainerStats, bool) {
	t, _, ok := l.find(id)
	if !ok {
		return nil, false
	}
	out := map[string]*iam.ContainerStats{}
	timeout := l.timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	for _, st := range t.Containers {
		if st.RuntimeID == "" || st.KnownStatus != engine.ContainerRunning {
			continue
		}
		var cur, prev stats.Sample
		var ok, ok2 bool
		if l.samples != nil {
			cur, prev, ok, ok2 = l.samples.Latest(st.RuntimeID)
		}
		if !ok && l.stats != nil {
			sctx, cancel := context.WithTimeout(ctx, timeout)
			s, err := l.stats.Stats(sctx, st.RuntimeID)
			cancel()
			if err == nil {
				cur, ok = stats.Sample{Stats: s, SystemCPUNanos: stats.HostCPUNanos()}, true
			}
		}
		if !ok {
			continue
		}
		doc := dockerStats(cur, st.Name, st.RuntimeID)
		if ok2 {
			p := dockerStats(prev, st.Name, st.RuntimeID)
			doc.PreRead, doc.PreCPUStats = p.Read, p.CPUStats
		}
		out[st.RuntimeID] = doc
	}
	return out, true
}

// dockerStats renders one sample as Docker's stats document.
func dockerStats(s stats.Sample, name, id string) *iam.ContainerStats {
	doc := &iam.ContainerStats{
		Name: name, ID: id, Read: s.Time,
		PidsStats: iam.PidsStats{Current: s.Pids},
		CPUStats: iam.CPUStats{CPUUsage: iam.CPUUsage{TotalUsage: s.CPUUsageNanos},
			SystemUsage: s.SystemCPUNanos, OnlineCPUs: uint32(goruntime.NumCPU())},
		MemoryStats: iam.MemoryStats{Usage: s.MemoryUsageBytes, MaxUsage: s.MemoryMaxUsageBytes, Limit: s.MemoryLimitBytes,
			Stats: map[string]uint64{"cache": s.MemoryCacheBytes, "inactive_file": s.MemoryInactiveFileBytes}},
		BlkioStats: iam.BlkioStats{IoServiceBytesRecursive: []iam.BlkioEntry{
			{Op: "Read", Value: s.BlockReadBytes}, {Op: "Write", Value: s.BlockWriteBytes},
			{Op: "Total", Value: s.BlockReadBytes + s.BlockWriteBytes}}},
	}
	if len(s.Networks) > 0 {
		doc.Networks = map[string]iam.NetworkStats{}
		for n, c := range s.Networks {
			doc.Networks[n] = iam.NetworkStats{RxBytes: c.RxBytes, RxPackets: c.RxPackets, RxErrors: c.RxErrors, RxDropped: c.RxDropped,
				TxBytes: c.TxBytes, TxPackets: c.TxPackets, TxErrors: c.TxErrors, TxDropped: c.TxDropped}
		}
	}
	return doc
}

// addressOf is a bridge or awsvpc task's sandbox address.
func addressOf(t *engine.TaskState) (netip.Addr, bool) {
	if t.Def.NetworkMode == api.NetworkModeHost || t.IPv4 == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(t.IPv4)
	return a, err == nil
}
