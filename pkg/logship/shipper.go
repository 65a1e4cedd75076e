package logship

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Defaults of a Shipper.
const (
	DefaultPollInterval  = 200 * time.Millisecond
	DefaultMinBackoff    = 200 * time.Millisecond
	DefaultMaxBackoff    = 10 * time.Second
	DefaultMaxBufferSize = 1 << 20 // Docker's default for mode=non-blocking
	defaultBatchMessages = 1000
	defaultBatchBytes    = 1 << 20
)

// Options configures a Shipper.
type Options struct {
	// Path is the container's json-file log (pkg/logs Config.Path).
	Path string
	// Positions persists where shipping stands. Required.
	Positions PositionStore
	// Driver delivers the lines. Required; the Shipper closes it.
	Driver Driver
	// DriverName labels metrics and log lines (e.g. "awslogs").
	DriverName string
	// NonBlocking bounds the backlog to MaxBufferSize bytes of unread log:
	// past it the oldest lines are dropped (counted). Otherwise (mode
	// blocking) everything the local files still hold is kept.
	NonBlocking   bool
	MaxBufferSize int64
	// PollInterval is how often the log is checked for new lines.
	PollInterval time.Duration
	// MinBackoff and MaxBackoff bound the retry delay of failed batches.
	MinBackoff, MaxBackoff time.Duration
	// Metrics aggregates counters for /metrics; optional.
	Metrics *Metrics
	Logger  *slog.Logger
}

// Stats counts what one Shipper did.
type Stats struct {
	// Shipped is the number of messages delivered.
	Shipped uint64
	// Dropped is the number of log entries rotated away before they were
	// shipped (blocking or not).
	Dropped uint64
	// Overflow is the number of messages dropped because a non-blocking
	// driver fell further behind than max-buffer-size.
	Overflow uint64
	// Retries is the number of failed delivery attempts.
	Retries uint64
	// LostFiles counts log files rotated away while no Shipper was running
	// (their line count is unknown).
	LostFiles uint64
	// LastError is the most recent delivery error, or "".
	LastError string
}

// Shipper tails one container's json-file log and ships it through a
// Driver. It is created by Start and ended by Drain or Close.
type Shipper struct {
	opts   Options
	cancel context.CancelFunc
	drain  chan struct{}
	done   chan struct{}
	err    error // set before done is closed

	// unreported is owned by the run goroutine.
	unreported dropTally

	// mu guards stats and drainOnce.
	mu        sync.Mutex
	stats     Stats
	drainOnce bool
}

// Start loads the persisted position and starts shipping in a goroutine
// that ends when ctx ends, Drain finishes, or Close is called.
func Start(ctx context.Context, opts Options) (*Shipper, error) {
	if opts.Path == "" || opts.Positions == nil || opts.Driver == nil {
		return nil, errors.New("start log shipper: path, positions and driver are required")
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.NonBlocking && opts.MaxBufferSize <= 0 {
		opts.MaxBufferSize = DefaultMaxBufferSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	opts.Logger = opts.Logger.With("log", opts.Path, "driver", opts.DriverName)
	st, _, err := opts.Positions.Load()
	if err != nil {
		return nil, fmt.Errorf("start log shipper: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Shipper{opts: opts, cancel: cancel, drain: make(chan struct{}), done: make(chan struct{})}
	s.stats.Dropped = st.Dropped
	go func() {
		defer close(s.done)
		s.err = s.run(ctx, st)
	}()
	return s, nil
}

// Stats returns the counters.
func (s *Shipper) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Drain ships everything the log holds now (the container has exited, so
// nothing more will come) and stops. When ctx ends first, shipping stops
// where it is, the position stays persisted and Drain returns ctx's error.
// Drain closes the driver.
func (s *Shipper) Drain(ctx context.Context) error {
	s.mu.Lock()
	if !s.drainOnce {
		s.drainOnce = true
		close(s.drain)
	}
	s.mu.Unlock()
	select {
	case <-s.done:
		return s.finish()
	case <-ctx.Done():
		// Lines still in the file stay there, the position saved.
		s.cancel()
		<-s.done
		return errors.Join(fmt.Errorf("drain log shipper: %w", ctx.Err()), s.finish())
	}
}

// Close stops shipping at once (the agent is leaving; a later Start
// resumes from the persisted position) and closes the driver.
func (s *Shipper) Close() error {
	s.cancel()
	<-s.done
	return s.finish()
}

func (s *Shipper) finish() error {
	cerr := s.opts.Driver.Close()
	err := s.err
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return errors.Join(err, cerr)
}

// run is the shipping loop, owned by the goroutine Start made.
func (s *Shipper) run(ctx context.Context, st SavedState) error {
	t := newTailer(s.opts.Path)
	t.watch()
	defer func() { t.close() }()
	s.unreported.since = time.Now()
	defer s.reportDrops()
	if !t.resume(st.Committed) {
		s.addStats(func(x *Stats) { x.LostFiles++ })
		s.opts.Logger.Warn("log shipping position was rotated away while no shipper ran; resuming at the oldest file", "inode", st.Committed.Inode)
	}
	if st.InFlight != nil {
		if err := s.reconcile(ctx, t, &st); err != nil {
			return err
		}
	}
	maxMsgs, maxBytes, flush := defaultBatchMessages, defaultBatchBytes, time.Duration(0)
	if bl, ok := s.opts.Driver.(BatchLimiter); ok {
		maxMsgs, maxBytes, flush = bl.BatchLimits()
	}
	var (
		batch      []Message
		batchBytes int
		batchStart time.Time
		draining   bool
		drainCh    = s.drain
	)
	tick := time.NewTicker(s.opts.PollInterval)
	defer tick.Stop()
	for {
		// Fill the batch from what the log holds.
		idle := false
		for len(batch) < maxMsgs && batchBytes < maxBytes {
			m, err := t.next()
			if errors.Is(err, errNoData) {
				if draining {
					if jm, ok := t.flushJoin(); ok {
						m, err = jm, nil
					}
				}
				if err != nil {
					idle = true
					break
				}
			} else if err != nil {
				return err
			}
			if len(batch) == 0 {
				batchStart = time.Now()
			}
			batch = append(batch, m)
			batchBytes += len(m.Line)
		}
		full := len(batch) >= maxMsgs || batchBytes >= maxBytes
		if len(batch) > 0 && (full || draining || flush == 0 || time.Since(batchStart) >= flush) {
			if err := s.ship(ctx, t, &st, batch); err != nil {
				return err
			}
			batch, batchBytes = batch[:0], 0
			continue
		}
		if draining && idle && len(batch) == 0 {
			return nil
		}
		if !idle {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-drainCh:
			draining = true
			drainCh = nil
		case <-tick.C:
		}
		s.housekeep(t, &st, false)
	}
}

// housekeep counts files rotated away unread and, for a non-blocking
// driver, skips lines past max-buffer-size.
func (s *Shipper) housekeep(t *tailer, st *SavedState, failing bool) {
	t.dropRotated(failing)
	n := t.takeDropped()
	var over uint64
	if s.opts.NonBlocking {
		for t.backlog() > s.opts.MaxBufferSize {
			if _, err := t.next(); err != nil {
				break
			}
			over++
		}
	}
	if n == 0 && over == 0 {
		return
	}
	s.addStats(func(x *Stats) { x.Dropped += n; x.Overflow += over })
	s.opts.Metrics.add(s.opts.DriverName, 0, n+over, 0)
	// Persisted with the next delivered batch; persisting the position
	// now could skip a batch still in hand.
	st.Dropped += n + over
	s.unreported.rotated += n
	s.unreported.over += over
	if time.Since(s.unreported.since) >= dropReportInterval {
		s.reportDrops()
	}
}

// dropReportInterval bounds how long drops go unreported during a long
// outage; otherwise they are summarised when the destination returns or the
// shipper stops.
const dropReportInterval = 5 * time.Minute

// reportDrops writes the one summary line for drops not reported yet.
func (s *Shipper) reportDrops() {
	u := s.unreported
	s.unreported = dropTally{since: time.Now()}
	if u.rotated == 0 && u.over == 0 {
		return
	}
	s.opts.Logger.Warn("log lines dropped before they could be shipped",
		"rotatedAway", u.rotated, "overMaxBufferSize", u.over, "since", u.since.UTC().Format(time.RFC3339))
}

// dropTally counts drops since the last summary line.
type dropTally struct {
	rotated, over uint64
	since         time.Time
}

// ship delivers batch, retrying with backoff until it is delivered or ctx
// ends. Positions are persisted after every delivered prefix.
func (s *Shipper) ship(ctx context.Context, t *tailer, st *SavedState, batch []Message) error {
	_, reconciles := s.opts.Driver.(Reconciler)
	backoff := s.opts.MinBackoff
	failures := 0
	for len(batch) > 0 {
		if reconciles {
			st.InFlight = &InFlight{Pos: batch[len(batch)-1].Pos}
			if err := s.opts.Positions.Save(*st); err != nil {
				return err
			}
		}
		n, err := s.opts.Driver.Ship(ctx, batch)
		if n > 0 {
			st.Committed, st.InFlight = batch[n-1].Pos, nil
			if serr := s.opts.Positions.Save(*st); serr != nil {
				return serr
			}
			s.addStats(func(x *Stats) { x.Shipped += uint64(n) })
			s.opts.Metrics.add(s.opts.DriverName, uint64(n), 0, 0)
			batch = batch[n:]
		}
		if err == nil {
			if failures > 0 {
				s.opts.Logger.Info("log destination reachable again", "failedAttempts", failures)
				s.reportDrops()
			}
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		failures++
		s.addStats(func(x *Stats) { x.Retries++; x.LastError = err.Error() })
		s.opts.Metrics.add(s.opts.DriverName, 0, 0, 1)
		if failures == 1 {
			s.opts.Logger.Warn("log destination failing; lines wait in the local log", "err", err)
		}
		if s.opts.NonBlocking && t.backlog()+int64(batchSize(batch)) > s.opts.MaxBufferSize {
			// The batch in hand holds the oldest lines: they go first.
			s.addStats(func(x *Stats) { x.Overflow += uint64(len(batch)) })
			s.opts.Metrics.add(s.opts.DriverName, 0, uint64(len(batch)), 0)
			st.Dropped += uint64(len(batch))
			st.Committed, st.InFlight = batch[len(batch)-1].Pos, nil
			s.housekeep(t, st, true)
			return s.opts.Positions.Save(*st)
		}
		s.housekeep(t, st, true)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.opts.MaxBackoff)
	}
	return nil
}

// reconcile settles a batch that was in flight when the previous shipper
// stopped: the position moves past the last message of that batch the
// destination already holds, so nothing is shipped twice.
func (s *Shipper) reconcile(ctx context.Context, t *tailer, st *SavedState) error {
	rc, ok := s.opts.Driver.(Reconciler)
	if !ok {
		st.InFlight = nil
		return nil
	}
	backoff := s.opts.MinBackoff
	var match func(Message) bool
	for {
		var err error
		if match, err = rc.LastDelivered(ctx); err == nil {
			break
		}
		s.opts.Logger.Warn("ask the log destination what arrived before the restart", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.opts.MaxBackoff)
	}
	if match != nil {
		// Scan the in-flight range with a separate reader.
		scan := newTailer(s.opts.Path)
		scan.resume(st.Committed)
		var found *Position
		skipped := 0
		for {
			m, err := scan.next()
			if err != nil {
				break
			}
			skipped++
			if match(m) {
				p := m.Pos
				found = &p
			}
			if m.Pos == st.InFlight.Pos {
				break
			}
		}
		scan.close()
		if found != nil {
			st.Committed = *found
			t.close()
			*t = *newTailer(s.opts.Path)
			t.watch()
			t.resume(*found)
			s.opts.Logger.Info("resumed after the part of the last batch that had arrived", "inode", found.Inode, "offset", found.Offset)
		}
	}
	st.InFlight = nil
	return s.opts.Positions.Save(*st)
}

func (s *Shipper) addStats(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
}

func batchSize(b []Message) int {
	n := 0
	for _, m := range b {
		n += len(m.Line)
	}
	return n
}
