package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// Point is the statistic set of one period, from Time.
type Point struct {
	Time time.Time
	Stat StatSet
}

// Query asks for a series' statistic sets per Period seconds from Start
// (inclusive) to End (exclusive).
type Query struct {
	MetricID
	Start, End time.Time
	Period     int64
}

// ErrPeriod is returned for a period the kept resolution cannot serve.
var ErrPeriod = errors.New("period not served")

// Step returns the resolution a query from start is served at: minutes
// while they are kept, else hours.
func (s *Store) Step(start time.Time) int64 {
	if s.o.Now().Sub(start) < MinuteRetention {
		return Minute
	}
	return Hour
}

// Statistics returns the periods of q that have data, in time order, and
// the series' unit. Periods start at Start rounded down to the resolution
// (a minute, or an hour for data older than 15 days), every Period
// seconds.
func (s *Store) Statistics(q Query) ([]Point, string, error) {
	var pts []Point
	var unit string
	err := s.o.Store.View(func(tx store.Tx) error {
		var err error
		pts, unit, err = s.statisticsTx(tx, q)
		return err
	})
	return pts, unit, err
}

func (s *Store) statisticsTx(tx store.Tx, q Query) ([]Point, string, error) {
	step := s.Step(q.Start)
	if q.Period <= 0 || q.Period%step != 0 {
		return nil, "", fmt.Errorf("%w: the period must be a multiple of %d seconds for data from %s", ErrPeriod, step, q.Start.UTC().Format(time.RFC3339))
	}
	var sr Series
	if err := tx.Get(SeriesBucket, SeriesKey(q.MetricID), &sr); errors.Is(err, store.ErrNotFound) {
		return nil, "", nil
	} else if err != nil {
		return nil, "", fmt.Errorf("read metric series: %w", err)
	}
	span := int64(minuteBlock)
	tier := "m"
	if step == Hour {
		span, tier = hourBlock, "h"
	}
	start := q.Start.Unix() - q.Start.Unix()%step
	end := q.End.Unix()
	if end <= start {
		return nil, sr.Unit, nil
	}
	n := (end - start + q.Period - 1) / q.Period
	sums := make([]StatSet, n)
	prefix := sr.Hash + "/" + tier + "/"
	from := pointsKey(sr.Hash, step, start-start%span)
	err := tx.Scan(PointsBucket, store.Range{Prefix: prefix, From: from}, func(key string, raw []byte) error {
		var b block
		if err := json.Unmarshal(raw, &b); err != nil {
			return fmt.Errorf("metric points %s: %w", key, err)
		}
		if b.Start >= end {
			return store.ErrStopScan
		}
		for _, p := range b.P {
			t := b.Start + int64(p[0])*b.Step
			if t < start || t >= end {
				continue
			}
			sums[(t-start)/q.Period].Add(StatSet{Count: p[1], Sum: p[2], Min: p[3], Max: p[4]})
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("read metric points: %w", err)
	}
	var out []Point
	for i, st := range sums {
		if st.Count > 0 {
			out = append(out, Point{Time: time.Unix(start+int64(i)*q.Period, 0).UTC(), Stat: st})
		}
	}
	return out, sr.Unit, nil
}

// Filter selects series for List: by namespace, metric name and
// dimensions (a dimension with an empty Value matches any value of that
// name); ActiveSince leaves out series without data since then.
type Filter struct {
	Namespace, MetricName string
	Dimensions            []Dimension
	ActiveSince           time.Time
}

// List calls fn for each series that matches f and has data within
// ListedFor, in key order, from the key after `after` on; fn returns
// false to stop.
func (s *Store) List(f Filter, after string, fn func(key string, sr *Series) bool) error {
	since := s.o.Now().Add(-ListedFor)
	if f.ActiveSince.After(since) {
		since = f.ActiveSince
	}
	return s.o.Store.View(func(tx store.Tx) error {
		r := store.Range{Prefix: seriesPrefix(f.Namespace, f.MetricName)}
		if after != "" {
			r.From = after + "\x00"
		}
		return tx.Scan(SeriesBucket, r, func(key string, raw []byte) error {
			var sr Series
			if err := json.Unmarshal(raw, &sr); err != nil {
				return fmt.Errorf("metric series %s: %w", key, err)
			}
			// LastPut is written at most hourly: a series is active
			// until an hour past it.
			if sr.LastPut+Hour < since.Unix() || !f.matches(&sr) {
				return nil
			}
			if !fn(key, &sr) {
				return store.ErrStopScan
			}
			return nil
		})
	})
}

func (f Filter) matches(sr *Series) bool {
	if f.Namespace != "" && sr.Namespace != f.Namespace || f.MetricName != "" && sr.MetricName != f.MetricName {
		return false
	}
	for _, want := range f.Dimensions {
		found := false
		for _, d := range sr.Dimensions {
			if d.Name == want.Name && (want.Value == "" || d.Value == want.Value) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Latest returns the newest minute of each series of namespace that had
// data in the last `within`: what /metrics exposes.
func (s *Store) Latest(namespace string, within time.Duration) ([]Sample, error) {
	now := s.o.Now()
	var out []Sample
	err := s.o.Store.View(func(tx store.Tx) error {
		return tx.Scan(SeriesBucket, store.Range{Prefix: seriesPrefix(namespace, "")}, func(key string, raw []byte) error {
			var sr Series
			if err := json.Unmarshal(raw, &sr); err != nil {
				return fmt.Errorf("metric series %s: %w", key, err)
			}
			if !strings.HasPrefix(key, seriesPrefix(namespace, "")) || sr.LastPut+Hour < now.Add(-within).Unix() {
				return nil
			}
			var last *Sample
			err := tx.Scan(PointsBucket, store.Range{Prefix: sr.Hash + "/m/", Reverse: true}, func(k string, raw []byte) error {
				var b block
				if err := json.Unmarshal(raw, &b); err != nil {
					return fmt.Errorf("metric points %s: %w", k, err)
				}
				if len(b.P) > 0 {
					p := b.P[len(b.P)-1]
					last = &Sample{MetricID: sr.MetricID, Unit: sr.Unit, Time: time.Unix(b.Start+int64(p[0])*b.Step, 0),
						Stat: StatSet{Count: p[1], Sum: p[2], Min: p[3], Max: p[4]}}
				}
				return store.ErrStopScan
			})
			if err != nil {
				return err
			}
			if last != nil && now.Sub(last.Time) <= within {
				out = append(out, *last)
			}
			return nil
		})
	})
	return out, err
}
