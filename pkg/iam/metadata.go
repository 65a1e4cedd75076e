package iam

import (
	"context"
	"net/http"
	"time"
)

// MetadataSource resolves per-container metadata ids (the last segment of
// ECS_CONTAINER_METADATA_URI_V4) for the task metadata handlers. The agent
// implements it over the engine.
type MetadataSource interface {
	// TaskMetadata returns the task that owns the container with metadata
	// id, and that container's DockerId within TaskMetadata.Containers.
	TaskMetadata(id string) (task TaskMetadata, dockerID string, ok bool)
	// TaskStats returns docker-format stats of the task's containers by
	// DockerId; containers not running are absent.
	TaskStats(ctx context.Context, id string) (map[string]*ContainerStats, bool)
}

// TaskMetadata is task metadata v4's task document.
type TaskMetadata struct {
	Cluster          string              `json:"Cluster"`
	TaskARN          string              `json:"TaskARN"`
	Family           string              `json:"Family"`
	Revision         string              `json:"Revision"`
	DesiredStatus    string              `json:"DesiredStatus,omitempty"`
	KnownStatus      string              `json:"KnownStatus"`
	Containers       []ContainerMetadata `json:"Containers,omitempty"`
	Limits           *Limits             `json:"Limits,omitempty"`
	PullStartedAt    *time.Time          `json:"PullStartedAt,omitempty"`
	PullStoppedAt    *time.Time          `json:"PullStoppedAt,omitempty"`
	ExecutionStopped *time.Time          `json:"ExecutionStoppedAt,omitempty"`
	AvailabilityZone string              `json:"AvailabilityZone,omitempty"`
	LaunchType       string              `json:"LaunchType,omitempty"`
}

// ContainerMetadata is task metadata v4's container document.
type ContainerMetadata struct {
	DockerID      string            `json:"DockerId"`
	Name          string            `json:"Name"`
	DockerName    string            `json:"DockerName"`
	Image         string            `json:"Image"`
	ImageID       string            `json:"ImageID"`
	Ports         []PortMapping     `json:"Ports,omitempty"`
	Labels        map[string]string `json:"Labels,omitempty"`
	DesiredStatus string            `json:"DesiredStatus"`
	KnownStatus   string            `json:"KnownStatus"`
	ExitCode      *int              `json:"ExitCode,omitempty"`
	Limits        Limits            `json:"Limits"`
	CreatedAt     *time.Time        `json:"CreatedAt,omitempty"`
	StartedAt     *time.Time        `json:"StartedAt,omitempty"`
	FinishedAt    *time.Time        `json:"FinishedAt,omitempty"`
	Type          string            `json:"Type"`
	LogDriver     string            `json:"LogDriver,omitempty"`
	LogOptions    map[string]string `json:"LogOptions,omitempty"`
	ContainerARN  string            `json:"ContainerARN,omitempty"`
	Networks      []Network         `json:"Networks,omitempty"`
}

// Limits are CPU units and memory MiB.
type Limits struct {
	CPU    *float64 `json:"CPU,omitempty"`
	Memory *int64   `json:"Memory,omitempty"`
}

// PortMapping is one published port.
type PortMapping struct {
	ContainerPort uint16 `json:"ContainerPort,omitempty"`
	Protocol      string `json:"Protocol,omitempty"`
	HostPort      uint16 `json:"HostPort,omitempty"`
	HostIP        string `json:"HostIp,omitempty"`
}

// Network is one of a container's networks.
type Network struct {
	NetworkMode   string   `json:"NetworkMode"`
	IPv4Addresses []string `json:"IPv4Addresses,omitempty"`
}

// ContainerStats is the subset of the Docker stats document that task
// metadata /stats returns.
type ContainerStats struct {
	Name        string                  `json:"name"`
	ID          string                  `json:"id"`
	Read        time.Time               `json:"read"`
	PreRead     time.Time               `json:"preread"`
	PidsStats   PidsStats               `json:"pids_stats"`
	CPUStats    CPUStats                `json:"cpu_stats"`
	PreCPUStats CPUStats                `json:"precpu_stats"`
	MemoryStats MemoryStats             `json:"memory_stats"`
	BlkioStats  BlkioStats              `json:"blkio_stats"`
	Networks    map[string]NetworkStats `json:"networks,omitempty"`
}

// BlkioStats is the container's block I/O.
type BlkioStats struct {
	IoServiceBytesRecursive []BlkioEntry `json:"io_service_bytes_recursive"`
}

// BlkioEntry is one counter of BlkioStats; Berth sums over devices, so
// Major and Minor are zero.
type BlkioEntry struct {
	Major uint64 `json:"major"`
	Minor uint64 `json:"minor"`
	Op    string `json:"op"`
	Value uint64 `json:"value"`
}

// PidsStats counts a container's processes.
type PidsStats struct {
	Current uint64 `json:"current,omitempty"`
}

// CPUUsage is cumulative CPU time in nanoseconds.
type CPUUsage struct {
	TotalUsage        uint64 `json:"total_usage"`
	UsageInKernelmode uint64 `json:"usage_in_kernelmode"`
	UsageInUsermode   uint64 `json:"usage_in_usermode"`
}

// CPUStats is one CPU sample.
type CPUStats struct {
	CPUUsage       CPUUsage `json:"cpu_usage"`
	SystemUsage    uint64   `json:"system_cpu_usage,omitempty"`
	OnlineCPUs     uint32   `json:"online_cpus,omitempty"`
	ThrottlingData struct {
		Periods          uint64 `json:"periods"`
		ThrottledPeriods uint64 `json:"throttled_periods"`
		ThrottledTime    uint64 `json:"throttled_time"`
	} `json:"throttling_data"`
}

// MemoryStats is one memory sample in bytes.
type MemoryStats struct {
	Usage    uint64            `json:"usage,omitempty"`
	MaxUsage uint64            `json:"max_usage,omitempty"`
	Limit    uint64            `json:"limit,omitempty"`
	Stats    map[string]uint64 `json:"stats,omitempty"`
}

// NetworkStats are one interface's counters.
type NetworkStats struct {
	RxBytes   uint64 `json:"rx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	RxErrors  uint64 `json:"rx_errors"`
	RxDropped uint64 `json:"rx_dropped"`
	TxBytes   uint64 `json:"tx_bytes"`
	TxPackets uint64 `json:"tx_packets"`
	TxErrors  uint64 `json:"tx_errors"`
	TxDropped uint64 `json:"tx_dropped"`
}

// metadata answers /v4/<id>[/task][/stats][/task/stats].
func (s *Server) metadata(w http.ResponseWriter, req request, id, rest string) {
	notFound := func(task string) {
		s.audit(req, http.StatusNotFound, "", task, EventTaskMetadata)
		writeJSON(w, http.StatusNotFound, errorBody{Code: "NotFound", Message: "TaskMetadata: unable to find container for the given id"})
	}
	if s.opts.Metadata == nil || id == "" {
		notFound("")
		return
	}
	task, dockerID, ok := s.opts.Metadata.TaskMetadata(id)
	if !ok {
		notFound("")
		return
	}
	if !s.sourceAllowed(req.source.Addr(), task.TaskARN) {
		s.opts.Logger.Debug("metadata request from another task's address refused",
			"source", req.source.String(), "task", task.TaskARN)
		s.audit(req, http.StatusNotFound, "", task.TaskARN, EventSourceRefused)
		writeJSON(w, http.StatusNotFound, errorBody{Code: "NotFound", Message: "TaskMetadata: unable to find container for the given id"})
		return
	}
	ok200 := func(v any) {
		s.audit(req, http.StatusOK, "", task.TaskARN, EventTaskMetadata)
		writeJSON(w, http.StatusOK, v)
	}
	switch rest {
	case "":
		for _, c := range task.Containers {
			if c.DockerID == dockerID {
				ok200(c)
				return
			}
		}
		notFound(task.TaskARN)
	case "task":
		ok200(task)
	case "stats", "task/stats":
		stats, ok := s.opts.Metadata.TaskStats(req.r.Context(), id)
		if !ok {
			notFound(task.TaskARN)
			return
		}
		if rest == "task/stats" {
			ok200(stats)
			return
		}
		// A container without a sample yet answers null, as ECS does.
		ok200(stats[dockerID])
	default:
		notFound(task.TaskARN)
	}
}
