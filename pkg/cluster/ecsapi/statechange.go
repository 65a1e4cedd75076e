package ecsapi

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// submitTaskStateChangeRequest is SubmitTaskStateChange's input with its
// timestamps read as epoch seconds.
type submitTaskStateChangeRequest struct {
	ecs.SubmitTaskStateChangeInput
	PullStartedAt      *api.ECSEpochTime `json:"pullStartedAt"`
	PullStoppedAt      *api.ECSEpochTime `json:"pullStoppedAt"`
	ExecutionStoppedAt *api.ECSEpochTime `json:"executionStoppedAt"`
}

// taskForAgent loads the task a state change is about and checks that an
// agent key owns the task's instance.
func (s *Server) taskForAgent(c *call, tx store.Tx, clusterRef, taskRef *string) (*records.Task, *records.Instance, error) {
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
func applyContainerChange(t *records.Task, name string, status, reason, runtimeID, digest *string, exitCode *int32, nb []types.NetworkBinding) error {
	for i := range t.Task.Containers {
		ct := &t.Task.Containers[i]
		if aws.ToString(ct.Name) != name {
			continue
		}
		if status != nil {
			if _, known := records.StatusRank(*status); !known {
				return invalidParam("Invalid container status %q.", *status)
			}
			if records.Advances(ct.LastStatus, *status) {
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

func (s *Server) submitTaskStateChange(c *call, in *submitTaskStateChangeRequest) (smithy.Serializable, error) {
	if in.Status != nil {
		if _, known := records.StatusRank(*in.Status); !known {
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
			t.ApplyStatus(inst, *in.Status, in.Reason, c.now)
		}
		if err := records.Put(tx, t); err != nil {
			return err
		}
		return records.Put(tx, inst)
	})
	if err != nil {
		return nil, err
	}
	c.wake = true
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
		return records.Put(tx, t)
	})
	if err != nil {
		return nil, err
	}
	return &ecs.SubmitContainerStateChangeOutput{Acknowledgment: aws.String("ACK")}, nil
}
