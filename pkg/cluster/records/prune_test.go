package records

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
)

// countingStore counts the transactions that write.
type countingStore struct {
	store.Store
	updates int
}

func (c *countingStore) Update(fn func(store.Tx) error) error {
	c.updates++
	return c.Store.Update(fn)
}

// TestPruneInBatches: a backlog of 250 old stopped tasks is deleted pruneBatch per
// transaction (a replicated store limits writes per transaction), and the
// recent and running ones stay.
func TestPruneInBatches(t *testing.T) {
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "c.db"), boltstore.Options{Buckets: Buckets()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cutoff := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	old, recent := cutoff.Add(-time.Hour), cutoff.Add(time.Minute)
	err = db.Update(func(tx store.Tx) error {
		for i := 0; i < 260; i++ {
			rec := &Task{Cluster: "c"}
			rec.Task.TaskArn = aws.String(fmt.Sprintf("arn:aws:ecs:us-east-1:123456789012:task/c/%032d", i))
			rec.Task.LastStatus, rec.Task.StoppedAt = aws.String("STOPPED"), &old
			switch {
			case i >= 255:
				rec.Task.LastStatus, rec.Task.StoppedAt = aws.String("RUNNING"), nil
			case i >= 250:
				rec.Task.StoppedAt = &recent
			}
			if err := tx.Put(Tasks, TaskKey("c", fmt.Sprintf("%032d", i)), rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: db}
	n, err := PruneStoppedTasks(cs, cutoff)
	if want := (250 + pruneBatch - 1) / pruneBatch; err != nil || n != 250 || cs.updates != want {
		t.Fatalf("pruned %d in %d transactions (%v); want 250 in %d", n, cs.updates, err, want)
	}
	left := 0
	if err := db.View(func(tx store.Tx) error {
		return store.ForEach(tx, Tasks, "", func(string, []byte) error { left++; return nil })
	}); err != nil || left != 10 {
		t.Fatalf("%d tasks left (%v), want the 10 recent or running", left, err)
	}
}
