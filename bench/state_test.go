package bench

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/state"
	bolt "go.etcd.io/bbolt"
)

// saveBench is what the SaveTask benchmarks write: a 2 KiB task record
// plus two outbox entries, through pkg/state and through raw bbolt (the
// same writes, without pkg/state), each to a file in b.TempDir().
type saveBench struct {
	db         *state.DB
	raw        *bolt.DB
	record     []byte
	change     api.StateChange
	changeJSON []byte
}

func newSaveBench(b *testing.B) *saveBench {
	record := bytes.Repeat([]byte("x"), 2048)
	s := &saveBench{record: append(append([]byte(`{"blob":"`), record...), []byte(`"}`)...),
		change: api.StateChange{Kind: api.ChangeContainer, TaskARN: "arn:aws:ecs:us-east-1:000000000000:task/lab/0123456789abcdef",
			ContainerName: "app", Status: "RUNNING", RuntimeID: "0123456789abcdef-app", At: time.Now(),
			NetworkBindings: []api.NetworkBinding{{ContainerPort: 8080, HostPort: 49153, Protocol: "tcp", BindIP: "0.0.0.0"}}}}
	var err error
	if s.changeJSON, err = json.Marshal(s.change); err != nil {
		b.Fatal(err)
	}
	if s.db, err = state.OpenDir(b.TempDir(), state.Options{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.db.Close() })
	if s.raw, err = bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.raw.Close() })
	if err := s.raw.Update(func(tx *bolt.Tx) error {
		for _, n := range []string{"tasks", "outbox"} {
			if _, err := tx.CreateBucket([]byte(n)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return s
}

// rawSave is the save with raw bbolt: one fsynced transaction.
func (s *saveBench) rawSave(arn string) error {
	return s.raw.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("tasks")).Put([]byte(arn), s.record); err != nil {
			return err
		}
		out := tx.Bucket([]byte("outbox"))
		for j := 0; j < 2; j++ {
			seq, err := out.NextSequence()
			if err != nil {
				return err
			}
			k := make([]byte, 8)
			binary.BigEndian.PutUint64(k, seq)
			if err := out.Put(k, s.changeJSON); err != nil {
				return err
			}
		}
		return nil
	})
}

// stateSave is the save through pkg/state.
func (s *saveBench) stateSave(arn string) error {
	return s.db.SaveTask(arn, s.record, []api.StateChange{s.change, s.change})
}

// BenchmarkStateSaveTask measures pkg/state's SaveTask (a 2 KiB task record
// plus two outbox entries in one fsynced transaction) against raw bbolt
// doing the same writes in the same run, and reports the ratio as
// "x-raw-bbolt".
func BenchmarkStateSaveTask(b *testing.B) {
	s := newSaveBench(b)
	// Interleave the two so that file growth and disk noise hit both alike.
	var rawDur, stateDur time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := s.rawSave(s.change.TaskARN); err != nil {
			b.Fatal(err)
		}
		rawDur += time.Since(start)
		start = time.Now()
		if err := s.stateSave(s.change.TaskARN); err != nil {
			b.Fatal(err)
		}
		stateDur += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(rawDur.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(float64(stateDur.Nanoseconds())/float64(b.N), "state-ns/op")
	b.ReportMetric(float64(stateDur)/float64(rawDur), "x-raw-bbolt")
}

// BenchmarkStatePendingStateChanges reads 1,000 pending outbox entries, the
// sender's hot path after a long disconnection, against a raw bbolt cursor
// walk that unmarshals the same entries, and reports the ratio.
func BenchmarkStatePendingStateChanges(b *testing.B) {
	db, err := state.OpenDir(b.TempDir(), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	change := api.StateChange{Kind: api.ChangeTask, TaskARN: "arn:aws:ecs:us-east-1:000000000000:task/lab/x", Status: "RUNNING", At: time.Now()}
	if err := db.Update(func(tx *state.Tx) error {
		for i := 0; i < 1000; i++ {
			c := change
			if _, err := tx.AppendStateChange(&c); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	raw, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	changeJSON, err := json.Marshal(change)
	if err != nil {
		b.Fatal(err)
	}
	if err := raw.Update(func(tx *bolt.Tx) error {
		out, err := tx.CreateBucket([]byte("outbox"))
		if err != nil {
			return err
		}
		for i := 0; i < 1000; i++ {
			k := make([]byte, 8)
			binary.BigEndian.PutUint64(k, uint64(i+1))
			if err := out.Put(k, changeJSON); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	var rawDur, stateDur time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		var n int
		err := raw.View(func(tx *bolt.Tx) error {
			c := tx.Bucket([]byte("outbox")).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				var sc api.StateChange
				if err := json.Unmarshal(v, &sc); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil || n != 1000 {
			b.Fatalf("raw walk: %d entries, %v", n, err)
		}
		rawDur += time.Since(start)
		start = time.Now()
		cs, err := db.PendingStateChanges(0)
		if err != nil || len(cs) != 1000 {
			b.Fatalf("%d entries, %v", len(cs), err)
		}
		stateDur += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(rawDur.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(float64(stateDur.Nanoseconds())/float64(b.N), "state-ns/op")
	b.ReportMetric(float64(stateDur)/float64(rawDur), "x-raw-bbolt")
}

// BenchmarkStateSaveTaskConcurrent is BenchmarkStateSaveTask from 20
// goroutines at once, as 20 tasks changing state together: pkg/state's
// SaveTask (whose concurrent calls share a transaction, group commit)
// against raw bbolt's Update (one fsynced transaction per call, queued),
// interleaved in rounds of 20 saves. ns/op metrics are per save.
func BenchmarkStateSaveTaskConcurrent(b *testing.B) {
	const writers = 20
	s := newSaveBench(b)
	round := func(save func(string) error) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[w] = save(fmt.Sprintf("task-%d", w))
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var rawDur, stateDur time.Duration
	rounds := 0
	b.ResetTimer()
	for i := 0; i < b.N; i += writers {
		rawDur += round(s.rawSave)
		stateDur += round(s.stateSave)
		rounds++
	}
	b.StopTimer()
	saves := float64(rounds * writers)
	b.ReportMetric(float64(rawDur.Nanoseconds())/saves, "raw-ns/save")
	b.ReportMetric(float64(stateDur.Nanoseconds())/saves, "state-ns/save")
	b.ReportMetric(float64(stateDur)/float64(rawDur), "x-raw-bbolt")
}
