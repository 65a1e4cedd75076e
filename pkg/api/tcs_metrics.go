package api

// PublishMetricsRequest and its shapes, as tcs-api-2.json models them: the
// agent publishes each task's containers' CPU, memory, network and block
// I/O as statistic sets (min, max, sum, sample count over the samples taken
// since the last publication). A publication may span several frames of
// at most MaxTasksPerMetricsFrame tasks each; they share the messageId and
// the last one has fin set. An instance without tasks sends one frame with
// idle and fin set.

// MaxTasksPerMetricsFrame is the model's limit on taskMetrics (and the
// upstream agent's page size).
const MaxTasksPerMetricsFrame = 10

// MaxMetricsFrameBytes is the upstream agent's limit on one encoded
// PublishMetricsRequest.
const MaxMetricsFrameBytes = 1 << 20

// PublishMetricsRequest carries one page of an instance's task metrics.
type PublishMetricsRequest struct {
	Metadata        *MetricsMetadata `json:"metadata,omitempty"`
	InstanceMetrics *InstanceMetrics `json:"instanceMetrics,omitempty"`
	TaskMetrics     []*TaskMetric    `json:"taskMetrics,omitempty"`
	Timestamp       *ECSEpochTime    `json:"timestamp,omitempty"`
}

// FrameType implements Frame.
func (*PublishMetricsRequest) FrameType() string { return TypePublishMetricsRequest }

// MetricsMetadata says whose metrics a PublishMetricsRequest carries. Idle
// means the instance runs no task; Fin marks the last frame of a
// publication, whose frames share MessageID.
type MetricsMetadata struct {
	Cluster           string `json:"cluster,omitempty"`
	ContainerInstance string `json:"containerInstance,omitempty"`
	MessageID         string `json:"messageId,omitempty"`
	Idle              bool   `json:"idle"`
	Fin               bool   `json:"fin"`
}

// InstanceMetrics are instance-wide figures; they ride on the first frame
// of a publication only.
type InstanceMetrics struct {
	Storage               *InstanceStorageMetrics  `json:"storage,omitempty"`
	GeneralMetricsPayload []*GeneralMetricsWrapper `json:"generalMetricsPayload,omitempty"`
}

// InstanceStorageMetrics are filesystem usage percentages.
type InstanceStorageMetrics struct {
	RootFilesystem *float64 `json:"rootFilesystem,omitempty"`
	DataFilesystem *float64 `json:"dataFilesystem,omitempty"`
}

// TaskMetric is one task's container metrics.
type TaskMetric struct {
	TaskArn                      string                   `json:"taskArn,omitempty"`
	ClusterArn                   string                   `json:"clusterArn,omitempty"`
	TaskDefinitionFamily         string                   `json:"taskDefinitionFamily,omitempty"`
	TaskDefinitionVersion        string                   `json:"taskDefinitionVersion,omitempty"`
	ContainerMetrics             []*ContainerMetric       `json:"containerMetrics,omitempty"`
	EphemeralStorageMetrics      *EphemeralStorageMetrics `json:"ephemeralStorageMetrics,omitempty"`
	VolumeMetrics                []*VolumeMetric          `json:"volumeMetrics,omitempty"`
	ServiceConnectMetricsWrapper []*GeneralMetricsWrapper `json:"serviceConnectMetricsWrapper,omitempty"`
}

// ContainerMetric is one container's statistic sets. CPUStatsSet is the
// percentage of the instance's whole CPU capacity (all cores) used,
// MemoryStatsSet the memory used in MiB (without page cache), as the
// upstream agent reports them.
type ContainerMetric struct {
	ContainerArn          string                   `json:"containerArn,omitempty"`
	ContainerName         string                   `json:"containerName,omitempty"`
	CPUStatsSet           *CWStatsSet              `json:"cpuStatsSet,omitempty"`
	MemoryStatsSet        *CWStatsSet              `json:"memoryStatsSet,omitempty"`
	NetworkStatsSet       *NetworkStatsSet         `json:"networkStatsSet,omitempty"`
	StorageStatsSet       *StorageStatsSet         `json:"storageStatsSet,omitempty"`
	RestartStatsSet       *RestartStatsSet         `json:"restartStatsSet,omitempty"`
	GeneralMetricsPayload []*GeneralMetricsWrapper `json:"generalMetricsPayload,omitempty"`
}

// CWStatsSet is a CloudWatch statistic set of doubles.
type CWStatsSet struct {
	Min         *float64 `json:"min,omitempty"`
	Max         *float64 `json:"max,omitempty"`
	SampleCount *int64   `json:"sampleCount,omitempty"`
	Sum         *float64 `json:"sum,omitempty"`
}

// UDoubleCWStatsSet is a statistic set of non-negative doubles; every
// member is required.
type UDoubleCWStatsSet struct {
	Min         float64 `json:"min"`
	Max         float64 `json:"max"`
	SampleCount int64   `json:"sampleCount"`
	Sum         float64 `json:"sum"`
}

// ULongStatsSet is a statistic set of counters. A value past int64 keeps
// math.MaxInt64 in the base member and the rest in its Overflow member, as
// the upstream agent does.
type ULongStatsSet struct {
	Min         int64  `json:"min"`
	Max         int64  `json:"max"`
	SampleCount int64  `json:"sampleCount"`
	Sum         int64  `json:"sum"`
	OverflowMin *int64 `json:"overflowMin,omitempty"`
	OverflowMax *int64 `json:"overflowMax,omitempty"`
	OverflowSum *int64 `json:"overflowSum,omitempty"`
}

// NetworkStatsSet holds a container's network counters (cumulative) and
// rates (bytes per second).
type NetworkStatsSet struct {
	RxBytesPerSecond *UDoubleCWStatsSet `json:"rxBytesPerSecond,omitempty"`
	RxBytes          *ULongStatsSet     `json:"rxBytes,omitempty"`
	RxDropped        *ULongStatsSet     `json:"rxDropped,omitempty"`
	RxErrors         *ULongStatsSet     `json:"rxErrors,omitempty"`
	RxPackets        *ULongStatsSet     `json:"rxPackets,omitempty"`
	TxBytesPerSecond *UDoubleCWStatsSet `json:"txBytesPerSecond,omitempty"`
	TxBytes          *ULongStatsSet     `json:"txBytes,omitempty"`
	TxDropped        *ULongStatsSet     `json:"txDropped,omitempty"`
	TxErrors         *ULongStatsSet     `json:"txErrors,omitempty"`
	TxPackets        *ULongStatsSet     `json:"txPackets,omitempty"`
}

// StorageStatsSet holds a container's cumulative block I/O bytes.
type StorageStatsSet struct {
	ReadSizeBytes  *ULongStatsSet `json:"readSizeBytes,omitempty"`
	WriteSizeBytes *ULongStatsSet `json:"writeSizeBytes,omitempty"`
}

// RestartStatsSet counts a container's restarts.
type RestartStatsSet struct {
	RestartCount *int64 `json:"restartCount,omitempty"`
}

// EphemeralStorageMetrics is a task's ephemeral storage use (Fargate).
type EphemeralStorageMetrics struct {
	BytesUtilized *ULongStatsSet `json:"bytesUtilized,omitempty"`
}

// VolumeMetric is one task volume's use (EBS task attach).
type VolumeMetric struct {
	VolumeID   string             `json:"volumeId,omitempty"`
	VolumeName string             `json:"volumeName,omitempty"`
	Utilized   *UDoubleCWStatsSet `json:"utilized,omitempty"`
	Size       *UDoubleCWStatsSet `json:"size,omitempty"`
}

// GeneralMetricsWrapper carries named metrics with dimensions (Service
// Connect's). Berth sends none; the endpoint decodes them.
type GeneralMetricsWrapper struct {
	Dimensions     []*Dimension     `json:"dimensions,omitempty"`
	MetricType     string           `json:"metricType,omitempty"`
	GeneralMetrics []*GeneralMetric `json:"generalMetrics,omitempty"`
}

// Dimension is one key/value pair of a GeneralMetricsWrapper.
type Dimension struct {
	Key   string `json:"key,omitempty"`
	Value string `json:"value,omitempty"`
}

// GeneralMetric is one named metric.
type GeneralMetric struct {
	MetricName          string      `json:"metricName,omitempty"`
	MetricValues        []float64   `json:"metricValues,omitempty"`
	MetricCounts        []int64     `json:"metricCounts,omitempty"`
	MetricValueDouble   *float64    `json:"metricValueDouble,omitempty"`
	MetricValueLong     *int64      `json:"metricValueLong,omitempty"`
	MetricValueStatsSet *CWStatsSet `json:"metricValueStatsSet,omitempty"`
	Unit                string      `json:"unit,omitempty"`
}
