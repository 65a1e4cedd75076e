// Package boltstore is the embedded implementation of pkg/cluster/store: one
// bbolt file, a bbolt bucket per store.Bucket, bbolt's serializable
// transactions (one writer at a time, so an Update function runs once). It
// is the only package under pkg/cluster that imports bbolt; pkg/cluster opens
// it for the endpoint's records (cluster.db) and pkg/cluster/logstore for the
// log store (logs.db).
package boltstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// Options configure Open.
type Options struct {
	// Buckets are created when the file is opened; a transaction on a
	// bucket not listed fails.
	Buckets []store.Bucket
	// LockTimeout is how long Open waits for another process to release
	// the file; zero means 2 seconds.
	LockTimeout time.Duration
	// NoFreelistSync trades a slower open after a crash for cheaper
	// commits (the log store, which commits often).
	NoFreelistSync bool
}

// DB is the bbolt implementation of store.Store.
type DB struct {
	db      *bolt.DB
	updates *commitQueue
}

var _ store.Store = (*DB)(nil)

// Open opens (creating if needed) the bbolt file at path with mode 0600 and
// creates the buckets o lists.
func Open(path string, o Options) (*DB, error) {
	if o.LockTimeout <= 0 {
		o.LockTimeout = 2 * time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.LockTimeout, NoFreelistSync: o.NoFreelistSync})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: locked by another process for %v (is berth-cluster running on this data directory?): %w", path, o.LockTimeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range o.Buckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &DB{db: db, updates: &commitQueue{db: db}}, nil
}

// View runs fn in a read-only transaction.
func (d *DB) View(fn func(store.Tx) error) error {
	return d.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

// Update runs fn in a read-write transaction, committed only if fn returns
// nil, and returns once the commit is durable. Concurrent calls share
// transactions (group commit, see commitQueue), so fn may run more than
// once, on another caller's goroutine, after other callers' functions in
// the same transaction; what it hands out must come from its last run.
func (d *DB) Update(fn func(store.Tx) error) error {
	return d.updates.update(fn)
}

// Close closes the file.
func (d *DB) Close() error { return d.db.Close() }

type boltTx struct{ tx *bolt.Tx }

var _ store.Tx = boltTx{}

func (t boltTx) bucket(b store.Bucket) (*bolt.Bucket, error) {
	bk := t.tx.Bucket([]byte(b))
	if bk == nil {
		return nil, fmt.Errorf("bucket %s missing", b)
	}
	return bk, nil
}

func (t boltTx) Get(b store.Bucket, key string, v any) error {
	bk, err := t.bucket(b)
	if err != nil {
		return err
	}
	raw := bk.Get([]byte(key))
	if raw == nil {
		return store.ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", b, key, err)
	}
	return nil
}

func (t boltTx) Put(b store.Bucket, key string, v any) error {
	bk, err := t.bucket(b)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", b, key, err)
	}
	if err := bk.Put([]byte(key), raw); err != nil {
		return fmt.Errorf("put %s/%s: %w", b, key, err)
	}
	return nil
}

func (t boltTx) Delete(b store.Bucket, key string) error {
	bk, err := t.bucket(b)
	if err != nil {
		return err
	}
	if err := bk.Delete([]byte(key)); err != nil {
		return fmt.Errorf("delete %s/%s: %w", b, key, err)
	}
	return nil
}

func (t boltTx) Scan(b store.Bucket, r store.Range, fn func(key string, raw []byte) error) error {
	bk, err := t.bucket(b)
	if err != nil {
		return err
	}
	c := bk.Cursor()
	prefix := []byte(r.Prefix)
	var k, v []byte
	next := c.Next
	if r.Reverse {
		// Position on the highest key below the bound: From, or the end
		// of the prefix's keys, whichever comes first.
		next = c.Prev
		upper := prefixEnd(prefix)
		if r.From != "" && (upper == nil || bytes.Compare([]byte(r.From), upper) < 0) {
			upper = []byte(r.From)
		}
		if upper == nil {
			k, v = c.Last()
		} else if k, _ = c.Seek(upper); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
	} else {
		start := prefix
		if r.From > r.Prefix {
			start = []byte(r.From)
		}
		k, v = c.Seek(start)
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = next() {
		if err := fn(string(k), v); err != nil {
			if errors.Is(err, store.ErrStopScan) {
				return nil
			}
			return err
		}
	}
	return nil
}

// prefixEnd returns the smallest key greater than every key that starts
// with prefix, or nil when there is none (an empty prefix, or one of 0xff
// bytes only).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
