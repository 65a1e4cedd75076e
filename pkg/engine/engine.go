package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/pkg/api/arn"
)

// Labels put on every container so that recovery and outside tooling can
// find which task and container it belongs to.
const (
	LabelTaskARN        = "com.amazonaws.ecs.task-arn"
	LabelContainerName  = "com.amazonaws.ecs.container-name"
	LabelTaskDefFamily  = "com.amazonaws.ecs.task-definition-family"
	LabelTaskDefVersion = "com.amazonaws.ecs.task-definition-version"
	LabelCluster        = "com.amazonaws.ecs.cluster"
)

// Defaults used when Options leaves a field zero.
const (
	DefaultStopTimeout = 30 * time.Second
	DefaultCleanupWait = 3 * time.Hour
	// DefaultLogDrainTimeout bounds shipping an exited container's last
	// log lines to a slow or dead destination.
	DefaultLogDrainTimeout = 30 * time.Second
)

// ErrClosed is returned by Apply when the engine is not running.
var ErrClosed = errors.New("engine not running")

// Options configures an Engine. Runtime, Network and Store are required.
type Options struct {
	Runtime ContainerRuntime
	Network Network
	Store   Store
	// Logs removes container logs at clean-up; nil keeps them.
	Logs LogRemover
	// LogShipper ships container logs to the driver of their
	// logConfiguration; nil ships nothing (logs stay in the json-file).
	LogShipper LogShipper
	// LogDrivers are the log drivers tasks may use besides json-file and
	// none, which are always allowed (ECS_AVAILABLE_LOGGING_DRIVERS); nil
	// allows every driver pkg/logship supports. A task naming another
	// driver, or an unknown or bad option, is stopped with a reason
	// naming it.
	LogDrivers []string
	// LogDrainTimeout bounds how long an exited container's remaining log
	// lines are shipped; zero means DefaultLogDrainTimeout. The drain runs
	// in the background and never delays the task's stop.
	LogDrainTimeout time.Duration
	// Secrets fetches the values of containers' secrets and log
	// secretOptions when they are created; nil stops a task that has any
	// (ResourceInitializationError naming the secret).
	Secrets SecretSource
	// DataDir holds docker-type volumes (volumes/<task-id>/<name> and
	// volumes/shared/<name>).
	DataDir string
	// LogPath returns where the container with this runtime ID logs; nil
	// means DataDir/logs/<id>-json.log.
	LogPath func(containerID string) string
	// CPUUnits and MemoryMiB are the host capacity tasks are admitted
	// against; zero means unlimited.
	CPUUnits  int64
	MemoryMiB int64
	// StopTimeout is the default grace period before SIGKILL
	// (ECS_CONTAINER_STOP_TIMEOUT).
	StopTimeout time.Duration
	// CreateTimeout and StartTimeout bound one container create and start
	// (ECS_CONTAINER_CREATE_TIMEOUT, ECS_CONTAINER_START_TIMEOUT); zero
	// means no bound.
	CreateTimeout time.Duration
	StartTimeout  time.Duration
	// CleanupWait is how long a stopped task is kept before its containers,
	// volumes and logs are removed (ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION).
	CleanupWait time.Duration
	// OnStateChange is called (without locks held) after changes were
	// written to the outbox, so a sender can wake up. Optional.
	OnStateChange func()
	// AfterRecover runs once recovery has loaded every task and before any
	// task goroutine starts, with the network handles of every task that
	// holds a network. The agent uses it to sweep networks nobody holds.
	AfterRecover func(ctx context.Context, liveNetworks [][]byte) error
	// StepHook, when set, runs in the operation's goroutine just before
	// and just after each side-effecting step (pull, create, start, stop,
	// network-setup, network-teardown, cleanup). It is a test seam: crash
	// tests block in it and kill the agent at a precise point.
	StepHook func(ctx context.Context, step Step)
	// Images configures the clean-up of unused images; zero disables it.
	Images ImageCleanup
	// Security says which dockerSecurityOptions the instance may honour.
	Security Security
	// TaskCgroups puts each task's containers in a task cgroup that bounds
	// them together; zero disables it.
	TaskCgroups TaskCgroups
	Logger      *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Engine runs tasks. Create it with New, then call Run; Apply delivers
// tasks once Run has recovered the stored state.
type Engine struct {
	opts Options
	log  *slog.Logger

	ready   chan struct{} // closed once recovery is done
	runCtx  context.Context
	runners sync.WaitGroup

	// mu guards the fields below.
	mu       sync.Mutex
	tasks    map[string]*taskRunner
	cleaned  map[string]bool // ARNs already cleaned up; redeliveries are ignored
	res      resources
	closed   bool
	metrics  Metrics
	imageUse map[string]time.Time // normalised ref → last pull by a task
}

// New returns an Engine; it does nothing until Run.
func New(opts Options) (*Engine, error) {
	if opts.Runtime == nil || opts.Network == nil || opts.Store == nil {
		return nil, errors.New("engine: Runtime, Network and Store are required")
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.CleanupWait <= 0 {
		opts.CleanupWait = DefaultCleanupWait
	}
	if opts.LogDrainTimeout <= 0 {
		opts.LogDrainTimeout = DefaultLogDrainTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LogPath == nil {
		dir := opts.DataDir
		opts.LogPath = func(id string) string {
			return filepath.Join(dir, "logs", id+"-json.log")
		}
	}
	return &Engine{
		opts:     opts,
		log:      opts.Logger,
		ready:    make(chan struct{}),
		tasks:    make(map[string]*taskRunner),
		cleaned:  make(map[string]bool),
		res:      newResources(opts.CPUUnits, opts.MemoryMiB),
		imageUse: make(map[string]time.Time),
	}, nil
}

// Run recovers stored tasks, then runs until ctx ends. Cancelling ctx means
// the agent is leaving: task goroutines end, containers keep running, and a
// later Run picks them up again. Run returns after every task goroutine ended.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	e.runCtx = ctx
	e.mu.Unlock()
	err := e.recover(ctx)
	close(e.ready)
	if err != nil {
		e.shutdown()
		return fmt.Errorf("recover tasks: %w", err)
	}
	var bg sync.WaitGroup
	if e.opts.Images.Store != nil && e.opts.Images.Interval > 0 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			e.runImageCleanup(ctx)
		}()
	}
	<-ctx.Done()
	bg.Wait()
	e.shutdown()
	return nil
}

func (e *Engine) shutdown() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.runners.Wait()
}

// Ready is closed once Run has recovered the stored state.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Apply delivers one task with its desired status, as a payload carries it.
// It returns once the task and its desired status are durably stored (or
// nothing needed to change): a redelivered payload changes nothing, and a
// desired status never moves backwards.
func (e *Engine) Apply(ctx context.Context, def TaskDef, desired TaskStatus) error {
	select {
	case <-e.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	r := e.tasks[def.ARN]
	if r == nil {
		if e.cleaned[def.ARN] || desired == TaskStopped {
			// A task we never ran, or already cleaned up, has nothing to stop.
			e.mu.Unlock()
			return nil
		}
		st := newTaskState(def, desired)
		r = newTaskRunner(e, st)
		if err := r.save(ctx); err != nil {
			e.mu.Unlock()
			return fmt.Errorf("store new task %s: %w", def.ARN, err)
		}
		e.tasks[def.ARN] = r
		e.startRunnerLocked(r)
		e.mu.Unlock()
		return nil
	}
	e.mu.Unlock()
	return r.setDesired(ctx, desired)
}

func (e *Engine) startRunnerLocked(r *taskRunner) {
	e.runners.Add(1)
	go func() {
		defer e.runners.Done()
		r.run(e.runCtx)
	}()
}

// forget drops a cleaned-up task so that a redelivery does not run it again.
func (e *Engine) forget(arn string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.tasks, arn)
	e.cleaned[arn] = true
}

// Tasks returns a copy of every known task's state, for introspection.
func (e *Engine) Tasks() []TaskState {
	e.mu.Lock()
	runners := make([]*taskRunner, 0, len(e.tasks))
	for _, r := range e.tasks {
		runners = append(runners, r)
	}
	e.mu.Unlock()
	out := make([]TaskState, 0, len(runners))
	for _, r := range runners {
		if st, ok := r.snapshot(); ok {
			out = append(out, st)
		}
	}
	return out
}

// Task returns a copy of one task's state.
func (e *Engine) Task(arn string) (TaskState, bool) {
	e.mu.Lock()
	r := e.tasks[arn]
	e.mu.Unlock()
	if r == nil {
		return TaskState{}, false
	}
	return r.snapshot()
}

func newTaskState(def TaskDef, desired TaskStatus) *TaskState {
	st := &TaskState{Def: def, DesiredStatus: desired, KnownStatus: TaskNone}
	for _, c := range def.Containers {
		st.Containers = append(st.Containers, &ContainerState{
			Name:          c.Name,
			KnownStatus:   ContainerNone,
			DesiredStatus: ContainerRunning,
		})
	}
	if desired == TaskStopped {
		st.StoppedReason = ReasonStoppedByUser
	}
	return st
}

// TaskID is the id of a task ARN (its last "/"-separated segment).
func TaskID(taskARN string) string { return arn.ResourceID(taskARN) }

// ContainerID is the deterministic runtime ID of a task's container, so that
// a create interrupted by a crash finds its half-made container again.
func ContainerID(taskARN, name string) string {
	id := sanitizeID(TaskID(taskARN)) + "-" + sanitizeID(name)
	if len(id) > 76 {
		id = id[:76]
	}
	return id
}

func sanitizeID(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func decodeTaskState(b []byte) (*TaskState, error) {
	var st TaskState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode task record: %w", err)
	}
	return &st, nil
}
