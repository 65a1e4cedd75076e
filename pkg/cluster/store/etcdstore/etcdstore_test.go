package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
	"github.com/berth-dev/berth/pkg/cluster/store/etcdstore"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const (
	things store.Bucket = "things"
	others store.Bucket = "others"
)

// TestEtcdStore runs every case against one real three-member etcd
// cluster, each case under its own prefix.
func TestEtcdStore(t *testing.T) {
	etcd := testenv.Etcd(t, 3)
	open := func(t *testing.T, prefix string, maxOps int) *etcdstore.Store {
		t.Helper()
		s, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: etcd.Endpoints,
			Prefix: "/test/" + prefix, MaxTxnOps: maxOps})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("SameAnswersAsBolt", func(t *testing.T) { sameAnswersAsBolt(t, open(t, "same", testenv.EtcdMaxTxnOps)) })
	t.Run("FailedUpdateWritesNothing", func(t *testing.T) { failedUpdateWritesNothing(t, open(t, "failed", 0)) })
	t.Run("NoLostUpdateAcrossReplicas", func(t *testing.T) {
		noLostUpdate(t, open(t, "counter", 0), open(t, "counter", 0))
	})
	t.Run("ScanSeesInsertsAndDeletes", func(t *testing.T) {
		scanConflicts(t, open(t, "phantom", 0), open(t, "phantom", 0))
	})
	t.Run("LargeTransactions", func(t *testing.T) {
		largeTransactions(t, open(t, "large", testenv.EtcdMaxTxnOps), open(t, "large", 64),
			open(t, "large", 4*testenv.EtcdMaxTxnOps))
	})
	t.Run("CompactedSnapshotIsReadAnew", func(t *testing.T) {
		compacted(t, etcd.Endpoints, open(t, "compact", 0), open(t, "compact", 0))
	})
	t.Run("Watch", func(t *testing.T) { watch(t, open(t, "watch", 0), open(t, "watch", 0)) })
	t.Run("Lead", func(t *testing.T) { lead(t, open(t, "lead", 0), open(t, "lead", 0)) })
	t.Run("PrefixesAreSeparate", func(t *testing.T) {
		a, b := open(t, "sep-a", 0), open(t, "sep-a-b", 0)
		put(t, a, things, "k", 1)
		if got := keys(t, b, things, store.Range{}); len(got) != 0 {
			t.Fatalf("prefix sep-a-b sees %v written under sep-a", got)
		}
	})
}

func put(t *testing.T, s store.Store, b store.Bucket, k string, v any) {
	t.Helper()
	if err := s.Update(func(tx store.Tx) error { return tx.Put(b, k, v) }); err != nil {
		t.Fatal(err)
	}
}

func keys(t *testing.T, s store.Store, b store.Bucket, r store.Range) []string {
	t.Helper()
	var out []string
	if err := s.View(func(tx store.Tx) error {
		return tx.Scan(b, r, func(k string, _ []byte) error { out = append(out, k); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameAnswersAsBolt fills bbolt and etcd alike (more records than one
// range page) and compares every kind of Scan, inside and outside an
// Update that has written into the range.
func sameAnswersAsBolt(t *testing.T, es *etcdstore.Store) {
	bs, err := boltstore.Open(filepath.Join(t.TempDir(), "s.db"), boltstore.Options{Buckets: []store.Bucket{things, others}})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	fill := func(tx store.Tx) error {
		for i := 0; i < 600; i++ {
			if err := tx.Put(things, fmt.Sprintf("c%d/%04d", i%3, i), i); err != nil {
				return err
			}
		}
		return tx.Put(others, "c1/0001", "other bucket")
	}
	for _, s := range []store.Store{bs, es} {
		if err := s.Update(fill); err != nil {
			t.Fatal(err)
		}
	}
	ranges := []store.Range{
		{}, {Prefix: "c1/"}, {Prefix: "c1/", From: "c1/0300"}, {Prefix: "c1/", Reverse: true},
		{Prefix: "c1/", From: "c1/0300", Reverse: true}, {Prefix: "c2/", From: "c9", Reverse: true},
		{From: "c1/0598"}, {Prefix: "nothing"},
	}
	scan := func(s store.Store, write bool, r store.Range) ([]string, error) {
		var out []string
		run := s.View
		if write {
			run = s.Update
		}
		err := run(func(tx store.Tx) error {
			out = nil
			if write {
				// Own writes: a new key, a changed one, a deleted one.
				if err := tx.Put(things, "c1/0302x", "new"); err != nil {
					return err
				}
				if err := tx.Put(things, "c1/0598", "changed"); err != nil {
					return err
				}
				if err := tx.Delete(things, "c1/0301"); err != nil {
					return err
				}
			}
			n := 0
			err := tx.Scan(things, r, func(k string, raw []byte) error {
				out = append(out, k+"="+string(raw))
				if n++; n == 400 {
					return store.ErrStopScan
				}
				return nil
			})
			if err != nil {
				return err
			}
			return errors.New("roll back")
		})
		if err != nil && err.Error() != "roll back" {
			return nil, err
		}
		return out, nil
	}
	for _, write := range []bool{false, true} {
		for _, r := range ranges {
			want, err := scan(bs, write, r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := scan(es, write, r)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Scan %+v (in update: %v): etcd gave %d records %.3q..., bbolt %d %.3q...", r, write, len(got), got, len(want), want)
			}
		}
	}
}

func failedUpdateWritesNothing(t *testing.T, s *etcdstore.Store) {
	put(t, s, things, "a", 1)
	before, err := store.Snapshot(s, []store.Bucket{things, others})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err = s.Update(func(tx store.Tx) error {
		if err := tx.Put(things, "b", 2); err != nil {
			return err
		}
		if err := tx.Delete(things, "a"); err != nil {
			return err
		}
		var v int
		if err := tx.Get(things, "a", &v); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("Get of a key deleted in this transaction = %v, want ErrNotFound", err)
		}
		if err := tx.Get(things, "b", &v); err != nil || v != 2 {
			return fmt.Errorf("Get of a key put in this transaction = %d, %v", v, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	after, _ := store.Snapshot(s, []store.Bucket{things, others})
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("failed update changed the store: %v -> %v", before, after)
	}
	if err := s.View(func(tx store.Tx) error { return tx.Put(things, "c", 1) }); err == nil {
		t.Fatal("Put in a View succeeded")
	}
}

// noLostUpdate increments one counter from two stores (two replicas) at
// once: every increment must count.
func noLostUpdate(t *testing.T, a, b *etcdstore.Store) {
	const workers, each = 8, 25
	var runs atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := s.Update(func(tx store.Tx) error {
					runs.Add(1)
					var n int
					if err := tx.Get(things, "counter", &n); err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
					return tx.Put(things, "counter", n+1)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var n int
	if err := a.View(func(tx store.Tx) error { return tx.Get(things, "counter", &n) }); err != nil {
		t.Fatal(err)
	}
	if n != workers*each {
		t.Fatalf("counter = %d after %d increments (%d runs): updates were lost", n, workers*each, runs.Load())
	}
	t.Logf("%d increments took %d runs of the update function", n, runs.Load())
}

// scanConflicts: a transaction that decided from a Scan must not commit
// when another inserted into, or deleted from, the scanned range since.
func scanConflicts(t *testing.T, a, b *etcdstore.Store) {
	// At most one "slot" record may exist: twenty writers on two stores
	// each add one if the scan finds none.
	var wg sync.WaitGroup
	for w := 0; w < 20; w++ {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Update(func(tx store.Tx) error {
				n := 0
				if err := store.ForEach(tx, things, "slot/", func(string, []byte) error { n++; return nil }); err != nil {
					return err
				}
				if n > 0 {
					return nil
				}
				return tx.Put(things, fmt.Sprintf("slot/%02d", w), w)
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := keys(t, a, things, store.Range{Prefix: "slot/"}); len(got) != 1 {
		t.Fatalf("slots = %v, want exactly one: a scan missed a concurrent insert", got)
	}

	// A deletion in the scanned range, between the scan and the commit,
	// makes the transaction run again.
	put(t, a, things, "sum/1", 1)
	put(t, a, things, "sum/2", 2)
	runs := 0
	err := a.Update(func(tx store.Tx) error {
		runs++
		total := 0
		if err := store.ForEach(tx, things, "sum/", func(_ string, raw []byte) error {
			total += int(raw[0] - '0')
			return nil
		}); err != nil {
			return err
		}
		if runs == 1 {
			if err := b.Update(func(tx store.Tx) error { return tx.Delete(things, "sum/2") }); err != nil {
				return err
			}
		}
		return tx.Put(others, "total", total)
	})
	if err != nil {
		t.Fatal(err)
	}
	var total int
	if err := a.View(func(tx store.Tx) error { return tx.Get(others, "total", &total) }); err != nil {
		t.Fatal(err)
	}
	if runs != 2 || total != 1 {
		t.Fatalf("after a concurrent delete: %d runs, total %d; want 2 runs and total 1", runs, total)
	}
}

// largeTransactions: writes past etcd's limit fail clearly and write
// nothing; many reads are merged into bucket comparisons and still see
// conflicts.
func largeTransactions(t *testing.T, s, small, overclaimed *etcdstore.Store) {
	many := func(n int) func(tx store.Tx) error {
		return func(tx store.Tx) error {
			for i := 0; i < n; i++ {
				if err := tx.Put(things, fmt.Sprintf("k%05d", i), strings.Repeat("x", 200)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if err := s.Update(many(1000)); err != nil {
		t.Fatalf("1000 writes with --max-txn-ops %d: %v", testenv.EtcdMaxTxnOps, err)
	}
	if got := len(keys(t, s, things, store.Range{})); got != 1000 {
		t.Fatalf("%d records after 1000 writes", got)
	}
	// A store told etcd allows 64 refuses 100 writes before sending them.
	err := small.Update(func(tx store.Tx) error {
		if err := tx.Delete(things, "k00000"); err != nil {
			return err
		}
		return many(100)(tx)
	})
	if !errors.Is(err, etcdstore.ErrTxnTooLarge) || !strings.Contains(err.Error(), "--max-txn-ops") {
		t.Fatalf("100 writes with max_txn_ops 64: %v, want ErrTxnTooLarge naming --max-txn-ops", err)
	}
	// A store that claims more than etcd allows gets etcd's refusal,
	// which names the flag too.
	err = overclaimed.Update(func(tx store.Tx) error { return many(testenv.EtcdMaxTxnOps + 10)(tx) })
	if err == nil || !strings.Contains(err.Error(), "--max-txn-ops") {
		t.Fatalf("%d writes against --max-txn-ops %d: %v, want etcd's refusal naming --max-txn-ops", testenv.EtcdMaxTxnOps+10, testenv.EtcdMaxTxnOps, err)
	}
	if got := len(keys(t, s, things, store.Range{})); got != 1000 {
		t.Fatalf("%d records after refused transactions, want 1000 (nothing half-written)", got)
	}
	// 300 Gets exceed the 64 comparisons small may send: they are merged
	// into one bucket comparison, which still catches a concurrent write.
	runs := 0
	err = small.Update(func(tx store.Tx) error {
		runs++
		var v string
		for i := 0; i < 300; i++ {
			if err := tx.Get(things, fmt.Sprintf("k%05d", i), &v); err != nil {
				return err
			}
		}
		if runs == 1 {
			put(t, s, things, "k00299", "changed")
		}
		return tx.Put(others, "read-300", runs)
	})
	if err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Fatalf("300 reads, one changed before the commit: %d runs, want 2", runs)
	}
}

// compacted: a View whose snapshot etcd compacts away between two reads
// runs again on a new snapshot instead of failing.
func compacted(t *testing.T, endpoints []string, a, b *etcdstore.Store) {
	put(t, a, things, "k", 1)
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	runs := 0
	var seen []string
	err = a.View(func(tx store.Tx) error {
		runs++
		var v int
		if err := tx.Get(things, "k", &v); err != nil {
			return err
		}
		if runs == 1 {
			put(t, b, things, "k2", 2)
			resp, err := cli.Get(context.Background(), "/")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cli.Compact(context.Background(), resp.Header.Revision); err != nil {
				t.Fatal(err)
			}
		}
		seen = nil
		return tx.Scan(things, store.Range{}, func(k string, _ []byte) error { seen = append(seen, k); return nil })
	})
	if err != nil || runs != 2 || !reflect.DeepEqual(seen, []string{"k", "k2"}) {
		t.Fatalf("View across a compaction: %v after %d runs, saw %v; want 2 runs seeing k, k2", err, runs, seen)
	}
}

func watch(t *testing.T, a, b *etcdstore.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan store.Change, 16)
	done := make(chan error, 1)
	go func() {
		done <- a.Watch(ctx, []store.Bucket{things}, func(c store.Change) { changes <- c })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// The watch starts asynchronously: write until the first change shows.
	var first store.Change
	for i := 0; ; i++ {
		put(t, b, others, "ignored", i)
		put(t, b, things, "w", "v1")
		select {
		case first = <-changes:
		case <-time.After(200 * time.Millisecond):
			if i < 20 {
				continue
			}
			t.Fatal("no change seen in 4s")
		}
		break
	}
	if first.Bucket != things || first.Key != "w" || string(first.Value) != `"v1"` {
		t.Fatalf("first change = %+v", first)
	}
	put(t, b, things, "w", "v2")
	if err := b.Update(func(tx store.Tx) error { return tx.Delete(things, "w") }); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 2 {
		select {
		case c := <-changes:
			if c.Key == "w" {
				got = append(got, fmt.Sprintf("%s->%s", c.Prev, c.Value))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("changes seen: %v", got)
		}
	}
	if want := []string{`"v1"->"v2"`, `"v2"->`}; !reflect.DeepEqual(got, want) {
		t.Fatalf("changes = %v, want %v", got, want)
	}
}

// lead: one of two replicas leads; when its store dies without resigning
// (as a killed process does), the other leads once the lease has expired.
func lead(t *testing.T, a, b *etcdstore.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leading := make(chan string, 4)
	run := func(s *etcdstore.Store, id string) chan error {
		done := make(chan error, 1)
		go func() {
			done <- s.Lead(ctx, etcdstore.LeadOptions{ID: id, LeaseTTL: 2 * time.Second}, func(lctx context.Context) error {
				leading <- id
				<-lctx.Done()
				return nil
			})
		}()
		return done
	}
	doneA := run(a, "a")
	if id := <-leading; id != "a" {
		t.Fatalf("first leader = %s", id)
	}
	doneB := run(b, "b")
	waitFor(t, func() bool { r, _ := a.Replicas(); return len(r) == 2 })
	if l, err := b.Leader(); err != nil || l != "a" {
		t.Fatalf("Leader() = %q, %v; want a", l, err)
	}
	select {
	case id := <-leading:
		t.Fatalf("%s leads while a does", id)
	case <-time.After(300 * time.Millisecond):
	}
	killed := time.Now()
	a.Close() // no resignation: the lease must expire
	select {
	case id := <-leading:
		if id != "b" {
			t.Fatalf("leader after a died = %s", id)
		}
		t.Logf("b took over %v after a died (lease 2s)", time.Since(killed).Round(10*time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("b did not take over within 10s")
	}
	if <-doneA == nil {
		t.Error("a's Lead returned nil after its store closed; want an error")
	}
	waitFor(t, func() bool { r, _ := b.Replicas(); return reflect.DeepEqual(r, []string{"b"}) })
	cancel()
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
