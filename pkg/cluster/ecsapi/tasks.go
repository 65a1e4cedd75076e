package ecsapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/launch"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/scheduler"
	"github.com/berth-dev/berth/pkg/cluster/store"

	"github.com/berth-dev/berth/pkg/api/arn"
)

// maxTasksPerCall is RunTask's count limit and StartTask's instance limit.
const maxTasksPerCall = 10

// validateOverrides checks overrides against the task definition.
func validateOverrides(td *types.TaskDefinition, ov *types.TaskOverride) error {
	if ov == nil {
		return nil
	}
	if ov.Cpu != nil {
		if _, err := launch.TaskCPU(*ov.Cpu); err != nil {
			return invalidParam("Invalid cpu override %q.", *ov.Cpu)
		}
	}
	if ov.Memory != nil {
		if _, err := launch.TaskMemory(*ov.Memory); err != nil {
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

// taskParamsFor validates what RunTask and StartTask share and loads the
// task definition, in the caller's transaction.
func (s *Server) taskParamsFor(tx store.Tx, cluster string, tdRef *string, ov *types.TaskOverride, startedBy, group *string) (launch.Params, error) {
	p := launch.Params{Cluster: cluster, Overrides: ov, StartedBy: startedBy, Group: group}
	if _, err := activeCluster(tx, cluster); err != nil {
		return p, err
	}
	if aws.ToString(tdRef) == "" {
		return p, invalidParam("TaskDefinition is required.")
	}
	if startedBy != nil && !startedByRE.MatchString(*startedBy) {
		return p, invalidParam("startedBy must be 1 to 128 letters, digits, hyphens, slashes or underscores.")
	}
	if group != nil && (len(*group) == 0 || len(*group) > 255 || !printableText(*group)) {
		return p, invalidParam("group must have between 1 and 255 characters and no control characters.")
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
	p.TD = &rec.TaskDefinition
	if err := validateOverrides(p.TD, ov); err != nil {
		return p, err
	}
	return p, nil
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
		return nil, invalidParam("launchType %s is not supported by this endpoint: use EC2 or EXTERNAL.", in.LaunchType)
	}
	if err := taskPropagateTags(in.PropagateTags); err != nil {
		return nil, err
	}
	token, hash, err := requestToken(in)
	if err != nil {
		return nil, err
	}
	var out *ecs.RunTaskOutput
	var notifies []records.TaskChange
	err = s.opts.Store.Update(func(tx store.Tx) error {
		out = &ecs.RunTaskOutput{Tasks: []types.Task{}, Failures: []types.Failure{}}
		notifies = nil
		if token != "" {
			prior, err := tasksOfToken(tx, cluster, token)
			if err != nil || len(prior) > 0 {
				if err == nil && prior[0].RequestHash != hash {
					err = invalidParam("clientToken %q was already used with different parameters.", token)
				}
				for _, t := range prior {
					out.Tasks = append(out.Tasks, t.Task)
				}
				return err
			}
		}
		p, err := s.taskParamsFor(tx, cluster, in.TaskDefinition, in.Overrides, in.StartedBy, in.Group)
		if err != nil {
			return err
		}
		p.Tags, p.PropagateTags, p.ManagedTags = in.Tags, in.PropagateTags, in.EnableECSManagedTags
		if err := validateNetwork("RunTask", in.NetworkConfiguration, p.TD); err != nil {
			return err
		}
		p.Network = in.NetworkConfiguration
		p.LaunchType = in.LaunchType
		p.ClientToken, p.RequestHash = token, hash
		d := launch.Demand(p.TD, in.Overrides)
		group := aws.ToString(in.Group)
		if group == "" {
			group = "family:" + aws.ToString(p.TD.Family)
		}
		req, err := launch.Request(p.TD, d, group, in.PlacementConstraints, in.PlacementStrategy,
			[]scheduler.Strategy{{Type: "random"}})
		if err != nil {
			return err
		}
		ps, err := s.opts.Launcher.PlacementSetFor(tx, cluster, req)
		if err != nil {
			return err
		}
		if len(ps.Records) == 0 {
			return invalidParam("No Container Instances were found in your cluster.")
		}
		failures := failureList{attributeDetail: requiredDetail(req)}
		for i := int32(0); i < count; i++ {
			idx, misfits := ps.Placer.Place(req)
			if idx < 0 {
				failures.add(misfits)
				continue
			}
			t, err := s.opts.Launcher.Place(tx, p, ps.Records[idx], d, c.now)
			if err != nil {
				return err
			}
			out.Tasks = append(out.Tasks, t.Task)
			notifies = append(notifies, records.PlacedChange(t))
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
	if err := taskPropagateTags(in.PropagateTags); err != nil {
		return nil, err
	}
	if len(in.ContainerInstances) == 0 || len(in.ContainerInstances) > maxTasksPerCall {
		return nil, invalidParam("containerInstances must have between 1 and %d items.", maxTasksPerCall)
	}
	var out *ecs.StartTaskOutput
	var notifies []records.TaskChange
	err = s.opts.Store.Update(func(tx store.Tx) error {
		out = &ecs.StartTaskOutput{Tasks: []types.Task{}, Failures: []types.Failure{}}
		notifies = nil
		p, err := s.taskParamsFor(tx, cluster, in.TaskDefinition, in.Overrides, in.StartedBy, in.Group)
		if err != nil {
			return err
		}
		p.Tags, p.PropagateTags, p.ManagedTags = in.Tags, in.PropagateTags, in.EnableECSManagedTags
		if err := validateNetwork("StartTask", in.NetworkConfiguration, p.TD); err != nil {
			return err
		}
		p.Network = in.NetworkConfiguration
		d := launch.Demand(p.TD, in.Overrides)
		// StartTask names its instances: only resources, the agent and
		// required attributes are checked, as ECS does.
		req, err := launch.Request(p.TD, d, "", nil, nil, nil)
		if err != nil {
			return err
		}
		req.Constraints = nil
		for _, ref := range in.ContainerInstances {
			inst, ok, err := s.loadInstance(tx, cluster, ref)
			if err != nil {
				return err
			}
			if !ok || inst.Status() != "ACTIVE" {
				out.Failures = append(out.Failures, missingFailure(ref))
				continue
			}
			if r := scheduler.Check(s.opts.Launcher.View(inst), req); r != "" {
				f := types.Failure{Arn: inst.Instance.ContainerInstanceArn, Reason: aws.String(r)}
				if r == scheduler.ReasonAttribute {
					f.Detail = aws.String(requiredDetail(req))
				}
				out.Failures = append(out.Failures, f)
				continue
			}
			t, err := s.opts.Launcher.Place(tx, p, inst, d, c.now)
			if err != nil {
				return err
			}
			out.Tasks = append(out.Tasks, t.Task)
			notifies = append(notifies, records.PlacedChange(t))
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
func (s *Server) loadTask(tx store.Tx, cluster, ref string) (*records.Task, bool, error) {
	id, ok := s.arns.ResourceID("task", cluster, ref)
	if !ok {
		return nil, false, nil
	}
	return records.Get[records.Task](tx, records.Tasks, records.TaskKey(cluster, id))
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
	reason := aws.ToString(in.Reason)
	if reason == "" {
		reason = "Task stopped by user"
	}
	var out *ecs.StopTaskOutput
	changed := false
	err = s.opts.Store.Update(func(tx store.Tx) error {
		out, changed = &ecs.StopTaskOutput{}, false
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
		out.Task = &t.Task
		// A task already stopping, or draining before its stop, stays so.
		if aws.ToString(t.Task.DesiredStatus) == "STOPPED" || t.IsDeactivating() {
			return nil
		}
		inst, _, err := s.loadInstance(tx, cluster, aws.ToString(t.Task.ContainerInstanceArn))
		if err != nil {
			return err
		}
		// A service's task registered with load balancers drains first, as
		// ECS does: DEACTIVATING, and the service controller sends the stop
		// once its targets' deregistration delay has passed.
		waits, err := t.Deactivate(tx, records.LBARNs{Region: s.arns.Region, AccountID: s.arns.AccountID}, inst,
			string(types.TaskStopCodeUserInitiated), reason, c.now)
		if err != nil {
			return err
		}
		if waits {
			c.wake = true
			if err := s.drainingEvents(tx, cluster, t, c.now); err != nil {
				return err
			}
			return records.Put(tx, t)
		}
		changed = true
		if t.RequestStop(inst, types.TaskStopCodeUserInitiated, reason, c.now) {
			if err := records.Put(tx, inst); err != nil {
				return err
			}
		}
		return records.Put(tx, t)
	})
	if err != nil {
		return nil, err
	}
	if changed {
		c.notifies = append(c.notifies, records.StoppingChange(out.Task))
	}
	return out, nil
}

// drainingEvents writes ECS's events for a service task that StopTask
// took out of its load balancers: its targets deregistered, the drain begun.
func (s *Server) drainingEvents(tx store.Tx, cluster string, t *records.Task, now time.Time) error {
	name, ok := strings.CutPrefix(aws.ToString(t.Task.Group), "service:")
	if !ok {
		return nil
	}
	svc, ok, err := s.loadService(tx, cluster, name)
	if err != nil || !ok {
		return err
	}
	per := map[string]int{}
	var tgs []string
	for _, tt := range t.Targets {
		if per[tt.TargetGroupArn] == 0 {
			tgs = append(tgs, tt.TargetGroupArn)
		}
		per[tt.TargetGroupArn]++
	}
	for _, tg := range tgs {
		svc.AddEvent(fmt.Sprintf("(service %s) deregistered %d targets in (target-group %s)", name, per[tg], tg), now)
	}
	svc.AddEvent(fmt.Sprintf("(service %s) has begun draining connections on 1 tasks.", name), now)
	return records.Put(tx, svc)
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
		var tasks []*records.Task
		err := records.Each(tx, records.Tasks, cluster+"/", func(t *records.Task) error {
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
func taskOfFamily(t *records.Task, family string) bool {
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
		out.Failures, err = lookupEach(in.Tasks, func(ref string) (*records.Task, bool, error) {
			return s.loadTask(tx, cluster, ref)
		}, asGiven, func(t *records.Task) error {
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

// maxClientToken is the length limit of RunTask's clientToken.
const maxClientToken = 64

// requestToken validates RunTask's clientToken and digests the request's
// other members, which a retry with the token must repeat.
func requestToken(in *ecs.RunTaskInput) (token, hash string, err error) {
	token = aws.ToString(in.ClientToken)
	if token == "" {
		return "", "", nil
	}
	if len(token) > maxClientToken || !printableASCII(token) {
		return "", "", invalidParam("clientToken must be 1 to %d ASCII characters.", maxClientToken)
	}
	req := *in
	req.ClientToken = nil
	b, err := json.Marshal(&req)
	if err != nil {
		return "", "", fmt.Errorf("digest RunTask request: %w", err)
	}
	sum := sha256.Sum256(b)
	return token, hex.EncodeToString(sum[:]), nil
}

// tasksOfToken returns the cluster's tasks created by RunTask with token,
// in creation order.
func tasksOfToken(tx store.Tx, cluster, token string) ([]*records.Task, error) {
	keys, err := records.TaskKeysOfToken(tx, cluster, token)
	if err != nil {
		return nil, err
	}
	var out []*records.Task
	for _, k := range keys {
		t, ok, err := records.Get[records.Task](tx, records.Tasks, k)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, t)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return aws.ToTime(out[i].Task.CreatedAt).Before(aws.ToTime(out[j].Task.CreatedAt))
	})
	return out, err
}

// printableASCII reports whether s holds only printable ASCII characters.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// taskPropagateTags checks RunTask's and StartTask's propagateTags: a task
// started by hand has no service to take tags from.
func taskPropagateTags(p types.PropagateTags) error {
	switch p {
	case "", types.PropagateTagsNone, types.PropagateTagsTaskDefinition:
		return nil
	case types.PropagateTagsService:
		return invalidParam("propagateTags SERVICE is only valid for tasks of a service.")
	}
	return invalidParam("propagateTags must be TASK_DEFINITION, SERVICE or NONE, got %q.", p)
}

// startedByRE is ECS's rule for startedBy.
var startedByRE = regexp.MustCompile(`^[A-Za-z0-9\-/_]{1,128}$`)

// printableText reports whether s has no control characters.
func printableText(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// maxOverrides is ECS's limit on RunTask's and StartTask's overrides: 8192
// characters of their JSON.
const maxOverrides = 8192

// validateOverridesSize refuses overrides whose JSON (as sent, without
// insignificant white space) is longer than ECS takes.
func validateOverridesSize(body []byte) error {
	var in struct{ Overrides json.RawMessage }
	if json.Unmarshal(body, &in) != nil || len(in.Overrides) <= maxOverrides {
		return nil
	}
	var compact bytes.Buffer
	if json.Compact(&compact, in.Overrides) != nil {
		return nil // decodeInput answers a malformed body
	}
	if compact.Len() > maxOverrides {
		return invalidParam("overrides: a total of %d characters is allowed, got %d.", maxOverrides, compact.Len())
	}
	return nil
}
