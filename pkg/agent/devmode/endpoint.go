package devmode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/roles"
)

// EndpointOptions configure StartEndpoint.
type EndpointOptions struct {
	// DataDir holds the endpoint's store and master key.
	DataDir string
	// Listen is the address to serve on; empty means 127.0.0.1:0.
	Listen            string
	Region, AccountID string
	// ACS tunes the session server (Store and Verifier are filled in).
	ACS acs.Options
	// Roles, when set, are task roles the endpoint issues credentials for
	// (static keys, e.g. from roles.DevRole); the session server puts them
	// in payloads and refreshes them.
	Roles []roles.RoleConfig
	// Wrap, when set, wraps the HTTP handler (tests record requests).
	Wrap   func(http.Handler) http.Handler
	Logger *slog.Logger
	// MetricsClock and ScalingTick, when set, are cluster.Options'
	// (end-to-end tests of auto scaling run the metrics clock fast).
	MetricsClock func() time.Time
	ScalingTick  time.Duration
}

// Endpoint is pkg/cluster's endpoint (the ECS and CloudWatch Logs APIs on
// POST /, the ACS and TCS websockets on GET /ws and GET /tcs/ws, the
// service controller and the other background work) served over plain HTTP
// on one loopback listener. Tasks are placed only on instances whose agent
// holds a session, as in ECS.
type Endpoint struct {
	// URL is http://host:port.
	URL string
	// Addr is the listener's address.
	Addr string
	Keys *auth.Keyring

	ep  *cluster.Endpoint
	srv *http.Server
	// stopBackground ends the endpoint's background work.
	stopBackground context.CancelFunc
	wg             sync.WaitGroup
	once           sync.Once
	// failed holds the first error that ended serving (or the background
	// work) before Close; see Failed.
	failed chan error
}

// ConsoleSignInLink returns the path of a one-time link that signs a
// browser in to the endpoint's web console as the key keyID.
func (e *Endpoint) ConsoleSignInLink(keyID string) (string, error) {
	return e.ep.ConsoleSignInLink(keyID)
}

// Failed receives the first error that stopped the endpoint serving (or its
// background work: the service controller, credential refresh, ...) before
// Close or Shutdown: dev mode then stops instead of running an agent whose
// endpoint is gone.
func (e *Endpoint) Failed() <-chan error { return e.failed }

// fail reports err on Failed unless an earlier failure is there.
func (e *Endpoint) fail(err error) {
	select {
	case e.failed <- err:
	default:
	}
}

// StartEndpoint opens the endpoint under o.DataDir and serves until Close (or
// Shutdown). ctx bounds the endpoint's background work (the service
// controller, refreshing task role credentials); serving itself ends only
// with Close.
func StartEndpoint(ctx context.Context, o EndpointOptions) (*Endpoint, error) {
	if o.Region == "" || o.AccountID == "" || o.DataDir == "" {
		return nil, errors.New("start endpoint: DataDir, Region and AccountID are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	ep, err := cluster.Open(ctx, cluster.Options{Listen: o.Listen, InsecureHTTP: true, Region: o.Region, AccountID: o.AccountID,
		DataDir: o.DataDir, Roles: o.Roles, ACS: o.ACS, Logger: o.Logger, MetricsClock: o.MetricsClock, ScalingTick: o.ScalingTick})
	if err != nil {
		return nil, fmt.Errorf("start endpoint: %w", err)
	}
	handler := ep.Handler()
	if o.Wrap != nil {
		handler = o.Wrap(handler)
	}
	ln, err := listen(o.Listen)
	if err != nil {
		ep.Close()
		return nil, fmt.Errorf("start endpoint: %w", err)
	}
	e := &Endpoint{
		URL: "http://" + ln.Addr().String(), Addr: ln.Addr().String(), Keys: ep.Keys(), ep: ep,
		srv: &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn)},
		failed: make(chan error, 1),
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Logger.Error("endpoint stopped", "err", err)
			e.fail(fmt.Errorf("serve on %s: %w", ln.Addr(), err))
		}
	}()
	// The service controller, pruning, log retention and credential
	// refresh, as berth-cluster runs them, until stop.
	ctx, cancel := context.WithCancel(ctx)
	e.stopBackground = cancel
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if err := ep.Run(ctx); err != nil {
			e.fail(fmt.Errorf("endpoint: %w", err))
		}
	}()
	return e, nil
}

// listen retries briefly: a restarted endpoint reuses its old port, which
// the kernel may hold for a moment.
func listen(addr string) (net.Listener, error) {
	var err error
	for i := 0; i < 50; i++ {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("listen %s: %w", addr, err)
}

// Close stops serving at once (requests in flight are cut), ends every ACS
// session and closes the store.
func (e *Endpoint) Close() error {
	return e.stop(func() error { return e.srv.Close() })
}

// Shutdown stops accepting requests, lets those in flight finish and answer
// (until ctx ends), ends every ACS session and closes the store. A client
// whose request was applied thus also gets the answer, and does not send it
// again.
func (e *Endpoint) Shutdown(ctx context.Context) error {
	return e.stop(func() error { return e.srv.Shutdown(ctx) })
}

func (e *Endpoint) stop(stopHTTP func() error) error {
	var err error
	e.once.Do(func() {
		// Sessions are hijacked connections that the HTTP server does not
		// track: they are ended first.
		e.ep.CloseSessions()
		err = stopHTTP()
		e.stopBackground()
		e.wg.Wait()
		err = errors.Join(err, e.ep.Close())
	})
	return err
}

// DataFile is where the endpoint keeps its store inside DataDir.
func DataFile(dir string) string { return filepath.Join(dir, cluster.StoreFile) }
