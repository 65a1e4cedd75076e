package records

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The task indexes, so that a write never walks a cluster's tasks (most of
// which have stopped): ActiveTasks holds a summary of every task that has
// not reached STOPPED, under TaskKey; TaskTokens holds an empty record
// under "<cluster>/<clientToken>/<task id>" for every task RunTask created
// with a client token. Put keeps both in step with the task in the same
// transaction; Indexes records that they were built (EnsureIndexes), for
// stores written before they existed.
const (
	ActiveTasks store.Bucket = "active-tasks"
	TaskTokens  store.Bucket = "task-tokens"
	Indexes     store.Bucket = "indexes"
)

// IndexBuckets lists the task indexes' buckets.
func IndexBuckets() []store.Bucket { return []store.Bucket{ActiveTasks, TaskTokens, Indexes} }

// tasksIndexVersion names what EnsureIndexes built; a new index (or a new
// field in ActiveTask) takes a new version, which rebuilds them.
const tasksIndexVersion = "tasks-v1"

// ActiveTask is the summary of an unstopped task that placement, the ACS
// sessions and the counts need.
type ActiveTask struct {
	InstanceArn   string
	Group         string
	LastStatus    string
	DesiredStatus string
}

// Unstopped reports whether the task still holds its place (Task.Unstopped).
func (a *ActiveTask) Unstopped() bool {
	return a.LastStatus != "STOPPED" && a.DesiredStatus != "STOPPED"
}

// indexTask brings the indexes in step with t, which is being written.
func indexTask(tx store.Tx, t *Task) error {
	key := t.Key()
	if aws.ToString(t.Task.LastStatus) == "STOPPED" {
		if err := tx.Delete(ActiveTasks, key); err != nil {
			return fmt.Errorf("index task %s: %w", key, err)
		}
	} else {
		want := ActiveTask{InstanceArn: aws.ToString(t.Task.ContainerInstanceArn), Group: aws.ToString(t.Task.Group),
			LastStatus: aws.ToString(t.Task.LastStatus), DesiredStatus: aws.ToString(t.Task.DesiredStatus)}
		have, ok, err := Get[ActiveTask](tx, ActiveTasks, key)
		if err != nil {
			return fmt.Errorf("index task %s: %w", key, err)
		}
		if !ok || *have != want {
			if err := tx.Put(ActiveTasks, key, want); err != nil {
				return fmt.Errorf("index task %s: %w", key, err)
			}
		}
	}
	if t.ClientToken != "" {
		tk := tokenKey(t.Cluster, t.ClientToken, arn.ResourceID(aws.ToString(t.Task.TaskArn)))
		if _, ok, err := Get[struct{}](tx, TaskTokens, tk); err != nil || !ok {
			if err == nil {
				err = tx.Put(TaskTokens, tk, struct{}{})
			}
			if err != nil {
				return fmt.Errorf("index task %s: client token: %w", key, err)
			}
		}
	}
	return nil
}

func tokenKey(cluster, token, id string) string { return cluster + "/" + token + "/" + id }

// DeleteTask deletes the task stored under key and its index entries.
func DeleteTask(tx store.Tx, key string) error {
	t, ok, err := Get[Task](tx, Tasks, key)
	if err != nil || !ok {
		return err
	}
	if err := tx.Delete(Tasks, key); err != nil {
		return err
	}
	if err := tx.Delete(ActiveTasks, key); err != nil {
		return err
	}
	if t.ClientToken != "" {
		return tx.Delete(TaskTokens, tokenKey(t.Cluster, t.ClientToken, arn.ResourceID(aws.ToString(t.Task.TaskArn))))
	}
	return nil
}

// EachActiveTask calls fn, in key order, with the key and summary of every
// task of cluster that has not reached STOPPED.
func EachActiveTask(tx store.Tx, cluster string, fn func(key string, a *ActiveTask) error) error {
	return store.ForEach(tx, ActiveTasks, ClusterPrefix(cluster), func(key string, raw []byte) error {
		var a ActiveTask
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("decode %s/%s: %w", ActiveTasks, key, err)
		}
		return fn(key, &a)
	})
}

// TaskKeysOfToken returns the keys of cluster's tasks created with the
// RunTask client token, in key order.
func TaskKeysOfToken(tx store.Tx, cluster, token string) ([]string, error) {
	var keys []string
	prefix := cluster + "/" + token + "/"
	err := store.ForEach(tx, TaskTokens, prefix, func(key string, _ []byte) error {
		keys = append(keys, TaskKey(cluster, strings.TrimPrefix(key, prefix)))
		return nil
	})
	return keys, err
}

// EnsureIndexes builds the task indexes of a store written before they
// existed (or by an older version of them), batch tasks per transaction,
// and then records that they are built. Writers keep the indexes in step
// from the moment they run this version, so a build that overlaps them
// stays right: each batch indexes the tasks as they are in its own
// transaction. It does nothing on a store whose indexes are built.
func EnsureIndexes(st store.Store, batch int) error {
	built := false
	var keys []string
	err := st.View(func(tx store.Tx) error {
		var v string
		switch err := tx.Get(Indexes, "tasks", &v); {
		case err == nil:
			built = v == tasksIndexVersion
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if built {
			return nil
		}
		return store.ForEach(tx, Tasks, "", func(key string, _ []byte) error {
			keys = append(keys, key)
			return nil
		})
	})
	if err != nil || built {
		return err
	}
	// A task and its two index entries: three writes each.
	batch = max(1, batch/3)
	for len(keys) > 0 {
		n := min(batch, len(keys))
		chunk := keys[:n]
		keys = keys[n:]
		if err := st.Update(func(tx store.Tx) error {
			for _, k := range chunk {
				t, ok, err := Get[Task](tx, Tasks, k)
				if err != nil {
					return err
				}
				if ok {
					if err := indexTask(tx, t); err != nil {
						return err
					}
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("build task indexes: %w", err)
		}
	}
	if err := st.Update(func(tx store.Tx) error { return tx.Put(Indexes, "tasks", tasksIndexVersion) }); err != nil {
		return fmt.Errorf("build task indexes: %w", err)
	}
	return nil
}
