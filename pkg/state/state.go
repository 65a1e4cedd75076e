// Package state is the agent's persistence: it owns one bbolt database
// (<ECS_DATADIR>/berth.db) holding task records, the outbox of unsent state
// changes, host port allocations, the container instance identity,
// processed ACS message ids and the ACS sequence number.
//
// It stores and returns records; it holds no business rules. Task records
// are opaque JSON blobs owned by the engine (a task's network sandbox is
// part of its record; pkg/network keeps its own crash clean-up records
// under its run directory). Everything that must change together is
// written in one transaction: a task record and the state changes
// describing it go through the same transaction (DB.SaveTask, whose
// concurrent calls share one: group commit).
//
// pkg/agent opens the database (one per agent run), hands the *DB to the
// engine as its Store (SaveTask, DeleteTask, TaskRecords; the engine calls
// it directly) and to the network's port allocator as its PortStore
// (LoadPorts, SavePorts of container.PortAllocation); pkg/registration takes
// the *DB for the instance identity, the outbox and the ACS message ids; the
// agent's callers (cmd/agent, dev mode) read InstanceIdentity. Of Berth it
// imports pkg/api and pkg/container only (a rule in internal/layout).
package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the database's file name inside the data directory.
const FileName = "berth.db"

// SchemaVersion is the version of the layout this package writes. Open
// migrates older databases forward and refuses newer ones.
const SchemaVersion = 1

// Bucket names. They are part of the on-disk format.
const (
	bucketMeta     = "meta"
	bucketTasks    = "tasks"
	bucketOutbox   = "outbox"
	bucketPorts    = "ports"
	bucketMessages = "messages"
	// Databases of earlier builds also hold an empty "sandboxes"
	// bucket: nothing ever wrote to it, and nothing reads it.
)

// Keys in the meta bucket.
const (
	keySchema      = "schemaVersion"
	keyCreatedAt   = "createdAt"
	keyOutboxCount = "outboxCount"
	keyInstance    = "instance"
	keyACSSeqNum   = "acsSeqNum"
)

func allBuckets() []string {
	return []string{bucketMeta, bucketTasks, bucketOutbox, bucketPorts, bucketMessages}
}

var (
	// ErrNotFound is returned (wrapped) when a record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrSchemaTooNew is returned by Open for a database written by a newer
	// Berth; this binary must not touch it.
	ErrSchemaTooNew = errors.New("state database schema is newer than this agent supports")
	// ErrLocked is returned by Open when another process holds the
	// database (typically a second agent on the same data directory).
	ErrLocked = errors.New("state database is locked by another process")
)

// Migration moves a database from schema version From to From+1. It runs
// inside the transaction that opens the database, so a failed migration
// leaves the file as it was.
type Migration struct {
	From  int
	Apply func(tx *bolt.Tx) error
}

// migrations lists the schema migrations, oldest first. Version 1 is the
// first schema, so there are none yet; a change of layout adds an entry here
// and raises SchemaVersion.
func migrations() []Migration { return nil }

// Options configures Open. The zero value is usable.
type Options struct {
	// LockTimeout bounds the wait for another process to release the file
	// lock; after it Open fails with ErrLocked. Zero means 5 seconds.
	LockTimeout time.Duration

	// Test hooks: the schema version to write and the migrations to run.
	schemaVersion int
	migrations    []Migration
}

// DB is an open state database. It is safe for concurrent use: any number
// of View transactions run alongside at most one Update.
type DB struct {
	bolt  *bolt.DB
	path  string
	group groupQueue // SaveTask's group commit
}

// OpenDir opens (creating if needed) <dataDir>/berth.db.
func OpenDir(dataDir string, opts Options) (*DB, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("open state: create data directory %s: %w", dataDir, err)
	}
	return Open(filepath.Join(dataDir, FileName), opts)
}

// Open opens (creating if needed) the state database at path, checks its
// schema version, runs pending migrations and creates missing buckets.
func Open(path string, opts Options) (*DB, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 5 * time.Second
	}
	want := SchemaVersion
	migs := migrations()
	if opts.schemaVersion != 0 {
		want, migs = opts.schemaVersion, opts.migrations
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open state %s: %w (is another agent using this data directory?)", path, ErrLocked)
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	db := &DB{bolt: b, path: path}
	if err := b.Update(func(tx *bolt.Tx) error { return prepare(tx, want, migs) }); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return db, nil
}

// prepare initialises a new database or brings an existing one to version
// want.
func prepare(tx *bolt.Tx, want int, migs []Migration) error {
	meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
	if err != nil {
		return fmt.Errorf("create meta bucket: %w", err)
	}
	have := want
	if raw := meta.Get([]byte(keySchema)); raw != nil {
		have, err = strconv.Atoi(string(raw))
		if err != nil {
			return fmt.Errorf("read schema version %q: %w", raw, err)
		}
	} else {
		if err := meta.Put([]byte(keyCreatedAt), []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
			return err
		}
	}
	if have > want {
		return fmt.Errorf("%w: the database has schema version %d, this agent supports up to %d; run a newer agent or move the data directory aside",
			ErrSchemaTooNew, have, want)
	}
	for have < want {
		var m *Migration
		for i := range migs {
			if migs[i].From == have {
				m = &migs[i]
				break
			}
		}
		if m == nil {
			return fmt.Errorf("no migration from schema version %d to %d", have, have+1)
		}
		if err := m.Apply(tx); err != nil {
			return fmt.Errorf("migrate schema %d to %d: %w", have, have+1, err)
		}
		have++
	}
	if err := meta.Put([]byte(keySchema), []byte(strconv.Itoa(have))); err != nil {
		return fmt.Errorf("write schema version: %w", err)
	}
	for _, name := range allBuckets() {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close closes the database. Transactions still running finish first.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close state %s: %w", db.path, err)
	}
	return nil
}

// SchemaVersion returns the schema version recorded in the database.
func (db *DB) SchemaVersion() (int, error) {
	var v int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket([]byte(bucketMeta)).Get([]byte(keySchema))
		var err error
		v, err = strconv.Atoi(string(raw))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// Update runs fn in a read-write transaction. Everything fn writes is
// committed together when it returns nil and discarded when it returns an
// error (which Update returns unchanged). fn must not keep tx.
func (db *DB) Update(fn func(tx *Tx) error) error {
	return db.bolt.Update(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// View runs fn in a read-only transaction: a consistent snapshot that
// concurrent writers do not change. fn must not keep tx or slices it got
// from it beyond the call; the records returned by Tx methods are copies
// and may be kept.
func (db *DB) View(fn func(tx *Tx) error) error {
	return db.bolt.View(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// Tx is one transaction; see DB.Update and DB.View. Writing methods fail
// in a View transaction.
type Tx struct {
	tx *bolt.Tx
}

func (tx *Tx) bucket(name string) *bolt.Bucket { return tx.tx.Bucket([]byte(name)) }

func u64key(n uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, n)
	return k
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
