// Package launch creates tasks on the endpoint: what a task of a definition
// needs on an instance (Demand), the scheduler's request built from the
// definition's and the caller's constraints and strategies (Request), a
// cluster's instances as the scheduler sees them (Launcher.PlacementSet),
// and a new task record placed on an instance in the caller's transaction
// (Launcher.Place). RunTask and StartTask (pkg/cluster/ecsapi) and the
// service controller (pkg/cluster/servicectl) use it, so a task is created
// the same way whoever starts it; the placement decision itself is
// pkg/cluster/scheduler's. It imports records, scheduler and awsproto (its
// errors are the API errors callers answer with).
package launch

import (
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/scheduler"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

var (
	cpuRE    = regexp.MustCompile(`(?i)^\s*([0-9]+(?:\.[0-9]+)?)\s*(vcpu)?\s*$`)
	memoryRE = regexp.MustCompile(`(?i)^\s*([0-9]+(?:\.[0-9]+)?)\s*(gb)?\s*$`)
)

// Limits of task-level sizes for the EC2 launch type.
const (
	minTaskCPU    = 128
	maxTaskCPU    = 196608
	minTaskMemory = 128
	maxTaskMemory = 16 << 20
)

// parseUnits parses a task-level cpu ("256", "0.25 vCPU") or memory ("512",
// "1 GB") value into CPU units or MiB.
func parseUnits(s string, re *regexp.Regexp, scale float64) (int64, bool) {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	if m[2] != "" {
		f *= scale
	} else if strings.Contains(m[1], ".") {
		return 0, false
	}
	if f != float64(int64(f)) {
		return 0, false
	}
	return int64(f), true
}

// TaskCPU parses and range-checks a task-level cpu value into CPU units.
func TaskCPU(s string) (int64, error) {
	v, ok := parseUnits(s, cpuRE, 1024)
	if !ok || v < minTaskCPU || v > maxTaskCPU {
		return 0, awsproto.ClientError("ClientException", "Invalid 'cpu' setting for task. The value must be between %d and %d CPU units (or '0.125 vCPU' to '192 vCPU'), got %q.", minTaskCPU, maxTaskCPU, s)
	}
	return v, nil
}

// TaskMemory parses and range-checks a task-level memory value into MiB.
func TaskMemory(s string) (int64, error) {
	v, ok := parseUnits(s, memoryRE, 1024)
	if !ok || v < minTaskMemory || v > maxTaskMemory {
		return 0, awsproto.ClientError("ClientException", "Invalid 'memory' setting for task. The value must be at least %d MiB (or '0.125 GB'), got %q.", minTaskMemory, s)
	}
	return v, nil
}

// Demand is what a task of td with overrides ov needs on an instance:
// task-level cpu and memory when set, else the sum over containers (memory
// reservation before the hard limit, as ECS reserves), and its static host
// ports.
func Demand(td *types.TaskDefinition, ov *types.TaskOverride) scheduler.Demand {
	var d scheduler.Demand
	cos := map[string]types.ContainerOverride{}
	if ov != nil {
		for _, co := range ov.ContainerOverrides {
			cos[aws.ToString(co.Name)] = co
		}
	}
	for _, cd := range td.ContainerDefinitions {
		co := cos[aws.ToString(cd.Name)]
		cpu := int64(cd.Cpu)
		if co.Cpu != nil {
			cpu = int64(*co.Cpu)
		}
		d.CPU += cpu
		switch {
		case co.MemoryReservation != nil:
			d.Memory += int64(*co.MemoryReservation)
		case co.Memory != nil:
			d.Memory += int64(*co.Memory)
		case cd.MemoryReservation != nil:
			d.Memory += int64(*cd.MemoryReservation)
		case cd.Memory != nil:
			d.Memory += int64(*cd.Memory)
		}
		for _, pm := range cd.PortMappings {
			if td.NetworkMode == types.NetworkModeAwsvpc || pm.HostPort == nil || *pm.HostPort == 0 {
				continue
			}
			if pm.Protocol == types.TransportProtocolUdp {
				d.UDPPorts = append(d.UDPPorts, int(*pm.HostPort))
			} else {
				d.TCPPorts = append(d.TCPPorts, int(*pm.HostPort))
			}
		}
	}
	cpu, mem := td.Cpu, td.Memory
	if ov != nil && ov.Cpu != nil {
		cpu = ov.Cpu
	}
	if ov != nil && ov.Memory != nil {
		mem = ov.Memory
	}
	if cpu != nil {
		if v, err := TaskCPU(*cpu); err == nil {
			d.CPU = v
		}
	}
	if mem != nil {
		if v, err := TaskMemory(*mem); err == nil {
			d.Memory = v
		}
	}
	return d
}

func invalidParam(format string, args ...any) *awsproto.Error {
	return awsproto.ClientError("InvalidParameterException", format, args...)
}

// Request builds the scheduler's request for a task of td from the task
// definition's constraints and required attributes and the caller's
// constraints and strategies (defaultStrategies when none are given).
func Request(td *types.TaskDefinition, d scheduler.Demand, group string, cons []types.PlacementConstraint,
	strats []types.PlacementStrategy, defaultStrategies []scheduler.Strategy) (*scheduler.Request, error) {
	r := &scheduler.Request{Demand: d, Group: group, Strategies: defaultStrategies}
	if len(td.PlacementConstraints)+len(cons) > scheduler.MaxConstraints {
		return nil, invalidParam("A maximum of %d placement constraints (task definition and request together) may be given.", scheduler.MaxConstraints)
	}
	for _, c := range td.PlacementConstraints {
		pc, err := scheduler.ParseConstraint(string(c.Type), aws.ToString(c.Expression))
		if err != nil {
			return nil, invalidParam("%v", err)
		}
		r.Constraints = append(r.Constraints, pc)
	}
	for _, c := range cons {
		pc, err := scheduler.ParseConstraint(string(c.Type), aws.ToString(c.Expression))
		if err != nil {
			return nil, invalidParam("%v", err)
		}
		r.Constraints = append(r.Constraints, pc)
	}
	if len(strats) > 0 {
		parsed, err := Strategies(strats)
		if err != nil {
			return nil, invalidParam("%v", err)
		}
		r.Strategies = parsed
	}
	for _, a := range td.RequiresAttributes {
		r.Required = append(r.Required, scheduler.RequiredAttribute{Name: aws.ToString(a.Name), Value: a.Value})
	}
	return r, nil
}

// Strategies parses ECS placement strategies.
func Strategies(strats []types.PlacementStrategy) ([]scheduler.Strategy, error) {
	var ts, fs []string
	for _, s := range strats {
		ts, fs = append(ts, string(s.Type)), append(fs, aws.ToString(s.Field))
	}
	return scheduler.ParseStrategies(ts, fs)
}

// Launcher places new tasks for one endpoint.
type Launcher struct {
	ARNs records.ARNs
	// RequireConnectedAgent marks instances whose agent holds no ACS
	// session unavailable (reason AGENT), as ECS does. The endpoint sets it
	// whenever a session server keeps agentConnected.
	RequireConnectedAgent bool
	// Rand breaks placement ties; nil means a freshly seeded source per
	// placement set. A Rand given here (tests seed one) is used inside
	// write transactions, so only with a store that runs one writer at a
	// time.
	Rand *rand.Rand
}

// PlacementSet is a cluster's ACTIVE instances as the scheduler sees them,
// in registration order (the order first-fit tries them in), with the
// groups of their unstopped tasks; Placer.Instances[i] is Records[i].
type PlacementSet struct {
	Records []*records.Instance
	Placer  *scheduler.Placer
}

// activeInstances returns the cluster's ACTIVE instances in registration
// order.
func activeInstances(tx store.Tx, cluster string) ([]*records.Instance, error) {
	var out []*records.Instance
	err := records.Each(tx, records.Instances, records.ClusterPrefix(cluster), func(rec *records.Instance) error {
		if rec.Status() == "ACTIVE" {
			out = append(out, rec)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool {
		a, b := aws.ToTime(out[i].Instance.RegisteredAt), aws.ToTime(out[j].Instance.RegisteredAt)
		if !a.Equal(b) {
			return a.Before(b)
		}
		return *out[i].Instance.ContainerInstanceArn < *out[j].Instance.ContainerInstanceArn
	})
	return out, err
}

// PlacementSet reads the cluster's ACTIVE instances and counts their tasks
// per group.
func (l *Launcher) PlacementSet(tx store.Tx, cluster string) (*PlacementSet, error) {
	return l.placementSet(tx, cluster, true)
}

// PlacementSetFor is PlacementSet for placing r only: when r does not look
// at the instances' tasks (r.CountsTasks), it reads the instance records
// alone, not every unstopped task of the cluster (their resources are in
// the records already), so a RunTask's cost does not grow with the
// cluster's running tasks.
func (l *Launcher) PlacementSetFor(tx store.Tx, cluster string, r *scheduler.Request) (*PlacementSet, error) {
	return l.placementSet(tx, cluster, r.CountsTasks())
}

func (l *Launcher) placementSet(tx store.Tx, cluster string, countTasks bool) (*PlacementSet, error) {
	recs, err := activeInstances(tx, cluster)
	if err != nil {
		return nil, err
	}
	var views []*scheduler.Instance
	if countTasks {
		views, err = l.Views(tx, cluster, recs)
		if err != nil {
			return nil, err
		}
	} else {
		views = make([]*scheduler.Instance, len(recs))
		for i, rec := range recs {
			views[i] = l.View(rec)
		}
	}
	r := l.Rand
	if r == nil {
		r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &PlacementSet{Records: recs, Placer: &scheduler.Placer{Rand: r, Instances: views}}, nil
}

// Views returns the scheduler's view of each of the cluster's instance
// records recs, with the groups and the running count of their unstopped
// tasks.
func (l *Launcher) Views(tx store.Tx, cluster string, recs []*records.Instance) ([]*scheduler.Instance, error) {
	views := make([]*scheduler.Instance, len(recs))
	byArn := map[string]*scheduler.Instance{}
	for i, rec := range recs {
		views[i] = l.View(rec)
		byArn[views[i].Arn] = views[i]
	}
	err := records.EachActiveTask(tx, cluster, func(_ string, t *records.ActiveTask) error {
		in := byArn[t.InstanceArn]
		if in == nil || !t.Unstopped() {
			return nil
		}
		in.Groups[t.Group]++
		if t.LastStatus == "RUNNING" {
			in.RunningTasks++
		}
		return nil
	})
	return views, err
}

// View is the scheduler's view of one instance record, without its tasks.
func (l *Launcher) View(rec *records.Instance) *scheduler.Instance {
	in := rec.Capacity()
	in.ID = arn.ResourceID(in.Arn)
	in.EC2InstanceID = aws.ToString(rec.Instance.Ec2InstanceId)
	in.Attributes = map[string]string{}
	for _, a := range rec.Instance.Attributes {
		in.Attributes[aws.ToString(a.Name)] = aws.ToString(a.Value)
	}
	in.AgentConnected = rec.Instance.AgentConnected
	if rec.Instance.VersionInfo != nil {
		in.AgentVersion = aws.ToString(rec.Instance.VersionInfo.AgentVersion)
	}
	in.RegisteredAt = aws.ToTime(rec.Instance.RegisteredAt)
	in.Groups = map[string]int{}
	if l.RequireConnectedAgent && !rec.Instance.AgentConnected {
		in.Unavailable = scheduler.ReasonAgent
	}
	return in
}

// Params are what a new task is made of.
type Params struct {
	Cluster   string
	TD        *types.TaskDefinition
	Overrides *types.TaskOverride
	StartedBy *string
	// Group defaults to "family:<family>".
	Group *string
	Tags  []types.Tag
	// LaunchType is EC2 (the default) or EXTERNAL.
	LaunchType types.LaunchType
	// ClientToken and RequestHash are RunTask's idempotency token and the
	// digest of its request (records.Task).
	ClientToken, RequestHash string
	// PropagateTags copies the task definition's (TASK_DEFINITION) or the
	// service's (SERVICE: ServiceTags) tags to the task, under Tags.
	PropagateTags types.PropagateTags
	ServiceTags   []types.Tag
	// ManagedTags adds ECS's aws:ecs:clusterName (and, with ServiceName,
	// aws:ecs:serviceName) tags.
	ManagedTags bool
	ServiceName string
	// Network is the awsvpc configuration of an awsvpc task: its subnet
	// is recorded on the task's network interface attachment.
	Network *types.NetworkConfiguration
}

// ServiceParams are the parameters of a new task of svc's PRIMARY
// deployment of td.
func ServiceParams(svc *records.Service, td *types.TaskDefinition) Params {
	s := &svc.Service
	p := Params{Cluster: svc.Cluster, TD: td, Group: aws.String(svc.Group()), LaunchType: s.LaunchType,
		PropagateTags: s.PropagateTags, ServiceTags: s.Tags, ManagedTags: s.EnableECSManagedTags, ServiceName: svc.Name(),
		Network: s.NetworkConfiguration}
	if len(s.Deployments) > 0 {
		p.StartedBy = s.Deployments[0].Id
	}
	return p
}

// taskTags are the tags of a new task of p: the task definition's or the
// service's when propagated, the caller's over them, and ECS's own.
func (l *Launcher) taskTags(tx store.Tx, p Params) ([]types.Tag, error) {
	var tags []types.Tag
	switch p.PropagateTags {
	case types.PropagateTagsTaskDefinition:
		rec, ok, err := records.FindTaskDefinition(tx, l.ARNs, aws.ToString(p.TD.TaskDefinitionArn))
		if err != nil {
			return nil, err
		}
		if ok {
			tags = append(tags, rec.Tags...)
		}
	case types.PropagateTagsService:
		tags = append(tags, p.ServiceTags...)
	}
	tags = MergeTags(tags, p.Tags)
	if p.ManagedTags {
		tags = MergeTags(tags, []types.Tag{{Key: aws.String("aws:ecs:clusterName"), Value: aws.String(p.Cluster)}})
		if p.ServiceName != "" {
			tags = MergeTags(tags, []types.Tag{{Key: aws.String("aws:ecs:serviceName"), Value: aws.String(p.ServiceName)}})
		}
	}
	if len(tags) == 0 {
		return nil, nil
	}
	return tags, nil
}

// MergeTags sets add's tags over have's, by key, keeping have's order.
func MergeTags(have, add []types.Tag) []types.Tag {
	out := append([]types.Tag(nil), have...)
	for _, t := range add {
		i := slices.IndexFunc(out, func(o types.Tag) bool { return aws.ToString(o.Key) == aws.ToString(t.Key) })
		if i >= 0 {
			out[i] = t
		} else {
			out = append(out, t)
		}
	}
	return out
}

// newTask builds the record of a task of p on instanceArn, holding d.
func (l *Launcher) newTask(p Params, instanceArn string, d scheduler.Demand, now time.Time) (*records.Task, error) {
	id, err := records.NewID()
	if err != nil {
		return nil, err
	}
	taskArn := l.ARNs.Task(p.Cluster, id)
	group := p.Group
	if group == nil {
		group = aws.String("family:" + aws.ToString(p.TD.Family))
	}
	ov := p.Overrides
	if ov == nil {
		ov = &types.TaskOverride{}
	}
	launchType := p.LaunchType
	if launchType == "" {
		launchType = types.LaunchTypeEc2
	}
	if ov.ContainerOverrides == nil {
		ov.ContainerOverrides = []types.ContainerOverride{}
	}
	t := types.Task{
		TaskArn:              aws.String(taskArn),
		ClusterArn:           aws.String(l.ARNs.Cluster(p.Cluster)),
		TaskDefinitionArn:    p.TD.TaskDefinitionArn,
		ContainerInstanceArn: aws.String(instanceArn),
		Overrides:            ov,
		LastStatus:           aws.String("PROVISIONING"),
		DesiredStatus:        aws.String("RUNNING"),
		Cpu:                  aws.String(strconv.FormatInt(d.CPU, 10)),
		Memory:               aws.String(strconv.FormatInt(d.Memory, 10)),
		CreatedAt:            aws.Time(now),
		StartedBy:            p.StartedBy,
		Group:                group,
		LaunchType:           launchType,
		Version:              1,
		Tags:                 p.Tags,
		Attachments:          []types.Attachment{},
		Attributes:           []types.Attribute{},
		HealthStatus:         types.HealthStatusUnknown,
	}
	if p.TD.NetworkMode == types.NetworkModeAwsvpc {
		eni, err := networkAttachment(id, p.Network)
		if err != nil {
			return nil, err
		}
		t.Attachments = append(t.Attachments, eni)
	}
	for _, cd := range p.TD.ContainerDefinitions {
		cid, err := records.NewUUID()
		if err != nil {
			return nil, err
		}
		ct := types.Container{
			ContainerArn:      aws.String(l.ARNs.Container(p.Cluster, id, cid)),
			TaskArn:           aws.String(taskArn),
			Name:              cd.Name,
			Image:             cd.Image,
			LastStatus:        aws.String("PENDING"),
			NetworkBindings:   []types.NetworkBinding{},
			NetworkInterfaces: []types.NetworkInterface{},
			Cpu:               aws.String(strconv.Itoa(int(cd.Cpu))),
		}
		if cd.Memory != nil {
			ct.Memory = aws.String(strconv.Itoa(int(*cd.Memory)))
		}
		if cd.MemoryReservation != nil {
			ct.MemoryReservation = aws.String(strconv.Itoa(int(*cd.MemoryReservation)))
		}
		if cd.HealthCheck != nil {
			ct.HealthStatus = types.HealthStatusUnknown
		}
		t.Containers = append(t.Containers, ct)
	}
	return &records.Task{Task: t, Cluster: p.Cluster, Demand: d, ClientToken: p.ClientToken, RequestHash: p.RequestHash}, nil
}

// Place creates a task of p on inst, takes its demand d there and stores
// both in tx.
func (l *Launcher) Place(tx store.Tx, p Params, inst *records.Instance, d scheduler.Demand, now time.Time) (*records.Task, error) {
	tags, err := l.taskTags(tx, p)
	if err != nil {
		return nil, err
	}
	p.Tags = tags
	t, err := l.newTask(p, aws.ToString(inst.Instance.ContainerInstanceArn), d, now)
	if err != nil {
		return nil, err
	}
	inst.Take(d)
	if err := records.Put(tx, t); err != nil {
		return nil, err
	}
	if err := records.Put(tx, inst); err != nil {
		return nil, err
	}
	return t, nil
}

// networkAttachment is the elastic network interface attachment ECS shows
// on an awsvpc task: its status follows the task's (records.Task), its
// details name the subnet the call gave and an interface id made from the
// task's. Berth's awsvpc tasks get their own network namespace on the
// host's task bridge, so there is no EC2 interface behind it.
func networkAttachment(taskID string, nc *types.NetworkConfiguration) (types.Attachment, error) {
	id, err := records.NewUUID()
	if err != nil {
		return types.Attachment{}, err
	}
	a := types.Attachment{Id: aws.String(id), Type: aws.String(records.AttachmentENI), Status: aws.String("PRECREATED"),
		Details: []types.KeyValuePair{{Name: aws.String("networkInterfaceId"), Value: aws.String("eni-" + taskID[:17])}}}
	if nc != nil && nc.AwsvpcConfiguration != nil && len(nc.AwsvpcConfiguration.Subnets) > 0 {
		a.Details = append([]types.KeyValuePair{{Name: aws.String("subnetId"), Value: aws.String(nc.AwsvpcConfiguration.Subnets[0])}}, a.Details...)
	}
	return a, nil
}
