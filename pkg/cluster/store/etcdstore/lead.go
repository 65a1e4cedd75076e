package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultLeaseTTL is the lease of a replica's session when LeadOptions
// says nothing: how long after a replica dies its leadership and its
// membership end.
const DefaultLeaseTTL = 5 * time.Second

// LeadOptions configure Lead.
type LeadOptions struct {
	// ID names this replica (its advertised address, say); unique among
	// the replicas sharing the prefix.
	ID string
	// LeaseTTL is the session's lease; whole seconds, at least 2. Zero
	// means DefaultLeaseTTL.
	LeaseTTL time.Duration
}

// Lead keeps this replica a member (its key under _replicas/, which
// Replicas lists, bound to its session's lease) and campaigns for the
// leadership of the prefix's replicas (an etcd election under _leader/).
// While it leads, fn runs with a context that ends when the leadership is
// lost: the session's lease expired (etcd unreachable for LeaseTTL) or ctx
// ended. Then Lead starts a new session and campaigns again. It returns nil
// when ctx ends, or fn's error if fn fails while this replica still leads.
//
// Leadership is exclusive as long as clocks tick alike: a leader cut off
// from etcd sees its lease end no later than etcd does. Work run under it
// must still be safe to run twice at once, as the endpoint's is (its
// transactions conflict instead of both committing).
func (s *Store) Lead(ctx context.Context, o LeadOptions, fn func(ctx context.Context) error) error {
	if o.ID == "" || strings.Contains(o.ID, "/") {
		return fmt.Errorf("etcd election: replica id %q must be non-empty without /", o.ID)
	}
	ttl := int(o.LeaseTTL / time.Second)
	if o.LeaseTTL == 0 {
		ttl = int(DefaultLeaseTTL / time.Second)
	}
	if ttl < 2 {
		return fmt.Errorf("etcd election: lease TTL %v: at least 2s", o.LeaseTTL)
	}
	for ctx.Err() == nil {
		err := s.term(ctx, o.ID, ttl, fn)
		if err != nil && !errors.Is(err, errLostLease) && ctx.Err() == nil {
			if errors.Is(err, errWorkFailed) {
				return err
			}
			s.o.Logger.Warn("etcd election: campaign failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-s.ctx.Done():
			return errors.New("etcd election: store closed")
		case <-time.After(watchRetry):
		}
	}
	return nil
}

var (
	errLostLease  = errors.New("lease lost")
	errWorkFailed = errors.New("leader's work failed")
)

// term is one session: membership, campaign, and fn while leading.
func (s *Store) term(ctx context.Context, id string, ttl int, fn func(ctx context.Context) error) error {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(ttl), concurrency.WithContext(s.ctx))
	if err != nil {
		return fmt.Errorf("etcd session: %w", mapErr(err))
	}
	defer sess.Close() // revokes the lease: members and the election see us leave at once
	// tctx ends with the session: a campaign or a term of work must not
	// outlive the lease it stands on.
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-tctx.Done():
		}
	}()
	rctx, rcancel := s.request()
	_, err = s.cli.Put(rctx, s.prefix+"_replicas/"+id, "", clientv3.WithLease(sess.Lease()))
	rcancel()
	if err != nil {
		return fmt.Errorf("etcd membership: %w", mapErr(err))
	}
	el := concurrency.NewElection(sess, s.prefix+"_leader")
	if err := el.Campaign(tctx, id); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if tctx.Err() != nil {
			return errLostLease
		}
		return fmt.Errorf("etcd campaign: %w", mapErr(err))
	}
	s.o.Logger.Info("leading the replicas: once-per-cluster work starts here", "replica", id)
	werr := fn(tctx)
	lost := tctx.Err() != nil && ctx.Err() == nil
	if ctx.Err() == nil && !lost {
		// fn failed while leading: hand over before failing.
		rctx, rcancel := s.request()
		_ = el.Resign(rctx)
		rcancel()
		return errors.Join(errWorkFailed, werr)
	}
	if lost {
		s.o.Logger.Warn("leadership lost (etcd session expired); campaigning again", "replica", id)
		return errLostLease
	}
	return nil
}

// Replicas lists the ids of the replicas whose session is alive.
func (s *Store) Replicas() ([]string, error) {
	ctx, cancel := s.request()
	defer cancel()
	p := s.prefix + "_replicas/"
	resp, err := s.cli.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", mapReqErr(ctx, err))
	}
	out := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, strings.TrimPrefix(string(kv.Key), p))
	}
	return out, nil
}

// Leader returns the id of the replica leading now ("" when none).
func (s *Store) Leader() (string, error) {
	ctx, cancel := s.request()
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix+"_leader/", clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
	if err != nil {
		return "", fmt.Errorf("read leader: %w", mapReqErr(ctx, err))
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}
