package state

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/api"
)

// TestSaveTaskConcurrent saves from many goroutines at once, as the
// engine's task runners do: every record and every change is there, each
// task's changes in the order it saved them, and every change has its own
// sequence number.
func TestSaveTaskConcurrent(t *testing.T) {
	db, err := OpenDir(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const tasks, saves = 20, 15
	var wg sync.WaitGroup
	errs := make(chan error, tasks*saves)
	for i := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			arn := fmt.Sprintf("task-%d", i)
			for j := range saves {
				ch := []api.StateChange{{Kind: api.ChangeTask, TaskARN: arn, Status: fmt.Sprint(j)}}
				if err := db.SaveTask(arn, []byte(fmt.Sprintf(`{"v":%d}`, j)), ch); err != nil {
					errs <- err
					return
				}
				if ch[0].Seq == 0 {
					errs <- fmt.Errorf("%s save %d: no Seq assigned", arn, j)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	pending, err := db.PendingStateChanges(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != tasks*saves {
		t.Fatalf("%d changes in the outbox, want %d", len(pending), tasks*saves)
	}
	next := map[string]int{}
	seqs := map[uint64]bool{}
	for _, c := range pending {
		if seqs[c.Seq] {
			t.Errorf("seq %d used twice", c.Seq)
		}
		seqs[c.Seq] = true
		if want := fmt.Sprint(next[c.TaskARN]); c.Status != want {
			t.Errorf("%s: change %q where %q comes next", c.TaskARN, c.Status, want)
		}
		next[c.TaskARN]++
	}
	entries, err := db.Tasks()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != tasks {
		t.Fatalf("%d task records, want %d", len(entries), tasks)
	}
	for _, e := range entries {
		if want := fmt.Sprintf(`{"v":%d}`, saves-1); string(e.Record) != want {
			t.Errorf("%s: record %s, want the last save's %s", e.ARN, e.Record, want)
		}
	}
}

// TestGroupCommitFailureIsItsOwn holds the first caller's transaction open
// while others queue behind it; one of those fails: it fails alone, the
// others' writes are committed.
func TestGroupCommitFailureIsItsOwn(t *testing.T) {
	db, err := OpenDir(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	release := make(chan struct{})
	first := make(chan error, 1)
	inFirst := make(chan struct{})
	go func() {
		first <- db.updateGrouped(func(tx *Tx) error {
			close(inFirst)
			<-release
			return tx.PutTask("first", []byte(`{}`))
		})
	}()
	<-inFirst
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	boom := errors.New("boom")
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.updateGrouped(func(tx *Tx) error {
				if err := tx.PutTask(fmt.Sprintf("t%d", i), []byte(`{}`)); err != nil {
					return err
				}
				if i == 3 {
					return boom
				}
				return nil
			})
		}()
	}
	// Every caller is queued behind the first before it is released.
	waitQueued(t, db, n)
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first: %v", err)
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == 3 && !errors.Is(err, boom):
			t.Errorf("call %d: %v, want its own error", i, err)
		case i != 3 && err != nil:
			t.Errorf("call %d: %v, want success despite call 3's failure", i, err)
		}
	}
	err = db.View(func(tx *Tx) error {
		for i := range n {
			rec, err := tx.Task(fmt.Sprintf("t%d", i))
			if i == 3 && (err == nil || rec != nil) {
				t.Errorf("t3 was written although its call failed (%v)", err)
			}
			if i != 3 && err != nil {
				t.Errorf("t%d: %v", i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.group.mu.Lock()
	defer db.group.mu.Unlock()
	if db.group.leading || len(db.group.pending) != 0 {
		t.Errorf("group commit not idle after all calls returned: leading %v, %d pending", db.group.leading, len(db.group.pending))
	}
}

// TestGroupCommitOneTransaction: callers queued behind a commit share the
// next transaction.
func TestGroupCommitOneTransaction(t *testing.T) {
	db, err := OpenDir(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	release, inFirst := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.updateGrouped(func(tx *Tx) error {
			close(inFirst)
			<-release
			return nil
		})
	}()
	<-inFirst
	const n = 5
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[int]int{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := db.SaveTask(fmt.Sprintf("t%d", i), []byte(`{}`), nil); err != nil {
				t.Error(err)
			}
		}()
	}
	waitQueued(t, db, n)
	// Wrap the queued calls' fns to see their transaction.
	db.group.mu.Lock()
	for _, c := range db.group.pending {
		fn := c.fn
		c.fn = func(tx *Tx) error {
			mu.Lock()
			ids[tx.tx.ID()]++
			mu.Unlock()
			return fn(tx)
		}
	}
	db.group.mu.Unlock()
	close(release)
	<-first
	wg.Wait()
	if len(ids) != 1 {
		t.Errorf("%d queued saves were committed in transactions %v, want one", n, ids)
	}
}

// waitQueued waits until n callers wait for the next group commit.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		db.group.mu.Lock()
		queued := len(db.group.pending)
		db.group.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d callers queued behind the commit under way", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}
