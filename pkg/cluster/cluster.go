// Package cluster builds and runs Berth's self-contained cluster endpoint,
// one of Berth's two products (the other is the agent). Open builds
// everything the endpoint runs from one Options value: the store (bbolt,
// cluster.db; or etcd, shared by several replicas: replicas.go), the access keys and SigV4 verification, the AWS protocol
// router with the ECS API, the CloudWatch Logs-compatible log store and the
// Elastic Load Balancing v2 API (with its data-plane API), the
// task role credentials broker, the ACS/TCS session server, and the
// background workers (service controller, pruning of stopped tasks, log
// retention, credential refresh). berth-cluster serve (Listen, Serve) and
// dev mode (Handler, Run) each make one call to Open.
//
// It is the only package that knows every part of the endpoint; it imports
// the endpoint's packages and, of the agent's, pkg/api only. cmd/cluster,
// dev mode, the simulated fleet and tests import it.
package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/autoscaling"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/cloudwatchapi"
	"github.com/berth-dev/berth/pkg/cluster/console"
	"github.com/berth-dev/berth/pkg/cluster/ecsapi"
	"github.com/berth-dev/berth/pkg/cluster/elbv2"
	"github.com/berth-dev/berth/pkg/cluster/launch"
	"github.com/berth-dev/berth/pkg/cluster/logstore"
	"github.com/berth-dev/berth/pkg/cluster/metrics"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/roles"
	"github.com/berth-dev/berth/pkg/cluster/secrets"
	"github.com/berth-dev/berth/pkg/cluster/servicectl"
	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
	"github.com/berth-dev/berth/pkg/cluster/store/etcdstore"
)

// StoreFile is the name of the bbolt file inside the data directory.
const StoreFile = "cluster.db"

// Options configure an Endpoint: the settings of cluster.toml, and seams for
// tests.
type Options struct {
	// Listen is the address Listen opens, e.g. ":8443" or "127.0.0.1:0".
	Listen string
	// TLSCertFile and TLSKeyFile make Serve use HTTPS. Without them
	// InsecureHTTP must be set.
	TLSCertFile  string
	TLSKeyFile   string
	InsecureHTTP bool
	// Region and AccountID appear in every ARN; clients sign for Region.
	Region    string
	AccountID string
	// DataDir holds cluster.db, logs.db, master.key and roles-id.key;
	// created with mode 0700.
	DataDir string
	// PollEndpoint is what DiscoverPollEndpoint returns; empty means the
	// address each request came to.
	PollEndpoint string
	// Roles are the task IAM roles task definitions may name; the endpoint
	// issues their credentials into payloads and refreshes them. None
	// means any role is accepted and no credentials are issued.
	Roles []roles.RoleConfig
	// Certificates are the TLS certificates HTTPS listeners of the Elastic
	// Load Balancing API may name by ARN (cluster.toml's [[certificates]]);
	// Open checks that each pair loads.
	Certificates []Certificate
	// AWSCredentials sign the STS calls of assume-role roles: the
	// endpoint's own credentials. Nil loads the AWS SDK's default chain
	// when a role needs it.
	AWSCredentials aws.CredentialsProvider
	// ACS tunes the ACS/TCS session server; Store, Verifier, Credentials
	// and Logger are filled in.
	ACS acs.Options
	// Services tune the service controller.
	Services servicectl.Timing
	// ScalingTick is how often the leader checks whether the clock reached
	// a new minute to evaluate the alarms, and whether scheduled actions
	// are due; zero means 10 seconds (tests with an injected clock make it
	// short).
	ScalingTick time.Duration
	// StoppedTaskRetention is how long a STOPPED task stays visible; zero
	// means one hour, as in ECS. Run prunes older ones every minute.
	StoppedTaskRetention time.Duration
	Logger               *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MetricsClock is the clock of the metrics store, the alarms'
	// evaluation and Application Auto Scaling (when samples are stamped,
	// which minute is evaluated, cooldowns, scheduled actions); nil means
	// Now. End-to-end tests run it faster than real time, so that target
	// tracking's 3- and 15-minute alarms evaluate within a bounded test
	// while agents, berth-lb and SigV4 keep real time.
	MetricsClock func() time.Time

	// NoAgentSessions serves no ACS/TCS websockets and lets RunTask place
	// tasks on any ACTIVE instance, connected or not: for tests of the
	// ECS API without agents. berth-cluster and dev mode never set it.
	NoAgentSessions bool
	// Notifier, when set, is told about every committed task change as the
	// session server is (tests watch deliveries with it).
	Notifier ecsapi.TaskNotifier
	// Etcd, when set, keeps the records and keys in etcd, shared with the
	// other replicas, instead of cluster.db; the once-per-cluster workers
	// then run on the elected leader only. DataDir still holds logs.db and
	// the admin socket.
	Etcd *EtcdOptions
}

// Certificate is a TLS certificate HTTPS listeners may name by its ARN,
// with its PEM files.
type Certificate = elbv2.Certificate

// Endpoint is an open cluster endpoint.
type Endpoint struct {
	opts Options
	db   store.Store
	// etcd is db on etcd (nil on bbolt): its watch and election.
	etcd *etcdstore.Store
	// replica is this process's id among the replicas ("" on bbolt).
	replica string
	leader  leadership
	// idKey derives credentials ids; on bbolt it is read from the data
	// directory when roles are declared.
	idKey    []byte
	keys     *auth.Keyring
	logs     *logstore.Store
	sessions *acs.Server // nil with NoAgentSessions
	broker   *roles.Broker
	secrets  *secrets.Server
	services *servicectl.Controller
	metrics  *metrics.Store
	// scaling is Application Auto Scaling: it runs the alarms' actions.
	scaling *autoscaling.Server
	// console is the web console on /console/.
	console *console.Server
	handler http.Handler
	// adminLn is the admin socket Listen opened, handed to Serve.
	adminLn net.Listener
}

// Buckets lists the buckets of cluster.db: the ECS and load balancing
// records, the metrics and alarms, Application Auto Scaling's records,
// the access keys, the agents' session records, the SSM parameters and
// Secrets Manager secrets.
func Buckets() []store.Bucket {
	return append(append(append(append(append(records.Buckets(), records.LBBuckets()...), metrics.Buckets()...), autoscaling.Buckets()...),
		auth.KeysBucket, acs.SessionsBucket), append(secrets.Buckets(), console.Buckets()...)...)
}

// OpenStore opens the data directory's store and keyring without serving;
// `berth-cluster keys` uses it.
func OpenStore(dataDir string) (*boltstore.DB, *auth.Keyring, error) {
	if dataDir == "" {
		return nil, nil, errors.New("data directory is required")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data directory: %w", err)
	}
	db, err := boltstore.Open(filepath.Join(dataDir, StoreFile), boltstore.Options{Buckets: Buckets()})
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

// Open opens the data directory's stores and builds every part of the
// endpoint; nothing runs until Serve (or Run and Handler). ctx bounds
// loading the endpoint's own AWS credentials.
func Open(ctx context.Context, opts Options) (*Endpoint, error) {
	if opts.Region == "" || opts.AccountID == "" {
		return nil, errors.New("open cluster endpoint: region and account id are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Endpoint{opts: opts, leader: soleReplica{}}
	if opts.Etcd != nil {
		if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("open cluster endpoint: create data directory: %w", err)
		}
		st, kr, idKey, err := openEtcd(ctx, opts.Etcd, opts.Logger)
		if err != nil {
			return nil, fmt.Errorf("open cluster endpoint: %w", err)
		}
		e.db, e.etcd, e.keys, e.idKey = st, st, kr, idKey
		e.replica = replicaID(opts.Etcd.Replica)
		e.leader = etcdElection{st: st, o: etcdstore.LeadOptions{ID: e.replica, LeaseTTL: opts.Etcd.LeaseTTL}}
		opts.Logger.Info("store: etcd", "endpoints", opts.Etcd.Endpoints, "prefix", st.Prefix(), "replica", e.replica)
	} else {
		db, kr, err := OpenStore(opts.DataDir)
		if err != nil {
			return nil, fmt.Errorf("open cluster endpoint: %w", err)
		}
		e.db, e.keys = db, kr
	}
	batch := math.MaxInt // bbolt: one transaction
	if e.etcd != nil {
		batch = e.etcd.MaxTxnOps()
	}
	if err := records.EnsureIndexes(e.db, batch); err != nil {
		return nil, errors.Join(fmt.Errorf("open cluster endpoint: %w", err), e.Close())
	}
	if err := e.build(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open cluster endpoint: %w", err), e.Close())
	}
	return e, nil
}

// build makes the parts of the endpoint around its store and keyring.
func (e *Endpoint) build(ctx context.Context) error {
	o := e.opts
	var err error
	if e.logs, err = logstore.Open(logstore.Options{Path: filepath.Join(o.DataDir, logstore.File),
		Region: o.Region, AccountID: o.AccountID, Now: o.Now}); err != nil {
		return err
	}
	metricsNow := o.MetricsClock
	if metricsNow == nil {
		metricsNow = o.Now
	}
	if e.metrics, err = metrics.New(metrics.Options{Store: e.db, Now: metricsNow}); err != nil {
		return err
	}
	if len(o.Roles) > 0 {
		if e.broker, err = e.newBroker(ctx); err != nil {
			return err
		}
	}
	verifier := &auth.Verifier{Keys: e.keys, Region: o.Region, Now: o.Now,
		Services: []string{ecsapi.Service, logstore.Service, auth.LBService, cloudwatchapi.Service, secrets.SSMService, secrets.SecretsManagerService,
			autoscaling.Service}}
	so := secrets.Options{Store: e.db, Sealer: e.keys, Region: o.Region, AccountID: o.AccountID, Now: o.Now}
	if e.broker != nil {
		// Requests signed with a declared role's credentials (a task's
		// role or execution role) reach the secrets APIs, which check the
		// role's grants.
		verifier.RoleKeys, so.Grants = e.broker, e.broker
	}
	if e.secrets, err = secrets.New(so); err != nil {
		return err
	}
	notifiers := taskNotifiers{}
	if !o.NoAgentSessions {
		ao := o.ACS
		ao.Store, ao.Verifier, ao.Logger, ao.Replica, ao.Metrics = e.db, verifier, o.Logger, e.replica, e.metrics
		if e.broker != nil {
			ao.Credentials = e.broker
		}
		if e.sessions, err = acs.New(ao); err != nil {
			return err
		}
		if e.etcd == nil {
			// With replicas the session server learns of every change,
			// this replica's too, from the store's watch (runWatch): told
			// here as well, it would send each payload twice.
			notifiers = append(notifiers, e.sessions)
		}
	}
	if o.Notifier != nil {
		notifiers = append(notifiers, o.Notifier)
	}
	launcher := &launch.Launcher{ARNs: records.ARNs{Region: o.Region, AccountID: o.AccountID}, RequireConnectedAgent: !o.NoAgentSessions}
	if e.services, err = servicectl.New(servicectl.Options{Store: e.db, Launcher: launcher, Notifier: notifiers,
		Timing: o.Services, Logger: o.Logger, Now: o.Now}); err != nil {
		return err
	}
	eo := ecsapi.Options{Store: e.db, Launcher: launcher, PollEndpoint: o.PollEndpoint, Notifier: notifiers,
		Services: e.services, Now: o.Now}
	if e.broker != nil {
		eo.Roles = e.broker // taskRoleArn and executionRoleArn must name declared roles
	}
	ecs, err := ecsapi.New(eo)
	if err != nil {
		return err
	}
	for _, c := range o.Certificates {
		if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
			return fmt.Errorf("certificate %s: %w", c.ARN, err)
		}
	}
	lb, err := elbv2.New(elbv2.Options{Store: e.db, Region: o.Region, AccountID: o.AccountID, Certificates: o.Certificates,
		Metrics: e.metrics, Now: o.Now})
	if err != nil {
		return err
	}
	if e.scaling, err = autoscaling.New(autoscaling.Options{Store: e.db, Metrics: e.metrics, Region: o.Region, AccountID: o.AccountID,
		Services: e.services, Logger: o.Logger, Now: metricsNow}); err != nil {
		return err
	}
	cw, err := cloudwatchapi.New(cloudwatchapi.Options{Metrics: e.metrics, Region: o.Region, AccountID: o.AccountID,
		Actions: e.scaling, Now: metricsNow})
	if err != nil {
		return err
	}
	ecsAPI := ecs.API()
	// The console acts through the ECS API's own handler, as the signed-in
	// key: the same checks and errors as a signed request.
	if e.console, err = console.New(console.Options{Store: e.db, Keys: e.keys, ECS: ecsAPI.Handler, Metrics: e.metrics, Logs: e.logs, Scaling: e.scaling, Logger: o.Logger, Now: o.Now}); err != nil {
		return err
	}
	apis := append([]awsproto.API{ecsAPI, e.logs.API(), lb.API(), lb.DataPlaneAPI(), e.secrets.SSMAPI(), e.secrets.SecretsManagerAPI(),
		e.scaling.API()}, cw.APIs()...)
	router, err := awsproto.New(awsproto.Options{Verifier: verifier, APIs: apis, Logger: o.Logger, Now: o.Now})
	if err != nil {
		return err
	}
	e.handler = e.routes(router)
	return nil
}

// newBroker builds the task role credentials broker for the declared
// roles. assume-role roles sign STS calls with the endpoint's own AWS
// credentials; credentials ids are derived under a key kept in the data
// directory, so that they survive a restart. Refreshed credentials reach
// agents through the session server.
func (e *Endpoint) newBroker(ctx context.Context) (*roles.Broker, error) {
	o := e.opts
	ro := roles.Options{Roles: o.Roles, BaseCredentials: o.AWSCredentials, Region: o.Region, AccountID: o.AccountID}
	for _, r := range o.Roles {
		if r.Source == roles.SourceAssumeRole && ro.BaseCredentials == nil {
			awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
			if err != nil {
				return nil, fmt.Errorf("roles: the endpoint's AWS credentials: %w", err)
			}
			ro.BaseCredentials = awsCfg.Credentials
		}
	}
	issuer, err := roles.New(ro)
	if err != nil {
		return nil, err
	}
	key := e.idKey
	if key == nil {
		if key, err = roles.LoadIDKey(o.DataDir); err != nil {
			return nil, err
		}
	}
	return roles.NewBroker(roles.BrokerOptions{Issuer: issuer, IDKey: key,
		Refresher: roles.RefresherOptions{Logger: o.Logger},
		Sender: roles.SenderFunc(func(ctx context.Context, arn string, m *api.IAMRoleCredentialsMessage) error {
			if e.sessions == nil {
				return fmt.Errorf("send credentials to %s: no session server", arn)
			}
			return e.sessions.SendCredentials(ctx, arn, m)
		})})
}

// taskNotifiers tells each of its notifiers about every change.
type taskNotifiers []ecsapi.TaskNotifier

func (ns taskNotifiers) TasksChanged(ctx context.Context, changes []records.TaskChange) {
	for _, n := range ns {
		n.TasksChanged(ctx, changes)
	}
}

// routes serves the AWS APIs on POST / (and RPC v2 on POST /service/...),
// the ACS websocket on GET /ws, the TCS websocket on GET /tcs/ws, the
// Prometheus figures on GET /metrics and the web console under /console/;
// anything else is 404.
func (e *Endpoint) routes(router http.Handler) http.Handler {
	var telemetry http.Handler
	if e.sessions != nil {
		telemetry = e.sessions.Telemetry()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/ws" && r.Method == http.MethodGet && e.sessions != nil:
			e.sessions.ServeHTTP(w, r)
		case r.URL.Path == ecsapi.TelemetryPath+"/ws" && r.Method == http.MethodGet && telemetry != nil:
			telemetry.ServeHTTP(w, r)
		case r.URL.Path == "/metrics" && r.Method == http.MethodGet:
			e.serveMetrics(w)
		case strings.HasPrefix(r.URL.Path, console.Prefix):
			e.console.ServeHTTP(w, r)
		case r.URL.Path == strings.TrimSuffix(console.Prefix, "/") && r.Method == http.MethodGet:
			http.Redirect(w, r, console.Prefix, http.StatusMovedPermanently)
		case (r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, awsproto.RPCPathPrefix)) && r.Method == http.MethodPost:
			if e.etcd != nil {
				w = &staleMarker{ResponseWriter: w, st: e.etcd}
			}
			router.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// StaleHeader is set on an API response served while the store (etcd) had
// no quorum: reads then come from one etcd member and may be behind the
// cluster's state; writes are refused meanwhile (503).
const StaleHeader = "X-Berth-Stale-Read"

// staleMarker adds StaleHeader to a response when the store's last read
// was stale, checked when the response's header is written, after the
// request's reads.
type staleMarker struct {
	http.ResponseWriter
	st          store.StaleReader
	wroteHeader bool
}

func (m *staleMarker) WriteHeader(code int) {
	if !m.wroteHeader {
		m.wroteHeader = true
		if m.st.Stale() {
			m.Header().Set(StaleHeader, "etcd has no quorum: this answer was read from one member and may be stale")
		}
	}
	m.ResponseWriter.WriteHeader(code)
}

func (m *staleMarker) Write(b []byte) (int, error) {
	if !m.wroteHeader {
		m.WriteHeader(http.StatusOK)
	}
	return m.ResponseWriter.Write(b)
}

// serveMetrics answers GET /metrics: the AWS/ECS figures for Prometheus.
// Like DiscoverPollEndpoint's telemetry, it needs no signature (a
// Prometheus scrape has none); it shows cluster and service names and
// their utilisation, nothing else.
func (e *Endpoint) serveMetrics(w http.ResponseWriter) {
	var b bytes.Buffer
	if err := e.metrics.WritePrometheus(&b); err != nil {
		e.opts.Logger.Error("serve /metrics", "err", err)
		http.Error(w, "the metrics store could not be read", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(b.Bytes())
}

// Handler is the endpoint's HTTP handler: the AWS APIs on POST /, the ACS
// and TCS websockets on GET /ws and GET /tcs/ws.
func (e *Endpoint) Handler() http.Handler { return e.handler }

// ConsoleSignInLink returns the path of a one-time link (good for 10
// minutes) that signs a browser in to the web console as the key keyID:
// dev mode prints one for its admin key.
func (e *Endpoint) ConsoleSignInLink(keyID string) (string, error) {
	return e.console.SignInLink(keyID)
}

// Keys is the endpoint's keyring.
func (e *Endpoint) Keys() *auth.Keyring { return e.keys }

// Store is the endpoint's store of the ECS records and access keys.
func (e *Endpoint) Store() store.Store { return e.db }

// Close ends every ACS and TCS session and closes the stores. Sessions are
// hijacked connections, which an HTTP server's shutdown neither ends nor
// waits for.
func (e *Endpoint) Close() error {
	if e.adminLn != nil { // Listen without Serve
		e.adminLn.Close()
		e.adminLn = nil
	}
	e.CloseSessions()
	var errs []error
	if e.logs != nil {
		errs = append(errs, e.logs.Close())
	}
	return errors.Join(append(errs, e.db.Close())...)
}

// CloseSessions ends every ACS and TCS session and refuses new ones; Close
// does it too. An embedder that serves Handler on its own listener calls
// it before shutting that server down: sessions are hijacked connections,
// which an HTTP server's shutdown neither ends nor waits for. It may be
// called more than once.
func (e *Endpoint) CloseSessions() {
	if e.sessions != nil {
		e.sessions.Close()
	}
}
