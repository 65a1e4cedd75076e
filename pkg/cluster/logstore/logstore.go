// Package logstore is the endpoint's CloudWatch Logs-compatible log store:
// the JSON 1.1 API subset that the awslogs driver and `aws logs` use
// (X-Amz-Target "Logs_20140328.<Op>", SigV4 service "logs"), kept in its own
// bbolt file with per-group retention.
//
// pkg/cluster mounts a *Store as a clusterapi.Target (ServeTarget); Handler
// serves it standalone behind a SigV4 verifier (dev mode and tests). It
// imports no agent package.
package logstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// API constants.
const (
	// TargetPrefix is the X-Amz-Target prefix of CloudWatch Logs.
	TargetPrefix = "Logs_20140328."
	// Service is the SigV4 service name.
	Service = "logs"
	// File is the store's file name inside the endpoint's data directory.
	File = "logs.db"
)

// CloudWatch Logs limits enforced by PutLogEvents.
const (
	MaxBatchEvents   = 10000
	MaxBatchBytes    = 1048576
	PerEventOverhead = 26
	MaxEventBytes    = 262144 // message bytes plus PerEventOverhead
	MaxBatchSpan     = 24 * time.Hour
	MaxEventAge      = 14 * 24 * time.Hour
	MaxEventFuture   = 2 * time.Hour
)

// Store is an open log store.
type Store struct {
	db     *bolt.DB
	region string
	acct   string
	now    func() time.Time
}

// Options configures Open.
type Options struct {
	// Path is the bbolt file (usually <data dir>/logs.db).
	Path string
	// Region and AccountID appear in ARNs.
	Region, AccountID string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

var (
	bucketGroups = []byte("groups")  // name → groupRecord
	bucketData   = []byte("streams") // group name → bucket of stream buckets
	keyMeta      = []byte("\x00meta")
)

type groupRecord struct {
	Name          string `json:"name"`
	CreationTime  int64  `json:"creationTime"`
	RetentionDays int32  `json:"retentionDays,omitempty"`
}

type streamRecord struct {
	Name           string `json:"name"`
	CreationTime   int64  `json:"creationTime"`
	FirstEvent     int64  `json:"firstEvent,omitempty"`
	LastEvent      int64  `json:"lastEvent,omitempty"`
	LastIngestion  int64  `json:"lastIngestion,omitempty"`
	StoredBytes    int64  `json:"storedBytes"`
	Seq            uint64 `json:"seq"`
	UploadSequence uint64 `json:"uploadSequence"`
}

type eventRecord struct {
	Ingestion int64  `json:"i"`
	Message   string `json:"m"`
}

// Open opens (creating) the store.
func Open(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("open log store: path is required")
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
		return nil, fmt.Errorf("open log store: %w", err)
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("open log store %s: %w", opts.Path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketGroups, bucketData} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open log store %s: %w", opts.Path, err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{db: db, region: opts.Region, acct: opts.AccountID, now: opts.Now}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// eventKey orders events by timestamp, then by arrival.
func eventKey(ts int64, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(ts)^(1<<63))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

func keyTime(k []byte) int64 { return int64(binary.BigEndian.Uint64(k) ^ (1 << 63)) }

func (s *Store) groupARN(name string) string {
	return fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s:*", s.region, s.acct, name)
}

func (s *Store) streamARN(group, stream string) string {
	return fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s:log-stream:%s", s.region, s.acct, group, stream)
}

func getJSON(b *bolt.Bucket, k []byte, v any) bool {
	raw := b.Get(k)
	if raw == nil {
		return false
	}
	return json.Unmarshal(raw, v) == nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, raw)
}

// SweepRetention deletes events older than their group's retention and
// returns how many it deleted. RunRetention calls it periodically.
func (s *Store) SweepRetention() (int, error) {
	now := s.now()
	deleted := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		groups := tx.Bucket(bucketGroups)
		data := tx.Bucket(bucketData)
		return groups.ForEach(func(k, v []byte) error {
			var g groupRecord
			if json.Unmarshal(v, &g) != nil || g.RetentionDays == 0 {
				return nil
			}
			cutoff := now.Add(-time.Duration(g.RetentionDays) * 24 * time.Hour).UnixMilli()
			gb := data.Bucket(k)
			if gb == nil {
				return nil
			}
			return gb.ForEachBucket(func(sk []byte) error {
				sb := gb.Bucket(sk)
				var st streamRecord
				getJSON(sb, keyMeta, &st)
				// Collect first: deleting under a bbolt cursor can skip keys.
				var old [][]byte
				c := sb.Cursor()
				for ek, ev := c.Seek(eventKey(-1<<62, 0)); ek != nil && keyTime(ek) < cutoff; ek, ev = c.Next() {
					if len(ek) == 16 {
						old = append(old, append([]byte(nil), ek...))
						st.StoredBytes -= int64(len(ev))
					}
				}
				for _, ek := range old {
					if err := sb.Delete(ek); err != nil {
						return err
					}
				}
				deleted += len(old)
				if len(old) == 0 {
					return nil
				}
				return putJSON(sb, keyMeta, st)
			})
		})
	})
	if err != nil {
		return deleted, fmt.Errorf("sweep log retention: %w", err)
	}
	return deleted, nil
}
