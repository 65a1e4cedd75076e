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
}

// workers lists the endpoint's background work. All of it must run once
// per cluster: with a replicated store it will run on the elected leader
// only (the log retention sweep excepted, whose store is per replica).
func (e *Endpoint) workers() []worker {
	ws := []worker{
		{"service controller", e.services.Run},
		{"stopped-task pruner", e.runPruner},
		{"log retention", func(ctx context.Context) error {
			e.logs.RunRetention(ctx, time.Hour, func(err error) { e.opts.Logger.Warn("log retention sweep failed", "err", err) })
			return nil
		}},
	}
	if e.broker != nil {
		ws = append(ws, worker{"task role credentials refresh", e.broker.Run})
	}
	return ws
}

// Run runs the endpoint's background work until ctx ends: the service
// controller, the pruning of old STOPPED tasks, the log retention sweep and,
// with task roles, the refresh of their credentials. It returns nil when ctx
// ends, or the first worker's failure (having stopped the others). Serve
// runs it; an embedder that serves Handler on its own listener (dev mode)
// runs it itself.
func (e *Endpoint) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws := e.workers()
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
