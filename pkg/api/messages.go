package api

// PayloadMessage delivers tasks (new ones, or new desired statuses of known
// ones) to an agent. The agent answers with an AckRequest carrying the same
// messageId once the payload is durably accepted.
type PayloadMessage struct {
	MessageID            string `json:"messageId,omitempty"`
	ClusterArn           string `json:"clusterArn,omitempty"`
	ContainerInstanceArn string `json:"containerInstanceArn,omitempty"`
	// GeneratedAt is milliseconds since the Unix epoch.
	GeneratedAt int64   `json:"generatedAt,omitempty"`
	SeqNum      int64   `json:"seqNum,omitempty"`
	Timeline    *int64  `json:"timeline,omitempty"`
	Tasks       []*Task `json:"tasks,omitempty"`
}

// FrameType implements Frame.
func (*PayloadMessage) FrameType() string { return TypePayloadMessage }

// AckRequest acknowledges a PayloadMessage, ConfirmAttachmentMessage,
// AttachTaskNetworkInterfacesMessage, AttachInstanceNetworkInterfacesMessage
// or TaskManifestMessage. Cluster and ContainerInstance are ARNs.
type AckRequest struct {
	Cluster           string `json:"cluster,omitempty"`
	ContainerInstance string `json:"containerInstance,omitempty"`
	MessageID         string `json:"messageId,omitempty"`
}

// FrameType implements Frame.
func (*AckRequest) FrameType() string { return TypeAckRequest }

// NackRequest reports that an update (PerformUpdate/StageUpdate) failed.
type NackRequest struct {
	Cluster           string `json:"cluster,omitempty"`
	ContainerInstance string `json:"containerInstance,omitempty"`
	MessageID         string `json:"messageId,omitempty"`
	Reason            string `json:"reason,omitempty"`
}

// FrameType implements Frame.
func (*NackRequest) FrameType() string { return TypeNackRequest }

// HeartbeatMessage is the endpoint's periodic "all is well"; the agent
// answers with a HeartbeatAckRequest carrying the same messageId.
type HeartbeatMessage struct {
	Healthy   bool   `json:"healthy"`
	MessageID string `json:"messageId,omitempty"`
}

// FrameType implements Frame.
func (*HeartbeatMessage) FrameType() string { return TypeHeartbeatMessage }

// HeartbeatAckRequest acknowledges a HeartbeatMessage.
type HeartbeatAckRequest struct {
	MessageID string `json:"messageId,omitempty"`
}

// FrameType implements Frame.
func (*HeartbeatAckRequest) FrameType() string { return TypeHeartbeatAckRequest }

// IAMRoleCredentialsMessage delivers fresh credentials for a task's role
// (the model's RefreshTaskIAMRoleCredentials operation uses this shape).
// RoleType says which role: RoleTypeTaskApplication or RoleTypeTaskExecution.
type IAMRoleCredentialsMessage struct {
	MessageID       string              `json:"messageId,omitempty"`
	TaskArn         string              `json:"taskArn,omitempty"`
	TaskClusterArn  string              `json:"taskClusterArn,omitempty"`
	RoleType        string              `json:"roleType,omitempty"`
	RoleCredentials *IAMRoleCredentials `json:"roleCredentials,omitempty"`
	// ClusterArn is not in the ACS model but is sent by endpoints in the
	// wild (the upstream agent's own fixtures carry it); it is kept so that
	// such frames survive a decode/encode round trip.
	ClusterArn string `json:"clusterArn,omitempty"`
}

// FrameType implements Frame.
func (*IAMRoleCredentialsMessage) FrameType() string { return TypeIAMRoleCredentialsMessage }

// IAMRoleCredentialsAckRequest acknowledges an IAMRoleCredentialsMessage.
type IAMRoleCredentialsAckRequest struct {
	MessageID     string `json:"messageId,omitempty"`
	Expiration    string `json:"expiration,omitempty"`
	CredentialsID string `json:"credentialsId,omitempty"`
}

// FrameType implements Frame.
func (*IAMRoleCredentialsAckRequest) FrameType() string { return TypeIAMRoleCredentialsAckRequest }

// CloseMessage tells the agent that the endpoint is closing the session; the
// agent reconnects.
type CloseMessage struct {
	Message string `json:"message,omitempty"`
}

// FrameType implements Frame.
func (*CloseMessage) FrameType() string { return TypeCloseMessage }

// AttachTaskNetworkInterfacesMessage asks the agent to confirm the attachment
// of network interfaces for one task (awsvpc on EC2). Berth decodes it and
// acknowledges it; it does not attach ENIs.
type AttachTaskNetworkInterfacesMessage struct {
	MessageID                string                     `json:"messageId,omitempty"`
	ClusterArn               string                     `json:"clusterArn,omitempty"`
	ContainerInstanceArn     string                     `json:"containerInstanceArn,omitempty"`
	TaskArn                  string                     `json:"taskArn,omitempty"`
	TaskClusterArn           string                     `json:"taskClusterArn,omitempty"`
	GeneratedAt              int64                      `json:"generatedAt,omitempty"`
	WaitTimeoutMs            int64                      `json:"waitTimeoutMs,omitempty"`
	ElasticNetworkInterfaces []*ElasticNetworkInterface `json:"elasticNetworkInterfaces,omitempty"`
}

// FrameType implements Frame.
func (*AttachTaskNetworkInterfacesMessage) FrameType() string {
	return TypeAttachTaskNetworkInterfacesMessage
}

// AttachInstanceNetworkInterfacesMessage is the instance-level (not
// task-bound) form of AttachTaskNetworkInterfacesMessage.
type AttachInstanceNetworkInterfacesMessage struct {
	MessageID                string                     `json:"messageId,omitempty"`
	ClusterArn               string                     `json:"clusterArn,omitempty"`
	ContainerInstanceArn     string                     `json:"containerInstanceArn,omitempty"`
	GeneratedAt              int64                      `json:"generatedAt,omitempty"`
	WaitTimeoutMs            int64                      `json:"waitTimeoutMs,omitempty"`
	ElasticNetworkInterfaces []*ElasticNetworkInterface `json:"elasticNetworkInterfaces,omitempty"`
}

// FrameType implements Frame.
func (*AttachInstanceNetworkInterfacesMessage) FrameType() string {
	return TypeAttachInstanceNetworkInterfacesMessage
}

// ConfirmAttachmentMessage asks the agent to confirm a generic attachment
// (for example ephemeral storage) for a task.
type ConfirmAttachmentMessage struct {
	MessageID            string      `json:"messageId,omitempty"`
	ClusterArn           string      `json:"clusterArn,omitempty"`
	ContainerInstanceArn string      `json:"containerInstanceArn,omitempty"`
	TaskArn              string      `json:"taskArn,omitempty"`
	TaskClusterArn       string      `json:"taskClusterArn,omitempty"`
	GeneratedAt          int64       `json:"generatedAt,omitempty"`
	WaitTimeoutMs        int64       `json:"waitTimeoutMs,omitempty"`
	Attachment           *Attachment `json:"attachment,omitempty"`
}

// FrameType implements Frame.
func (*ConfirmAttachmentMessage) FrameType() string { return TypeConfirmAttachmentMessage }

// TaskIdentifier names a task and the status the endpoint wants it in.
type TaskIdentifier struct {
	TaskArn        string `json:"taskArn,omitempty"`
	TaskClusterArn string `json:"taskClusterArn,omitempty"`
	DesiredStatus  string `json:"desiredStatus,omitempty"`
}

// TaskManifestMessage lists every task the endpoint believes the instance
// should know about; tasks the agent runs that are missing from it are
// candidates for stopping (confirmed by TaskStopVerificationMessage).
type TaskManifestMessage struct {
	MessageID            string            `json:"messageId,omitempty"`
	ClusterArn           string            `json:"clusterArn,omitempty"`
	ContainerInstanceArn string            `json:"containerInstanceArn,omitempty"`
	GeneratedAt          int64             `json:"generatedAt,omitempty"`
	Timeline             int64             `json:"timeline,omitempty"`
	Tasks                []*TaskIdentifier `json:"tasks,omitempty"`
}

// FrameType implements Frame.
func (*TaskManifestMessage) FrameType() string { return TypeTaskManifestMessage }

// TaskStopVerificationMessage is sent by the agent with the tasks it intends
// to stop; the endpoint answers with TaskStopVerificationAck.
type TaskStopVerificationMessage struct {
	MessageID      string            `json:"messageId,omitempty"`
	StopCandidates []*TaskIdentifier `json:"stopCandidates,omitempty"`
}

// FrameType implements Frame.
func (*TaskStopVerificationMessage) FrameType() string { return TypeTaskStopVerificationMessage }

// TaskStopVerificationAck confirms which of the candidates to stop.
type TaskStopVerificationAck struct {
	MessageID   string            `json:"messageId,omitempty"`
	GeneratedAt int64             `json:"generatedAt,omitempty"`
	StopTasks   []*TaskIdentifier `json:"stopTasks,omitempty"`
}

// FrameType implements Frame.
func (*TaskStopVerificationAck) FrameType() string { return TypeTaskStopVerificationAck }

// UpdateInfo locates an agent update bundle.
type UpdateInfo struct {
	Location  string `json:"location,omitempty"`
	Signature string `json:"signature,omitempty"`
}

// PerformUpdateMessage asks the agent to apply a staged update. Berth does
// not self-update; it decodes the frame and answers with a NackRequest.
type PerformUpdateMessage struct {
	MessageID            string      `json:"messageId,omitempty"`
	ClusterArn           string      `json:"clusterArn,omitempty"`
	ContainerInstanceArn string      `json:"containerInstanceArn,omitempty"`
	UpdateInfo           *UpdateInfo `json:"updateInfo,omitempty"`
}

// FrameType implements Frame.
func (*PerformUpdateMessage) FrameType() string { return TypePerformUpdateMessage }

// StageUpdateMessage asks the agent to download an update.
type StageUpdateMessage struct {
	MessageID            string      `json:"messageId,omitempty"`
	ClusterArn           string      `json:"clusterArn,omitempty"`
	ContainerInstanceArn string      `json:"containerInstanceArn,omitempty"`
	UpdateInfo           *UpdateInfo `json:"updateInfo,omitempty"`
}

// FrameType implements Frame.
func (*StageUpdateMessage) FrameType() string { return TypeStageUpdateMessage }

// VersionInfo describes the agent in a PollRequest.
type VersionInfo struct {
	AgentVersion  string `json:"agentVersion,omitempty"`
	AgentHash     string `json:"agentHash,omitempty"`
	DockerVersion string `json:"dockerVersion,omitempty"`
}

// PollRequest is the model's session-start request. On the websocket its
// members travel as query parameters of the handshake, so the frame is
// rarely seen; it is decoded for completeness.
type PollRequest struct {
	Cluster           string       `json:"cluster,omitempty"`
	ContainerInstance string       `json:"containerInstance,omitempty"`
	SeqNum            int64        `json:"seqNum,omitempty"`
	Timeline          *int64       `json:"timeline,omitempty"`
	VersionInfo       *VersionInfo `json:"versionInfo,omitempty"`
	SendCredentials   bool         `json:"sendCredentials,omitempty"`
	ProtocolVersion   *int64       `json:"protocolVersion,omitempty"`
}

// FrameType implements Frame.
func (*PollRequest) FrameType() string { return TypePollRequest }

// Compile-time checks that every message is a Frame.
var (
	_ Frame = (*PayloadMessage)(nil)
	_ Frame = (*AckRequest)(nil)
	_ Frame = (*NackRequest)(nil)
	_ Frame = (*HeartbeatMessage)(nil)
	_ Frame = (*HeartbeatAckRequest)(nil)
	_ Frame = (*IAMRoleCredentialsMessage)(nil)
	_ Frame = (*IAMRoleCredentialsAckRequest)(nil)
	_ Frame = (*CloseMessage)(nil)
	_ Frame = (*AttachTaskNetworkInterfacesMessage)(nil)
	_ Frame = (*AttachInstanceNetworkInterfacesMessage)(nil)
	_ Frame = (*ConfirmAttachmentMessage)(nil)
	_ Frame = (*TaskManifestMessage)(nil)
	_ Frame = (*TaskStopVerificationMessage)(nil)
	_ Frame = (*TaskStopVerificationAck)(nil)
	_ Frame = (*PerformUpdateMessage)(nil)
	_ Frame = (*StageUpdateMessage)(nil)
	_ Frame = (*PollRequest)(nil)
	_ Frame = (*ErrorFrame)(nil)
	_ Frame = (*UnknownFrame)(nil)
)
