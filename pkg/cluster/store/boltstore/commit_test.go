package boltstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// queueWhileBlocked runs first in an Update that waits until n more
// Updates are queued behind it, runs those n (fns[i] as its own caller)
// and returns each caller's error and the bbolt transaction each function
// ran in last.
func queueWhileBlocked(t *testing.T, db *DB, fns []func(store.Tx) error) ([]error, []*bolt.Tx) {
	t.Helper()
	release := make(chan struct{})
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- db.Update(func(tx store.Tx) error {
			<-release
			return tx.Put(things, "first", 1)
		})
	}()
	waitFor(t, func() bool { db.updates.mu.Lock(); defer db.updates.mu.Unlock(); return db.updates.leading })
	errs := make([]error, len(fns))
	txs := make([]*bolt.Tx, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					errs[i] = fmt.Errorf("panic: %v", p)
				}
			}()
			errs[i] = db.Update(func(tx store.Tx) error {
				if g, ok := tx.(*groupTx); ok {
					txs[i] = g.tx
				} else {
					txs[i] = nil
				}
				return fn(tx)
			})
		}()
	}
	waitFor(t, func() bool {
		db.updates.mu.Lock()
		defer db.updates.mu.Unlock()
		return len(db.updates.pending) == len(fns)
	})
	close(release)
	wg.Wait()
	if err := <-firstDone; err != nil {
		t.Fatalf("first Update: %v", err)
	}
	return errs, txs
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

func put(key string) func(store.Tx) error {
	return func(tx store.Tx) error { return tx.Put(things, key, key) }
}

func keys(t *testing.T, db *DB) map[string]bool {
	t.Helper()
	snap, err := store.Snapshot(db, []store.Bucket{things})
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]bool)
	for k := range snap[things] {
		out[k] = true
	}
	return out
}

// TestGroupCommitSharesOneTransaction: Updates that queue while another
// commits run together in one transaction, and each is durable (visible
// after reopening the file) once its Update returned.
func TestGroupCommitSharesOneTransaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db := open(t, path)
	var fns []func(store.Tx) error
	for i := range 10 {
		fns = append(fns, put(fmt.Sprint("k", i)))
	}
	errs, txs := queueWhileBlocked(t, db, fns)
	for i, err := range errs {
		if err != nil {
			t.Errorf("Update %d: %v", i, err)
		}
		if txs[i] == nil || txs[i] != txs[0] {
			t.Errorf("Update %d ran in transaction %p, Update 0 in %p: want one shared transaction", i, txs[i], txs[0])
		}
	}
	db.Close()
	db = open(t, path)
	defer db.Close()
	got := keys(t, db)
	for i := range 10 {
		if !got[fmt.Sprint("k", i)] {
			t.Errorf("k%d missing after reopening; have %v", i, got)
		}
	}
}

// TestGroupCommitFailingMemberFailsAlone: a member that fails after
// writing, or panics, gets its own error, leaves none of its writes, and
// the others of its group still commit; a member that fails without
// writing gets its own error too.
func TestGroupCommitFailingMemberFailsAlone(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"))
	defer db.Close()
	boom := errors.New("boom")
	readOnly := errors.New("read-only failure")
	var mu sync.Mutex
	runs := map[string]int{}
	counted := func(name string, fn func(store.Tx) error) func(store.Tx) error {
		return func(tx store.Tx) error {
			mu.Lock()
			runs[name]++
			mu.Unlock()
			return fn(tx)
		}
	}
	fns := []func(store.Tx) error{
		counted("a", put("a")),
		counted("writesThenFails", func(tx store.Tx) error {
			if err := tx.Put(things, "bad", 1); err != nil {
				return err
			}
			return boom
		}),
		counted("b", put("b")),
		counted("failsWithoutWriting", func(tx store.Tx) error { return readOnly }),
		counted("panics", func(tx store.Tx) error {
			tx.Put(things, "panicked", 1)
			panic("member panic")
		}),
		counted("c", put("c")),
	}
	errs, _ := queueWhileBlocked(t, db, fns)
	want := []string{"", "boom", "", "read-only failure", "panic: member panic", ""}
	for i, err := range errs {
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want[i] {
			t.Errorf("Update %d = %q, want %q", i, got, want[i])
		}
	}
	got := keys(t, db)
	for _, k := range []string{"first", "a", "b", "c"} {
		if !got[k] {
			t.Errorf("%s missing: a failing member failed the others (have %v)", k, got)
		}
	}
	for _, k := range []string{"bad", "panicked"} {
		if got[k] {
			t.Errorf("%s stored: a failed member's write was committed (have %v)", k, got)
		}
	}
	// The failing writers ran in the group and once more alone.
	if runs["writesThenFails"] != 2 || runs["panics"] != 2 {
		t.Errorf("runs = %v; want each failing writer twice (in the group, then alone)", runs)
	}
}

// TestGroupCommitConcurrentCounter: 64 concurrent read-modify-write
// Updates of one record lose no increment.
func TestGroupCommitConcurrentCounter(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"))
	defer db.Close()
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := db.Update(func(tx store.Tx) error {
				var n int
				if err := tx.Get(things, "n", &n); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				return tx.Put(things, "n", n+1)
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var n int
	if err := db.View(func(tx store.Tx) error { return tx.Get(things, "n", &n) }); err != nil || n != 64 {
		t.Fatalf("counter = %d, %v; want 64", n, err)
	}
}
