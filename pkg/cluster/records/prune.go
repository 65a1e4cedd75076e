package records

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// pruneBatch bounds the deletions of one pruning transaction, so that a
// backlog of stopped tasks stays within a replicated store's limit on
// writes per transaction (etcd's --max-txn-ops, 128 by default): a task
// and its index entries are up to three writes.
const pruneBatch = 40

// PruneStoppedTasks deletes the tasks that stopped before cutoff (ECS keeps
// stopped tasks visible for about an hour) and returns how many it deleted,
// at most pruneBatch per transaction. Their resources were released when
// they stopped. The tasks are found in a read transaction, so the walk
// never holds up the endpoint's writes; each is checked again where it is
// deleted.
func PruneStoppedTasks(st store.Store, cutoff time.Time) (int, error) {
	doomed := func(t *Task) bool {
		return aws.ToString(t.Task.LastStatus) == "STOPPED" && t.Task.StoppedAt != nil && t.Task.StoppedAt.Before(cutoff)
	}
	total := 0
	after := ""
	for {
		var keys []string
		err := st.View(func(tx store.Tx) error {
			keys = keys[:0]
			return tx.Scan(Tasks, store.Range{From: after}, func(k string, raw []byte) error {
				var t Task
				if err := json.Unmarshal(raw, &t); err != nil {
					return fmt.Errorf("decode %s/%s: %w", Tasks, k, err)
				}
				if k > after && doomed(&t) {
					keys = append(keys, k)
					if len(keys) == pruneBatch {
						return store.ErrStopScan
					}
				}
				return nil
			})
		})
		if err != nil {
			return total, fmt.Errorf("prune stopped tasks: %w", err)
		}
		n := 0
		err = st.Update(func(tx store.Tx) error {
			n = 0
			for _, k := range keys {
				t, ok, err := Get[Task](tx, Tasks, k)
				if err != nil {
					return err
				}
				if !ok || !doomed(t) {
					continue
				}
				if err := DeleteTask(tx, k); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("prune stopped tasks: %w", err)
		}
		total += n
		if len(keys) < pruneBatch {
			return total, nil
		}
		after = keys[len(keys)-1]
	}
}
