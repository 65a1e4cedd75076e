// Package etcdstore is the replicated implementation of pkg/cluster/store:
// the endpoint's buckets as keys under one prefix of an etcd v3 cluster, so
// that several berth-cluster replicas share one state and several clusters
// can share one etcd (each under its own prefix).
//
// Transactions are optimistic and serializable. A transaction reads from
// one snapshot (the revision of its first read); an Update buffers its
// writes and commits them in one etcd Txn whose comparisons prove that
// nothing it read has changed since that revision: the mod revision of
// every record it got (0 for one it found missing), and for every Scan the
// range (no key in it written after the snapshot) plus the bucket's
// deletion marker (a key every transaction that deletes in the bucket
// rewrites, since a deleted key leaves nothing in a range to compare). A
// failed comparison means another writer came first: the Update function
// runs again on a new snapshot, as the store contract allows. So two
// replicas never take the same CPU or host port twice, never hand out the
// same task definition revision, and never lose an update.
//
// etcd bounds a Txn (--max-txn-ops, 128 by default, for comparisons and
// for writes each; --max-request-bytes, 1.5 MiB by default). Comparisons
// beyond Options.MaxTxnOps are merged per bucket into range comparisons
// (more conflicts, same guarantee); writes beyond it fail with
// ErrTxnTooLarge before anything is sent, and etcd's own refusals are
// reported naming the flag to raise.
//
// It also implements store.Watcher (watch.go) and runs once-per-cluster
// work under an etcd election (Lead, lead.go). It is the only package that
// imports the etcd client; pkg/cluster opens it when cluster.toml says
// store = "etcd".
package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// DefaultMaxTxnOps is etcd's default --max-txn-ops.
const DefaultMaxTxnOps = 128

// Options configure Open.
type Options struct {
	// Endpoints are the etcd members' client URLs
	// (https://10.0.0.1:2379); at least one.
	Endpoints []string
	// CertFile and KeyFile are the client certificate etcd requires with
	// --client-cert-auth; CAFile verifies the members' certificates. All
	// empty means plain connections (http:// endpoints).
	CertFile, KeyFile, CAFile string
	// Prefix is put before every key; clusters sharing one etcd use
	// different prefixes. It must not be empty; a missing trailing "/" is
	// added.
	Prefix string
	// MaxTxnOps is the members' --max-txn-ops; zero means etcd's default,
	// 128.
	MaxTxnOps int
	// RequestTimeout bounds each etcd request; zero means 10 seconds.
	RequestTimeout time.Duration
	// DialTimeout bounds connecting at Open; zero means 5 seconds.
	DialTimeout time.Duration
	// ConflictTimeout is how long an Update retries a transaction that
	// keeps losing to others before it fails; zero means 30 seconds.
	ConflictTimeout time.Duration
	Logger          *slog.Logger
}

// ErrTxnTooLarge is returned by an Update whose writes exceed MaxTxnOps.
var ErrTxnTooLarge = errors.New("transaction too large for etcd")

// ErrContention is returned by an Update that lost to other writers for
// longer than ConflictTimeout.
var ErrContention = errors.New("transaction kept conflicting with other writers")

// Store is the etcd implementation of store.Store.
type Store struct {
	o      Options
	cli    *clientv3.Client
	prefix string
	// ctx ends at Close and bounds every request.
	ctx    context.Context
	cancel context.CancelFunc
	// retryMu is held by an Update while it retries after a conflict: a
	// first attempt runs at once, but the losers of a conflict queue here
	// instead of all retrying together, which under contention (every
	// RunTask reads the cluster's instances) would mostly collide again.
	retryMu sync.Mutex
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Watcher = (*Store)(nil)
)

// Open connects to etcd and checks that it answers.
func Open(ctx context.Context, o Options) (*Store, error) {
	if len(o.Endpoints) == 0 {
		return nil, errors.New("open etcd store: no endpoints")
	}
	if strings.Trim(o.Prefix, "/") == "" {
		return nil, errors.New("open etcd store: a key prefix is required (e.g. /berth/<cluster>/)")
	}
	if !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.MaxTxnOps <= 0 {
		o.MaxTxnOps = DefaultMaxTxnOps
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.ConflictTimeout <= 0 {
		o.ConflictTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var tlsCfg *tls.Config
	if o.CertFile != "" || o.KeyFile != "" || o.CAFile != "" {
		info := transport.TLSInfo{CertFile: o.CertFile, KeyFile: o.KeyFile, TrustedCAFile: o.CAFile}
		var err error
		if tlsCfg, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("open etcd store: TLS: %w", err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   o.Endpoints,
		DialTimeout: o.DialTimeout,
		TLS:         tlsCfg,
		// The client's own zap logging would bypass the endpoint's logger;
		// its errors reach the caller as returned errors.
		Logger: zap.NewNop(),
		// A member that stops answering is detected within seconds, so
		// that requests move to another one.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("open etcd store %v: %w", o.Endpoints, err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Store{o: o, cli: cli, prefix: o.Prefix, ctx: sctx, cancel: cancel}
	pctx, pcancel := context.WithTimeout(ctx, o.DialTimeout)
	defer pcancel()
	if _, err := cli.Get(pctx, s.prefix, clientv3.WithCountOnly()); err != nil {
		s.Close()
		return nil, fmt.Errorf("open etcd store %v: %w", o.Endpoints, mapErr(err))
	}
	return s, nil
}

// Close ends every request and the connection.
func (s *Store) Close() error {
	s.cancel()
	if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close etcd store: %w", err)
	}
	return nil
}

// Prefix is the store's key prefix, ending in "/".
func (s *Store) Prefix() string { return s.prefix }

// View runs fn on one consistent snapshot: the revision of its first read,
// which is linearizable (it sees every transaction committed before).
func (s *Store) View(fn func(store.Tx) error) error {
	for {
		t := &txn{s: s}
		err := fn(t)
		if t.compacted {
			continue // the snapshot was compacted away mid-read: read anew
		}
		return err
	}
}

// Update runs fn and commits its writes if nothing it read changed
// meanwhile; otherwise fn runs again on a newer snapshot, with a short
// random backoff, for up to ConflictTimeout. fn returning an error writes
// nothing.
func (s *Store) Update(fn func(store.Tx) error) error {
	deadline := time.Now().Add(s.o.ConflictTimeout)
	for attempt := 0; ; attempt++ {
		if attempt == 1 {
			s.retryMu.Lock()
			defer s.retryMu.Unlock()
		}
		t := &txn{s: s, writable: true}
		err := fn(t)
		if t.compacted {
			// Whatever fn made of the failed read, it saw no whole snapshot.
			continue
		}
		if err != nil {
			return err
		}
		ok, err := t.commit()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd store: %d attempts in %v: %w", attempt+1, s.o.ConflictTimeout, ErrContention)
		}
		// Backoff with jitter, so that the replicas' retriers, which keep
		// colliding, spread out instead of retrying in lock step.
		ceiling := time.Millisecond << min(attempt, 5)
		select {
		case <-time.After(rand.N(ceiling) + time.Millisecond/2):
		case <-s.ctx.Done():
			return fmt.Errorf("etcd store: %w", s.ctx.Err())
		}
	}
}

// request returns a context bounding one etcd request.
func (s *Store) request() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.o.RequestTimeout)
}

// bucketPrefix is where a bucket's keys start.
func (s *Store) bucketPrefix(b store.Bucket) string { return s.prefix + string(b) + "/" }

// deletedMarker is the key every transaction that deletes in b rewrites.
// Bucket names never start with "_", so it is outside every bucket.
func (s *Store) deletedMarker(b store.Bucket) string { return s.prefix + "_deleted/" + string(b) }

// mapErr names what to change when etcd refuses a request for its size,
// and says plainly when etcd has no quorum.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return fmt.Errorf("%w: raise the etcd members' --max-txn-ops and max_txn_ops in cluster.toml", err)
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("%w: raise the etcd members' --max-request-bytes", err)
	case errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("etcd unavailable (no quorum, or no member reachable): %w", err)
	}
	return err
}

// MaxTxnOps is the most operations (writes, and comparisons) this store
// puts in one etcd transaction.
func (s *Store) MaxTxnOps() int { return s.o.MaxTxnOps }
