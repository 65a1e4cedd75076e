package acs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// With several replicas on one shared store (Options.Replica set), an
// agent's session may be held by any replica and move between them, so:
//
//   - which replica holds each instance's session is recorded in
//     SessionsBucket, and agentConnected is cleared only by the replica
//     (and the session) that holds it, never at start-up;
//   - the leader clears the records of replicas that died (SweepSessions),
//     and every replica records again the sessions it holds that such a
//     sweep cleared while it was alive (RefreshSessions);
//   - tasks placed or stopped by any replica reach the session through the
//     store's watch (StoreChanged), not through TasksChanged.

// SessionsBucket holds, by container instance ARN, which replica holds the
// instance's ACS session (used with Options.Replica only).
const SessionsBucket store.Bucket = "agent-sessions"

// agentSession is the record in SessionsBucket.
type agentSession struct {
	Replica string    `json:"replica"`
	Session string    `json:"session"`
	Since   time.Time `json:"since"`
}

// recordReplicaSession records that sess holds (connected) or no longer
// holds the instance's session. A replica clears agentConnected only for
// its own session: when the agent has already moved to another replica (or
// to a newer session here), the newer record stays.
func (s *Server) recordReplicaSession(sess *session, connected bool) error {
	return s.o.Store.Update(func(tx store.Tx) error {
		var cur agentSession
		err := tx.Get(SessionsBucket, sess.instanceArn, &cur)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if connected {
			if err := tx.Put(SessionsBucket, sess.instanceArn, agentSession{Replica: s.o.Replica, Session: sess.id, Since: time.Now().UTC()}); err != nil {
				return err
			}
		} else {
			if err == nil && (cur.Replica != s.o.Replica || cur.Session != sess.id) {
				return nil // another session holds it now
			}
			if err := tx.Delete(SessionsBucket, sess.instanceArn); err != nil {
				return err
			}
		}
		return putAgentConnected(tx, sess.instanceArn, connected)
	})
}

// putAgentConnected sets the instance's agentConnected in tx.
func putAgentConnected(tx store.Tx, instanceArn string, connected bool) error {
	rec, err := loadInstance(tx, instanceArn)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil || rec.Instance.AgentConnected == connected {
		return err
	}
	rec.Instance.AgentConnected = connected
	return records.Put(tx, rec)
}

// SweepSessions clears the session records, and agentConnected, of
// instances whose session was held by a replica not in live (it died
// without closing them). The leader calls it periodically.
func (s *Server) SweepSessions(live []string) (int, error) {
	var dead []string
	err := s.o.Store.View(func(tx store.Tx) error {
		dead = nil
		return store.ForEach(tx, SessionsBucket, "", func(key string, raw []byte) error {
			var rec agentSession
			if err := json.Unmarshal(raw, &rec); err != nil {
				return fmt.Errorf("agent session %s: %w", key, err)
			}
			if !slices.Contains(live, rec.Replica) {
				dead = append(dead, key)
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("sweep agent sessions: %w", err)
	}
	n := 0
	// One transaction each: a sweep after a replica with thousands of
	// agents died stays within etcd's transaction limits.
	for _, arn := range dead {
		err := s.o.Store.Update(func(tx store.Tx) error {
			var rec agentSession
			if err := tx.Get(SessionsBucket, arn, &rec); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return nil
				}
				return err
			}
			if slices.Contains(live, rec.Replica) {
				return nil // the agent reconnected meanwhile
			}
			if err := tx.Delete(SessionsBucket, arn); err != nil {
				return err
			}
			return putAgentConnected(tx, arn, false)
		})
		if err != nil {
			return n, fmt.Errorf("sweep agent session %s: %w", arn, err)
		}
		n++
	}
	return n, nil
}

// RefreshSessions records again the sessions this replica holds whose
// record is gone or whose agentConnected reads false, and reports how many
// it mended. The leader's sweep clears a replica's sessions when that
// replica's liveness key is missing, which also happens to a live replica
// whose etcd lease lapsed for a moment (a loaded host); without this its
// agents would read disconnected until they next reconnect. A session
// another replica (or a newer session) holds is left alone. Every replica
// calls it periodically.
func (s *Server) RefreshSessions() (int, error) {
	s.mu.Lock()
	held := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		held = append(held, sess)
	}
	s.mu.Unlock()
	n := 0
	for _, sess := range held {
		var mended bool
		err := s.o.Store.Update(func(tx store.Tx) error {
			mended = false
			var cur agentSession
			err := tx.Get(SessionsBucket, sess.instanceArn, &cur)
			switch {
			case errors.Is(err, store.ErrNotFound):
				if err := tx.Put(SessionsBucket, sess.instanceArn, agentSession{Replica: s.o.Replica, Session: sess.id, Since: time.Now().UTC()}); err != nil {
					return err
				}
				mended = true
			case err != nil:
				return err
			case cur.Replica != s.o.Replica || cur.Session != sess.id:
				return nil // another session holds it now
			}
			rec, err := loadInstance(tx, sess.instanceArn)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if !rec.Instance.AgentConnected {
				mended = true
			}
			return putAgentConnected(tx, sess.instanceArn, true)
		})
		if err != nil {
			return n, fmt.Errorf("refresh agent session %s: %w", sess.instanceArn, err)
		}
		if !mended {
			continue
		}
		n++
		// The session may have ended while it was being recorded: its
		// end is then written again, after the record.
		s.mu.Lock()
		gone := s.sessions[sess.instanceArn] != sess
		s.mu.Unlock()
		if gone {
			s.recordConnected(sess, false)
		}
	}
	return n, nil
}

// StoreChanged is told of every committed change to the task records, by
// any replica (a store.Watcher's feed): a task created, or whose desired
// status changed, is sent to its instance's session if this replica holds
// it. When the feed lost changes, every session here is ended, so that its
// agent reconnects and gets its tasks and a manifest afresh.
func (s *Server) StoreChanged(ctx context.Context, c store.Change) {
	if c.Lost {
		s.mu.Lock()
		for _, sess := range s.sessions {
			sess.cancel()
		}
		s.mu.Unlock()
		return
	}
	if c.Bucket != records.Tasks || c.Value == nil {
		return
	}
	var cur records.Task
	if err := json.Unmarshal(c.Value, &cur); err != nil {
		s.o.Logger.Error("ACS: decode a changed task", "key", c.Key, "err", err)
		return
	}
	if c.Prev == nil {
		s.TasksChanged(ctx, []records.TaskChange{records.PlacedChange(&cur)})
		return
	}
	var prev records.Task
	if err := json.Unmarshal(c.Prev, &prev); err != nil {
		s.o.Logger.Error("ACS: decode a changed task's previous record", "key", c.Key, "err", err)
		return
	}
	desired := aws.ToString(cur.Task.DesiredStatus)
	if desired == aws.ToString(prev.Task.DesiredStatus) || aws.ToString(cur.Task.LastStatus) == "STOPPED" {
		// Unchanged, or the agent itself reported the stop.
		return
	}
	s.TasksChanged(ctx, []records.TaskChange{{ClusterArn: aws.ToString(cur.Task.ClusterArn),
		ContainerInstanceArn: aws.ToString(cur.Task.ContainerInstanceArn), TaskArn: aws.ToString(cur.Task.TaskArn),
		DesiredStatus: desired}})
}
