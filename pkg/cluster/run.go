package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/records"
)

// worker is background work of the endpoint, run until its context ends.
// Returning before that is a failure of the endpoint.
type worker struct {
	name string
	run  func(ctx context.Context) error
	// everyReplica work runs on each replica (its state is the replica's
	// own); the rest runs once per cluster, on the leader.
	everyReplica bool
}

// workers lists the endpoint's background work. New work joins by being
// listed here: once per cluster (the default) or on every replica. On
// bbolt the one process always leads; on etcd the once-per-cluster work
// runs on the elected leader and moves when it dies (replicas.go).
func (e *Endpoint) workers() []worker {
	ws := []worker{
		{name: "service controller", run: e.services.Run},
		{name: "stopped-task pruner", run: e.runPruner},
		{name: "metrics retention", run: func(ctx context.Context) error {
			e.metrics.RunRetention(ctx, time.Hour, func(err error) { e.opts.Logger.Warn("metrics retention sweep failed", "err", err) })
			return nil
		}},
		{name: "alarm evaluation", run: func(ctx context.Context) error {
			e.metrics.RunEvaluator(ctx, e.scalingTick(), e.scaling, func(err error) { e.opts.Logger.Warn("alarm evaluation failed", "err", err) })
			return nil
		}},
		{name: "scheduled scaling", run: func(ctx context.Context) error {
			e.scaling.RunScheduler(ctx, e.scalingTick(), func(err error) { e.opts.Logger.Warn("scheduled scaling failed", "err", err) })
			return nil
		}},
		{name: "reservation sampler", run: func(ctx context.Context) error {
			e.metrics.RunSampler(ctx, time.Minute, func(err error) { e.opts.Logger.Warn("sampling the clusters' reservations failed", "err", err) })
			return nil
		}},
		// Each replica has its own log store (logs.db).
		{name: "log retention", everyReplica: true, run: func(ctx context.Context) error {
			e.logs.RunRetention(ctx, time.Hour, func(err error) { e.opts.Logger.Warn("log retention sweep failed", "err", err) })
			return nil
		}},
		// Secrets past their recovery window leave the store (reads
		// already treat them as gone).
		{name: "deleted secrets purge", run: func(ctx context.Context) error {
			e.secrets.RunPurge(ctx, time.Minute, func(err error) { e.opts.Logger.Warn("deleted secrets purge failed", "err", err) })
			return nil
		}},
	}
	if e.broker != nil {
		// Credentials are issued by the replica that sends a task's
		// payload and kept in its memory, so each replica refreshes those
		// it issued (its agents'); an agent that moves gets fresh ones,
		// under the same credentials id, from its new replica.
		ws = append(ws, worker{name: "task role credentials refresh", run: e.broker.Run, everyReplica: e.etcd != nil})
	}
	if e.etcd != nil {
		ws = append(ws, worker{name: "store watch", run: e.runWatch, everyReplica: true})
		if e.sessions != nil {
			ws = append(ws, worker{name: "agent session sweep", run: e.runSessionSweep},
				worker{name: "agent session refresh", run: e.runSessionRefresh, everyReplica: true})
		}
	}
	return ws
}

// ScaleOnce does once what the leader's scaling workers do every minute:
// it evaluates every alarm at the clock's minute (running their actions:
// Application Auto Scaling policies) and runs the scheduled actions that
// are due. Run does this by itself; tests that drive an endpoint with an
// injected clock (Options.Now) call it to step minute by minute.
func (e *Endpoint) ScaleOnce(ctx context.Context) error {
	if _, err := e.metrics.EvaluateAlarms(ctx, e.scaling); err != nil {
		return err
	}
	_, err := e.scaling.RunScheduled()
	return err
}

// scalingTick is how often alarms and scheduled actions are looked at.
func (e *Endpoint) scalingTick() time.Duration {
	if e.opts.ScalingTick > 0 {
		return e.opts.ScalingTick
	}
	return 10 * time.Second
}

// Run runs the endpoint's background work until ctx ends: the service
// controller, the pruning of old STOPPED tasks, the log retention sweep,
// with task roles the refresh of their credentials, and with replicas the
// store watch and the sweep of dead replicas' agent sessions. The
// once-per-cluster part runs while this replica leads. It returns nil when
// ctx ends, or the first worker's failure (having stopped the others).
// Serve runs it; an embedder that serves Handler on its own listener (dev
// mode) runs it itself.
func (e *Endpoint) Run(ctx context.Context) error {
	var mine, leaders []worker
	for _, w := range e.workers() {
		if w.everyReplica {
			mine = append(mine, w)
		} else {
			leaders = append(leaders, w)
		}
	}
	mine = append(mine, worker{name: "leader's work", run: func(ctx context.Context) error {
		err := e.leader.lead(ctx, func(lctx context.Context) error {
			if e.etcd != nil {
				e.opts.Logger.Info("this replica leads: running the once-per-cluster work", "replica", e.replica)
			}
			return e.runWorkers(lctx, leaders)
		})
		if err == nil && ctx.Err() == nil {
			err = errors.New("leadership ended")
		}
		return err
	}})
	return e.runWorkers(ctx, mine)
}

// runWorkers runs ws until ctx ends (then it returns nil) or one of them
// fails (then it stops the others and returns that failure).
func (e *Endpoint) runWorkers(ctx context.Context, ws []worker) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, len(ws))
	for _, w := range ws {
		go func() {
			err := w.run(ctx)
			if ctx.Err() == nil {
				// Stopping on its own is a failure even without an error.
				err = fmt.Errorf("%s stopped: %w", w.name, errors.Join(err, errWorkerStopped))
			} else {
				err = nil
			}
			done <- err
		}()
	}
	var first error
	for range ws {
		if err := <-done; err != nil && first == nil {
			first = err
			e.opts.Logger.Error("endpoint worker failed; stopping the endpoint", "err", err)
			cancel()
		}
	}
	return first
}

// Replica is this process's id among the replicas; "" alone on bbolt.
func (e *Endpoint) Replica() string { return e.replica }

// Leader returns the id of the replica that runs the once-per-cluster work
// now: this one alone on bbolt, the elected one on etcd ("" while none is).
func (e *Endpoint) Leader() (string, error) {
	if e.etcd == nil {
		return e.replica, nil
	}
	return e.etcd.Leader()
}

// errWorkerStopped marks a worker that returned while it should have run.
var errWorkerStopped = errors.New("worker stopped before the endpoint")

// PruneStoppedTasks deletes tasks stopped longer ago than the retention;
// Run calls it every minute.
func (e *Endpoint) PruneStoppedTasks() (int, error) {
	retention := e.opts.StoppedTaskRetention
	if retention <= 0 {
		retention = time.Hour
	}
	return records.PruneStoppedTasks(e.db, e.opts.Now().Add(-retention))
}

func (e *Endpoint) runPruner(ctx context.Context) error {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if n, err := e.PruneStoppedTasks(); err != nil {
				e.opts.Logger.Error("pruning stopped tasks", "err", err)
			} else if n > 0 {
				e.opts.Logger.Debug("pruned stopped tasks", "count", n)
			}
		}
	}
}

// Listen opens the configured listener and the data directory's admin
// socket, so that once it returns (and systemd has been told READY) both
// the API and `berth-cluster keys` reach this endpoint.
func (e *Endpoint) Listen() (net.Listener, error) {
	adminLn, err := e.listenAdmin()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", e.opts.Listen)
	if err != nil {
		adminLn.Close()
		return nil, fmt.Errorf("listen %s: %w", e.opts.Listen, err)
	}
	if e.adminLn != nil {
		e.adminLn.Close()
	}
	e.adminLn = adminLn
	return ln, nil
}

// Serve serves the endpoint on ln, and key management on the data
// directory's admin socket, and runs its background work (Run), until ctx
// is cancelled or a part fails; then it shuts down gracefully (in-flight
// requests get 10 seconds). A cancelled context is a clean stop.
func (e *Endpoint) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           e.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(e.opts.Logger.Handler(), slog.LevelWarn),
	}
	adminLn := e.adminLn
	e.adminLn = nil
	if adminLn == nil {
		var err error
		if adminLn, err = e.listenAdmin(); err != nil {
			ln.Close()
			return fmt.Errorf("serve: %w", err)
		}
	}
	if !e.opts.InsecureHTTP {
		if e.opts.TLSCertFile == "" || e.opts.TLSKeyFile == "" {
			ln.Close()
			adminLn.Close()
			return errors.New("serve: tls_cert and tls_key are required unless insecure_http = true")
		}
		cert, err := tls.LoadX509KeyPair(e.opts.TLSCertFile, e.opts.TLSKeyFile)
		if err != nil {
			ln.Close()
			adminLn.Close()
			return fmt.Errorf("serve: load TLS key pair: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	admin := &http.Server{Handler: e.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- admin.Serve(adminLn) }()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go func() { errc <- e.Run(runCtx) }()
	pending := 3
	var serveErr error
	select {
	case serveErr = <-errc:
		pending-- // a part failed; stop the others too
	case <-ctx.Done():
	}
	stopRun()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	e.CloseSessions()
	err := errors.Join(srv.Shutdown(shutdownCtx), admin.Shutdown(shutdownCtx))
	for ; pending > 0; pending-- {
		if perr := <-errc; serveErr == nil || errors.Is(serveErr, http.ErrServerClosed) {
			serveErr = perr
		}
	}
	os.Remove(filepath.Join(e.opts.DataDir, AdminSocket))
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	if err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}
