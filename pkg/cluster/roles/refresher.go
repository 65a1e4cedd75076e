package roles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berth-dev/berth/pkg/api"
)

// Sender delivers a credentials refresh to the agent of one container
// instance; the ACS session server implements it. An error means the
// frame was not queued (no session); the Refresher retries, except after
// an error wrapping ErrTaskEnded.
type Sender interface {
	SendCredentials(ctx context.Context, containerInstanceArn string, m *api.IAMRoleCredentialsMessage) error
}

// ErrTaskEnded is wrapped by a Sender's error when the task is gone or
// told to stop: the Refresher then untracks it. A task that stops on its
// own is never sent a STOPPED payload, so without this its entry stayed
// and its credentials were reissued for as long as the endpoint ran.
var ErrTaskEnded = errors.New("task ended")

// SenderFunc adapts a function to Sender, so that the broker can be built
// before the ACS server that sends for it.
type SenderFunc func(ctx context.Context, containerInstanceArn string, m *api.IAMRoleCredentialsMessage) error

// SendCredentials implements Sender.
func (f SenderFunc) SendCredentials(ctx context.Context, containerInstanceArn string, m *api.IAMRoleCredentialsMessage) error {
	return f(ctx, containerInstanceArn, m)
}

var _ Sender = SenderFunc(nil)

// CredentialsIssuer is the part of *Issuer the Refresher needs.
type CredentialsIssuer interface {
	Issue(ctx context.Context, req Request) (*api.IAMRoleCredentials, error)
}

var _ CredentialsIssuer = (*Issuer)(nil)

// Clock is the time source of the Refresher, injected so tests control it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// RefresherOptions configure a Refresher.
type RefresherOptions struct {
	Issuer CredentialsIssuer
	Sender Sender
	// RefreshBefore is how long before expiry new credentials are sent;
	// at most half the lifetime. Default 15m.
	RefreshBefore time.Duration
	// RetryInterval spaces resends of an unacknowledged refresh and
	// retries of failed issues or sends. Default 15s.
	RetryInterval time.Duration
	Clock         Clock
	Logger        *slog.Logger
}

// Tracked is one task role's credentials as placed on an instance.
type Tracked struct {
	ClusterArn           string
	ContainerInstanceArn string
	TaskArn              string
	// RoleType is api.RoleTypeTaskApplication or api.RoleTypeTaskExecution.
	RoleType    string
	Credentials *api.IAMRoleCredentials
}

type trackKey struct{ task, roleType string }

type trackEntry struct {
	Tracked
	issuedAt time.Time
	// next is when the entry needs work: a refresh, or a resend while
	// pending is set.
	next time.Time
	// pending is the messageId of a sent, unacknowledged refresh.
	pending string
}

// Refresher keeps placed tasks' credentials fresh: before they expire it
// issues new ones (same credentials id) and sends them in an
// IAMRoleCredentialsMessage, resending until the agent acknowledges. A
// stopped task is untracked and never refreshed again.
type Refresher struct {
	opts RefresherOptions
	wake chan struct{}

	mu sync.Mutex
	// guarded by mu
	entries map[trackKey]*trackEntry
	seq     uint64
}

// NewRefresher returns a Refresher; call Run to start it.
func NewRefresher(opts RefresherOptions) (*Refresher, error) {
	if opts.Issuer == nil || opts.Sender == nil {
		return nil, errors.New("refresher: issuer and sender are required")
	}
	if opts.RefreshBefore <= 0 {
		opts.RefreshBefore = 15 * time.Minute
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 15 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Refresher{opts: opts, wake: make(chan struct{}, 1), entries: make(map[trackKey]*trackEntry)}, nil
}

func (r *Refresher) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// refreshAt is when credentials issued at issued should be replaced.
func (r *Refresher) refreshAt(c *api.IAMRoleCredentials, issued time.Time) time.Time {
	exp, err := time.Parse(time.RFC3339, c.Expiration)
	if err != nil {
		// Unparseable expiration: refresh at the retry pace rather than never.
		return issued.Add(r.opts.RetryInterval)
	}
	before := r.opts.RefreshBefore
	if half := exp.Sub(issued) / 2; before > half {
		before = half
	}
	return exp.Add(-before)
}

// Track starts refreshing a task role's credentials, issued at placement.
// Tracking the same task and role again replaces the entry.
func (r *Refresher) Track(t Tracked) {
	if t.Credentials == nil || t.TaskArn == "" {
		return
	}
	now := r.opts.Clock.Now()
	r.mu.Lock()
	r.entries[trackKey{t.TaskArn, t.RoleType}] = &trackEntry{Tracked: t, issuedAt: now, next: r.refreshAt(t.Credentials, now)}
	r.mu.Unlock()
	r.poke()
}

// Untrack stops refreshing every role of a task (the task stopped).
func (r *Refresher) Untrack(taskArn string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.entries {
		if k.task == taskArn {
			delete(r.entries, k)
		}
	}
}

// Current returns the latest credentials of a task role, for payloads
// redelivered after a reconnect.
func (r *Refresher) Current(taskArn, roleType string) *api.IAMRoleCredentials {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.entries[trackKey{taskArn, roleType}]; ok {
		return e.Credentials
	}
	return nil
}

// byAccessKey returns the tracked credentials with access key id id, or
// nil.
func (r *Refresher) byAccessKey(id string) *api.IAMRoleCredentials {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		if e.Credentials != nil && e.Credentials.AccessKeyID == id {
			return e.Credentials
		}
	}
	return nil
}

// Ack records an agent's IAMRoleCredentialsAckRequest.
func (r *Refresher) Ack(ack *api.IAMRoleCredentialsAckRequest) {
	if ack == nil || ack.MessageID == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		if e.pending == ack.MessageID {
			e.pending = ""
			e.next = r.refreshAt(e.Credentials, e.issuedAt)
		}
	}
}

// ResendInstance sends the current credentials of every task on an
// instance again, now, until acknowledged: its agent has (re)connected
// and, after a restart, holds the credentials ids but not the secrets.
func (r *Refresher) ResendInstance(containerInstanceArn string) {
	now := r.opts.Clock.Now()
	r.mu.Lock()
	for _, e := range r.entries {
		if e.ContainerInstanceArn == containerInstanceArn {
			r.seq++
			e.pending = fmt.Sprintf("creds-%d-%d", now.UnixNano(), r.seq)
			e.next = now
		}
	}
	r.mu.Unlock()
	r.poke()
}

// Pending reports whether a task role has a sent, unacknowledged refresh.
func (r *Refresher) Pending(taskArn, roleType string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[trackKey{taskArn, roleType}]
	return ok && e.pending != ""
}

// work is one due entry, copied out so the lock is not held over the
// network.
type work struct {
	key     trackKey
	t       Tracked
	pending string
}

// Run refreshes until ctx ends.
func (r *Refresher) Run(ctx context.Context) error {
	for {
		wait := r.step(ctx)
		var timer <-chan time.Time
		if wait >= 0 {
			timer = r.opts.Clock.After(wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-timer:
		}
	}
}

// step processes every due entry and returns how long until the next one
// is due (-1: nothing tracked).
func (r *Refresher) step(ctx context.Context) time.Duration {
	for {
		due, wait := r.due()
		if len(due) == 0 {
			return wait
		}
		for _, w := range due {
			r.process(ctx, w)
		}
	}
}

// due returns the entries whose time has come and how long until the next
// one (-1: none).
func (r *Refresher) due() ([]work, time.Duration) {
	now := r.opts.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []work
	wait := time.Duration(-1)
	for k, e := range r.entries {
		if !e.next.After(now) {
			out = append(out, work{key: k, t: e.Tracked, pending: e.pending})
			// Until process decides, do not pick it again.
			e.next = now.Add(r.opts.RetryInterval)
			continue
		}
		if d := e.next.Sub(now); wait < 0 || d < wait {
			wait = d
		}
	}
	return out, wait
}

func (r *Refresher) process(ctx context.Context, w work) {
	creds := w.t.Credentials
	msgID := w.pending
	if msgID == "" {
		// Time to refresh: new credentials under the same id.
		fresh, err := r.opts.Issuer.Issue(ctx, Request{RoleArn: creds.RoleArn, CredentialsID: creds.CredentialsID, TaskArn: w.t.TaskArn})
		if err != nil {
			r.opts.Logger.Warn("refresh task credentials", "task", w.t.TaskArn, "role", creds.RoleArn, "err", err)
			return // retried after RetryInterval (set by due)
		}
		now := r.opts.Clock.Now()
		r.mu.Lock()
		e, ok := r.entries[w.key]
		if !ok {
			r.mu.Unlock()
			return // untracked meanwhile
		}
		r.seq++
		msgID = fmt.Sprintf("creds-%d-%d", now.UnixNano(), r.seq)
		e.Credentials, e.issuedAt, e.pending = fresh, now, msgID
		r.mu.Unlock()
		creds = fresh
	}
	m := &api.IAMRoleCredentialsMessage{
		MessageID: msgID, TaskArn: w.t.TaskArn, TaskClusterArn: w.t.ClusterArn, ClusterArn: w.t.ClusterArn,
		RoleType: w.t.RoleType, RoleCredentials: creds,
	}
	r.mu.Lock()
	_, still := r.entries[w.key]
	r.mu.Unlock()
	if !still {
		return
	}
	if err := r.opts.Sender.SendCredentials(ctx, w.t.ContainerInstanceArn, m); err != nil {
		if errors.Is(err, ErrTaskEnded) {
			r.Untrack(w.t.TaskArn)
			return
		}
		r.opts.Logger.Debug("send task credentials", "task", w.t.TaskArn, "instance", w.t.ContainerInstanceArn, "err", err)
	}
}
