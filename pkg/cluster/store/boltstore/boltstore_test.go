package boltstore

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

const (
	things store.Bucket = "things"
	others store.Bucket = "others"
)

func open(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(path, Options{Buckets: []store.Bucket{things, others}})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestFailedUpdateChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db := open(t, path)
	buckets := []store.Bucket{things, others}
	if err := db.Update(func(tx store.Tx) error { return tx.Put(things, "a", map[string]int{"v": 1}) }); err != nil {
		t.Fatal(err)
	}
	before, _ := store.Snapshot(db, buckets)
	boom := errors.New("boom")
	err := db.Update(func(tx store.Tx) error {
		if err := tx.Put(things, "b", 2); err != nil {
			return err
		}
		if err := tx.Delete(things, "a"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	after, _ := store.Snapshot(db, buckets)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("failed update changed the store: %v -> %v", before, after)
	}
	var v map[string]int
	if err := db.View(func(tx store.Tx) error { return tx.Get(things, "missing", &v) }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get missing = %v, want ErrNotFound", err)
	}
	if err := db.View(func(tx store.Tx) error { return tx.Get("undeclared", "a", &v) }); err == nil {
		t.Fatal("Get from a bucket Open did not create succeeded")
	}
	db.Close()
	db = open(t, path)
	defer db.Close()
	reopened, _ := store.Snapshot(db, buckets)
	if reopened[things]["a"] != `{"v":1}` {
		t.Fatalf("after reopen: %v", reopened[things])
	}
}

// TestScan covers every way a range is bounded: prefix, From, Reverse, and
// ErrStopScan, with keys on both sides of the prefix.
func TestScan(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"))
	defer db.Close()
	err := db.Update(func(tx store.Tx) error {
		for _, k := range []string{"la", "lab/1", "lab/2", "lab/3", "lab2/1", "m", "\xff\xff"} {
			if err := tx.Put(things, k, 1); err != nil {
				return err
			}
		}
		return tx.Put(others, "lab/9", 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	scan := func(r store.Range, stopAfter int) []string {
		var keys []string
		err := db.View(func(tx store.Tx) error {
			return tx.Scan(things, r, func(k string, _ []byte) error {
				keys = append(keys, k)
				if len(keys) == stopAfter {
					return store.ErrStopScan
				}
				return nil
			})
		})
		if err != nil {
			t.Fatalf("scan %+v: %v", r, err)
		}
		return keys
	}
	cases := []struct {
		r         store.Range
		stopAfter int
		want      []string
	}{
		{store.Range{Prefix: "lab/"}, 0, []string{"lab/1", "lab/2", "lab/3"}},
		{store.Range{Prefix: "lab/", From: "lab/2"}, 0, []string{"lab/2", "lab/3"}},
		{store.Range{Prefix: "lab/", From: "a"}, 0, []string{"lab/1", "lab/2", "lab/3"}},
		{store.Range{Prefix: "lab/", From: "z"}, 0, nil},
		{store.Range{Prefix: "lab/", Reverse: true}, 0, []string{"lab/3", "lab/2", "lab/1"}},
		{store.Range{Prefix: "lab/", From: "lab/3", Reverse: true}, 0, []string{"lab/2", "lab/1"}},
		{store.Range{Prefix: "lab/", From: "z", Reverse: true}, 0, []string{"lab/3", "lab/2", "lab/1"}},
		{store.Range{Prefix: "lab/", From: "a", Reverse: true}, 0, nil},
		{store.Range{Prefix: "lab/", Reverse: true}, 2, []string{"lab/3", "lab/2"}},
		{store.Range{Prefix: "lab/"}, 1, []string{"lab/1"}},
		{store.Range{}, 0, []string{"la", "lab/1", "lab/2", "lab/3", "lab2/1", "m", "\xff\xff"}},
		{store.Range{Reverse: true}, 2, []string{"\xff\xff", "m"}},
		{store.Range{Prefix: "\xff", Reverse: true}, 0, []string{"\xff\xff"}},
		{store.Range{Prefix: "nothing"}, 0, nil},
	}
	for _, c := range cases {
		if got := scan(c.r, c.stopAfter); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Scan %+v (stop after %d) = %q, want %q", c.r, c.stopAfter, got, c.want)
		}
	}
}
