package api

// TCS frame types: the Telemetry Communication Service
// (shared/protocol/tcs-api-2.json) is a second websocket on which the agent
// publishes container health and metrics (tcs_metrics.go) to the endpoint, in the same
// {"type","message"} envelope as ACS. The TCS heartbeat is also called
// "HeartbeatMessage" (with a "healthy" member): it decodes as
// *HeartbeatMessage, whose members it does not use.
const (
	TypePublishHealthRequest  = "PublishHealthRequest"
	TypeAckPublishHealth      = "AckPublishHealth"
	TypePublishMetricsRequest = "PublishMetricsRequest"
	TypeAckPublishMetric      = "AckPublishMetric"
	// The upstream agent also publishes its instance's health checks.
	TypePublishInstanceStatusRequest = "PublishInstanceStatusRequest"
	TypeAckPublishInstanceStatus     = "AckPublishInstanceStatus"
)

// Health statuses of a ContainerHealth.
const (
	HealthStatusHealthy   = "HEALTHY"
	HealthStatusUnhealthy = "UNHEALTHY"
	HealthStatusUnknown   = "UNKNOWN"
)

// HealthMetadata says whose health a PublishHealthRequest carries. Fin marks
// the last message of a batch.
type HealthMetadata struct {
	Cluster           string `json:"cluster,omitempty"`
	ContainerInstance string `json:"containerInstance,omitempty"`
	MessageID         string `json:"messageId,omitempty"`
	Fin               bool   `json:"fin,omitempty"`
}

// ContainerHealth is one container's Docker health check result.
type ContainerHealth struct {
	ContainerName string        `json:"containerName,omitempty"`
	HealthStatus  string        `json:"healthStatus,omitempty"`
	StatusSince   *ECSEpochTime `json:"statusSince,omitempty"`
	StatusMessage string        `json:"statusMessage,omitempty"`
}

// TaskHealth is the health of a task's containers that have a health check.
type TaskHealth struct {
	TaskArn               string             `json:"taskArn,omitempty"`
	ClusterArn            string             `json:"clusterArn,omitempty"`
	TaskDefinitionFamily  string             `json:"taskDefinitionFamily,omitempty"`
	TaskDefinitionVersion string             `json:"taskDefinitionVersion,omitempty"`
	Containers            []*ContainerHealth `json:"containers,omitempty"`
}

// PublishHealthRequest carries the health of an instance's tasks.
type PublishHealthRequest struct {
	Metadata  *HealthMetadata `json:"metadata,omitempty"`
	Tasks     []*TaskHealth   `json:"tasks,omitempty"`
	Timestamp *ECSEpochTime   `json:"timestamp,omitempty"`
}

// FrameType implements Frame.
func (*PublishHealthRequest) FrameType() string { return TypePublishHealthRequest }

// AckPublishHealth acknowledges a PublishHealthRequest.
type AckPublishHealth struct {
	Message string `json:"message,omitempty"`
}

// FrameType implements Frame.
func (*AckPublishHealth) FrameType() string { return TypeAckPublishHealth }

// AckPublishMetric acknowledges a PublishMetricsRequest.
type AckPublishMetric struct {
	Message string `json:"message,omitempty"`
}

// FrameType implements Frame.
func (*AckPublishMetric) FrameType() string { return TypeAckPublishMetric }

// AckPublishInstanceStatus acknowledges a PublishInstanceStatusRequest,
// which the upstream ECS agent sends; the endpoint keeps none of it.
type AckPublishInstanceStatus struct {
	Message string `json:"message,omitempty"`
}

// FrameType implements Frame.
func (*AckPublishInstanceStatus) FrameType() string { return TypeAckPublishInstanceStatus }
