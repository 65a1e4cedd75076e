package acs

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The session server reads the ECS API's records (pkg/cluster/records) and
// writes two things onto them: whether an instance's agent is connected,
// and the container health agents report.

// loadInstance reads the instance an ARN names; a missing one is
// store.ErrNotFound.
func loadInstance(tx store.Tx, instanceArn string) (*records.Instance, error) {
	key, _, ok := records.InstanceKeyOf(instanceArn)
	if !ok {
		return nil, fmt.Errorf("container instance %q: %w", instanceArn, store.ErrNotFound)
	}
	var rec records.Instance
	if err := tx.Get(records.Instances, key, &rec); err != nil {
		return nil, fmt.Errorf("container instance %s: %w", instanceArn, err)
	}
	return &rec, nil
}

// setAgentConnected records whether the instance's agent holds a session,
// which DescribeContainerInstances shows as agentConnected.
func setAgentConnected(st store.Store, instanceArn string, connected bool) error {
	if _, _, ok := records.InstanceKeyOf(instanceArn); !ok {
		return fmt.Errorf("container instance %q: not an ARN", instanceArn)
	}
	return st.Update(func(tx store.Tx) error { return putAgentConnected(tx, instanceArn, connected) })
}

// clearAgentConnected marks every instance disconnected. A new server has
// no sessions yet; flags left true by an endpoint that died would otherwise
// let RunTask place tasks on instances whose agent is gone.
func clearAgentConnected(st store.Store) error {
	return st.Update(func(tx store.Tx) error {
		var connected []*records.Instance
		err := records.Each(tx, records.Instances, "", func(rec *records.Instance) error {
			if rec.Instance.AgentConnected {
				connected = append(connected, rec)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Written after the walk: a store does not allow writes during one.
		for _, rec := range connected {
			rec.Instance.AgentConnected = false
			if err := records.Put(tx, rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// instanceTasks returns the instance's tasks that have not reached
// STOPPED, as ACS tasks, in key order.
func instanceTasks(tx store.Tx, instanceArn string) ([]builtTask, error) {
	_, cluster, ok := records.InstanceKeyOf(instanceArn)
	if !ok {
		return nil, fmt.Errorf("container instance %q: not an ARN", instanceArn)
	}
	var out []builtTask
	err := records.EachActiveTask(tx, cluster, func(key string, a *records.ActiveTask) error {
		if a.InstanceArn != instanceArn {
			return nil
		}
		t, ok, err := records.Get[records.Task](tx, records.Tasks, key)
		if err != nil || !ok {
			return err
		}
		b, err := buildTask(tx, &t.Task)
		if err != nil {
			return err
		}
		out = append(out, b)
		return nil
	})
	return out, err
}

// loadTask reads the task a task ARN names; a missing one is
// store.ErrNotFound.
func loadTask(tx store.Tx, taskArn string) (*records.Task, error) {
	key, ok := records.TaskKeyOf(taskArn)
	if !ok {
		return nil, fmt.Errorf("task %q: %w", taskArn, store.ErrNotFound)
	}
	var t records.Task
	if err := tx.Get(records.Tasks, key, &t); err != nil {
		return nil, fmt.Errorf("task %s: %w", taskArn, err)
	}
	return &t, nil
}

// roleArns returns the task's role and execution role ARNs: the task's
// overrides win over the task definition.
func roleArns(td *types.TaskDefinition, t *types.Task) (taskRole, execRole string) {
	taskRole, execRole = aws.ToString(td.TaskRoleArn), aws.ToString(td.ExecutionRoleArn)
	if ov := t.Overrides; ov != nil {
		if ov.TaskRoleArn != nil {
			taskRole = *ov.TaskRoleArn
		}
		if ov.ExecutionRoleArn != nil {
			execRole = *ov.ExecutionRoleArn
		}
	}
	return taskRole, execRole
}

// builtTask is an ACS task with the roles credentials are issued for.
type builtTask struct {
	task               *api.Task
	instanceArn        string
	taskRole, execRole string
}

// buildTask reads the task's definition and builds its ACS task.
func buildTask(tx store.Tx, t *types.Task) (builtTask, error) {
	tdArn := aws.ToString(t.TaskDefinitionArn)
	key, ok := records.TaskDefinitionKeyOf(tdArn)
	if !ok {
		return builtTask{}, fmt.Errorf("task %s: task definition ARN %q", aws.ToString(t.TaskArn), tdArn)
	}
	var td records.TaskDefinition
	if err := tx.Get(records.TaskDefinitions, key, &td); err != nil {
		return builtTask{}, fmt.Errorf("task %s: task definition %s: %w", aws.ToString(t.TaskArn), tdArn, err)
	}
	at, err := acsTask(&td.TaskDefinition, t)
	if err != nil {
		return builtTask{}, fmt.Errorf("task %s: %w", aws.ToString(t.TaskArn), err)
	}
	b := builtTask{task: at, instanceArn: aws.ToString(t.ContainerInstanceArn)}
	b.taskRole, b.execRole = roleArns(&td.TaskDefinition, t)
	return b, nil
}
