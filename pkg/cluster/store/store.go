// Package store is the cluster endpoint's persistence: one bbolt file under
// the data directory, typed buckets of JSON records, and one transaction per
// API operation, so a request that fails changes nothing. The interface is
// small so that a replicated store can replace bbolt later. It is imported by
// pkg/cluster and its api and auth subpackages.
package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bucket names one typed collection of records.
type Bucket string

// The buckets the endpoint uses. Keys are documented where records are written.
const (
	Clusters        Bucket = "clusters"
	TaskDefinitions Bucket = "task-definitions"
	Families        Bucket = "families"
	Instances       Bucket = "container-instances"
	Tasks           Bucket = "tasks"
	Keys            Bucket = "access-keys"
	Services        Bucket = "services"
)

// AllBuckets lists every bucket; they are created when the store opens.
func AllBuckets() []Bucket {
	return []Bucket{Clusters, TaskDefinitions, Families, Instances, Tasks, Keys, Services}
}

// ErrNotFound is returned by Tx.Get when the key does not exist.
var ErrNotFound = errors.New("record not found")

// Tx is one transaction over the buckets. Values are JSON-encoded records.
type Tx interface {
	// Get decodes the record at key into v, or returns ErrNotFound.
	Get(b Bucket, key string, v any) error
	// Put encodes v and stores it at key. Only in Update transactions.
	Put(b Bucket, key string, v any) error
	// Delete removes key; a missing key is not an error.
	Delete(b Bucket, key string) error
	// ForEach calls fn for every record whose key starts with prefix, in key
	// order; fn decodes raw itself when it needs the record.
	ForEach(b Bucket, prefix string, fn func(key string, raw []byte) error) error
}

// Store runs transactions. A function returning an error rolls its Update
// transaction back.
type Store interface {
	View(fn func(Tx) error) error
	Update(fn func(Tx) error) error
	Close() error
}

// DB is the bbolt implementation of Store.
type DB struct {
	db *bolt.DB
}

var _ Store = (*DB)(nil)

// Open opens (creating if needed) the bbolt file at path with mode 0600.
func Open(path string) (*DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: locked by another process for 2s (is berth-cluster running on this data directory?): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range AllBuckets() {
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
	return &DB{db: db}, nil
}

// View runs fn in a read-only transaction.
func (d *DB) View(fn func(Tx) error) error {
	return d.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

// Update runs fn in a read-write transaction, committed only if fn returns nil.
func (d *DB) Update(fn func(Tx) error) error {
	return d.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

// Close closes the file.
func (d *DB) Close() error { return d.db.Close() }

// Snapshot returns every record of every bucket, raw, keyed by bucket and
// key. Tests compare snapshots to prove that a failed request changed nothing.
func (d *DB) Snapshot() (map[Bucket]map[string]string, error) {
	out := make(map[Bucket]map[string]string)
	err := d.View(func(tx Tx) error {
		for _, b := range AllBuckets() {
			m := make(map[string]string)
			if err := tx.ForEach(b, "", func(k string, raw []byte) error {
				m[k] = string(raw)
				return nil
			}); err != nil {
				return err
			}
			out[b] = m
		}
		return nil
	})
	return out, err
}

type boltTx struct{ tx *bolt.Tx }

func (t boltTx) bucket(b Bucket) (*bolt.Bucket, error) {
	bk := t.tx.Bucket([]byte(b))
	if bk == nil {
		return nil, fmt.Errorf("bucket %s missing", b)
	}
	return bk, nil
}

func (t boltTx) Get(b Bucket, key string, v any) error {
	bk, err := t.bucket(b)
	if err != nil {
		return err
	}
	raw := bk.Get([]byte(key))
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", b, key, err)
	}
	return nil
}

func (t boltTx) Put(b Bucket, key string, v any) error {
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

func (t boltTx) Delete(b Bucket, key string) error {
	bk, err := t.bucket(b)
	if err != nil {
		return err
	}
	if err := bk.Delete([]byte(key)); err != nil {
		return fmt.Errorf("delete %s/%s: %w", b, key, err)
	}
	return nil
}

func (t boltTx) ForEach(b Bucket, prefix string, fn func(key string, raw []byte) error) error {
	bk, err := t.bucket(b)
	if err != nil {
		return err
	}
	c := bk.Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if err := fn(string(k), v); err != nil {
			return err
		}
	}
	return nil
}
