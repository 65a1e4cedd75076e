package store

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

func TestFailedUpdateChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx Tx) error { return tx.Put(Clusters, "a", map[string]int{"v": 1}) }); err != nil {
		t.Fatal(err)
	}
	before, _ := db.Snapshot()
	boom := errors.New("boom")
	err = db.Update(func(tx Tx) error {
		if err := tx.Put(Clusters, "b", 2); err != nil {
			return err
		}
		if err := tx.Delete(Clusters, "a"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	after, _ := db.Snapshot()
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("failed update changed the store: %v -> %v", before, after)
	}
	var v map[string]int
	if err := db.View(func(tx Tx) error { return tx.Get(Clusters, "missing", &v) }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing = %v, want ErrNotFound", err)
	}
	var keys []string
	db.Update(func(tx Tx) error {
		for _, k := range []string{"lab/1", "lab/2", "lab2/1", "la"} {
			tx.Put(Tasks, k, 1)
		}
		return tx.ForEach(Tasks, "lab/", func(k string, _ []byte) error { keys = append(keys, k); return nil })
	})
	if !reflect.DeepEqual(keys, []string{"lab/1", "lab/2"}) {
		t.Fatalf("ForEach prefix lab/ = %v", keys)
	}
	db.Close()
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reopened, _ := db.Snapshot()
	if reopened[Clusters]["a"] != `{"v":1}` {
		t.Fatalf("after reopen: %v", reopened[Clusters])
	}
}
