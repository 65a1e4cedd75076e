// Package logstore is the endpoint's CloudWatch Logs-compatible log store:
// the AWS JSON 1.1 API subset that the awslogs driver and `aws logs` use
// (X-Amz-Target "Logs_20140328.<Op>", SigV4 service "logs") over log
// groups, streams and events kept in a pkg/cluster/store of its own (its
// own bbolt file, logs.db, so that log volume never weighs on the ECS
// records), with per-group retention and tags. Every member of the routed
// operations is honoured or refused by name (members.go).
//
// pkg/cluster mounts a *Store's API on the endpoint's AWS protocol router
// and runs its retention sweep; Handler serves it standalone behind a SigV4
// verifier (tests of log drivers). It imports store, awsproto and auth of
// the endpoint and no agent package.
package logstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
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

// The log store's buckets. A stream's key is "<group>\x00<stream>" and an
// event's "<group>\x00<stream>\x00<eventKey>": names cannot hold a NUL, so
// a group's streams and a stream's events are one key prefix each.
const (
	groupsBucket  store.Bucket = "log-groups"  // group name → groupRecord
	streamsBucket store.Bucket = "log-streams" // streamKey → streamRecord
	eventsBucket  store.Bucket = "log-events"  // eventsPrefix + eventKey → eventRecord
)

// Buckets lists the log store's buckets.
func Buckets() []store.Bucket { return []store.Bucket{groupsBucket, streamsBucket, eventsBucket} }

// streamsPrefix is the key prefix of a group's streams.
func streamsPrefix(group string) string { return group + "\x00" }

// streamKey is a stream's key in streamsBucket.
func streamKey(group, stream string) string { return group + "\x00" + stream }

// eventsPrefix is the key prefix of a stream's events in eventsBucket.
func eventsPrefix(group, stream string) string { return group + "\x00" + stream + "\x00" }

// Store is an open log store.
type Store struct {
	st     store.Store
	region string
	acct   string
	now    func() time.Time
}

// Options configures Open.
type Options struct {
	// Path is the store's file (usually <data dir>/logs.db).
	Path string
	// Region and AccountID appear in ARNs.
	Region, AccountID string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

type groupRecord struct {
	Name          string            `json:"name"`
	CreationTime  int64             `json:"creationTime"`
	RetentionDays int32             `json:"retentionDays,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
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
	st, err := boltstore.Open(opts.Path, boltstore.Options{Buckets: Buckets(), LockTimeout: 5 * time.Second, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("open log store: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{st: st, region: opts.Region, acct: opts.AccountID, now: opts.Now}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.st.Close() }

// eventKey orders events by timestamp, then by arrival.
func eventKey(ts int64, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(ts)^(1<<63))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

func keyTime(k []byte) int64 { return int64(binary.BigEndian.Uint64(k) ^ (1 << 63)) }

// eventKeyOf returns the eventKey at the end of a key in eventsBucket.
func eventKeyOf(key string) []byte { return []byte(key[len(key)-16:]) }

func (s *Store) groupARN(name string) string {
	return fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s:*", s.region, s.acct, name)
}

func (s *Store) streamARN(group, stream string) string {
	return fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s:log-stream:%s", s.region, s.acct, group, stream)
}

// getRecord decodes the record at key; ok is false when there is none.
func getRecord(tx store.Tx, b store.Bucket, key string, v any) (ok bool, err error) {
	err = tx.Get(b, key, v)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// loadGroup reads a group; ResourceNotFoundException if it is missing.
func loadGroup(tx store.Tx, name string) (*groupRecord, error) {
	var g groupRecord
	if ok, err := getRecord(tx, groupsBucket, name, &g); err != nil || !ok {
		if err == nil {
			err = apiErr(errNotFound, "The specified log group does not exist.")
		}
		return nil, err
	}
	return &g, nil
}

// loadStream reads a stream of an existing group;
// ResourceNotFoundException if either is missing.
func loadStream(tx store.Tx, group, stream string) (*groupRecord, *streamRecord, error) {
	g, err := loadGroup(tx, group)
	if err != nil {
		return nil, nil, err
	}
	var st streamRecord
	if ok, err := getRecord(tx, streamsBucket, streamKey(group, stream), &st); err != nil || !ok {
		if err == nil {
			err = apiErr(errNotFound, "The specified log stream does not exist.")
		}
		return nil, nil, err
	}
	return g, &st, nil
}

// SweepRetention deletes events older than their group's retention and
// returns how many it deleted. RunRetention calls it periodically.
func (s *Store) SweepRetention() (int, error) {
	now := s.now()
	deleted := 0
	err := s.st.Update(func(tx store.Tx) error {
		deleted = 0
		var groups []groupRecord
		err := store.ForEach(tx, groupsBucket, "", func(_ string, raw []byte) error {
			var g groupRecord
			if json.Unmarshal(raw, &g) == nil && g.RetentionDays > 0 {
				groups = append(groups, g)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, g := range groups {
			cutoff := now.Add(-time.Duration(g.RetentionDays) * 24 * time.Hour).UnixMilli()
			n, err := sweepGroup(tx, g.Name, cutoff)
			deleted += n
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return deleted, fmt.Errorf("sweep log retention: %w", err)
	}
	return deleted, nil
}

// sweepGroup deletes the group's events older than cutoff (milliseconds).
func sweepGroup(tx store.Tx, group string, cutoff int64) (int, error) {
	var streams []streamRecord
	err := store.ForEach(tx, streamsBucket, streamsPrefix(group), func(_ string, raw []byte) error {
		var st streamRecord
		if err := json.Unmarshal(raw, &st); err != nil {
			return err
		}
		streams = append(streams, st)
		return nil
	})
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, st := range streams {
		// Collect first: a store does not allow writes during a walk.
		var old []string
		err := store.ForEach(tx, eventsBucket, eventsPrefix(group, st.Name), func(key string, raw []byte) error {
			if keyTime(eventKeyOf(key)) >= cutoff {
				return store.ErrStopScan
			}
			old = append(old, key)
			st.StoredBytes -= int64(len(raw))
			return nil
		})
		if err != nil {
			return deleted, err
		}
		for _, k := range old {
			if err := tx.Delete(eventsBucket, k); err != nil {
				return deleted, err
			}
		}
		deleted += len(old)
		if len(old) > 0 {
			if err := tx.Put(streamsBucket, streamKey(group, st.Name), st); err != nil {
				return deleted, err
			}
		}
	}
	return deleted, nil
}

// RunRetention sweeps expired events every interval until ctx ends; a
// failed sweep is reported to onErr and tried again at the next interval.
func (s *Store) RunRetention(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.SweepRetention(); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

// validName checks a group or stream name as CloudWatch Logs does, and
// refuses the NUL that separates names in the store's keys.
func validName(kind, name string) error {
	if name == "" || len(name) > 512 {
		return apiErr(errInvalid, "1 validation error detected: Value at '%sName' failed to satisfy constraint: Member must have length between 1 and 512", kind)
	}
	if strings.ContainsRune(name, 0) {
		return apiErr(errInvalid, "%s name must not contain a NUL character", kind)
	}
	if kind == "logStream" && strings.ContainsAny(name, ":*") {
		return apiErr(errInvalid, "log stream name %q must not contain ':' or '*'", name)
	}
	return nil
}
