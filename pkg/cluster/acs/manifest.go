package acs

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The manifest round trip: on every (re)connect the endpoint sends a
// TaskManifestMessage (Server.manifest) listing the instance's tasks. An
// agent acknowledges it and, for the tasks it runs that the manifest does
// not list as RUNNING, asks with a TaskStopVerificationMessage (carrying
// the manifest's messageId) whether to stop them. The endpoint answers with
// a TaskStopVerificationAck, with the same messageId, that confirms only the
// candidates its store says must not run there; a task placed after the
// manifest was built is not confirmed. The agent stops only the confirmed
// ones (the upstream agent ignores an ack whose messageId is not its latest
// manifest's).

// verifyStop answers a TaskStopVerificationMessage. Without an answer the
// agent stops nothing, so a store failure is only logged: the next
// manifest asks again.
func (s *session) verifyStop(m *api.TaskStopVerificationMessage) {
	stop, err := confirmStops(s.srv.o.Store, s.instanceArn, m.StopCandidates)
	if err != nil {
		s.srv.o.Logger.Error("ACS: verify stop candidates", "instance", s.instanceArn, "messageId", m.MessageID, "err", err)
		return
	}
	s.srv.o.Logger.Info("ACS: stop verification", "instance", s.instanceArn, "messageId", m.MessageID,
		"candidates", len(m.StopCandidates), "confirmed", len(stop))
	s.enqueueOnce(&api.TaskStopVerificationAck{MessageID: m.MessageID, GeneratedAt: time.Now().UnixMilli(), StopTasks: stop})
}

// confirmStops returns the candidates the instance must not run: tasks the
// store does not have, tasks placed on another instance, and tasks whose
// desired or last status is STOPPED.
func confirmStops(st store.Store, instanceArn string, candidates []*api.TaskIdentifier) ([]*api.TaskIdentifier, error) {
	var stop []*api.TaskIdentifier
	err := st.View(func(tx store.Tx) error {
		stop = nil
		for _, c := range candidates {
			if c == nil || c.TaskArn == "" {
				continue
			}
			confirmed := &api.TaskIdentifier{TaskArn: c.TaskArn, TaskClusterArn: c.TaskClusterArn, DesiredStatus: api.StatusStopped}
			t, err := loadTask(tx, c.TaskArn)
			if errors.Is(err, store.ErrNotFound) {
				stop = append(stop, confirmed)
				continue
			}
			if err != nil {
				return err
			}
			if aws.ToString(t.Task.ContainerInstanceArn) == instanceArn &&
				aws.ToString(t.Task.DesiredStatus) != api.StatusStopped && aws.ToString(t.Task.LastStatus) != api.StatusStopped {
				continue // it should run here
			}
			confirmed.TaskClusterArn = aws.ToString(t.Task.ClusterArn)
			stop = append(stop, confirmed)
		}
		return nil
	})
	return stop, err
}

// maxVersionParam bounds each version member of the handshake.
const maxVersionParam = 256

// recordVersion writes the agent's version, hash and container runtime
// version from the ACS handshake's agentVersion, agentHash and
// dockerVersion onto the instance (DescribeContainerInstances' versionInfo),
// as ECS does: the upstream agent does not send versionInfo when it
// registers. Absent members leave what is recorded; over-long ones (an
// agent controls them) make it record nothing and fail.
func (s *Server) recordVersion(instanceArn string, q url.Values) error {
	var v types.VersionInfo
	for _, m := range []struct {
		name string
		dst  **string
	}{{"agentVersion", &v.AgentVersion}, {"agentHash", &v.AgentHash}, {"dockerVersion", &v.DockerVersion}} {
		val := q.Get(m.name)
		if len(val) > maxVersionParam {
			return fmt.Errorf("%s is %d bytes, more than %d", m.name, len(val), maxVersionParam)
		}
		if val != "" {
			*m.dst = aws.String(val)
		}
	}
	if v == (types.VersionInfo{}) {
		return nil
	}
	return s.o.Store.Update(func(tx store.Tx) error {
		rec, err := loadInstance(tx, instanceArn)
		if err != nil {
			return err
		}
		cur := rec.Instance.VersionInfo
		if cur == nil {
			cur = &types.VersionInfo{}
		}
		next := *cur
		for _, f := range []struct{ dst, val **string }{{&next.AgentVersion, &v.AgentVersion}, {&next.AgentHash, &v.AgentHash}, {&next.DockerVersion, &v.DockerVersion}} {
			if *f.val != nil {
				*f.dst = *f.val
			}
		}
		if aws.ToString(next.AgentVersion) == aws.ToString(cur.AgentVersion) && aws.ToString(next.AgentHash) == aws.ToString(cur.AgentHash) &&
			aws.ToString(next.DockerVersion) == aws.ToString(cur.DockerVersion) && rec.Instance.VersionInfo != nil {
			return nil
		}
		rec.Instance.VersionInfo = &next
		return records.Put(tx, rec)
	})
}
