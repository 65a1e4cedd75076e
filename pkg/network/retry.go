package network

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Leftover is something the Sandboxer failed to remove and retries in Run:
// a sandbox (its netns, CNI state, rules, ports or record), or the sweep
// of what earlier runs left.
type Leftover struct {
	// Resource names it: "sandbox <id>" or "network sweep".
	Resource string `json:"resource"`
	// Owner is the sandbox's SetupRequest.Owner (a task), if any.
	Owner string `json:"owner,omitempty"`
	// Err is the last attempt's error.
	Err string `json:"error"`
	// Attempts counts the failed attempts so far.
	Attempts    int       `json:"attempts"`
	Since       time.Time `json:"since"`
	NextAttempt time.Time `json:"nextAttempt"`
}

// Backoff of the retries: the first retry after retryMin, doubling up to
// retryMax, so that a resource that became removable goes within minutes
// and one that stays stuck costs a few attempts an hour.
const (
	retryMin = time.Second
	retryMax = 2 * time.Minute
)

// retrier keeps the removals that failed and retries each with exponential
// backoff until it succeeds. It knows nothing of what it removes (each
// entry carries its own remove function), so any way of making sandboxes
// can hand it its leftovers.
type retrier struct {
	log      *slog.Logger
	now      func() time.Time
	min, max time.Duration
	// wake tells run that an entry was added (capacity 1).
	wake chan struct{}

	// mu guards the fields below.
	mu        sync.Mutex
	entries   map[string]*retryEntry
	failures  uint64 // failed attempts
	recovered uint64 // entries removed after failing at least once
}

type retryEntry struct {
	Leftover
	remove func(context.Context) error
}

func newRetrier(log *slog.Logger) *retrier {
	return &retrier{log: log, now: time.Now, min: retryMin, max: retryMax,
		wake: make(chan struct{}, 1), entries: map[string]*retryEntry{}}
}

// delay is the wait after the given number of failed attempts (1 or more).
func (r *retrier) delay(attempts int) time.Duration {
	d := r.min
	for i := 1; i < attempts && d < r.max; i++ {
		d *= 2
	}
	return min(d, r.max)
}

// failed records a failed attempt to remove resource, with the function
// that retries it, and schedules the next attempt.
func (r *retrier) failed(resource, owner string, remove func(context.Context) error, err error) {
	r.mu.Lock()
	now := r.now()
	e := r.entries[resource]
	if e == nil {
		e = &retryEntry{Leftover: Leftover{Resource: resource, Owner: owner, Since: now}}
		r.entries[resource] = e
	}
	e.remove = remove
	e.Attempts++
	e.Err = err.Error()
	wait := r.delay(e.Attempts)
	e.NextAttempt = now.Add(wait)
	attempts := e.Attempts
	r.failures++
	r.mu.Unlock()
	r.log.Warn("could not remove; retrying in the background", "resource", resource, "owner", owner,
		"attempt", attempts, "retryIn", wait, "err", err)
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// succeeded records that resource is gone (removed by a retry or by its
// owner's own call).
func (r *retrier) succeeded(resource string) {
	r.mu.Lock()
	e, ok := r.entries[resource]
	if ok {
		delete(r.entries, resource)
		r.recovered++
	}
	r.mu.Unlock()
	if ok {
		r.log.Info("removed after failed attempts", "resource", resource, "owner", e.Owner, "attempts", e.Attempts)
	}
}

// pending returns what waits for a retry, oldest first.
func (r *retrier) pending() []Leftover {
	r.mu.Lock()
	out := make([]Leftover, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, e.Leftover)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return out[i].Resource < out[j].Resource
	})
	return out
}

// has reports whether resource waits for a retry.
func (r *retrier) has(resource string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.entries[resource] != nil
}

// run retries entries as they fall due until ctx ends.
func (r *retrier) run(ctx context.Context) {
	for {
		var due <-chan time.Time
		var timer *time.Timer
		if next, ok := r.nextAttempt(); ok {
			timer = time.NewTimer(max(next.Sub(r.now()), 0))
			due = timer.C
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-due:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		r.retryDue(ctx)
	}
}

// nextAttempt returns the earliest scheduled attempt.
func (r *retrier) nextAttempt() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var next time.Time
	for _, e := range r.entries {
		if next.IsZero() || e.NextAttempt.Before(next) {
			next = e.NextAttempt
		}
	}
	return next, !next.IsZero()
}

// retryDue makes one attempt at every entry that is due.
func (r *retrier) retryDue(ctx context.Context) {
	now := r.now()
	r.mu.Lock()
	var due []retryEntry
	for _, e := range r.entries {
		if !e.NextAttempt.After(now) {
			due = append(due, *e)
		}
	}
	r.mu.Unlock()
	for _, e := range due {
		if ctx.Err() != nil {
			return
		}
		if err := e.remove(ctx); err != nil {
			if ctx.Err() == nil {
				r.failed(e.Resource, e.Owner, e.remove, err)
			}
			continue
		}
		r.succeeded(e.Resource)
	}
}

// writePrometheus writes the retries' gauge and counters.
func (r *retrier) writePrometheus(w io.Writer) error {
	r.mu.Lock()
	pending, failures, recovered := len(r.entries), r.failures, r.recovered
	r.mu.Unlock()
	_, err := fmt.Fprintf(w, `# HELP berth_network_cleanup_pending Network resources the agent failed to remove and retries in the background.
# TYPE berth_network_cleanup_pending gauge
berth_network_cleanup_pending %d
# HELP berth_network_cleanup_failures_total Failed attempts to remove a network resource (each is retried).
# TYPE berth_network_cleanup_failures_total counter
berth_network_cleanup_failures_total %d
# HELP berth_network_cleanup_recovered_total Network resources removed after failed attempts.
# TYPE berth_network_cleanup_recovered_total counter
berth_network_cleanup_recovered_total %d
`, pending, failures, recovered)
	return err
}

// Run retries, with backoff, what Teardown and Cleanup failed to remove,
// until ctx ends. The agent runs it for as long as it runs; without it the
// leftovers are only listed (Pending) and retried by the next Teardown of
// the same sandbox or the next start's Cleanup.
func (m *Sandboxer) Run(ctx context.Context) { m.retry.run(ctx) }

// Pending returns what the Sandboxer failed to remove and retries, oldest
// first.
func (m *Sandboxer) Pending() []Leftover { return m.retry.pending() }

// WritePrometheus writes berth_network_cleanup_pending (gauge),
// berth_network_cleanup_failures_total and
// berth_network_cleanup_recovered_total (counters) in the Prometheus text
// format, for the agent's /metrics.
func (m *Sandboxer) WritePrometheus(w io.Writer) error { return m.retry.writePrometheus(w) }

// keyedMutex is one mutex per key, created on demand and dropped when
// nobody holds or waits for it.
type keyedMutex struct {
	// mu guards locks.
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns the unlock.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
