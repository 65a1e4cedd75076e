package registration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/state"
)

// StateChangeAPI is the two ECS calls that report state. *ecs.Client
// implements it.
type StateChangeAPI interface {
	SubmitTaskStateChange(ctx context.Context, in *ecs.SubmitTaskStateChangeInput, optFns ...func(*ecs.Options)) (*ecs.SubmitTaskStateChangeOutput, error)
	SubmitContainerStateChange(ctx context.Context, in *ecs.SubmitContainerStateChangeInput, optFns ...func(*ecs.Options)) (*ecs.SubmitContainerStateChangeOutput, error)
}

var _ StateChangeAPI = (*ecs.Client)(nil)

// Outbox is the durable queue of unsent state changes. *state.DB implements it.
type Outbox interface {
	// PendingStateChanges returns up to limit entries, oldest first.
	PendingStateChanges(limit int) ([]api.StateChange, error)
	// DeleteStateChange removes entries once the endpoint accepted them.
	DeleteStateChange(seqs ...uint64) error
}

var _ Outbox = (*state.DB)(nil)

// SubmitterOptions configure a Submitter.
type SubmitterOptions struct {
	Outbox Outbox
	API    StateChangeAPI
	// Cluster is used for entries that do not name their cluster.
	Cluster string
	// Poll is how often an empty outbox is looked at again when nobody
	// calls Kick; zero means 500 ms.
	Poll time.Duration
	// Wake, when set, signals that new entries were written, so they are
	// sent at once instead of at the next poll.
	Wake <-chan struct{}
	// Backoff paces retries while the endpoint fails (default 250 ms to 30 s).
	Backoff Backoff
	Clock   Clock
	Logger  *slog.Logger
}

// Submitter sends the outbox to the endpoint, oldest entry first. An entry
// is deleted only after the endpoint accepted it (or refused it in a way
// that resending cannot change); until then it is retried with backoff, so
// an endpoint outage or an agent restart delays changes but loses none.
// Sending strictly in outbox order keeps every task's changes in order.
type Submitter struct {
	o    SubmitterOptions
	kick chan struct{}
}

// NewSubmitter returns a Submitter; Run starts it.
func NewSubmitter(o SubmitterOptions) (*Submitter, error) {
	if o.Outbox == nil || o.API == nil {
		return nil, errors.New("state change submitter: Outbox and API are required")
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.Backoff.Min == 0 {
		o.Backoff = Backoff{Min: 250 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.2}
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Submitter{o: o, kick: make(chan struct{}, 1)}, nil
}

// Kick makes Run look at the outbox now instead of at the next poll.
func (s *Submitter) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run drains the outbox until ctx ends; it returns ctx's error.
func (s *Submitter) Run(ctx context.Context) error {
	failures := 0
	for {
		sent, err := s.drain(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var wait time.Duration
		switch {
		case err != nil:
			wait = s.o.Backoff.Delay(failures)
			failures++
			s.o.Logger.Warn("submit state changes failed; retrying", "err", err, "retryIn", wait)
		case sent > 0:
			failures = 0
			continue
		default:
			failures = 0
			wait = s.o.Poll
		}
		var wake <-chan struct{}
		if err == nil {
			// While the endpoint fails, new entries do not cut the backoff short.
			wake = s.o.Wake
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-s.kick:
			if err != nil {
				// A kick does not cut a backoff short: the endpoint is failing.
				if serr := sleep(ctx, s.o.Clock, wait); serr != nil {
					return serr
				}
			}
		case <-s.o.Clock.After(wait):
		}
	}
}

// Flush sends everything in the outbox, in order, until it is empty, an
// entry is not accepted, or ctx ends. The agent calls it once on shutdown,
// after Run has returned (the two must not run at the same time); what it
// could not send stays in the outbox for the next start.
func (s *Submitter) Flush(ctx context.Context) error {
	for {
		sent, err := s.drain(ctx)
		if err != nil {
			return err
		}
		if sent == 0 {
			return nil
		}
	}
}

// drain sends one batch of pending entries in order and returns how many it
// settled; it stops at the first entry the endpoint did not accept.
func (s *Submitter) drain(ctx context.Context) (int, error) {
	pending, err := s.o.Outbox.PendingStateChanges(64)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	settled := 0
	for i := range pending {
		c := &pending[i]
		err := s.submit(ctx, c)
		if err != nil && !rejected(err) {
			return settled, fmt.Errorf("submit %s state change %d of %s (%s): %w", c.Kind, c.Seq, c.TaskARN, c.Status, err)
		}
		if err != nil {
			// The endpoint will never accept this entry (unknown task, bad
			// value); keeping it would block every later change.
			s.o.Logger.Error("endpoint rejected a state change; dropping it", "task", c.TaskARN, "kind", c.Kind,
				"status", c.Status, "container", c.ContainerName, "err", err)
		}
		if err := s.o.Outbox.DeleteStateChange(c.Seq); err != nil {
			return settled, fmt.Errorf("delete sent state change %d: %w", c.Seq, err)
		}
		settled++
	}
	return settled, nil
}

func (s *Submitter) submit(ctx context.Context, c *api.StateChange) error {
	cluster := c.Cluster
	if cluster == "" {
		cluster = s.o.Cluster
	}
	if c.Kind == api.ChangeContainer {
		_, err := s.o.API.SubmitContainerStateChange(ctx, ContainerStateChangeInput(cluster, c))
		return err
	}
	_, err := s.o.API.SubmitTaskStateChange(ctx, TaskStateChangeInput(cluster, c))
	return err
}

// TaskStateChangeInput maps a task outbox entry onto SubmitTaskStateChange.
func TaskStateChangeInput(cluster string, c *api.StateChange) *ecs.SubmitTaskStateChangeInput {
	in := &ecs.SubmitTaskStateChangeInput{
		Cluster: aws.String(cluster),
		Task:    aws.String(c.TaskARN),
		Status:  aws.String(c.Status),
	}
	if c.Reason != "" {
		in.Reason = aws.String(c.Reason)
	}
	if !c.PullStartedAt.IsZero() {
		in.PullStartedAt = aws.Time(c.PullStartedAt)
	}
	if !c.PullStoppedAt.IsZero() {
		in.PullStoppedAt = aws.Time(c.PullStoppedAt)
	}
	if !c.ExecutionStoppedAt.IsZero() {
		in.ExecutionStoppedAt = aws.Time(c.ExecutionStoppedAt)
	}
	return in
}

// ContainerStateChangeInput maps a container outbox entry onto
// SubmitContainerStateChange.
func ContainerStateChangeInput(cluster string, c *api.StateChange) *ecs.SubmitContainerStateChangeInput {
	in := &ecs.SubmitContainerStateChangeInput{
		Cluster:       aws.String(cluster),
		Task:          aws.String(c.TaskARN),
		ContainerName: aws.String(c.ContainerName),
		Status:        aws.String(c.Status),
	}
	if c.Reason != "" {
		in.Reason = aws.String(c.Reason)
	}
	if c.RuntimeID != "" {
		in.RuntimeId = aws.String(c.RuntimeID)
	}
	if c.ExitCode != nil {
		in.ExitCode = aws.Int32(int32(*c.ExitCode))
	}
	for _, b := range c.NetworkBindings {
		nb := types.NetworkBinding{
			ContainerPort: aws.Int32(int32(b.ContainerPort)),
			HostPort:      aws.Int32(int32(b.HostPort)),
			Protocol:      types.TransportProtocol(b.Protocol),
		}
		if b.BindIP != "" {
			nb.BindIP = aws.String(b.BindIP)
		}
		if nb.Protocol == "" {
			nb.Protocol = types.TransportProtocolTcp
		}
		in.NetworkBindings = append(in.NetworkBindings, nb)
	}
	return in
}
