package records

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
)

// derivedIndexes computes what the indexes must hold by walking every task.
func derivedIndexes(t *testing.T, st store.Store) (active map[string]ActiveTask, tokens map[string][]string) {
	t.Helper()
	active, tokens = map[string]ActiveTask{}, map[string][]string{}
	if err := st.View(func(tx store.Tx) error {
		return Each(tx, Tasks, "", func(r *Task) error {
			if aws.ToString(r.Task.LastStatus) != "STOPPED" {
				active[r.Key()] = ActiveTask{InstanceArn: aws.ToString(r.Task.ContainerInstanceArn), Group: aws.ToString(r.Task.Group),
					LastStatus: aws.ToString(r.Task.LastStatus), DesiredStatus: aws.ToString(r.Task.DesiredStatus)}
			}
			if r.ClientToken != "" {
				tokens[r.Cluster+"/"+r.ClientToken] = append(tokens[r.Cluster+"/"+r.ClientToken], r.Key())
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return active, tokens
}

// indexed reads what the indexes hold for the clusters.
func indexed(t *testing.T, st store.Store, clusters, tokenNames []string) (active map[string]ActiveTask, tokens map[string][]string) {
	t.Helper()
	active, tokens = map[string]ActiveTask{}, map[string][]string{}
	if err := st.View(func(tx store.Tx) error {
		for _, c := range clusters {
			if err := EachActiveTask(tx, c, func(k string, a *ActiveTask) error { active[k] = *a; return nil }); err != nil {
				return err
			}
			for _, tok := range tokenNames {
				keys, err := TaskKeysOfToken(tx, c, tok)
				if err != nil {
					return err
				}
				if len(keys) > 0 {
					tokens[c+"/"+tok] = keys
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return active, tokens
}

func randomTask(r *rand.Rand, clusters, tokens []string, i int) *Task {
	c := clusters[r.IntN(len(clusters))]
	rec := &Task{Cluster: c}
	rec.Task.TaskArn = aws.String(fmt.Sprintf("arn:aws:ecs:us-east-1:123456789012:task/%s/%032x", c, i))
	rec.Task.ContainerInstanceArn = aws.String(fmt.Sprintf("arn:aws:ecs:us-east-1:123456789012:container-instance/%s/i%d", c, r.IntN(3)))
	rec.Task.Group = aws.String(fmt.Sprintf("family:f%d", r.IntN(2)))
	rec.Task.LastStatus = aws.String([]string{"PENDING", "RUNNING", "STOPPED"}[r.IntN(3)])
	rec.Task.DesiredStatus = aws.String([]string{"RUNNING", "STOPPED"}[r.IntN(2)])
	if r.IntN(2) == 0 {
		rec.ClientToken = tokens[r.IntN(len(tokens))]
	}
	return rec
}

// TestIndexesFollowTasks: whatever sequence of task writes and deletions
// (through Put and DeleteTask), the indexes hold exactly what a walk of
// every task derives; and EnsureIndexes builds the same indexes for a store
// whose tasks were written before they existed, once.
func TestIndexesFollowTasks(t *testing.T) {
	clusters, tokens := []string{"a", "b"}, []string{"t1", "t2", "t3"}
	r := rand.New(rand.NewPCG(1, 2))
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "c.db"), boltstore.Options{Buckets: Buckets()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var written []*Task
	ids := 0
	for round := 0; round < 20; round++ {
		if err := db.Update(func(tx store.Tx) error {
			for i := 0; i < 10; i++ {
				switch {
				case len(written) > 0 && r.IntN(4) == 0: // rewrite one, maybe stopped
					old := written[r.IntN(len(written))]
					next := randomTask(r, clusters, tokens, 0)
					old.Task.LastStatus, old.Task.DesiredStatus = next.Task.LastStatus, next.Task.DesiredStatus
					if err := Put(tx, old); err != nil {
						return err
					}
				case len(written) > 0 && r.IntN(8) == 0:
					k := r.IntN(len(written))
					if err := DeleteTask(tx, written[k].Key()); err != nil {
						return err
					}
					written = append(written[:k], written[k+1:]...)
				default:
					ids++
					rec := randomTask(r, clusters, tokens, ids)
					written = append(written, rec)
					if err := Put(tx, rec); err != nil {
						return err
					}
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		wantActive, wantTokens := derivedIndexes(t, db)
		gotActive, gotTokens := indexed(t, db, clusters, tokens)
		if !reflect.DeepEqual(gotActive, wantActive) || !reflect.DeepEqual(gotTokens, wantTokens) {
			t.Fatalf("round %d: indexes\n%v\n%v\nwant\n%v\n%v", round, gotActive, gotTokens, wantActive, wantTokens)
		}
	}
	if len(written) < 50 {
		t.Fatalf("only %d tasks written: the sequence does not exercise the indexes", len(written))
	}

	// The same tasks in a store of before the indexes: raw writes.
	old, err := boltstore.Open(filepath.Join(t.TempDir(), "old.db"), boltstore.Options{Buckets: Buckets()})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Update(func(tx store.Tx) error {
		for _, rec := range written {
			if err := tx.Put(Tasks, rec.Key(), rec); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if a, _ := indexed(t, old, clusters, tokens); len(a) != 0 {
		t.Fatalf("raw writes indexed %d tasks", len(a))
	}
	cs := &countingStore{Store: old}
	if err := EnsureIndexes(cs, 7); err != nil {
		t.Fatal(err)
	}
	wantActive, wantTokens := derivedIndexes(t, old)
	gotActive, gotTokens := indexed(t, old, clusters, tokens)
	if !reflect.DeepEqual(gotActive, wantActive) || !reflect.DeepEqual(gotTokens, wantTokens) {
		t.Fatalf("built indexes\n%v\n%v\nwant\n%v\n%v", gotActive, gotTokens, wantActive, wantTokens)
	}
	if want := (len(written)+1)/2 + 1; cs.updates != want {
		t.Errorf("built in %d transactions, want %d (2 tasks per 7-write batch, then the marker)", cs.updates, want)
	}
	cs.updates = 0
	if err := EnsureIndexes(cs, 7); err != nil || cs.updates != 0 {
		t.Errorf("second EnsureIndexes: %d transactions (%v), want none", cs.updates, err)
	}
}
