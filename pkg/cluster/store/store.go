// Package store is the cluster endpoint's persistence interface: named
// buckets of JSON records, read in View and written in Update transactions,
// one transaction per API operation, so a request that fails changes
// nothing. It holds no schema (the buckets and keys of the ECS records are
// pkg/cluster/records'; the access keys are pkg/cluster/auth's; the log
// store's are pkg/cluster/logstore's) and no storage engine: boltstore is the
// embedded implementation (one bbolt file, the default and dev mode's);
// etcdstore is the replicated one (etcd transactions, optimistic and
// retried), which also implements Watcher so that every replica learns of
// the changes the others commit.
//
// Every package of the endpoint that keeps state imports it; only
// pkg/cluster (which opens the stores) imports an implementation.
package store

import (
	"context"
	"errors"
	"fmt"
)

// Bucket names one collection of records. Keys within a bucket are ordered
// bytewise.
type Bucket string

// ErrNotFound is returned by Tx.Get when the key does not exist.
var ErrNotFound = errors.New("record not found")

// ErrUnavailable is wrapped by a replicated store's errors when it cannot
// serve a transaction because its own cluster is down: etcd has no quorum
// or no member answers. Nothing may have been written; the endpoint
// answers such requests with a 503 that says so.
var ErrUnavailable = errors.New("the cluster's store is unavailable")

// StaleReader is the optional interface of a replicated store that, when
// it cannot reach a quorum, still answers View transactions from what one
// member holds, which may be behind: Stale reports whether the last View
// was served so.
type StaleReader interface {
	Stale() bool
}

// ErrStopScan, returned by a Scan or ForEach callback, ends the walk early;
// the walk then returns nil.
var ErrStopScan = errors.New("stop scan")

// Range selects the keys a Scan visits: those that start with Prefix, from
// From on (forward: keys >= From; Reverse: keys < From, from the highest
// down). An empty From means from the first (or, Reverse, the last) key
// with Prefix.
type Range struct {
	Prefix  string
	From    string
	Reverse bool
}

// Tx is one transaction over the buckets. Values are JSON-encoded records.
// Callbacks of Scan must not write in the same transaction (collect first,
// write after the walk), and the raw bytes they get are valid only during
// the call.
type Tx interface {
	// Get decodes the record at key into v, or returns ErrNotFound.
	Get(b Bucket, key string, v any) error
	// Put encodes v and stores it at key. Only in Update transactions.
	Put(b Bucket, key string, v any) error
	// Delete removes key; a missing key is not an error.
	Delete(b Bucket, key string) error
	// Scan calls fn for every record in r, in key order (descending when
	// r.Reverse); fn decodes raw itself when it needs the record.
	Scan(b Bucket, r Range, fn func(key string, raw []byte) error) error
}

// Store runs transactions. A function returning an error rolls its Update
// transaction back. An implementation may run an Update function more than
// once (an optimistic store retries on conflict), so the function must
// derive everything it hands out from what it reads in that run.
type Store interface {
	View(fn func(Tx) error) error
	Update(fn func(Tx) error) error
	Close() error
}

// Change is one committed write to a record, as a Watcher reports it.
type Change struct {
	Bucket Bucket
	Key    string
	// Prev is the record before the write (nil: it was created); Value the
	// record after it (nil: it was deleted).
	Prev, Value []byte
	// Lost, set alone, says that changes were missed (the store no longer
	// holds their history): the consumer must re-read what it tracks.
	Lost bool
}

// Watcher is the optional interface of a store that other processes write
// too (etcdstore): Watch calls fn, in commit order, for every change to the
// records of buckets committed after Watch was called, by any writer, until
// ctx ends; it then returns nil. An embedded store has no other writer and
// does not implement it: its writers tell their consumers directly.
type Watcher interface {
	Watch(ctx context.Context, buckets []Bucket, fn func(Change)) error
}

// ForEach calls fn for every record of b whose key starts with prefix, in
// key order.
func ForEach(tx Tx, b Bucket, prefix string, fn func(key string, raw []byte) error) error {
	return tx.Scan(b, Range{Prefix: prefix}, fn)
}

// Snapshot returns every record of the buckets, raw, keyed by bucket and
// key. Tests compare snapshots to prove that a failed request changed
// nothing.
func Snapshot(st Store, buckets []Bucket) (map[Bucket]map[string]string, error) {
	out := make(map[Bucket]map[string]string)
	err := st.View(func(tx Tx) error {
		for _, b := range buckets {
			m := make(map[string]string)
			if err := ForEach(tx, b, "", func(k string, raw []byte) error {
				m[k] = string(raw)
				return nil
			}); err != nil {
				return fmt.Errorf("snapshot %s: %w", b, err)
			}
			out[b] = m
		}
		return nil
	})
	return out, err
}
