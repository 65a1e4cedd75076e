// Package runtime owns the agent's use of containerd, and is the only
// package of Berth that talks to it: connecting, pulling images
// (credentials, mirrors, pull behaviours, timeouts, a per-owner registry
// login), creating containers from a container.Spec (reading its
// Docker-format sizes, tmpfs and log options), their lifecycle (start, exit,
// wait, stop, remove, exec, stats, list and re-attach after an agent
// restart), the task cgroups that bound a task's containers together
// (taskcgroup.go) and the images of its namespace.
//
// *Runtime satisfies pkg/engine's ContainerRuntime and ImageStore directly:
// the types it takes and returns are pkg/container's, and its errors wrap
// container.ErrNotFound, ErrExists and ErrUnavailable. It knows nothing of
// ECS or networks (a task is only a named cgroup here): it joins network namespaces that pkg/network
// created. Container output goes from the shim through FIFOs to the log
// daemon of pkg/logs (logio.go), so no container IO passes through this
// package.
//
// Of Berth it imports pkg/logs and pkg/container only. pkg/agent builds it;
// pkg/stats, bench/ and tests also use it.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/events"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventtypes "github.com/containerd/containerd/api/events"

	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/logs"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultAddress        = "/run/containerd/containerd.sock"
	DefaultNamespace      = "berth"
	DefaultSnapshotter    = "overlayfs"
	DefaultRuntimeName    = "io.containerd.runc.v2"
	DefaultHostResolvConf = "/etc/resolv.conf"
	// DefaultSystemdResolvConf is the upstream resolver list of
	// systemd-resolved, used when the host file only names its stub.
	DefaultSystemdResolvConf = "/run/systemd/resolve/resolv.conf"
	DefaultHostHostsFile     = "/etc/hosts"
	DefaultHostsDir          = "/etc/containerd/certs.d"
	DefaultStateDir          = "/var/lib/berth/containers"
)

// Options configures a Runtime. Zero fields take the defaults above.
type Options struct {
	// Address is containerd's socket; Namespace the containerd namespace
	// holding every container and image of this agent.
	Address   string
	Namespace string
	// ConnectTimeout bounds how long New waits for containerd to come up;
	// 0 waits until ctx ends.
	ConnectTimeout time.Duration
	// Snapshotter and RuntimeName are passed to containerd.
	Snapshotter string
	RuntimeName string

	// Registry configures image pulls.
	Registry RegistryOptions
	// PullBehavior is the default for pulls that do not set their own.
	PullBehavior PullBehavior
	// PullTimeout bounds a whole pull; 0 means no bound.
	PullTimeout time.Duration
	// PullInactivityTimeout cancels a pull that receives no bytes for this
	// long; 0 disables it.
	PullInactivityTimeout time.Duration

	// DisablePrivileged refuses containers that ask for privileged mode.
	DisablePrivileged bool
	// HostResolvConf is copied (without loopback resolvers) into containers
	// with their own network namespace; SystemdResolvConf replaces it when
	// it only names the systemd-resolved stub.
	HostResolvConf    string
	SystemdResolvConf string
	// HostHostsFile is the base of /etc/hosts for host-network containers.
	HostHostsFile string
	// StateDir holds per-container files (resolv.conf, hosts, hostname).
	StateDir string
	// LoggerBinary is the program that captures container output, run as
	// "<binary> log-daemon ..." (see logs.ServeMode); empty means this
	// executable.
	LoggerBinary string
	// LogDaemonDir is the log daemon's directory (its captures' FIFOs and
	// records); empty means StateDir/.logd. Runtimes sharing it share one
	// daemon.
	LogDaemonDir string
	// InitBinary, when set, is bind-mounted as /sbin/docker-init and run as
	// PID 1 for containers with Init set; without it Init is refused.
	InitBinary string
	// PullAuth, when set, gives the registry login of Pull for the owner
	// named by container.PullFor (the task); nil credentials leave the
	// agent-wide ones in force.
	PullAuth PullAuthorizer
}

// PullAuthorizer picks the registry login of one pull (pkg/execrole's
// RegistryLogins: ECR with the task's execution role).
type PullAuthorizer interface {
	PullCredentials(ctx context.Context, owner, ref string) (*container.Credentials, error)
}

// Runtime runs containers on containerd. It is safe for concurrent use.
type Runtime struct {
	opts     Options
	client   *containerd.Client
	pulls    singleflight.Group
	captures *logs.Captures

	// ctx scopes the goroutines the Runtime owns (event subscription, exit
	// monitors); Close cancels it and waits for them through wg.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards ooms, exits, held and closed; wg.Add happens under it so
	// that no goroutine starts once Close is waiting.
	mu   sync.Mutex
	ooms map[string]time.Time // container ID → time of its last OOM event
	// holder names this Runtime on its leases; held are the IDs of its
	// leases that an operation holds now (leases.go).
	holder leaseHolder
	held   map[string]bool
	// exits holds the exit channel of a container Start started until Wait
	// takes it; after an agent restart Wait re-attaches instead.
	exits  map[string]<-chan ExitStatus
	closed bool

	// stepHook, set only by this package's crash tests, runs at the points
	// of Create and Start that a kill -9 may interrupt ("create:files",
	// "create:snapshot", "start:created", "start:started").
	stepHook func(ctx context.Context, point string)
}

// step runs the crash tests' hook at one point of Create or Start.
func (r *Runtime) step(ctx context.Context, point string) {
	if r.stepHook != nil {
		r.stepHook(ctx, point)
	}
}

// ErrClosed is returned for work started after Close.
var ErrClosed = errors.New("runtime is closed")

// track registers one goroutine's worth of work with the Runtime, so Close
// waits for it; the caller must call the returned done.
func (r *Runtime) track() (done func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	r.wg.Add(1)
	return r.wg.Done, nil
}

// New connects to containerd, retrying until it answers, ConnectTimeout
// passes or ctx ends, and starts watching OOM events.
func New(ctx context.Context, opts Options) (*Runtime, error) {
	opts = withDefaults(opts)
	if err := opts.PullBehavior.validate(); err != nil {
		return nil, err
	}
	if opts.LoggerBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the logger binary: %w", err)
		}
		opts.LoggerBinary = exe
	}
	if opts.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.ConnectTimeout)
		defer cancel()
	}
	holder, err := newLeaseHolder()
	if err != nil {
		return nil, err
	}
	client, err := connect(ctx, opts)
	if err != nil {
		return nil, err
	}
	// The runtime's own goroutines outlive the caller's ctx; Close ends them.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &Runtime{
		opts:   opts,
		client: client,
		ctx:    namespaces.WithNamespace(rctx, opts.Namespace),
		cancel: cancel,
		ooms:   make(map[string]time.Time),
		exits:  make(map[string]<-chan ExitStatus),
		holder: holder,
		held:   make(map[string]bool),
		captures: logs.NewCaptures(logs.CapturesOptions{Dir: opts.LogDaemonDir, Binary: opts.LoggerBinary,
			Log: log.G(rctx)}),
	}
	// Leases of an earlier agent of this state directory killed during a
	// pull or create: nothing else would release them before they expire.
	if err := r.sweepLeases(ctx); err != nil {
		log.G(ctx).WithError(err).Warn("leases left by an earlier run remain until they expire")
	}
	done, _ := r.track()
	go func() {
		defer done()
		r.watchOOM()
	}()
	return r, nil
}

func withDefaults(o Options) Options {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Address, DefaultAddress)
	def(&o.Namespace, DefaultNamespace)
	def(&o.Snapshotter, DefaultSnapshotter)
	def(&o.RuntimeName, DefaultRuntimeName)
	def(&o.HostResolvConf, DefaultHostResolvConf)
	def(&o.SystemdResolvConf, DefaultSystemdResolvConf)
	def(&o.HostHostsFile, DefaultHostHostsFile)
	def(&o.StateDir, DefaultStateDir)
	def(&o.Registry.HostsDir, DefaultHostsDir)
	def(&o.LogDaemonDir, filepath.Join(o.StateDir, ".logd"))
	if o.PullBehavior == "" {
		o.PullBehavior = PullDefault
	}
	return o
}

func connect(ctx context.Context, opts Options) (*containerd.Client, error) {
	delay := 100 * time.Millisecond
	for {
		client, err := tryConnect(ctx, opts)
		if err == nil {
			return client, nil
		}
		log.G(ctx).WithError(err).Debug("containerd not ready, retrying")
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to containerd at %s: %w (last error: %v)", opts.Address, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

func tryConnect(ctx context.Context, opts Options) (*containerd.Client, error) {
	if _, err := os.Stat(opts.Address); err != nil {
		return nil, err
	}
	client, err := containerd.New(opts.Address,
		containerd.WithDefaultNamespace(opts.Namespace),
		containerd.WithDefaultRuntime(opts.RuntimeName),
		containerd.WithTimeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := client.Version(vctx); err != nil {
		client.Close()
		return nil, err
	}
	return client, nil
}

// unreachableProbe bounds the health check of Unreachable.
const unreachableProbe = 3 * time.Second

// Unreachable reports whether err, returned by one of the Runtime's calls,
// means that containerd could not be reached (it is down or restarting)
// rather than that it refused the request: the error says so, or containerd
// does not answer a health check now. Callers wait and retry such calls
// instead of failing what they were for.
func (r *Runtime) Unreachable(ctx context.Context, err error) bool {
	if err == nil || errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return false
	}
	if errdefs.IsUnavailable(err) || status.Code(errors.Unwrap(err)) == codes.Unavailable || status.Code(err) == codes.Unavailable {
		return true
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unreachableProbe)
	defer cancel()
	serving, perr := r.client.IsServing(pctx)
	return perr != nil || !serving
}

// notFoundErr adds container.ErrNotFound to the errors of a container or
// process that does not exist.
func notFoundErr(err error) error {
	if errors.Is(err, ErrContainerNotFound) || errors.Is(err, ErrNoTask) {
		return fmt.Errorf("%w: %w", container.ErrNotFound, err)
	}
	return err
}

// opErr adds the container package's sentinel to the error of a pull,
// create, start, stop or remove: containerd out of reach (the engine waits
// and retries), a container that exists already, or one that does not.
func (r *Runtime) opErr(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrContainerExists):
		return fmt.Errorf("%w: %w", container.ErrExists, err)
	case r.Unreachable(ctx, err):
		return fmt.Errorf("%w: %w", container.ErrUnavailable, err)
	}
	return notFoundErr(err)
}

// Client returns the underlying containerd client (for tests and tooling).
func (r *Runtime) Client() *containerd.Client { return r.client }

// Namespace returns the containerd namespace the Runtime works in.
func (r *Runtime) Namespace() string { return r.opts.Namespace }

// Close stops the Runtime's goroutines (exit monitors, pulls in flight) and
// closes the connection. Running containers are left alone; a new Runtime
// re-attaches to them. Exit channels not yet delivered are closed.
func (r *Runtime) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	r.captures.Close()
	if err := r.client.Close(); err != nil {
		return fmt.Errorf("close containerd client: %w", err)
	}
	return nil
}

// withNS returns ctx in the Runtime's namespace.
func (r *Runtime) withNS(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.opts.Namespace)
}

// watchOOM records OOM events until the Runtime closes. Events are not
// replayed, so exit handling also reads the cgroup's OOM-kill counter.
func (r *Runtime) watchOOM() {
	delay := 100 * time.Millisecond
	for r.ctx.Err() == nil {
		err := r.subscribeOOM()
		if r.ctx.Err() != nil {
			return
		}
		log.G(r.ctx).WithError(err).Warn("containerd event subscription ended, resubscribing")
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (r *Runtime) subscribeOOM() error {
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	ch, errs := r.client.Subscribe(ctx, fmt.Sprintf(`topic=="/tasks/oom",namespace==%q`, r.opts.Namespace))
	for {
		select {
		case env := <-ch:
			r.recordOOM(env)
		case err := <-errs:
			if err == nil {
				err = errors.New("event stream closed")
			}
			return err
		}
	}
}

func (r *Runtime) recordOOM(env *events.Envelope) {
	if env == nil || env.Event == nil {
		return
	}
	v, err := typeurl.UnmarshalAny(env.Event)
	if err != nil {
		return
	}
	oom, ok := v.(*eventtypes.TaskOOM)
	if !ok {
		return
	}
	r.mu.Lock()
	r.ooms[oom.ContainerID] = env.Timestamp
	r.mu.Unlock()
}

// takeOOM reports and forgets whether an OOM event was seen for id.
func (r *Runtime) takeOOM(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.ooms[id]
	delete(r.ooms, id)
	return ok
}
