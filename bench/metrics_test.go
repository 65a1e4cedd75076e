package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/metrics"
	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
)

// openMetricsStore is a metrics store on its own bbolt file (the
// endpoint's store, as on a single endpoint) with an injected clock.
func openMetricsStore(b *testing.B, now *time.Time) (*metrics.Store, store.Store, string) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "cluster.db")
	db, err := boltstore.Open(path, boltstore.Options{Buckets: append(metrics.Buckets(), "raw")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	s, err := metrics.New(metrics.Options{Store: db, Now: func() time.Time { return *now }})
	if err != nil {
		b.Fatal(err)
	}
	return s, db, path
}

// servicePublish is what one agent's TCS publication of tasks of n
// services adds: CPU and memory utilisation for each.
func servicePublish(n int, at time.Time) []metrics.Sample {
	var out []metrics.Sample
	for i := range n {
		for _, m := range []string{metrics.CPUUtilization, metrics.MemoryUtilization} {
			out = append(out, metrics.Sample{MetricID: metrics.MetricID{Namespace: metrics.ECSNamespace, MetricName: m,
				Dimensions: []metrics.Dimension{{Name: "ClusterName", Value: "lab"}, {Name: "ServiceName", Value: fmt.Sprintf("svc-%03d", i)}}},
				Unit: metrics.UnitPercent, Time: at, Stat: metrics.StatSet{Count: 1, Sum: 42.5, Min: 40, Max: 45}})
		}
	}
	return out
}

// BenchmarkMetricsIngest: one op is one TCS publication's worth of
// samples (10 services, CPU and memory: 20 samples) stored, each into its
// series' minute and hour blocks, in one fsynced transaction. The raw
// baseline writes as many records of the same size as the metrics store
// writes for the op (the blocks, read-merged-written there) in one
// fsynced transaction with no reads or merging. x-raw is the ratio.
func BenchmarkMetricsIngest(b *testing.B) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s, db, _ := openMetricsStore(b, &now)
	// Warm the series so that the op is a steady-state publication.
	if err := s.Put(servicePublish(10, now)); err != nil {
		b.Fatal(err)
	}
	blocks, blockBytes := recordSizes(b, db, metrics.PointsBucket)
	raw := make([]byte, blockBytes/blocks)
	var berth, base time.Duration
	at := now
	for i := 0; b.Loop(); i++ {
		at = at.Add(20 * time.Second) // the agents' publication interval
		now = at
		samples := servicePublish(10, at)
		start := time.Now()
		if err := s.Put(samples); err != nil {
			b.Fatal(err)
		}
		berth += time.Since(start)
		start = time.Now()
		if err := db.Update(func(tx store.Tx) error {
			for j := range blocks {
				if err := tx.Put("raw", fmt.Sprintf("%d/%d", i%1000, j), raw); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		base += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(float64(berth.Nanoseconds())/n, "berth-ns/op")
	b.ReportMetric(float64(base.Nanoseconds())/n, "raw-ns/op")
	b.ReportMetric(20*n/berth.Seconds(), "samples/s")
	b.ReportMetric(float64(berth)/float64(base), "x-raw")
}

// recordSizes counts a bucket's records and their bytes (keys and
// values).
func recordSizes(b *testing.B, db store.Store, bucket store.Bucket) (n, bytes int) {
	b.Helper()
	if err := db.View(func(tx store.Tx) error {
		return store.ForEach(tx, bucket, "", func(k string, raw []byte) error {
			n++
			bytes += len(k) + len(raw)
			return nil
		})
	}); err != nil {
		b.Fatal(err)
	}
	return n, bytes
}

// BenchmarkMetricsServiceDay: the disk one service costs per day. A day of
// one service's TCS figures (a publication every 20 s: 4,320 CPU and
// memory samples each) is stored, an hour per transaction, with the
// samples' real timestamps, so the blocks are what a day of publications
// leaves; the figures are the record bytes (keys and JSON values) of
// each tier and the bbolt file's growth. A day is the unit of the
// retention arithmetic: minute blocks are kept 15 days, hour blocks 455.
func BenchmarkMetricsServiceDay(b *testing.B) {
	for b.Loop() {
		now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		s, db, path := openMetricsStore(b, &now)
		before := fileSize(b, path)
		for h := range 24 {
			var samples []metrics.Sample
			for p := range 180 { // 20 s apart
				samples = append(samples, servicePublish(1, now.Add(time.Duration(h)*time.Hour+time.Duration(p)*20*time.Second))...)
			}
			now = now.Add(time.Hour)
			if err := s.Put(samples); err != nil {
				b.Fatal(err)
			}
		}
		minuteBytes, hourBytes := 0, 0
		if err := db.View(func(tx store.Tx) error {
			return store.ForEach(tx, metrics.PointsBucket, "", func(k string, raw []byte) error {
				if len(k) > 34 && k[33] == 'm' {
					minuteBytes += len(k) + len(raw)
				} else {
					hourBytes += len(k) + len(raw)
				}
				return nil
			})
		}); err != nil {
			b.Fatal(err)
		}
		_, seriesBytes := recordSizes(b, db, metrics.SeriesBucket)
		b.ReportMetric(float64(minuteBytes+hourBytes+seriesBytes), "record-bytes/service/day")
		b.ReportMetric(float64(minuteBytes), "minute-bytes/day")
		b.ReportMetric(float64(hourBytes), "hour-bytes/day")
		b.ReportMetric(float64(15*minuteBytes+455*hourBytes+seriesBytes), "retained-bytes/service")
		b.ReportMetric(float64(fileSize(b, path)-before), "file-growth-bytes")
	}
}

func fileSize(b *testing.B, path string) int64 {
	b.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}
