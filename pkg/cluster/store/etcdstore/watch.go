package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// Watch calls fn for every change to the records of buckets committed
// after it was called, by this replica or another, in commit order, until
// ctx ends (then it returns nil). The client resumes a broken watch by
// itself without losing events; when etcd has compacted the history it
// would resume from, fn gets a Change with Lost set and the watch goes on
// from the current revision. fn runs on the watch's goroutine: it must not
// block for long.
func (s *Store) Watch(ctx context.Context, buckets []store.Bucket, fn func(store.Change)) error {
	want := map[string]store.Bucket{}
	for _, b := range buckets {
		want[string(b)] = b
	}
	ctx = clientv3.WithRequireLeader(ctx)
	from, err := s.nextRevision(ctx)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		ch := s.cli.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(from))
		for resp := range ch {
			if resp.CompactRevision != 0 {
				s.o.Logger.Warn("etcd watch: history compacted; re-reading", "compact_revision", resp.CompactRevision)
				fn(store.Change{Lost: true})
				if from, err = s.nextRevision(ctx); err != nil {
					cancel()
					return err
				}
				break
			}
			if err := resp.Err(); err != nil {
				// Without a leader the client ends the watch; start it again
				// where it stopped once etcd has one.
				if !errors.Is(err, rpctypes.ErrNoLeader) && ctx.Err() == nil {
					s.o.Logger.Warn("etcd watch ended", "err", err)
				}
				break
			}
			for _, ev := range resp.Events {
				if c, ok := s.change(ev, want); ok {
					fn(c)
				}
				from = ev.Kv.ModRevision + 1
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-s.ctx.Done():
			return errors.New("etcd watch: store closed")
		case <-time.After(watchRetry):
		}
	}
	return nil
}

// watchRetry spaces restarts of a watch that etcd ended.
const watchRetry = 500 * time.Millisecond

// nextRevision returns the revision after etcd's current one, retrying
// until etcd answers or ctx ends.
func (s *Store) nextRevision(ctx context.Context) (int64, error) {
	for {
		rctx, cancel := s.request()
		resp, err := s.cli.Get(rctx, s.prefix, clientv3.WithCountOnly())
		cancel()
		if err == nil {
			return resp.Header.Revision + 1, nil
		}
		s.o.Logger.Warn("etcd watch: read the current revision", "err", mapErr(err))
		select {
		case <-ctx.Done():
			return 0, nil
		case <-s.ctx.Done():
			return 0, fmt.Errorf("etcd watch: store closed: %w", err)
		case <-time.After(watchRetry):
		}
	}
}

// change turns a watch event on a record of a wanted bucket into a Change.
func (s *Store) change(ev *clientv3.Event, want map[string]store.Bucket) (store.Change, bool) {
	rest := strings.TrimPrefix(string(ev.Kv.Key), s.prefix)
	name, key, ok := strings.Cut(rest, "/")
	b, wanted := want[name]
	if !ok || !wanted {
		return store.Change{}, false
	}
	c := store.Change{Bucket: b, Key: key}
	if ev.PrevKv != nil {
		c.Prev = ev.PrevKv.Value
	}
	if ev.Type == mvccpb.PUT {
		c.Value = ev.Kv.Value
	}
	return c, true
}
