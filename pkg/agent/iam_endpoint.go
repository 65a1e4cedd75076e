package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/iam"
	"github.com/berth-dev/berth/pkg/network"
)

// credentialsOptions configure serveCredentials.
type credentialsOptions struct {
	// Store holds the credentials; the agent feeds it from ACS.
	Store *iam.Store
	// Lookup resolves tasks; nil disables the source check and metadata.
	Lookup *taskLookup
	// Addr is BERTH_CREDENTIALS_ADDRESS (127.0.0.1:51679 by default).
	Addr netip.AddrPort
	// AuditLogFile is ECS_AUDIT_LOGFILE; empty disables the audit log.
	AuditLogFile string
	// RateLimit is ECS_TASK_METADATA_RPS_LIMIT.
	RateLimit iam.RateLimit
	// Route, when set, is installed once the listener is up and removed
	// when Run returns (a clean stop). Its ListenPort is set from Addr.
	Route  *network.CredentialsRoute
	Logger *slog.Logger
	// Ready, when set, is closed once the server listens and the route is in.
	Ready chan<- struct{}
	// PruneEvery is how often the ids of tasks the engine no longer runs
	// are forgotten (needs Lookup); zero means 30 seconds.
	PruneEvery time.Duration
}

// running reports whether the engine has a task that has not stopped.
func running(tasks taskStates) func(string) bool {
	return func(arn string) bool {
		t, ok := tasks.Task(arn)
		return ok && t.KnownStatus != engine.TaskStopped
	}
}

// serveCredentials serves the credentials and task metadata endpoints
// until ctx ends.
func serveCredentials(ctx context.Context, o credentialsOptions) (err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var audit *iam.AuditLog
	if o.AuditLogFile != "" {
		if audit, err = iam.OpenAuditLog(o.AuditLogFile); err != nil {
			return err
		}
		defer audit.Close()
	}
	opts := iam.Options{Store: o.Store, Audit: audit, RateLimit: o.RateLimit, Logger: o.Logger}
	if o.Lookup != nil {
		opts.Tasks, opts.Metadata = o.Lookup, o.Lookup
	}
	srv, err := iam.NewServer(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Addr.String())
	if err != nil {
		return fmt.Errorf("credentials endpoint: listen on %s: %w", o.Addr, err)
	}
	if o.Route != nil {
		r := *o.Route
		r.ListenPort = uint16(ln.Addr().(*net.TCPAddr).Port)
		if err := r.Install(ctx); err != nil {
			ln.Close()
			return fmt.Errorf("credentials endpoint: %w", err)
		}
		defer func() {
			if rerr := r.Remove(context.WithoutCancel(ctx)); rerr != nil {
				err = errors.Join(err, fmt.Errorf("credentials endpoint: %w", rerr))
			}
		}()
	}
	o.Logger.Info("credentials endpoint serving", "addr", ln.Addr().String(), "audit", o.AuditLogFile)
	if o.Ready != nil {
		close(o.Ready)
	}
	if o.Lookup != nil {
		every := o.PruneEvery
		if every <= 0 {
			every = 30 * time.Second
		}
		pctx, pcancel := context.WithCancel(ctx)
		pruned := make(chan struct{})
		defer func() {
			pcancel()
			<-pruned
		}()
		go func() {
			defer close(pruned)
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-pctx.Done():
					return
				case <-tick.C:
					o.Store.Prune(running(o.Lookup.tasks))
				}
			}
		}()
	}
	return srv.Serve(ctx, ln)
}
