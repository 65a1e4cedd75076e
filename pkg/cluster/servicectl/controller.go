// Package servicectl is the endpoint's service controller: a background
// worker that keeps every ECS service at its desired count. At each
// interval, and whenever it is woken (Wake, after an API call that may
// change what a service needs), it reconciles each ACTIVE or DRAINING
// service in its own store transaction: REPLICA and DAEMON scheduling,
// rolling deployments within minimumHealthyPercent and maximumPercent,
// replacement of unhealthy tasks, draining instances, launch backoff, the
// deployment circuit breaker with rollback, the service events ECS
// writes, and services' load balancers (targets.go: tasks registered as
// targets, counted healthy only when their targets are, deregistered and
// drained before they are told to stop). Tasks it places or stops are announced to a Notifier (the ACS
// session server) after the transaction commits.
//
// pkg/cluster runs it (Run) and wires the ECS API's ServiceWaker to Wake.
// It imports records, launch, scheduler and store; never the ECS API's
// handlers. It is work to run once per cluster: with a replicated store it
// will run on the elected leader only.
package servicectl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/cluster/launch"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// Timing tunes the controller; zero values are ECS's.
type Timing struct {
	// Interval between reconciliations when nothing wakes the controller;
	// zero means one second.
	Interval time.Duration
	// HealthyAfter is how long a RUNNING task without a reported health
	// status must run before it counts as healthy; zero means 40 s.
	HealthyAfter time.Duration
	// LaunchBackoff is the first delay after three launches in a row
	// stopped before RUNNING; it doubles per further failure up to 15
	// minutes. Zero means 10 s.
	LaunchBackoff time.Duration
}

func (o Timing) withDefaults() Timing {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.HealthyAfter <= 0 {
		o.HealthyAfter = 40 * time.Second
	}
	if o.LaunchBackoff <= 0 {
		o.LaunchBackoff = 10 * time.Second
	}
	return o
}

// Notifier is told, after each service's transaction commits, which tasks
// were placed or told to stop. The ACS session server implements it; it
// must not block.
type Notifier interface {
	TasksChanged(ctx context.Context, changes []records.TaskChange)
}

// Options configure a Controller.
type Options struct {
	Store    store.Store
	Launcher *launch.Launcher
	// Notifier is told about the tasks the controller places and stops;
	// nil drops the changes.
	Notifier Notifier
	Timing   Timing
	// MaxTasksPerPass bounds how many tasks one pass over a service starts
	// and stops, each pass being one transaction: etcd refuses a
	// transaction of more than --max-txn-ops (128 by default) writes, and
	// each task placed or stopped writes its own record and its
	// instance's. A bigger change takes several passes, run back to back.
	// Zero means DefaultMaxTasksPerPass.
	MaxTasksPerPass int
	Logger          *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultMaxTasksPerPass keeps a pass within etcd's default --max-txn-ops
// (128): 40 tasks and at most 40 instances, the service and room to spare.
const DefaultMaxTasksPerPass = 40

// Controller is the service controller.
type Controller struct {
	o Options
	// wake asks for a pass; buffered, never blocks.
	wake chan struct{}
}

// New returns a Controller; Store and Launcher are required.
func New(o Options) (*Controller, error) {
	if o.Store == nil || o.Launcher == nil {
		return nil, errors.New("service controller: Store and Launcher are required")
	}
	o.Timing = o.Timing.withDefaults()
	if o.MaxTasksPerPass <= 0 {
		o.MaxTasksPerPass = DefaultMaxTasksPerPass
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Controller{o: o, wake: make(chan struct{}, 1)}, nil
}

// Wake asks for a reconciliation soon; it never blocks.
func (c *Controller) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run reconciles every service until ctx ends: at each interval and
// whenever woken. A failed pass is logged and retried at the next one; Run
// returns nil when ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	tick := time.NewTicker(c.o.Timing.Interval)
	defer tick.Stop()
	for {
		if err := c.Reconcile(ctx); err != nil && ctx.Err() == nil {
			c.o.Logger.Error("reconciling services", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-c.wake:
		}
	}
}

// Reconcile runs one pass over every ACTIVE or DRAINING service, each in
// its own transaction, and then tells the notifier which tasks to deliver
// or stop.
func (c *Controller) Reconcile(ctx context.Context) error {
	var keys []string
	err := c.o.Store.View(func(tx store.Tx) error {
		keys = nil
		return records.Each(tx, records.Services, "", func(rec *records.Service) error {
			if aws.ToString(rec.Service.Status) != "INACTIVE" {
				keys = append(keys, rec.Key())
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	for _, key := range keys {
		var changes []records.TaskChange
		capped := false
		err := c.o.Store.Update(func(tx store.Tx) error {
			changes, capped = nil, false
			rec, ok, err := records.Get[records.Service](tx, records.Services, key)
			if err != nil || !ok {
				return err // a service deleted since the listing is gone
			}
			cl, ok, err := records.Get[records.Cluster](tx, records.Clusters, rec.Cluster)
			if err != nil {
				return err
			}
			if !ok || aws.ToString(cl.Cluster.Status) != "ACTIVE" {
				return nil // the cluster is gone; nothing to run
			}
			before, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			r := &reconciler{c: c, tx: tx, rec: rec, now: c.o.Now().UTC(), budget: c.o.MaxTasksPerPass}
			if err := r.run(); err != nil {
				return err
			}
			if r.err != nil {
				return r.err
			}
			changes, capped = r.changes, r.capped
			after, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if !r.wrote && bytes.Equal(before, after) {
				return errUnchanged
			}
			return records.Put(tx, rec)
		})
		if errors.Is(err, errUnchanged) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reconcile service %s: %w", key, err)
		}
		if len(changes) > 0 && c.o.Notifier != nil {
			c.o.Notifier.TasksChanged(ctx, changes)
		}
		if capped {
			c.Wake() // the rest of the change in the next pass, at once
		}
	}
	return nil
}

// errUnchanged rolls back a pass that changed nothing, so an idle service
// costs no disk write.
var errUnchanged = errors.New("service unchanged")
