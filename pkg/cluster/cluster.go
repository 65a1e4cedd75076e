// Package cluster wires Berth's self-contained cluster endpoint: the bbolt
// store, the access keys, SigV4 verification and the ECS JSON API handler,
// served on one listener. cmd/cluster, dev mode and tests use it; it imports
// no agent package except pkg/api (through its api subpackage).
package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	clusterapi "github.com/berth-dev/berth/pkg/cluster/api"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// StoreFile is the name of the bbolt file inside the data directory.
const StoreFile = "cluster.db"

// Options configure an Endpoint.
type Options struct {
	// Listen is the address to serve on, e.g. ":8443" or "127.0.0.1:0".
	Listen string
	// TLSCertFile and TLSKeyFile enable HTTPS. Without them InsecureHTTP
	// must be set.
	TLSCertFile  string
	TLSKeyFile   string
	InsecureHTTP bool
	Region       string
	AccountID    string
	// DataDir holds cluster.db and master.key; created with mode 0700.
	DataDir string
	// PollEndpoint is what DiscoverPollEndpoint returns; empty means the
	// address each request came to.
	PollEndpoint string
	// Notifier is told about placed and stopping tasks. Ignored when
	// NewSessionServer is set (the session server is the notifier then).
	Notifier clusterapi.TaskNotifier
	// NewSessionServer builds the ACS session server once the store and the
	// SigV4 verifier exist; it serves GET /ws, is the task notifier and
	// keeps agentConnected, so tasks are then placed only on instances whose
	// agent is connected. Nil serves no websocket and places on any ACTIVE
	// instance.
	NewSessionServer func(store.Store, *auth.Verifier) (SessionServer, error)
	// Targets are further JSON APIs served on POST / by X-Amz-Target prefix
	// (the CloudWatch Logs API, later); their SigV4 services are accepted.
	Targets []clusterapi.Target
	// Roles checks the roles task definitions name; nil accepts any.
	Roles  clusterapi.RoleValidator
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand breaks placement ties; nil means a randomly seeded one.
	Rand *rand.Rand
	// Services tune the service controller Serve runs.
	Services clusterapi.ServiceOptions
	// StoppedTaskRetention is how long a STOPPED task stays visible; zero
	// means one hour, as in ECS. Serve prunes older ones every minute.
	StoppedTaskRetention time.Duration
}

// SessionServer is the ACS side of the endpoint (pkg/cluster/acs): it
// serves the agents' websocket on GET /ws and is told by the JSON API which
// tasks to deliver. If it also has a Close method (with or without an error
// result), Serve calls it at shutdown and Endpoint.Close before closing the
// store: websocket connections are hijacked, so the HTTP server's graceful
// shutdown neither ends nor waits for them. If it also has a
// Telemetry() http.Handler method (acs.Server does), that handler serves the
// TCS websocket at GET /tcs/ws.
type SessionServer interface {
	http.Handler
	clusterapi.TaskNotifier
}

// Endpoint is an open cluster endpoint.
type Endpoint struct {
	opts     Options
	db       *store.DB
	keys     *auth.Keyring
	handler  *clusterapi.Server
	sessions SessionServer
	// adminLn is the admin socket Listen opened, handed to Serve.
	adminLn net.Listener
}

// OpenStore opens the data directory's store and keyring without serving;
// `berth-cluster keys` uses it.
func OpenStore(dataDir string) (*store.DB, *auth.Keyring, error) {
	if dataDir == "" {
		return nil, nil, errors.New("data directory is required")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data directory: %w", err)
	}
	db, err := store.Open(filepath.Join(dataDir, StoreFile))
	if err != nil {
		return nil, nil, err
	}
	mk, err := auth.LoadMasterKey(dataDir)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	kr, err := auth.NewKeyring(db, mk)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, kr, nil
}

// Open opens the store and builds the handler.
func Open(opts Options) (*Endpoint, error) {
	if opts.Region == "" || opts.AccountID == "" {
		return nil, errors.New("open cluster endpoint: region and account id are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	db, kr, err := OpenStore(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("open cluster endpoint: %w", err)
	}
	services := []string{clusterapi.ECSService}
	for _, t := range opts.Targets {
		services = append(services, t.Service)
	}
	verifier := &auth.Verifier{Keys: kr, Region: opts.Region, Services: services, Now: opts.Now}
	apiOpts := clusterapi.Options{
		Store:        db,
		Verifier:     verifier,
		Region:       opts.Region,
		AccountID:    opts.AccountID,
		PollEndpoint: opts.PollEndpoint,
		Notifier:     opts.Notifier,
		Targets:      opts.Targets,
		Roles:        opts.Roles,
		Logger:       opts.Logger,
		Now:          opts.Now,
		Rand:         opts.Rand,
		Services:     opts.Services,
	}
	var sessions SessionServer
	if opts.NewSessionServer != nil {
		if sessions, err = opts.NewSessionServer(db, verifier); err != nil {
			db.Close()
			return nil, fmt.Errorf("open cluster endpoint: session server: %w", err)
		}
		apiOpts.Notifier, apiOpts.Websocket = sessions, sessions
		if t, ok := sessions.(interface{ Telemetry() http.Handler }); ok {
			apiOpts.Telemetry = t.Telemetry()
		}
		apiOpts.RequireConnectedAgent = true
	}
	h, err := clusterapi.New(apiOpts)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open cluster endpoint: %w", err)
	}
	return &Endpoint{opts: opts, db: db, keys: kr, handler: h, sessions: sessions}, nil
}

// Handler is the endpoint's HTTP handler (ECS JSON API on POST /).
func (e *Endpoint) Handler() http.Handler { return e.handler }

// Keys is the endpoint's keyring.
func (e *Endpoint) Keys() *auth.Keyring { return e.keys }

// Store is the endpoint's store.
func (e *Endpoint) Store() *store.DB { return e.db }

// Close closes the session server (if it has a Close method) and the store.
func (e *Endpoint) Close() error {
	if e.adminLn != nil { // Listen without Serve
		e.adminLn.Close()
		e.adminLn = nil
	}
	return errors.Join(e.closeSessions(), e.db.Close())
}

// RunBackground runs the endpoint's work besides answering requests until
// ctx ends: the service controller (services kept at their desired count)
// and the pruning of old STOPPED tasks. Serve runs it; an embedder that
// serves Handler on its own listener (dev mode) runs it itself.
func (e *Endpoint) RunBackground(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		e.pruneLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		e.handler.RunServiceController(ctx)
	}()
	wg.Wait()
}

// closeSessions ends the ACS sessions; it may be called more than once.
func (e *Endpoint) closeSessions() error {
	switch c := e.sessions.(type) {
	case interface{ Close() error }:
		return c.Close()
	case interface{ Close() }:
		c.Close()
	}
	return nil
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

// Serve serves the API on ln, and key management on the data directory's
// admin socket, until ctx is cancelled; then it shuts down gracefully
// (in-flight requests get 10 seconds). A cancelled context is a clean stop.
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
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- admin.Serve(adminLn) }()
	bgCtx, stopBackground := context.WithCancel(ctx)
	background := make(chan struct{})
	go func() {
		defer close(background)
		e.RunBackground(bgCtx)
	}()
	defer func() {
		stopBackground()
		<-background
	}()
	pending := 2
	var serveErr error
	select {
	case serveErr = <-errc:
		pending-- // a server failed; stop the other one too
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := errors.Join(e.closeSessions(), srv.Shutdown(shutdownCtx), admin.Shutdown(shutdownCtx))
	for ; pending > 0; pending-- {
		if e := <-errc; serveErr == nil || errors.Is(serveErr, http.ErrServerClosed) {
			serveErr = e
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

// PruneStoppedTasks deletes tasks stopped longer ago than the retention;
// Serve calls it every minute.
func (e *Endpoint) PruneStoppedTasks() (int, error) {
	retention := e.opts.StoppedTaskRetention
	if retention <= 0 {
		retention = time.Hour
	}
	return e.handler.PruneStoppedTasks(retention)
}

func (e *Endpoint) pruneLoop(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n, err := e.PruneStoppedTasks(); err != nil {
				e.opts.Logger.Error("pruning stopped tasks", "err", err)
			} else if n > 0 {
				e.opts.Logger.Debug("pruned stopped tasks", "count", n)
			}
		}
	}
}
