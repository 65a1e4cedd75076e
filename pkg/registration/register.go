package registration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/state"
)

// RegisterAPI is the one ECS call registration makes. *ecs.Client
// implements it.
type RegisterAPI interface {
	RegisterContainerInstance(ctx context.Context, in *ecs.RegisterContainerInstanceInput, optFns ...func(*ecs.Options)) (*ecs.RegisterContainerInstanceOutput, error)
}

var _ RegisterAPI = (*ecs.Client)(nil)

// IdentityStore persists who this instance is. *state.DB implements it.
type IdentityStore interface {
	Instance() (state.InstanceIdentity, error)
	PutInstance(state.InstanceIdentity) error
}

var _ IdentityStore = (*state.DB)(nil)

// Resources are the totals the instance offers to tasks.
type Resources struct {
	// CPU is in CPU units (1024 per core).
	CPU int64
	// MemoryMiB is the host's memory less ECS_RESERVED_MEMORY.
	MemoryMiB int64
	// Ports and PortsUDP are the reserved host ports, which tasks may not use.
	Ports, PortsUDP []uint16
}

// RegisterOptions configure Register.
type RegisterOptions struct {
	API   RegisterAPI
	Store IdentityStore
	// Cluster is ECS_CLUSTER (name or ARN).
	Cluster   string
	Resources Resources
	// Capabilities are attribute names without value
	// (com.amazonaws.ecs.capability.*, ecs.capability.*); see Capabilities.
	Capabilities []string
	// Attributes are ECS_INSTANCE_ATTRIBUTES.
	Attributes map[string]string
	// Tags are ECS_CONTAINER_INSTANCE_TAGS.
	Tags map[string]string
	// AgentVersion and AgentHash describe this build in versionInfo.
	AgentVersion, AgentHash string
	// Backoff paces retries of transient failures (default 1s to 1 minute).
	Backoff Backoff
	Clock   Clock
	Logger  *slog.Logger
}

// Register registers the container instance, or re-registers the one whose
// ARN the store holds from an earlier run, and persists the identity. It
// retries transient failures until ctx ends; a refusal that retrying cannot
// fix is a *TerminalError with a hint.
func Register(ctx context.Context, o RegisterOptions) (state.InstanceIdentity, error) {
	if o.API == nil || o.Store == nil {
		return state.InstanceIdentity{}, errors.New("register container instance: API and Store are required")
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Backoff.Min == 0 {
		o.Backoff = Backoff{Min: time.Second, Max: time.Minute, Jitter: 0.2}
	}
	stored, err := o.Store.Instance()
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return state.InstanceIdentity{}, fmt.Errorf("register container instance: read stored identity: %w", err)
	}
	if stored.ContainerInstanceArn != "" && !sameCluster(stored, o.Cluster) {
		return state.InstanceIdentity{}, &TerminalError{Op: "register container instance",
			Err:  fmt.Errorf("ECS_DATADIR holds container instance %s of cluster %s, but ECS_CLUSTER is %q", stored.ContainerInstanceArn, stored.Cluster, o.Cluster),
			Hint: "use the cluster the data directory belongs to, or stop the agent, stop its tasks and move ECS_DATADIR aside"}
	}
	in := o.input(stored.ContainerInstanceArn)
	for attempt := 0; ; attempt++ {
		out, err := o.API.RegisterContainerInstance(ctx, in)
		if err == nil && (out.ContainerInstance == nil || aws.ToString(out.ContainerInstance.ContainerInstanceArn) == "") {
			err = errors.New("the endpoint answered without a container instance ARN")
		}
		if err == nil {
			id := state.InstanceIdentity{
				ContainerInstanceArn: aws.ToString(out.ContainerInstance.ContainerInstanceArn),
				ClusterArn:           clusterArnOf(aws.ToString(out.ContainerInstance.ContainerInstanceArn), o.Cluster),
				Cluster:              o.Cluster,
				RegisteredAt:         o.Clock.Now().UTC(),
				Attributes:           attributeMap(in.Attributes),
			}
			if stored.ContainerInstanceArn == id.ContainerInstanceArn && !stored.RegisteredAt.IsZero() {
				id.RegisteredAt = stored.RegisteredAt
			}
			if err := o.Store.PutInstance(id); err != nil {
				return state.InstanceIdentity{}, fmt.Errorf("register container instance: persist identity: %w", err)
			}
			o.Logger.Info("registered container instance", "arn", id.ContainerInstanceArn, "cluster", o.Cluster,
				"reused", stored.ContainerInstanceArn == id.ContainerInstanceArn)
			return id, nil
		}
		if ctx.Err() != nil {
			return state.InstanceIdentity{}, fmt.Errorf("register container instance: %w", ctx.Err())
		}
		if te := registerTerminal(err, o.Cluster, stored.ContainerInstanceArn); te != nil {
			return state.InstanceIdentity{}, te
		}
		d := o.Backoff.Delay(attempt)
		o.Logger.Warn("register container instance failed; retrying", "err", err, "retryIn", d)
		if err := sleep(ctx, o.Clock, d); err != nil {
			return state.InstanceIdentity{}, fmt.Errorf("register container instance: %w", err)
		}
	}
}

// sameCluster reports whether the stored identity belongs to cluster (a
// name or an ARN).
func sameCluster(id state.InstanceIdentity, cluster string) bool {
	return id.Cluster == "" || id.Cluster == cluster || id.ClusterArn == cluster || arn.ResourceID(id.ClusterArn) == cluster
}

func (o *RegisterOptions) input(arn string) *ecs.RegisterContainerInstanceInput {
	in := &ecs.RegisterContainerInstanceInput{
		Cluster: aws.String(o.Cluster),
		TotalResources: []types.Resource{
			{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: int32(o.Resources.CPU)},
			{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: int32(o.Resources.MemoryMiB)},
			{Name: aws.String("PORTS"), Type: aws.String("STRINGSET"), StringSetValue: portStrings(o.Resources.Ports)},
			{Name: aws.String("PORTS_UDP"), Type: aws.String("STRINGSET"), StringSetValue: portStrings(o.Resources.PortsUDP)},
		},
		VersionInfo: &types.VersionInfo{
			AgentVersion:  aws.String(o.AgentVersion),
			AgentHash:     aws.String(o.AgentHash),
			DockerVersion: aws.String("containerd"),
		},
		Attributes: o.attributes(),
	}
	if arn != "" {
		in.ContainerInstanceArn = aws.String(arn)
	}
	keys := make([]string, 0, len(o.Tags))
	for k := range o.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		in.Tags = append(in.Tags, types.Tag{Key: aws.String(k), Value: aws.String(o.Tags[k])})
	}
	return in
}

// attributes are the OS attributes, the capabilities and the custom
// attributes, in that order; a custom attribute cannot replace a built-in one.
func (o *RegisterOptions) attributes() []types.Attribute {
	var out []types.Attribute
	seen := map[string]bool{}
	add := func(name string, value *string) {
		if seen[name] {
			return
		}
		seen[name] = true
		out = append(out, types.Attribute{Name: aws.String(name), Value: value})
	}
	add("ecs.os-type", aws.String("linux"))
	add("ecs.os-family", aws.String("LINUX"))
	add("ecs.cpu-architecture", aws.String(CPUArchitecture(runtime.GOARCH)))
	for _, c := range o.Capabilities {
		add(c, nil)
	}
	keys := make([]string, 0, len(o.Attributes))
	for k := range o.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add(k, aws.String(o.Attributes[k]))
	}
	return out
}

// CPUArchitecture maps GOARCH onto the ecs.cpu-architecture value.
func CPUArchitecture(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "arm64"
	}
	return goarch
}

// CapabilityOptions describe what this agent build and configuration can do.
type CapabilityOptions struct {
	// LoggingDrivers are the drivers tasks may use (ECS_AVAILABLE_LOGGING_DRIVERS).
	LoggingDrivers []string
	// SupportedLoggingDrivers are the drivers this build implements (the
	// agent's log shipping); nil means json-file and none only. A driver is
	// reported only when it is both allowed and implemented.
	SupportedLoggingDrivers []string
	// Privileged is false when ECS_DISABLE_PRIVILEGED is set.
	Privileged bool
	// TaskIAMRole is ECS_ENABLE_TASK_IAM_ROLE.
	TaskIAMRole bool
	// TaskCPUMemLimit is ECS_ENABLE_TASK_CPU_MEM_LIMIT on a host whose
	// cgroups can hold task cgroups: task-level cpu and memory are enforced.
	TaskCPUMemLimit bool
	// SELinux and AppArmor are ECS_SELINUX_CAPABLE and ECS_APPARMOR_CAPABLE:
	// label: and apparmor: dockerSecurityOptions are honoured.
	SELinux, AppArmor bool
}

// baseLogDrivers are implemented by the container runtime's own logger.
func baseLogDrivers() []string { return []string{"json-file", "none"} }

// Capabilities lists the capability attributes Berth really has: the
// Docker remote API levels whose task definition features the engine
// honours (through the dockerConfig subset), container ordering (dependsOn),
// health checks, task-level cpu and memory limits when enforced, and the logging drivers
// and privileged mode that are both implemented and enabled.
func Capabilities(o CapabilityOptions) []string {
	out := []string{}
	for _, v := range []string{"1.17", "1.18", "1.19", "1.20", "1.21", "1.22", "1.23", "1.24", "1.25"} {
		out = append(out, "com.amazonaws.ecs.capability.docker-remote-api."+v)
	}
	supported := o.SupportedLoggingDrivers
	if supported == nil {
		supported = baseLogDrivers()
	}
	for _, d := range o.LoggingDrivers {
		if slices.Contains(supported, d) {
			out = append(out, "com.amazonaws.ecs.capability.logging-driver."+d)
		}
	}
	if o.Privileged {
		out = append(out, "com.amazonaws.ecs.capability.privileged-container")
	}
	if o.TaskIAMRole {
		out = append(out, "com.amazonaws.ecs.capability.task-iam-role")
	}
	out = append(out,
		"ecs.capability.container-ordering",
		"ecs.capability.container-health-check",
	)
	if o.TaskCPUMemLimit {
		out = append(out, "ecs.capability.task-cpu-mem-limit")
	}
	if o.SELinux {
		out = append(out, "com.amazonaws.ecs.capability.selinux")
	}
	if o.AppArmor {
		out = append(out, "com.amazonaws.ecs.capability.apparmor")
	}
	return out
}

func portStrings(ps []uint16) []string {
	out := make([]string, 0, len(ps))
	sorted := slices.Clone(ps)
	slices.Sort(sorted)
	for _, p := range slices.Compact(sorted) {
		out = append(out, strconv.Itoa(int(p)))
	}
	return out
}

func attributeMap(as []types.Attribute) map[string]string {
	m := make(map[string]string, len(as))
	for _, a := range as {
		m[aws.ToString(a.Name)] = aws.ToString(a.Value)
	}
	return m
}

// clusterArnOf derives the cluster ARN from a container instance ARN
// (arn:aws:ecs:region:account:container-instance/cluster/id); when the ARN has
// the old form without a cluster, the configured cluster is kept.
func clusterArnOf(instanceArn, cluster string) string {
	if strings.HasPrefix(cluster, "arn:") {
		return cluster
	}
	parts := strings.SplitN(instanceArn, ":", 6)
	if len(parts) != 6 {
		return cluster
	}
	res := strings.SplitN(parts[5], "/", 3)
	if len(res) == 3 && res[0] == "container-instance" {
		return fmt.Sprintf("arn:%s:ecs:%s:%s:cluster/%s", parts[1], parts[3], parts[4], res[1])
	}
	return fmt.Sprintf("arn:%s:ecs:%s:%s:cluster/%s", parts[1], parts[3], parts[4], cluster)
}
