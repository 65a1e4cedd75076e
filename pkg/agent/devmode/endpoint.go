package devmode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	clusterapi "github.com/berth-dev/berth/pkg/cluster/api"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/logstore"
	"github.com/berth-dev/berth/pkg/cluster/roles"
	"github.com/berth-dev/berth/pkg/cluster/store"
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
}

// Endpoint is pkg/cluster's endpoint with the ACS session server
// (pkg/cluster/acs) and the CloudWatch Logs-compatible store
// (pkg/cluster/logstore), serving the ECS and Logs JSON APIs (POST /) and
// the ACS and TCS websockets (GET /ws, GET /tcs/ws) over plain HTTP on one
// listener, and runs the service controller. Tasks are placed only on
// instances whose agent holds a session, as in ECS.
type Endpoint struct {
	// URL is http://host:port.
	URL string
	// Addr is the listener's address.
	Addr  string
	Keys  *auth.Keyring
	ACS   *acs.Server
	Store *store.DB

	ep   *cluster.Endpoint
	logs *logstore.Store
	srv  *http.Server
	// stopBackground ends the service controller, pruning and the broker.
	stopBackground context.CancelFunc
	wg             sync.WaitGroup
	once           sync.Once
	// failed holds the first error that ended serving (or the broker)
	// before Close; see Failed.
	failed chan error
}

// Failed receives the first error that stopped the endpoint serving (or
// refreshing task role credentials) before Close or Shutdown: dev mode then
// stops instead of running an agent whose endpoint is gone.
func (e *Endpoint) Failed() <-chan error { return e.failed }

// fail reports err on Failed unless an earlier failure is there.
func (e *Endpoint) fail(err error) {
	select {
	case e.failed <- err:
	default:
	}
}

// StartEndpoint opens the store under o.DataDir and serves until Close (or
// Shutdown). ctx bounds the endpoint's background work (refreshing task role
// credentials); serving itself ends only with Close.
func StartEndpoint(ctx context.Context, o EndpointOptions) (*Endpoint, error) {
	if o.Region == "" || o.AccountID == "" || o.DataDir == "" {
		return nil, errors.New("start endpoint: DataDir, Region and AccountID are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	ao := o.ACS
	if ao.Logger == nil {
		ao.Logger = o.Logger
	}
	// The CloudWatch Logs-compatible store gives awslogs containers a
	// destination, served on the same listener as in berth-cluster.
	logStore, err := logstore.Open(logstore.Options{Path: filepath.Join(o.DataDir, logstore.File), Region: o.Region, AccountID: o.AccountID})
	if err != nil {
		return nil, fmt.Errorf("start endpoint: %w", err)
	}
	var acsSrv *acs.Server
	var broker *roles.Broker
	if len(o.Roles) > 0 {
		var err error
		if broker, err = newBroker(o, func() *acs.Server { return acsSrv }); err != nil {
			logStore.Close()
			return nil, fmt.Errorf("start endpoint: %w", err)
		}
		ao.Credentials = broker
	}
	var validator clusterapi.RoleValidator
	if broker != nil {
		validator = broker // taskRoleArn and executionRoleArn must name declared roles
	}
	ep, err := cluster.Open(cluster.Options{
		Listen: o.Listen, InsecureHTTP: true, Region: o.Region, AccountID: o.AccountID, DataDir: o.DataDir, Logger: o.Logger,
		Targets: []clusterapi.Target{logStore.Target()}, Roles: validator,
		NewSessionServer: func(st store.Store, v *auth.Verifier) (cluster.SessionServer, error) {
			ao.Store, ao.Verifier = st, v
			var err error
			acsSrv, err = acs.New(ao)
			return acsSrv, err
		},
	})
	if err != nil {
		logStore.Close()
		return nil, fmt.Errorf("start endpoint: %w", err)
	}
	h := ep.Handler()
	var handler http.Handler = h
	if o.Wrap != nil {
		handler = o.Wrap(handler)
	}
	ln, err := listen(o.Listen)
	if err != nil {
		ep.Close()
		logStore.Close()
		return nil, fmt.Errorf("start endpoint: %w", err)
	}
	e := &Endpoint{
		URL: "http://" + ln.Addr().String(), Addr: ln.Addr().String(),
		Keys: ep.Keys(), ACS: acsSrv, Store: ep.Store(), ep: ep, logs: logStore,
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
	// The service controller and the pruning of old stopped tasks, as
	// berth-cluster runs them; with the role broker, until stop.
	ctx, cancel := context.WithCancel(ctx)
	e.stopBackground = cancel
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ep.RunBackground(ctx)
	}()
	if broker != nil {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			if err := broker.Run(ctx); ctx.Err() == nil {
				e.fail(fmt.Errorf("task role credentials broker stopped: %w", err))
			}
		}()
	}
	return e, nil
}

// newBroker builds the credentials broker for o.Roles. Credentials ids are
// derived under a key kept in DataDir, so they survive a restart.
func newBroker(o EndpointOptions, acsSrv func() *acs.Server) (*roles.Broker, error) {
	issuer, err := roles.New(roles.Options{Roles: o.Roles})
	if err != nil {
		return nil, err
	}
	key, err := roles.LoadIDKey(o.DataDir)
	if err != nil {
		return nil, err
	}
	return roles.NewBroker(roles.BrokerOptions{Issuer: issuer, IDKey: key,
		Refresher: roles.RefresherOptions{Logger: o.Logger},
		Sender: roles.SenderFunc(func(ctx context.Context, arn string, m *api.IAMRoleCredentialsMessage) error {
			return acsSrv().SendCredentials(ctx, arn, m)
		})})
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
		// track; the ACS server ends them (the endpoint's Close does too).
		e.ACS.Close()
		err = stopHTTP()
		e.stopBackground()
		e.wg.Wait()
		err = errors.Join(err, e.ep.Close(), e.logs.Close())
	})
	return err
}

// DataFile is where the endpoint keeps its store inside DataDir.
func DataFile(dir string) string { return filepath.Join(dir, cluster.StoreFile) }
