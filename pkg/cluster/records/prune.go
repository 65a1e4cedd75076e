package records

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// PruneStoppedTasks deletes the tasks that stopped before cutoff (ECS keeps
// stopped tasks visible for about an hour) and returns how many it deleted.
// Their resources were released when they stopped.
func PruneStoppedTasks(st store.Store, cutoff time.Time) (int, error) {
	n := 0
	err := st.Update(func(tx store.Tx) error {
		var doomed []string
		err := Each(tx, Tasks, "", func(t *Task) error {
			if aws.ToString(t.Task.LastStatus) == "STOPPED" && t.Task.StoppedAt != nil && t.Task.StoppedAt.Before(cutoff) {
				doomed = append(doomed, t.Key())
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
		return 0, fmt.Errorf("prune stopped tasks: %w", err)
	}
	return n, nil
}
