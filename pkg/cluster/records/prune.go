package records

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// pruneBatch bounds the deletions of one pruning transaction, so that a
// backlog of stopped tasks stays within a replicated store's limit on
// writes per transaction (etcd's --max-txn-ops).
const pruneBatch = 100

// PruneStoppedTasks deletes the tasks that stopped before cutoff (ECS keeps
// stopped tasks visible for about an hour) and returns how many it deleted,
// at most pruneBatch per transaction. Their resources were released when
// they stopped.
func PruneStoppedTasks(st store.Store, cutoff time.Time) (int, error) {
	total := 0
	for {
		n := 0
		err := st.Update(func(tx store.Tx) error {
			var doomed []string
			err := Each(tx, Tasks, "", func(t *Task) error {
				if aws.ToString(t.Task.LastStatus) == "STOPPED" && t.Task.StoppedAt != nil && t.Task.StoppedAt.Before(cutoff) {
					doomed = append(doomed, t.Key())
					if len(doomed) == pruneBatch {
						return store.ErrStopScan
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			// Deleted after the walk: a store does not allow writes during one.
			for _, k := range doomed {
				if err := tx.Delete(Tasks, k); err != nil {
					return err
				}
			}
			n = len(doomed)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("prune stopped tasks: %w", err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}
