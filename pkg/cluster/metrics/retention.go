package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// pruneBatch bounds the records one pruning transaction deletes: etcd
// refuses transactions of more than max_txn_ops writes.
const pruneBatch = 100

// Prune deletes minute blocks older than MinuteRetention, hour blocks
// older than HourRetention, and series whose last data is older than
// HourRetention. It returns how many records it deleted.
func (s *Store) Prune() (int, error) {
	now := s.o.Now()
	minuteCut := now.Add(-MinuteRetention).Unix()
	hourCut := now.Add(-HourRetention).Unix()
	var old []string
	var oldSeries []string
	err := s.o.Store.View(func(tx store.Tx) error {
		return tx.Scan(PointsBucket, store.Range{}, func(key string, _ []byte) error {
			hash, rest, _ := strings.Cut(key, "/")
			tier, startText, _ := strings.Cut(rest, "/")
			start, err := strconv.ParseInt(startText, 10, 64)
			if err != nil || hash == "" {
				return nil // not a block key: left alone
			}
			if tier == "m" && start+minuteBlock <= minuteCut || tier == "h" && start+hourBlock <= hourCut {
				old = append(old, key)
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("prune metrics: %w", err)
	}
	err = s.o.Store.View(func(tx store.Tx) error {
		return tx.Scan(SeriesBucket, store.Range{}, func(key string, raw []byte) error {
			var sr Series
			if err := json.Unmarshal(raw, &sr); err != nil {
				return fmt.Errorf("metric series %s: %w", key, err)
			}
			if sr.LastPut+Hour < hourCut {
				oldSeries = append(oldSeries, key)
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("prune metrics: %w", err)
	}
	n, err := s.deleteBatches(PointsBucket, old)
	if err != nil {
		return n, err
	}
	m, err := s.deleteBatches(SeriesBucket, oldSeries)
	return n + m, err
}

// deleteBatches deletes keys of b, pruneBatch a transaction.
func (s *Store) deleteBatches(b store.Bucket, keys []string) (int, error) {
	n := 0
	for len(keys) > 0 {
		part := keys[:min(pruneBatch, len(keys))]
		keys = keys[len(part):]
		if err := s.o.Store.Update(func(tx store.Tx) error {
			for _, key := range part {
				if err := tx.Delete(b, key); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return n, fmt.Errorf("prune metrics: %w", err)
		}
		n += len(part)
	}
	return n, nil
}

// RunRetention prunes every interval until ctx ends; failures go to fail
// and the next round tries again.
func (s *Store) RunRetention(ctx context.Context, interval time.Duration, fail func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Prune(); err != nil {
			fail(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
