package container

// PortMapping is a container port published on the host. HostPort 0 means
// the network allocates a dynamic one. The engine persists it with the task
// definition (hence the JSON names).
type PortMapping struct {
	ContainerPort uint16 `json:"containerPort"`
	HostPort      uint16 `json:"hostPort"`
	Protocol      string `json:"protocol"` // "tcp" or "udp"; empty means tcp
}

// NetworkRequest describes the network a task needs: what the engine asks
// of its Network (pkg/network's Sandboxer) to set up or tear down.
type NetworkRequest struct {
	// TaskID names the task (the sandbox's owner).
	TaskID string
	// Mode is bridge, host, none or awsvpc.
	Mode  string
	Ports []PortMapping
	// Handle is what SetupNetwork returned in NetworkResult.Handle,
	// persisted with the task; TeardownNetwork gets it back (empty when
	// SetupNetwork never returned, e.g. after a crash in the middle of it).
	Handle []byte
}

// NetworkResult is what setting up a task's network produced.
type NetworkResult struct {
	// NetNSPath is the network namespace the containers join (empty in host
	// mode); IPv4 the task's address on the bridge.
	NetNSPath string
	IPv4      string
	Bindings  []PortBinding
	// Handle is opaque to the engine: the network's record of what it made.
	Handle []byte
}

// PortBinding is a container port bound on the host.
type PortBinding struct {
	ContainerPort uint16
	HostPort      uint16
	Protocol      string
	BindIP        string
}

// PortAllocation is one host port held by an owner (a task): what
// pkg/network's port allocator persists through its PortStore and pkg/state
// keeps in its ports bucket as this JSON. The JSON names are an on-disk
// format: existing data directories hold them.
type PortAllocation struct {
	Owner    string `json:"owner"`
	Protocol string `json:"protocol"` // "tcp" or "udp"
	HostPort uint16 `json:"hostPort"`
}
