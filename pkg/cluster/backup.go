package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/console"
	"github.com/berth-dev/berth/pkg/cluster/roles"
	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
)

// Backups, restores and migrations of a cluster's state (`berth-cluster
// backup`, `restore` and `migrate`).
//
// A backup file is JSON lines: a header naming the format and its
// version, one line per record ({"bucket","key","value"}, the value the
// record's JSON as stored), and a trailer with the number of records and
// the SHA-256 of every byte before it. The master key and the
// credentials-id key travel as records of the cluster-keys bucket, sealed
// under a key-encryption key (an etcd cluster's kek_file, or --kek for a
// bbolt data directory), never in clear. The agents' session records are
// not copied (they name replicas of the source), and restored instances
// show agentConnected false until their agents connect again.

// BackupFormat and BackupVersion are the header of the backup files this
// version writes and reads.
const (
	BackupFormat  = "berth-cluster-backup"
	BackupVersion = 1
)

// StoreLocation names a cluster's store: a bbolt data directory
// (cluster.db, master.key, roles-id.key) or, with Etcd set, a prefix of an
// etcd cluster.
type StoreLocation struct {
	DataDir string
	Etcd    *EtcdOptions
}

func (l StoreLocation) String() string {
	if l.Etcd != nil {
		return fmt.Sprintf("etcd %v prefix %s", l.Etcd.Endpoints, l.Etcd.Prefix)
	}
	return "bbolt " + filepath.Join(l.DataDir, StoreFile)
}

// Counts are the number of records per bucket.
type Counts map[store.Bucket]int

// Total is the number of records in every bucket.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// ErrStoreNotEmpty is returned by Restore and Migrate into a store that
// holds records, unless told to replace them.
var ErrStoreNotEmpty = errors.New("destination store is not empty")

// backupBuckets are the buckets a backup holds: every bucket of the
// endpoint but the agents' and the console's sessions.
func backupBuckets() []store.Bucket {
	var out []store.Bucket
	for _, b := range Buckets() {
		if b != acs.SessionsBucket && !slices.Contains(console.Buckets(), b) {
			out = append(out, b)
		}
	}
	return out
}

// state is a cluster's state in memory: its records in key order and its
// keys in clear.
type state struct {
	records map[store.Bucket][]record
	// keys are the shared keys by name: "master" and, once roles were
	// used, "credentials-id".
	keys map[string][]byte
}

type record struct {
	Key   string
	Value json.RawMessage
}

func (s *state) counts() Counts {
	c := Counts{}
	for b, rs := range s.records {
		c[b] = len(rs)
	}
	return c
}

// BackupOptions configure Backup.
type BackupOptions struct {
	// KEKFile seals the keys in the file. For etcd it defaults to the
	// cluster's kek_file; a bbolt data directory needs one.
	KEKFile string
	Now     time.Time
}

// Backup writes the state of the store at loc to w and returns what it
// wrote.
func Backup(ctx context.Context, loc StoreLocation, w io.Writer, o BackupOptions) (Counts, error) {
	kekFile := o.KEKFile
	if kekFile == "" && loc.Etcd != nil {
		kekFile = loc.Etcd.KEKFile
	}
	if kekFile == "" {
		return nil, errors.New("backup: --kek FILE is required for a bbolt data directory: it seals master.key and roles-id.key in the backup (32 bytes, mode 0600, as an etcd cluster's kek_file)")
	}
	kek, err := loadKEK(kekFile)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	st, err := readState(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	source := "bbolt"
	if loc.Etcd != nil {
		source = "etcd"
	}
	if err := writeBackup(w, st, kek, source, o.Now); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return st.counts(), nil
}

type backupHeader struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Source  string    `json:"source"`
}

type backupLine struct {
	Bucket store.Bucket    `json:"bucket"`
	Key    string          `json:"key"`
	Value  json.RawMessage `json:"value"`
}

type backupTrailer struct {
	End     bool   `json:"end"`
	Records int    `json:"records"`
	SHA256  string `json:"sha256"`
}

func writeBackup(w io.Writer, st *state, kek cipher.AEAD, source string, now time.Time) error {
	h := sha256.New()
	bw := bufio.NewWriter(w)
	n := 0
	line := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b = append(b, '\n')
		h.Write(b)
		_, err = bw.Write(b)
		return err
	}
	if err := line(backupHeader{Format: BackupFormat, Version: BackupVersion, Created: now.UTC(), Source: source}); err != nil {
		return err
	}
	for _, b := range slices.Sorted(maps.Keys(st.records)) {
		for _, r := range st.records[b] {
			if err := line(backupLine{Bucket: b, Key: r.Key, Value: r.Value}); err != nil {
				return err
			}
			n++
		}
	}
	for _, name := range slices.Sorted(maps.Keys(st.keys)) {
		sealed, err := seal(kek, name, st.keys[name])
		if err != nil {
			return err
		}
		raw, err := json.Marshal(sealed)
		if err != nil {
			return err
		}
		if err := line(backupLine{Bucket: sharedKeysBucket, Key: name, Value: raw}); err != nil {
			return err
		}
		n++
	}
	trailer, err := json.Marshal(backupTrailer{End: true, Records: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	if err != nil {
		return err
	}
	if _, err := bw.Write(append(trailer, '\n')); err != nil {
		return err
	}
	return bw.Flush()
}

// readBackup reads and checks a whole backup file (format, version,
// checksum, record count) before anything is written anywhere.
func readBackup(r io.Reader, kek cipher.AEAD) (*state, error) {
	br := bufio.NewReader(r)
	h := sha256.New()
	st := &state{records: map[store.Bucket][]record{}, keys: map[string][]byte{}}
	known := map[store.Bucket]bool{sharedKeysBucket: true}
	for _, b := range backupBuckets() {
		known[b] = true
	}
	var header backupHeader
	n, lineNo := 0, 0
	for {
		b, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(b) == 0 {
				return nil, errors.New("backup file ends without its trailer: it is truncated")
			}
			return nil, fmt.Errorf("backup file line %d: truncated", lineNo+1)
		}
		if err != nil {
			return nil, fmt.Errorf("read backup: %w", err)
		}
		lineNo++
		if lineNo == 1 {
			if err := json.Unmarshal(b, &header); err != nil || header.Format != BackupFormat {
				return nil, fmt.Errorf("not a berth-cluster backup (line 1 should name format %q)", BackupFormat)
			}
			if header.Version != BackupVersion {
				return nil, fmt.Errorf("backup format version %d: this berth-cluster reads version %d", header.Version, BackupVersion)
			}
			h.Write(b)
			continue
		}
		var tr backupTrailer
		if json.Unmarshal(b, &tr) == nil && tr.End {
			if sum := hex.EncodeToString(h.Sum(nil)); sum != tr.SHA256 {
				return nil, fmt.Errorf("backup checksum mismatch: the file says %s, its content hashes to %s (the file is damaged)", tr.SHA256, sum)
			}
			if tr.Records != n {
				return nil, fmt.Errorf("backup holds %d records, its trailer says %d", n, tr.Records)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				return nil, errors.New("backup file has data after its trailer")
			}
			return st, nil
		}
		h.Write(b)
		var l backupLine
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("backup file line %d: %w", lineNo, err)
		}
		if !known[l.Bucket] {
			return nil, fmt.Errorf("backup file line %d: unknown bucket %q", lineNo, l.Bucket)
		}
		n++
		if l.Bucket == sharedKeysBucket {
			var sk sealedKey
			if err := json.Unmarshal(l.Value, &sk); err != nil {
				return nil, fmt.Errorf("backup file line %d: %w", lineNo, err)
			}
			key, err := unseal(kek, l.Key, sk)
			if err != nil {
				return nil, fmt.Errorf("backup's %s key: %w (give the key-encryption key the backup was made with: --kek)", l.Key, err)
			}
			st.keys[l.Key] = key
			continue
		}
		st.records[l.Bucket] = append(st.records[l.Bucket], record{Key: l.Key, Value: l.Value})
	}
}

// RestoreOptions configure Restore and Migrate.
type RestoreOptions struct {
	// KEKFile opens the keys of a backup file. For etcd it defaults to the
	// destination's kek_file; into a bbolt data directory it is needed.
	KEKFile string
	// Replace lets the destination hold records, which are deleted first;
	// without it a store that holds any is refused (ErrStoreNotEmpty).
	Replace bool
}

// Restore writes the backup in r into the store at loc, offline, then
// reads it back and checks every bucket's records against the backup.
func Restore(ctx context.Context, loc StoreLocation, r io.Reader, o RestoreOptions) (Counts, error) {
	kekFile := o.KEKFile
	if kekFile == "" && loc.Etcd != nil {
		kekFile = loc.Etcd.KEKFile
	}
	if kekFile == "" {
		return nil, errors.New("restore: --kek FILE is required: the key-encryption key the backup's keys are sealed under")
	}
	kek, err := loadKEK(kekFile)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	st, err := readBackup(r, kek)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := writeState(ctx, loc, st, o.Replace); err != nil {
		return nil, fmt.Errorf("restore into %s: %w", loc, err)
	}
	return st.counts(), nil
}

// Migrate copies the state of the store at from into the store at to
// (offline: no endpoint may serve either meanwhile), keys included, and
// checks the copy.
func Migrate(ctx context.Context, from, to StoreLocation, replace bool) (Counts, error) {
	st, err := readState(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("migrate: read %s: %w", from, err)
	}
	if err := writeState(ctx, to, st, replace); err != nil {
		return nil, fmt.Errorf("migrate into %s: %w", to, err)
	}
	return st.counts(), nil
}

// openLocation opens the store at loc without creating keys; for etcd it
// also returns its KEK.
func openLocation(ctx context.Context, loc StoreLocation, create bool) (store.Store, cipher.AEAD, error) {
	if loc.Etcd != nil {
		kek, err := loadKEK(loc.Etcd.KEKFile)
		if err != nil {
			return nil, nil, err
		}
		st, err := openEtcdStore(ctx, loc.Etcd, nil)
		if err != nil {
			return nil, nil, err
		}
		return st, kek, nil
	}
	if loc.DataDir == "" {
		return nil, nil, errors.New("data directory is required")
	}
	path := filepath.Join(loc.DataDir, StoreFile)
	if !create {
		if _, err := os.Stat(path); err != nil {
			return nil, nil, fmt.Errorf("no cluster store: %w", err)
		}
	} else if err := os.MkdirAll(loc.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data directory: %w", err)
	}
	db, err := boltstore.Open(path, boltstore.Options{Buckets: Buckets()})
	if err != nil {
		return nil, nil, err
	}
	return db, nil, nil
}

// readState reads every backed-up bucket in one snapshot, and the keys.
func readState(ctx context.Context, loc StoreLocation) (*state, error) {
	db, kek, err := openLocation(ctx, loc, false)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st := &state{keys: map[string][]byte{}}
	buckets := backupBuckets()
	if kek != nil {
		buckets = append(buckets, sharedKeysBucket)
	}
	err = db.View(func(tx store.Tx) error {
		st.records = map[store.Bucket][]record{}
		for _, b := range buckets {
			if err := store.ForEach(tx, b, "", func(k string, raw []byte) error {
				st.records[b] = append(st.records[b], record{Key: k, Value: bytes.Clone(raw)})
				return nil
			}); err != nil {
				return fmt.Errorf("read %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if kek != nil {
		for _, r := range st.records[sharedKeysBucket] {
			var sk sealedKey
			if err := json.Unmarshal(r.Value, &sk); err != nil {
				return nil, fmt.Errorf("%s key: %w", r.Key, err)
			}
			if st.keys[r.Key], err = unseal(kek, r.Key, sk); err != nil {
				return nil, fmt.Errorf("the %s key in etcd: %w", r.Key, err)
			}
		}
		delete(st.records, sharedKeysBucket)
		return st, nil
	}
	for name, file := range map[string]string{"master": auth.MasterKeyFile, "credentials-id": roles.IDKeyFile} {
		b, err := os.ReadFile(filepath.Join(loc.DataDir, file))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(b) != 32 {
			return nil, fmt.Errorf("%s: want 32 bytes, have %d", file, len(b))
		}
		st.keys[name] = b
	}
	if _, ok := st.keys["master"]; !ok && len(st.records[auth.KeysBucket]) > 0 {
		return nil, fmt.Errorf("%s holds access keys but %s is missing: their secrets cannot be opened", loc, auth.MasterKeyFile)
	}
	return st, nil
}

// String lists the non-empty buckets and their counts.
func (c Counts) String() string {
	var parts []string
	for _, b := range slices.Sorted(maps.Keys(c)) {
		if n := c[b]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", b, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return fmt.Sprint(parts)
}

func (r rawValue) MarshalJSON() ([]byte, error) { return r, nil }
