// Package container holds the neutral description of one container and what
// the container runtime reports about it: the Spec that pkg/engine builds from
// a task definition and pkg/runtime creates on containerd, the pulled Image,
// the process's Exit, the Observed container of a recovery, the images of
// the runtime's store, the errors the engine acts on, and the health of a
// task's containers as the engine reports it (TaskHealth, which
// pkg/registration maps onto the TCS wire types). It is also what the
// engine exchanges with the packages it calls on a task's path: the
// network request and result (pkg/network), the host port allocations that
// pkg/network's allocator persists and pkg/state stores (PortAllocation),
// secret references and registry logins (pkg/execrole). With one home for
// these types the runtime satisfies the engine's interfaces directly and no
// package translates one into the other.
//
// It is pure data: it imports no other Berth package, does no I/O and knows
// nothing of ECS. pkg/engine, pkg/runtime, pkg/network, pkg/execrole,
// pkg/registration, pkg/state and whatever drives the runtime (pkg/stats, tests,
// bench/) import it.
package container

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is what the runtime returns (wrapped) when the container,
// process or image asked for does not exist; the engine treats it as
// "already done" when removing or stopping.
var ErrNotFound = errors.New("not found")

// ErrUnavailable is what the runtime returns (wrapped) when it could not be
// reached at all, as opposed to refusing the request: containerd is down or
// restarting. The engine waits and retries the operation with backoff
// instead of failing the task.
var ErrUnavailable = errors.New("container runtime unavailable")

// ErrExists is what the runtime's Create returns (wrapped) when a container
// with the ID already exists. The IDs are deterministic, so for a create
// that is retried it is the container an earlier attempt made.
var ErrExists = errors.New("already exists")

// Spec is the neutral description of one container, in Docker's terms. The
// engine persists it with its task (hence the JSON names); the runtime turns
// it into an OCI spec, reading the Docker-format strings (tmpfs options, log
// options, sizes) itself. Empty fields mean "the image's or Docker's
// default" or "none".
type Spec struct {
	// ID names the container in the runtime; it must be unique there.
	ID string `json:"id"`
	// Image is a reference; the runtime normalises it as Docker does.
	Image string `json:"image"`
	// Entrypoint and Command follow Docker: a given Entrypoint replaces the
	// image's ENTRYPOINT and drops its CMD unless Command is also given; a
	// given Command replaces the image's CMD.
	Entrypoint []string `json:"entrypoint,omitempty"`
	Command    []string `json:"command,omitempty"`
	// Env ("K=V") is merged over the image's environment.
	Env []string `json:"env,omitempty"`
	// User is "name", "uid", "name:group" or "uid:gid", resolved against the
	// image's /etc/passwd and /etc/group; empty keeps the image's USER.
	User       string            `json:"user,omitempty"`
	WorkingDir string            `json:"workingDir,omitempty"`
	Hostname   string            `json:"hostname,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	// CPUShares is the relative CPU weight (cgroup cpu.shares); 0 keeps
	// the default.
	CPUShares int64 `json:"cpuShares,omitempty"`
	// MemoryLimit is the hard limit in bytes (swap limited to the same, so
	// no swap use); MemoryReservation the soft limit. 0 means none.
	MemoryLimit       int64 `json:"memoryLimit,omitempty"`
	MemoryReservation int64 `json:"memoryReservation,omitempty"`
	// ShmSize is the size of /dev/shm in bytes; 0 keeps 64 MiB.
	ShmSize int64 `json:"shmSize,omitempty"`
	// PidsLimit caps the number of processes; 0 means unlimited.
	PidsLimit int64    `json:"pidsLimit,omitempty"`
	Ulimits   []Ulimit `json:"ulimits,omitempty"`
	// CapAdd and CapDrop name capabilities with or without "CAP_"; "ALL"
	// is allowed.
	CapAdd  []string `json:"capAdd,omitempty"`
	CapDrop []string `json:"capDrop,omitempty"`
	// Privileged gives all capabilities and host devices; a runtime with
	// privileged containers disabled refuses it.
	Privileged     bool `json:"privileged,omitempty"`
	ReadonlyRootfs bool `json:"readonlyRootfs,omitempty"`
	// NoNewPrivileges sets the no_new_privs bit.
	NoNewPrivileges bool `json:"noNewPrivileges,omitempty"`
	// AppArmorProfile confines the process with this loaded AppArmor
	// profile (Docker's "apparmor:PROFILE"); empty keeps the runtime's.
	AppArmorProfile string `json:"apparmorProfile,omitempty"`
	// SELinuxOptions are Docker's "label:" options ("user:U", "role:R",
	// "type:T", "level:L", "filetype:T", "disable") that make the
	// process's and mounts' SELinux labels.
	SELinuxOptions []string `json:"selinuxOptions,omitempty"`
	// Init runs the runtime's init binary as PID 1 to reap zombies and
	// forward signals.
	Init bool `json:"init,omitempty"`
	// Sysctls are namespaced kernel parameters.
	Sysctls map[string]string `json:"sysctls,omitempty"`
	Tmpfs   []Tmpfs           `json:"tmpfs,omitempty"`
	// DNS, DNSSearch and DNSOptions make the container's resolv.conf; all
	// empty means "derived from the host's".
	DNS        []string `json:"dns,omitempty"`
	DNSSearch  []string `json:"dnsSearch,omitempty"`
	DNSOptions []string `json:"dnsOptions,omitempty"`
	ExtraHosts []string `json:"extraHosts,omitempty"` // "host:ip"
	Mounts     []Mount  `json:"mounts,omitempty"`
	// StopSignal overrides the image's STOPSIGNAL (default SIGTERM).
	StopSignal string `json:"stopSignal,omitempty"`
	// NetNSPath is the network namespace to join; with HostNetwork the
	// host's is shared; with neither the container gets a namespace of its
	// own with only loopback.
	NetNSPath   string `json:"netnsPath,omitempty"`
	HostNetwork bool   `json:"hostNetwork,omitempty"`
	// LogPath is the container's json-file log, <dir>/<ID>-json.log
	// (runtime.LogPath); empty, or Log.Driver "none", discards the output.
	LogPath string `json:"logPath,omitempty"`
	// Log is the log configuration as the task asked for it; the runtime
	// reads its max-size and max-file options.
	Log LogConfig `json:"log,omitempty"`
	// TaskCgroup, when set, puts the container in its task's cgroup, whose
	// limits bound all the task's containers together; nil leaves the
	// container's cgroup on its own.
	TaskCgroup *TaskCgroup `json:"taskCgroup,omitempty"`
}

// TaskCgroup is the cgroup of one task (ECS task-level cpu and memory,
// ECS_TASK_PIDS_LIMIT). Every container of the task names the same one; the
// runtime creates it with the first and removes it at the task's clean-up.
type TaskCgroup struct {
	// Name is unique per task on the host (the engine uses the task ID).
	Name string `json:"name"`
	// CPUQuota is the CPU time in microseconds the task may use per
	// CPUPeriod (cpu.max); 0 means no limit.
	CPUQuota  int64  `json:"cpuQuota,omitempty"`
	CPUPeriod uint64 `json:"cpuPeriod,omitempty"`
	// MemoryLimit is memory.max in bytes, without swap; 0 means none.
	MemoryLimit int64 `json:"memoryLimit,omitempty"`
	// PidsLimit is pids.max; 0 means none.
	PidsLimit int64 `json:"pidsLimit,omitempty"`
}

// Ulimit is one rlimit; Name is Docker's ("nofile", "nproc", "core", ...)
// and -1 means unlimited.
type Ulimit struct {
	Name string `json:"name"`
	Soft int64  `json:"soft"`
	Hard int64  `json:"hard"`
}

// Tmpfs is one tmpfs mount with Docker-style options ("rw,size=16m").
type Tmpfs struct {
	Path    string `json:"path"`
	Options string `json:"options,omitempty"`
}

// Mount is a bind mount of a host path.
type Mount struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
}

// LogConfig is a container's log configuration as the task asked for it:
// the driver and its Docker-format options.
type LogConfig struct {
	Driver  string            `json:"driver,omitempty"`
	Options map[string]string `json:"options,omitempty"`
}

// Image is a pulled (or cached) image ready for Create.
type Image struct {
	// Ref is the normalised reference ("docker.io/library/busybox:latest").
	Ref string
	// Digest is the digest of the image's manifest or index.
	Digest string
	// Cached reports that the local copy was used without pulling.
	Cached bool
	// PullError is why a pull fell back to the cached copy.
	PullError error
}

// ImageInfo is one image in the runtime's store.
type ImageInfo struct {
	Ref string
	// UpdatedAt is when the image was last pulled or changed.
	UpdatedAt time.Time
}

// Exit is how a container's process ended.
type Exit struct {
	Code    int
	At      time.Time
	OOMKill bool
}

// Observed is a container as the runtime sees it, used by recovery.
type Observed struct {
	ID      string
	Labels  map[string]string
	Running bool
	// Exited is set when the container has a process that ended; Exit
	// holds its status. Neither set means created and never started.
	Exited bool
	Exit   Exit
	PID    int
}

// pullForKey is the context key of the owner a pull is made for.
type pullForKey struct{}

// WithPullFor returns ctx naming owner (the engine's task ARN) as the one a
// pull is made for. Pull keeps its narrow signature; the owner is an
// optional hint that only registry login uses.
func WithPullFor(ctx context.Context, owner string) context.Context {
	return context.WithValue(ctx, pullForKey{}, owner)
}

// PullFor returns the owner set by WithPullFor, or "".
func PullFor(ctx context.Context) string {
	owner, _ := ctx.Value(pullForKey{}).(string)
	return owner
}

// Credentials are a registry login for one pull (the runtime's
// PullAuthorizer returns them: an ECR token made with the task's
// execution role).
type Credentials struct {
	Username string
	Password string
}

// SecretRef is one secret of a container: the environment variable (or,
// with Log, the log driver option) Name takes the value of the SSM
// parameter or Secrets Manager secret ValueFrom names. The engine persists
// the reference with the task (hence the JSON names), never the value; its
// SecretSource (pkg/execrole) fetches the values.
type SecretRef struct {
	Name      string `json:"name"`
	ValueFrom string `json:"valueFrom"`
	// Region is where the secret lives when the payload says; empty means
	// the region of ValueFrom's ARN, else the agent's.
	Region string `json:"region,omitempty"`
	Log    bool   `json:"log,omitempty"`
}
