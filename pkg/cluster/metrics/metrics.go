// Package metrics is the cluster endpoint's CloudWatch-compatible metrics
// store: series (a namespace, a metric name and up to 30 dimensions) and
// their datapoints kept as statistic sets (sample count, sum, minimum,
// maximum) per minute for 15 days and per hour for 455 days, in the
// endpoint's store (bbolt or etcd, so every replica and the leader's alarm
// evaluation see the same figures). It is fed by users (PutMetricData
// through pkg/cluster/cloudwatchapi), by the agents' TCS
// PublishMetricsRequest (RecordPublish: the AWS/ECS service utilisation)
// and by its own sampler (the clusters' CPU and memory reservation), and
// it answers statistics over periods.
//
// pkg/cluster builds it and runs its workers; pkg/cluster/cloudwatchapi and
// pkg/cluster/acs (TCS) use it. It imports store and records.
package metrics

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The buckets of the metrics store.
const (
	// SeriesBucket holds a Series under SeriesKey.
	SeriesBucket store.Bucket = "metric-series"
	// PointsBucket holds a block of one series' statistic sets per
	// minute (one block an hour) or per hour (one block a day).
	PointsBucket store.Bucket = "metric-points"
)

// Buckets lists the metrics store's buckets.
func Buckets() []store.Bucket {
	return []store.Bucket{SeriesBucket, PointsBucket, AlarmsBucket, HistoryBucket}
}

// Resolutions and retention, as CloudWatch keeps them (it also keeps five
// minute figures for 63 days; hours serve those queries here).
const (
	Minute = 60
	Hour   = 3600
	// MinuteRetention and HourRetention are how long each tier is kept.
	MinuteRetention = 15 * 24 * time.Hour
	HourRetention   = 455 * 24 * time.Hour
	// minuteBlock and hourBlock are the seconds one record covers.
	minuteBlock = Hour
	hourBlock   = 24 * Hour
	// MaxPast and MaxFuture bound a datapoint's timestamp, as in
	// CloudWatch.
	MaxPast   = 14 * 24 * time.Hour
	MaxFuture = 2 * time.Hour
	// DefaultMaxSeries bounds the number of series.
	DefaultMaxSeries = 10000
	// ListedFor is how long a series without new data is listed.
	ListedFor = 14 * 24 * time.Hour
)

// Dimension is a name/value pair of a series.
type Dimension struct {
	Name, Value string
}

// StatSet is a statistic set: what is kept of the samples of a period.
type StatSet struct {
	Count, Sum, Min, Max float64
}

// Add merges o into s.
func (s *StatSet) Add(o StatSet) {
	if s.Count == 0 {
		*s = o
		return
	}
	s.Count += o.Count
	s.Sum += o.Sum
	s.Min = math.Min(s.Min, o.Min)
	s.Max = math.Max(s.Max, o.Max)
}

// Value is the statistic set of one value.
func Value(v float64) StatSet { return StatSet{Count: 1, Sum: v, Min: v, Max: v} }

// MetricID identifies a series.
type MetricID struct {
	Namespace, MetricName string
	// Dimensions in any order; a series is the same whatever their order.
	Dimensions []Dimension
}

// normalized returns id with its dimensions sorted by name.
func (id MetricID) normalized() MetricID {
	d := slices.Clone(id.Dimensions)
	slices.SortFunc(d, func(a, b Dimension) int { return strings.Compare(a.Name, b.Name) })
	id.Dimensions = d
	return id
}

// hash is the series' id: the first 16 bytes of the SHA-256 of its
// identity, hex.
func (id MetricID) hash() string {
	h := sha256.New()
	n := id.normalized()
	fmt.Fprintf(h, "%q\x00%q", n.Namespace, n.MetricName)
	for _, d := range n.Dimensions {
		fmt.Fprintf(h, "\x00%q=%q", d.Name, d.Value)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// SeriesKey is a series' key: "<namespace>/<metric name>/<hash>", names
// path-escaped so that a namespace or a metric name is a key prefix.
func SeriesKey(id MetricID) string {
	return seriesPrefix(id.Namespace, id.MetricName) + id.hash()
}

func seriesPrefix(namespace, name string) string {
	if namespace == "" {
		return ""
	}
	p := url.PathEscape(namespace) + "/"
	if name == "" {
		return p
	}
	return p + url.PathEscape(name) + "/"
}

// Series is stored in SeriesBucket under SeriesKey.
type Series struct {
	MetricID
	Hash string
	// Unit is the unit of the latest datapoints ("" = None).
	Unit string `json:",omitempty"`
	// LastPut is when data last arrived (unix seconds), written at most
	// once an hour per series.
	LastPut int64
}

// block is one record of PointsBucket: a series' statistic sets from
// Start, one per Step seconds, at most blockSpan/Step of them.
type block struct {
	Start int64
	Step  int64
	// P is [slot, count, sum, min, max] per slot with data, by slot.
	P [][5]float64
}

func pointsKey(hash string, step, start int64) string {
	tier := "m"
	if step == Hour {
		tier = "h"
	}
	return fmt.Sprintf("%s/%s/%010d", hash, tier, start)
}

func (b *block) add(t int64, s StatSet) {
	slot := float64((t - b.Start) / b.Step)
	i, found := slices.BinarySearchFunc(b.P, slot, func(p [5]float64, s float64) int {
		switch {
		case p[0] < s:
			return -1
		case p[0] > s:
			return 1
		}
		return 0
	})
	if !found {
		b.P = slices.Insert(b.P, i, [5]float64{slot, s.Count, s.Sum, s.Min, s.Max})
		return
	}
	cur := StatSet{Count: b.P[i][1], Sum: b.P[i][2], Min: b.P[i][3], Max: b.P[i][4]}
	cur.Add(s)
	b.P[i] = [5]float64{slot, cur.Count, cur.Sum, cur.Min, cur.Max}
}

// Options configure a Store.
type Options struct {
	Store store.Store
	// MaxSeries bounds the series kept; zero means DefaultMaxSeries.
	MaxSeries int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Store is the metrics store over the endpoint's store.
type Store struct {
	o Options
}

// New returns a Store; Store is required.
func New(o Options) (*Store, error) {
	if o.Store == nil {
		return nil, errors.New("metrics: Store is required")
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = DefaultMaxSeries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Store{o: o}, nil
}

// Sample is a statistic set of one series at a time.
type Sample struct {
	MetricID
	Unit string
	Time time.Time
	Stat StatSet
}

// ErrTooManySeries is returned when a put would create more series than
// the store keeps.
var ErrTooManySeries = errors.New("too many metric series")

// Put stores samples in one transaction: all or none.
func (s *Store) Put(samples []Sample) error {
	if len(samples) == 0 {
		return nil
	}
	now := s.o.Now()
	return s.o.Store.Update(func(tx store.Tx) error { return s.putTx(tx, samples, now) })
}

// putTx adds samples to their series' blocks, reading and writing each
// record once.
func (s *Store) putTx(tx store.Tx, samples []Sample, now time.Time) error {
	series := map[string]*Series{}
	dirtySeries := map[string]bool{}
	blocks := map[string]*block{}
	newSeries := 0
	for _, sm := range samples {
		key := SeriesKey(sm.MetricID)
		sr, ok := series[key]
		if !ok {
			sr = &Series{}
			err := tx.Get(SeriesBucket, key, sr)
			switch {
			case errors.Is(err, store.ErrNotFound):
				sr = &Series{MetricID: sm.MetricID.normalized(), Hash: sm.MetricID.hash()}
				dirtySeries[key] = true
				newSeries++
			case err != nil:
				return fmt.Errorf("read metric series %s: %w", key, err)
			}
			series[key] = sr
		}
		if sr.Unit != sm.Unit || now.Unix()-sr.LastPut >= Hour {
			sr.Unit, sr.LastPut = sm.Unit, now.Unix()
			dirtySeries[key] = true
		}
		t := sm.Time.Unix()
		for _, step := range []int64{Minute, Hour} {
			span := int64(minuteBlock)
			if step == Hour {
				span = hourBlock
			}
			start := t - t%span
			bk := pointsKey(sr.Hash, step, start)
			b, ok := blocks[bk]
			if !ok {
				b = &block{}
				err := tx.Get(PointsBucket, bk, b)
				switch {
				case errors.Is(err, store.ErrNotFound):
					b = &block{Start: start, Step: step}
				case err != nil:
					return fmt.Errorf("read metric points %s: %w", bk, err)
				}
				blocks[bk] = b
			}
			b.add(t, sm.Stat)
		}
	}
	if newSeries > 0 {
		n, err := countSeries(tx, s.o.MaxSeries+1)
		if err != nil {
			return err
		}
		if n+newSeries > s.o.MaxSeries {
			return fmt.Errorf("%w: the store keeps %d series and has %d", ErrTooManySeries, s.o.MaxSeries, n)
		}
	}
	for _, key := range slices.Sorted(mapKeys(dirtySeries)) {
		if err := tx.Put(SeriesBucket, key, series[key]); err != nil {
			return fmt.Errorf("write metric series %s: %w", key, err)
		}
	}
	for _, key := range slices.Sorted(mapKeys(blocks)) {
		if err := tx.Put(PointsBucket, key, blocks[key]); err != nil {
			return fmt.Errorf("write metric points %s: %w", key, err)
		}
	}
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// countSeries counts the series, stopping at limit.
func countSeries(tx store.Tx, limit int) (int, error) {
	n := 0
	err := tx.Scan(SeriesBucket, store.Range{}, func(string, []byte) error {
		n++
		if n >= limit {
			return store.ErrStopScan
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count metric series: %w", err)
	}
	return n, nil
}
