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
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	// stale is set while etcd has no quorum: Views are then read from one
	// member (serializable), which may be behind. probeAt (unix nanos) is
	// when the next View may try a linearizable read again; the others
	// read serializable meanwhile instead of each waiting for quorum.
	stale   atomic.Bool
	probeAt atomic.Int64
}

// quorumProbe bounds the linearizable read with which, while etcd has no
// quorum, a View or Update checks whether it is back; probeEvery spaces
// such checks.
const (
	quorumProbe = time.Second
	probeEvery  = 2 * time.Second
)

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
// When etcd has no quorum the snapshot is read from one member instead
// (serializable: what that member last applied, which may be behind) and
// Stale reports it, so that reads still answer while writes are refused;
// a linearizable read is tried again every couple of seconds.
func (s *Store) View(fn func(store.Tx) error) error {
	serializable := s.stale.Load() && !s.probeDue()
	for {
		t := &txn{s: s, serializable: serializable, timeout: s.readTimeout(serializable)}
		err := fn(t)
		if t.compacted {
			continue // the snapshot was compacted away mid-read: read anew
		}
		if !serializable && t.unavailable {
			s.markStale(err)
			serializable = true
			continue
		}
		if !serializable && t.rev != 0 {
			s.markFresh()
		}
		return err
	}
}

// Stale reports whether the last View was read from one member because
// etcd had no quorum.
func (s *Store) Stale() bool { return s.stale.Load() }

// probeDue claims the next linearizable probe while stale.
func (s *Store) probeDue() bool {
	at := s.probeAt.Load()
	now := time.Now().UnixNano()
	return now >= at && s.probeAt.CompareAndSwap(at, now+int64(probeEvery))
}

// readTimeout bounds a transaction's first read: short while etcd is known
// to have no quorum, so that a probe costs little.
func (s *Store) readTimeout(serializable bool) time.Duration {
	if s.stale.Load() && !serializable {
		return min(quorumProbe, s.o.RequestTimeout)
	}
	return s.o.RequestTimeout
}

func (s *Store) markStale(err error) {
	s.probeAt.Store(time.Now().Add(probeEvery).UnixNano())
	if !s.stale.Swap(true) {
		s.o.Logger.Warn("etcd has no quorum: writes are refused, reads are served from one member and may be stale", "err", err)
	}
}

func (s *Store) markFresh() {
	if s.stale.Swap(false) {
		s.o.Logger.Info("etcd has a quorum again: reads and writes are linearizable")
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
		t := &txn{s: s, writable: true, timeout: s.readTimeout(false)}
		err := fn(t)
		if t.compacted {
			// Whatever fn made of the failed read, it saw no whole snapshot.
			continue
		}
		if t.unavailable {
			s.markStale(err)
		} else if t.rev != 0 {
			s.markFresh()
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

// requestWithin returns a context bounding one etcd request by d.
func (s *Store) requestWithin(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, d)
}

// bucketPrefix is where a bucket's keys start.
func (s *Store) bucketPrefix(b store.Bucket) string { return s.prefix + string(b) + "/" }

// deletedMarker is the key every transaction that deletes in b rewrites.
// Bucket names never start with "_", so it is outside every bucket.
func (s *Store) deletedMarker(b store.Bucket) string { return s.prefix + "_deleted/" + string(b) }

// mapErr names what to change when etcd refuses a request for its size,
// and says plainly when etcd has no quorum (store.ErrUnavailable).
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return fmt.Errorf("%w: raise the etcd members' --max-txn-ops and max_txn_ops in cluster.toml", err)
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("%w: raise the etcd members' --max-request-bytes", err)
	case unavailable(err):
		return fmt.Errorf("%w: etcd has no quorum, or no member answers: %w", store.ErrUnavailable, err)
	}
	return err
}

// mapReqErr is mapErr for a request bounded by ctx: a request that ran
// out its time is etcd unavailable too, whatever status the server put on
// it. The deadline is compared with the clock rather than read from
// ctx.Err(), which a timer sets: the member's answer to a request it ran
// out of time can arrive before that timer has run.
func mapReqErr(ctx context.Context, err error) error {
	if err != nil && !unavailable(err) && pastDeadline(ctx) {
		return fmt.Errorf("%w: etcd has no quorum, or no member answers: %w", store.ErrUnavailable, err)
	}
	return mapErr(err)
}

// pastDeadline reports whether ctx's deadline has passed.
func pastDeadline(ctx context.Context) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// unavailable reports whether err says that etcd could not serve a
// request for want of a leader, a quorum or a reachable member.
func unavailable(err error) bool {
	for _, e := range []error{rpctypes.ErrNoLeader, rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail,
		rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrLeaderChanged, context.DeadlineExceeded} {
		if errors.Is(err, e) {
			return true
		}
	}
	// The client turns the server's errors into EtcdError values, which
	// carry their gRPC code without being a gRPC status: a member that is
	// stopping ("server stopped"), an unhealthy cluster, a leader lost
	// mid-request are all codes.Unavailable.
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) && (ee.Code() == codes.Unavailable || ee.Code() == codes.DeadlineExceeded) {
		return true
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return false
	}
	switch st := se.GRPCStatus(); st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	case codes.Unknown:
		// etcd 3.4's gRPC server answers a request that ran out its
		// deadline (waiting for a quorum that never came) with code
		// Unknown and the context's message, which the client passes on.
		return st.Message() == context.DeadlineExceeded.Error()
	}
	return false
}

// MaxTxnOps is the most operations (writes, and comparisons) this store
// puts in one etcd transaction.
func (s *Store) MaxTxnOps() int { return s.o.MaxTxnOps }
