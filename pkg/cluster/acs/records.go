package acs

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// This file reads the endpoint's records (written by pkg/cluster/api) in
// their stored JSON form: keys "<cluster>/<id>" in store.Instances and
// store.Tasks, "<family>:<revision, 10 digits>" in store.TaskDefinitions.
// Only the members the session needs are decoded, and the one write
// (agentConnected) patches the instance record without touching the rest.

type instanceView struct {
	Instance   types.ContainerInstance
	Cluster    string
	AgentKeyID string
}

type taskView struct {
	Task    types.Task
	Cluster string
}

type taskDefView struct {
	TaskDefinition types.TaskDefinition
}

// arnParts splits "arn:aws:ecs:region:account:<kind>/<cluster>/<id>" into
// cluster and id.
func arnParts(s, kind string) (cluster, id string, ok bool) {
	a, err := arn.Parse(s)
	if err != nil {
		return "", "", false
	}
	typ, path := arn.SplitResource(a.Resource)
	if typ != kind || len(path) != 2 || path[0] == "" || path[1] == "" {
		return "", "", false
	}
	return path[0], path[1], true
}

func loadInstance(tx store.Tx, instanceArn string) (*instanceView, error) {
	cluster, id, ok := arnParts(instanceArn, "container-instance")
	if !ok {
		return nil, fmt.Errorf("container instance %q: %w", instanceArn, store.ErrNotFound)
	}
	var v instanceView
	if err := tx.Get(store.Instances, cluster+"/"+id, &v); err != nil {
		return nil, fmt.Errorf("container instance %s: %w", instanceArn, err)
	}
	return &v, nil
}

// setAgentConnected records whether the instance's agent holds a session,
// which DescribeContainerInstances shows as agentConnected.
func setAgentConnected(st store.Store, instanceArn string, connected bool) error {
	cluster, id, ok := arnParts(instanceArn, "container-instance")
	if !ok {
		return fmt.Errorf("container instance %q: not an ARN", instanceArn)
	}
	key := cluster + "/" + id
	return st.Update(func(tx store.Tx) error {
		var raw map[string]json.RawMessage
		if err := tx.Get(store.Instances, key, &raw); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}
		var ci types.ContainerInstance
		if err := json.Unmarshal(raw["Instance"], &ci); err != nil {
			return fmt.Errorf("decode container instance %s: %w", key, err)
		}
		if ci.AgentConnected == connected {
			return nil
		}
		ci.AgentConnected = connected
		b, err := json.Marshal(ci)
		if err != nil {
			return err
		}
		raw["Instance"] = b
		return tx.Put(store.Instances, key, raw)
	})
}

// clearAgentConnected marks every instance disconnected. A new server has
// no sessions yet; flags left true by an endpoint that died would otherwise
// let RunTask place tasks on instances whose agent is gone.
func clearAgentConnected(st store.Store) error {
	return st.Update(func(tx store.Tx) error {
		patched := map[string]map[string]json.RawMessage{}
		err := tx.ForEach(store.Instances, "", func(key string, raw []byte) error {
			var rec map[string]json.RawMessage
			if err := json.Unmarshal(raw, &rec); err != nil {
				return fmt.Errorf("decode container instance %s: %w", key, err)
			}
			var ci types.ContainerInstance
			if err := json.Unmarshal(rec["Instance"], &ci); err != nil {
				return fmt.Errorf("decode container instance %s: %w", key, err)
			}
			if !ci.AgentConnected {
				return nil
			}
			ci.AgentConnected = false
			b, err := json.Marshal(ci)
			if err != nil {
				return err
			}
			rec["Instance"] = b
			patched[key] = rec
			return nil
		})
		if err != nil {
			return err
		}
		// Written after the walk: bbolt does not allow writes during ForEach.
		for key, rec := range patched {
			if err := tx.Put(store.Instances, key, rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// instanceTasks returns the instance's tasks that have not reached
// STOPPED, as ACS tasks, in key order.
func instanceTasks(tx store.Tx, instanceArn string) ([]builtTask, error) {
	cluster, _, ok := arnParts(instanceArn, "container-instance")
	if !ok {
		return nil, fmt.Errorf("container instance %q: not an ARN", instanceArn)
	}
	var out []builtTask
	err := tx.ForEach(store.Tasks, cluster+"/", func(key string, raw []byte) error {
		var t taskView
		if err := json.Unmarshal(raw, &t); err != nil {
			return fmt.Errorf("decode task %s: %w", key, err)
		}
		if aws.ToString(t.Task.ContainerInstanceArn) != instanceArn || aws.ToString(t.Task.LastStatus) == "STOPPED" {
			return nil
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

// loadTask returns one task as an ACS task.
func loadTask(tx store.Tx, taskArn string) (builtTask, error) {
	cluster, id, ok := arnParts(taskArn, "task")
	if !ok {
		return builtTask{}, fmt.Errorf("task %q: not an ARN", taskArn)
	}
	var t taskView
	if err := tx.Get(store.Tasks, cluster+"/"+id, &t); err != nil {
		return builtTask{}, fmt.Errorf("task %s: %w", taskArn, err)
	}
	return buildTask(tx, &t.Task)
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

func buildTask(tx store.Tx, t *types.Task) (builtTask, error) {
	tdArn := aws.ToString(t.TaskDefinitionArn)
	_, famRev, ok := strings.Cut(tdArn, ":task-definition/")
	family, revStr, ok2 := strings.Cut(famRev, ":")
	rev, err := strconv.Atoi(revStr)
	if !ok || !ok2 || err != nil {
		return builtTask{}, fmt.Errorf("task %s: task definition ARN %q", aws.ToString(t.TaskArn), tdArn)
	}
	var td taskDefView
	if err := tx.Get(store.TaskDefinitions, fmt.Sprintf("%s:%010d", family, rev), &td); err != nil {
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
