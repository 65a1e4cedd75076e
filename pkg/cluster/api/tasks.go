package api

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"

	wire "github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/scheduler"
	"github.com/berth-dev/berth/pkg/cluster/store"

	"github.com/berth-dev/berth/pkg/api/arn"
)

// maxTasksPerCall is RunTask's count limit and StartTask's instance limit.
const maxTasksPerCall = 10

// demandOf is what a task of td with overrides ov needs on an instance:
// task-level cpu and memory when set, else the sum over containers (memory
// reservation before the hard limit, as ECS reserves), and its static host
// ports.
func demandOf(td *types.TaskDefinition, ov *types.TaskOverride) scheduler.Demand {
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
		if v, err := taskCPU(*cpu); err == nil {
			d.CPU = v
		}
	}
	if mem != nil {
		if v, err := taskMemory(*mem); err == nil {
			d.Memory = v
		}
	}
	return d
}

// validateOverrides checks overrides against the task definition.
func validateOverrides(td *types.TaskDefinition, ov *types.TaskOverride) error {
	if ov == nil {
		return nil
	}
	if ov.Cpu != nil {
		if _, err := taskCPU(*ov.Cpu); err != nil {
			return invalidParam("Invalid cpu override %q.", *ov.Cpu)
		}
	}
	if ov.Memory != nil {
		if _, err := taskMemory(*ov.Memory); err != nil {
			return invalidParam("Invalid memory override %q.", *ov.Memory)
		}
	}
	names := map[string]bool{}
	for _, cd := range td.ContainerDefinitions {
		names[aws.ToString(cd.Name)] = true
	}
	for _, co := range ov.ContainerOverrides {
		n := aws.ToString(co.Name)
		if !names[n] {
			return invalidParam("Override for container named %s is not a container in the TaskDefinition.", n)
		}
		if co.Cpu != nil && *co.Cpu < 0 {
			return invalidParam("Invalid cpu override for container %s.", n)
		}
		if co.Memory != nil && *co.Memory < minContainerMiB || co.MemoryReservation != nil && *co.MemoryReservation < minContainerMiB {
			return invalidParam("Invalid memory override for container %s: at least %d MiB.", n, minContainerMiB)
		}
	}
	return nil
}

// taskParams are what RunTask and StartTask share.
type taskParams struct {
	cluster   string
	td        *types.TaskDefinition
	overrides *types.TaskOverride
	startedBy *string
	group     *string
	tags      []types.Tag
}

func (s *Server) newTask(c *call, p taskParams, instanceArn string, d scheduler.Demand) (*taskRecord, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	arn := s.taskArn(p.cluster, id)
	group := p.group
	if group == nil {
		group = aws.String("family:" + aws.ToString(p.td.Family))
	}
	ov := p.overrides
	if ov == nil {
		ov = &types.TaskOverride{}
	}
	if ov.ContainerOverrides == nil {
		ov.ContainerOverrides = []types.ContainerOverride{}
	}
	t := types.Task{
		TaskArn:              aws.String(arn),
		ClusterArn:           aws.String(s.clusterArn(p.cluster)),
		TaskDefinitionArn:    p.td.TaskDefinitionArn,
		ContainerInstanceArn: aws.String(instanceArn),
		Overrides:            ov,
		LastStatus:           aws.String("PROVISIONING"),
		DesiredStatus:        aws.String("RUNNING"),
		Cpu:                  aws.String(strconv.FormatInt(d.CPU, 10)),
		Memory:               aws.String(strconv.FormatInt(d.Memory, 10)),
		CreatedAt:            aws.Time(c.now),
		StartedBy:            p.startedBy,
		Group:                group,
		LaunchType:           types.LaunchTypeEc2,
		Version:              1,
		Tags:                 p.tags,
		Attachments:          []types.Attachment{},
		Attributes:           []types.Attribute{},
		HealthStatus:         types.HealthStatusUnknown,
	}
	for _, cd := range p.td.ContainerDefinitions {
		cid, err := newUUID()
		if err != nil {
			return nil, err
		}
		ct := types.Container{
			ContainerArn:      aws.String(s.containerArn(p.cluster, id, cid)),
			TaskArn:           aws.String(arn),
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
	return &taskRecord{Task: t, Cluster: p.cluster, Demand: d}, nil
}

// activeInstances returns the cluster's ACTIVE instances in registration
// order, the order first-fit tries them in.
func activeInstances(tx store.Tx, cluster string) ([]*instanceRecord, error) {
	var out []*instanceRecord
	err := eachRecord(tx, store.Instances, cluster+"/", func(rec *instanceRecord) error {
		if aws.ToString(rec.Instance.Status) == "ACTIVE" {
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

// taskParamsFor validates what RunTask and StartTask share and loads the
// task definition, in the caller's transaction.
func (s *Server) taskParamsFor(tx store.Tx, cluster string, tdRef *string, ov *types.TaskOverride, startedBy, group *string) (taskParams, error) {
	p := taskParams{cluster: cluster, overrides: ov, startedBy: startedBy, group: group}
	if _, err := activeCluster(tx, cluster); err != nil {
		return p, err
	}
	if aws.ToString(tdRef) == "" {
		return p, invalidParam("TaskDefinition is required.")
	}
	if startedBy != nil && (len(*startedBy) == 0 || len(*startedBy) > 128) {
		return p, invalidParam("startedBy must have between 1 and 128 characters.")
	}
	if group != nil && (len(*group) == 0 || len(*group) > 255) {
		return p, invalidParam("group must have between 1 and 255 characters.")
	}
	rec, err := s.findTaskDefinition(tx, *tdRef)
	if err != nil {
		if isAPIError(err) {
			return p, invalidParam("TaskDefinition not found.")
		}
		return p, err
	}
	if rec.TaskDefinition.Status != types.TaskDefinitionStatusActive {
		return p, clientException("TaskDefinition is inactive")
	}
	p.td = &rec.TaskDefinition
	if err := validateOverrides(p.td, ov); err != nil {
		return p, err
	}
	return p, nil
}

// placeTask creates a task of p on inst, takes its demand d there and
// stores both.
func (s *Server) placeTask(c *call, tx store.Tx, p taskParams, inst *instanceRecord, d scheduler.Demand) (*taskRecord, error) {
	t, err := s.newTask(c, p, *inst.Instance.ContainerInstanceArn, d)
	if err != nil {
		return nil, err
	}
	inst.take(d)
	if err := s.putTask(tx, t); err != nil {
		return nil, err
	}
	if err := s.putInstance(tx, inst); err != nil {
		return nil, err
	}
	return t, nil
}

// placedChange tells the notifier that t was placed and is to run.
func placedChange(t *taskRecord) TaskChange {
	return TaskChange{ClusterArn: *t.Task.ClusterArn, ContainerInstanceArn: *t.Task.ContainerInstanceArn,
		TaskArn: *t.Task.TaskArn, DesiredStatus: "RUNNING", Placed: true}
}

// stoppingChange tells the notifier that t is to stop.
func stoppingChange(t *types.Task) TaskChange {
	return TaskChange{ClusterArn: aws.ToString(t.ClusterArn), ContainerInstanceArn: aws.ToString(t.ContainerInstanceArn),
		TaskArn: *t.TaskArn, DesiredStatus: "STOPPED"}
}

func (s *Server) putTask(tx store.Tx, t *taskRecord) error {
	return tx.Put(store.Tasks, t.Cluster+"/"+arn.ResourceID(*t.Task.TaskArn), t)
}

func (s *Server) putInstance(tx store.Tx, rec *instanceRecord) error {
	return tx.Put(store.Instances, instanceKey(rec.Cluster, arn.ResourceID(*rec.Instance.ContainerInstanceArn)), rec)
}

func (s *Server) runTask(c *call, in *ecs.RunTaskInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	count := int32(1)
	if in.Count != nil {
		count = *in.Count
	}
	if count < 1 || count > maxTasksPerCall {
		return nil, invalidParam("Count must be between 1 and %d.", maxTasksPerCall)
	}
	switch in.LaunchType {
	case "", types.LaunchTypeEc2, types.LaunchTypeExternal:
	default:
		return nil, invalidParam("Launch type %s is not supported by this endpoint.", in.LaunchType)
	}
	if len(in.CapacityProviderStrategy) > 0 {
		return nil, invalidParam("Capacity providers are not supported by this endpoint.")
	}
	out := &ecs.RunTaskOutput{Tasks: []types.Task{}, Failures: []types.Failure{}}
	var notifies []TaskChange
	err = s.opts.Store.Update(func(tx store.Tx) error {
		p, err := s.taskParamsFor(tx, cluster, in.TaskDefinition, in.Overrides, in.StartedBy, in.Group)
		if err != nil {
			return err
		}
		p.tags = in.Tags
		ps, err := s.loadPlacementSet(tx, cluster)
		if err != nil {
			return err
		}
		if len(ps.records) == 0 {
			return invalidParam("No Container Instances were found in your cluster.")
		}
		d := demandOf(p.td, in.Overrides)
		group := aws.ToString(in.Group)
		if group == "" {
			group = "family:" + aws.ToString(p.td.Family)
		}
		req, err := placementRequest(p.td, d, group, in.PlacementConstraints, in.PlacementStrategy,
			[]scheduler.Strategy{{Type: "random"}})
		if err != nil {
			return err
		}
		var failures failureList
		for i := int32(0); i < count; i++ {
			idx, misfits := ps.placer.Place(req)
			if idx < 0 {
				failures.add(misfits)
				continue
			}
			inst := ps.records[idx]
			t, err := s.placeTask(c, tx, p, inst, d)
			if err != nil {
				return err
			}
			out.Tasks = append(out.Tasks, t.Task)
			notifies = append(notifies, placedChange(t))
		}
		if failures.out != nil {
			out.Failures = failures.out
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.notifies = append(c.notifies, notifies...)
	return out, nil
}

func (s *Server) startTask(c *call, in *ecs.StartTaskInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	if len(in.ContainerInstances) == 0 || len(in.ContainerInstances) > maxTasksPerCall {
		return nil, invalidParam("containerInstances must have between 1 and %d items.", maxTasksPerCall)
	}
	out := &ecs.StartTaskOutput{Tasks: []types.Task{}, Failures: []types.Failure{}}
	var notifies []TaskChange
	err = s.opts.Store.Update(func(tx store.Tx) error {
		p, err := s.taskParamsFor(tx, cluster, in.TaskDefinition, in.Overrides, in.StartedBy, in.Group)
		if err != nil {
			return err
		}
		p.tags = in.Tags
		d := demandOf(p.td, in.Overrides)
		// StartTask names its instances: only resources, the agent and
		// required attributes are checked, as ECS does.
		req, err := placementRequest(p.td, d, "", nil, nil, nil)
		if err != nil {
			return err
		}
		req.Constraints = nil
		for _, ref := range in.ContainerInstances {
			inst, ok, err := s.loadInstance(tx, cluster, ref)
			if err != nil {
				return err
			}
			if !ok || aws.ToString(inst.Instance.Status) != "ACTIVE" {
				out.Failures = append(out.Failures, missingFailure(ref))
				continue
			}
			if r := scheduler.Check(s.schedulerInstance(inst), req); r != "" {
				out.Failures = append(out.Failures, types.Failure{Arn: inst.Instance.ContainerInstanceArn, Reason: aws.String(r)})
				continue
			}
			t, err := s.placeTask(c, tx, p, inst, d)
			if err != nil {
				return err
			}
			out.Tasks = append(out.Tasks, t.Task)
			notifies = append(notifies, placedChange(t))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.notifies = append(c.notifies, notifies...)
	return out, nil
}

// loadTask resolves a task id or ARN in cluster.
func (s *Server) loadTask(tx store.Tx, cluster, ref string) (*taskRecord, bool, error) {
	id, ok := s.resourceID("task", cluster, ref)
	if !ok {
		return nil, false, nil
	}
	return getRecord[taskRecord](tx, store.Tasks, cluster+"/"+id)
}

func (s *Server) stopTask(c *call, in *ecs.StopTaskInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	ref := aws.ToString(in.Task)
	if ref == "" {
		return nil, invalidParam("Task is required.")
	}
	if in.Reason != nil && len(*in.Reason) > 255 {
		return nil, invalidParam("reason must have at most 255 characters.")
	}
	out := &ecs.StopTaskOutput{}
	changed := false
	err = s.opts.Store.Update(func(tx store.Tx) error {
		if _, err := activeCluster(tx, cluster); err != nil {
			return err
		}
		t, ok, err := s.loadTask(tx, cluster, ref)
		if err != nil {
			return err
		}
		if !ok {
			return invalidParam("The referenced task was not found.")
		}
		if aws.ToString(t.Task.DesiredStatus) != "STOPPED" {
			changed = true
			t.Task.DesiredStatus = aws.String("STOPPED")
			t.Task.StopCode = types.TaskStopCodeUserInitiated
			reason := aws.ToString(in.Reason)
			if reason == "" {
				reason = "Task stopped by user"
			}
			t.Task.StoppedReason = aws.String(reason)
			t.Task.StoppingAt = aws.Time(c.now)
			t.Task.Version++
			// A task on a deregistered instance has no agent left to report
			// its stop: it is stopped now and its resources are released.
			inst, ok, err := s.loadInstance(tx, cluster, aws.ToString(t.Task.ContainerInstanceArn))
			if err != nil {
				return err
			}
			if ok && aws.ToString(inst.Instance.Status) == "INACTIVE" {
				applyTaskStatus(t, inst, "STOPPED", nil, c.now)
				if err := s.putInstance(tx, inst); err != nil {
					return err
				}
			}
			if err := s.putTask(tx, t); err != nil {
				return err
			}
		}
		out.Task = &t.Task
		return nil
	})
	if err != nil {
		return nil, err
	}
	if changed {
		c.notifies = append(c.notifies, stoppingChange(out.Task))
	}
	return out, nil
}

func (s *Server) listTasks(c *call, in *ecs.ListTasksInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	desired := in.DesiredStatus
	if desired == "" {
		desired = types.DesiredStatusRunning
	}
	switch desired {
	case types.DesiredStatusRunning, types.DesiredStatusPending, types.DesiredStatusStopped:
	default:
		return nil, invalidParam("desiredStatus must be RUNNING, PENDING or STOPPED.")
	}
	page, next, err := s.listPage(in.MaxResults, in.NextToken, func(tx store.Tx) ([]string, error) {
		if _, err := activeCluster(tx, cluster); err != nil {
			return nil, err
		}
		instanceArn := ""
		if ref := aws.ToString(in.ContainerInstance); ref != "" {
			inst, ok, err := s.loadInstance(tx, cluster, ref)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, invalidParam("The referenced container instance %s was not found.", ref)
			}
			instanceArn = *inst.Instance.ContainerInstanceArn
		}
		var tasks []*taskRecord
		err := eachRecord(tx, store.Tasks, cluster+"/", func(t *taskRecord) error {
			switch {
			case aws.ToString(t.Task.DesiredStatus) != string(desired),
				instanceArn != "" && aws.ToString(t.Task.ContainerInstanceArn) != instanceArn,
				in.Family != nil && aws.ToString(t.Task.Group) != "family:"+*in.Family && !taskOfFamily(t, *in.Family),
				in.StartedBy != nil && aws.ToString(t.Task.StartedBy) != *in.StartedBy,
				in.ServiceName != nil && aws.ToString(t.Task.Group) != "service:"+*in.ServiceName,
				in.LaunchType != "" && t.Task.LaunchType != in.LaunchType:
				return nil
			}
			tasks = append(tasks, t)
			return nil
		})
		sort.SliceStable(tasks, func(i, j int) bool {
			return aws.ToTime(tasks[i].Task.CreatedAt).Before(aws.ToTime(tasks[j].Task.CreatedAt))
		})
		var arns []string
		for _, t := range tasks {
			arns = append(arns, *t.Task.TaskArn)
		}
		return arns, err
	})
	if err != nil {
		return nil, err
	}
	return &ecs.ListTasksOutput{TaskArns: page, NextToken: next}, nil
}

// taskOfFamily reports whether the task's definition belongs to family.
func taskOfFamily(t *taskRecord, family string) bool {
	name := arn.ResourceID(aws.ToString(t.Task.TaskDefinitionArn))
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		return name[:i] == family
	}
	return false
}

func (s *Server) describeTasks(c *call, in *ecs.DescribeTasksInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	if len(in.Tasks) == 0 || len(in.Tasks) > 100 {
		return nil, invalidParam("Tasks must have between 1 and 100 items.")
	}
	withTags := slices.Contains(in.Include, types.TaskFieldTags)
	out := &ecs.DescribeTasksOutput{Tasks: []types.Task{}}
	err = s.opts.Store.View(func(tx store.Tx) error {
		if _, err := activeCluster(tx, cluster); err != nil {
			return err
		}
		out.Failures, err = lookupEach(in.Tasks, func(ref string) (*taskRecord, bool, error) {
			return s.loadTask(tx, cluster, ref)
		}, asGiven, func(t *taskRecord) error {
			if !withTags {
				t.Task.Tags = nil
			}
			out.Tasks = append(out.Tasks, t.Task)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// statusRank orders task and container statuses so state changes only move
// forward, which makes resubmitting one harmless; ok is false for a status
// ECS does not have.
func statusRank(status string) (rank int, ok bool) {
	for i, s := range []string{"PROVISIONING", "PENDING", "MANIFEST_PULLED", "ACTIVATING", "RUNNING",
		"DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"} {
		if s == status {
			return i, true
		}
	}
	return 0, false
}

func advances(from *string, to string) bool {
	a, _ := statusRank(to)
	b, _ := statusRank(aws.ToString(from))
	return a > b
}

// submitTaskStateChangeRequest is SubmitTaskStateChange's input with its
// timestamps read as epoch seconds.
type apiEpoch = wire.ECSEpochTime

type submitTaskStateChangeRequest struct {
	ecs.SubmitTaskStateChangeInput
	PullStartedAt      *apiEpoch `json:"pullStartedAt"`
	PullStoppedAt      *apiEpoch `json:"pullStoppedAt"`
	ExecutionStoppedAt *apiEpoch `json:"executionStoppedAt"`
}

// taskForAgent loads the task a state change is about and checks that an
// agent key owns the task's instance.
func (s *Server) taskForAgent(c *call, tx store.Tx, clusterRef, taskRef *string) (*taskRecord, *instanceRecord, error) {
	cluster, err := s.clusterName(clusterRef)
	if err != nil {
		return nil, nil, err
	}
	if aws.ToString(taskRef) == "" {
		return nil, nil, invalidParam("Task is required.")
	}
	if _, err := activeCluster(tx, cluster); err != nil {
		return nil, nil, err
	}
	t, ok, err := s.loadTask(tx, cluster, *taskRef)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, invalidParam("The referenced task was not found.")
	}
	inst, ok, err := s.loadInstance(tx, cluster, aws.ToString(t.Task.ContainerInstanceArn))
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, invalidParam("The task's container instance was not found.")
	}
	if err := mayActOn(c, inst); err != nil {
		return nil, nil, err
	}
	return t, inst, nil
}

// applyContainerChange records one container's reported state.
func applyContainerChange(t *taskRecord, name string, status, reason, runtimeID, digest *string, exitCode *int32, nb []types.NetworkBinding) error {
	for i := range t.Task.Containers {
		ct := &t.Task.Containers[i]
		if aws.ToString(ct.Name) != name {
			continue
		}
		if status != nil {
			if _, known := statusRank(*status); !known {
				return invalidParam("Invalid container status %q.", *status)
			}
			if advances(ct.LastStatus, *status) {
				ct.LastStatus = status
			}
		}
		if exitCode != nil {
			ct.ExitCode = exitCode
		}
		if reason != nil {
			ct.Reason = reason
		}
		if runtimeID != nil {
			ct.RuntimeId = runtimeID
		}
		if digest != nil {
			ct.ImageDigest = digest
		}
		if nb != nil {
			ct.NetworkBindings = nb
		}
		return nil
	}
	return invalidParam("Container %s is not part of the task.", name)
}

// applyTaskStatus moves the task's lastStatus forward and releases its
// resources when it has stopped.
func applyTaskStatus(t *taskRecord, inst *instanceRecord, status string, reason *string, now time.Time) {
	if !advances(t.Task.LastStatus, status) {
		return
	}
	t.Task.LastStatus = aws.String(status)
	t.Task.Version++
	switch status {
	case "RUNNING":
		if t.Task.StartedAt == nil {
			t.Task.StartedAt = aws.Time(now)
		}
		t.Task.Connectivity = types.ConnectivityConnected
		t.Task.ConnectivityAt = aws.Time(now)
	case "STOPPED":
		t.Task.StoppedAt = aws.Time(now)
		t.Task.DesiredStatus = aws.String("STOPPED")
		if t.Task.StoppedReason == nil {
			if reason != nil && *reason != "" {
				t.Task.StoppedReason = reason
			} else {
				t.Task.StoppedReason = aws.String("Essential container in task exited")
			}
			t.Task.StopCode = types.TaskStopCodeEssentialContainerExited
		}
		if !t.Released {
			inst.release(t.Demand)
			t.Released = true
		}
	}
}

func (s *Server) submitTaskStateChange(c *call, in *submitTaskStateChangeRequest) (smithy.Serializable, error) {
	if in.Status != nil {
		if _, known := statusRank(*in.Status); !known {
			return nil, invalidParam("Invalid task status %q.", *in.Status)
		}
	}
	err := s.opts.Store.Update(func(tx store.Tx) error {
		t, inst, err := s.taskForAgent(c, tx, in.Cluster, in.Task)
		if err != nil {
			return err
		}
		for _, cs := range in.Containers {
			if err := applyContainerChange(t, aws.ToString(cs.ContainerName), cs.Status, cs.Reason, cs.RuntimeId, cs.ImageDigest, cs.ExitCode, cs.NetworkBindings); err != nil {
				return err
			}
		}
		if in.PullStartedAt != nil {
			t.Task.PullStartedAt = aws.Time(in.PullStartedAt.Time)
		}
		if in.PullStoppedAt != nil {
			t.Task.PullStoppedAt = aws.Time(in.PullStoppedAt.Time)
		}
		if in.ExecutionStoppedAt != nil {
			t.Task.ExecutionStoppedAt = aws.Time(in.ExecutionStoppedAt.Time)
		}
		if in.Status != nil {
			applyTaskStatus(t, inst, *in.Status, in.Reason, c.now)
		}
		if err := s.putTask(tx, t); err != nil {
			return err
		}
		return s.putInstance(tx, inst)
	})
	if err != nil {
		return nil, err
	}
	s.wakeServices()
	return &ecs.SubmitTaskStateChangeOutput{Acknowledgment: aws.String("ACK")}, nil
}

func (s *Server) submitContainerStateChange(c *call, in *ecs.SubmitContainerStateChangeInput) (smithy.Serializable, error) {
	if aws.ToString(in.ContainerName) == "" {
		return nil, invalidParam("containerName is required.")
	}
	err := s.opts.Store.Update(func(tx store.Tx) error {
		t, _, err := s.taskForAgent(c, tx, in.Cluster, in.Task)
		if err != nil {
			return err
		}
		if err := applyContainerChange(t, *in.ContainerName, in.Status, in.Reason, in.RuntimeId, nil, in.ExitCode, in.NetworkBindings); err != nil {
			return err
		}
		return s.putTask(tx, t)
	})
	if err != nil {
		return nil, err
	}
	return &ecs.SubmitContainerStateChangeOutput{Acknowledgment: aws.String("ACK")}, nil
}

// PruneStoppedTasks deletes tasks that have been STOPPED for longer than
// retention (ECS keeps stopped tasks visible for about an hour) and returns
// how many it deleted. Their resources were released when they stopped.
func (s *Server) PruneStoppedTasks(retention time.Duration) (int, error) {
	cutoff := s.opts.Now().Add(-retention)
	n := 0
	err := s.opts.Store.Update(func(tx store.Tx) error {
		var doomed []string
		err := tx.ForEach(store.Tasks, "", func(key string, raw []byte) error {
			var t taskRecord
			if err := decode(raw, &t); err != nil {
				return err
			}
			if aws.ToString(t.Task.LastStatus) == "STOPPED" && t.Task.StoppedAt != nil && t.Task.StoppedAt.Before(cutoff) {
				doomed = append(doomed, key)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Deleting while a cursor walks the bucket skips keys, so delete after.
		for _, k := range doomed {
			if err := tx.Delete(store.Tasks, k); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune stopped tasks: %w", err)
	}
	return n, nil
}
