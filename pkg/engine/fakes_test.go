package engine_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/engine"
)

// fakeRuntime is an in-memory runtime for unit tests of the state machine.
type fakeRuntime struct {
	mu         sync.Mutex
	containers map[string]*fakeContainer
	events     []string // "create id", "start id", "stop id", "remove id"
	nextPID    int
	// health decides the exit code of an exec; nil means 0.
	health func(id string) int
}

type fakeContainer struct {
	spec    container.Spec
	running bool
	exited  bool
	exit    container.Exit
	pid     int
	done    chan struct{}
}

var _ engine.ContainerRuntime = (*fakeRuntime)(nil)

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{containers: map[string]*fakeContainer{}, nextPID: 100}
}

func (f *fakeRuntime) record(ev string) {
	f.events = append(f.events, ev)
}

func (f *fakeRuntime) Pull(ctx context.Context, ref string) (container.Image, error) {
	// The agent logs in to ECR-style registries as the pulling task.
	if container.PullFor(ctx) == "" {
		return container.Image{}, fmt.Errorf("pull %s: no task in the context (container.WithPullFor)", ref)
	}
	if strings.Contains(ref, "nonexistent") {
		return container.Image{}, fmt.Errorf("pull %s: not found", ref)
	}
	return container.Image{Ref: ref, Digest: "sha256:" + strings.Repeat("a", 64)}, nil
}

func (f *fakeRuntime) Create(ctx context.Context, spec container.Spec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.containers[spec.ID]; ok {
		return fmt.Errorf("create %s: already exists", spec.ID)
	}
	f.containers[spec.ID] = &fakeContainer{spec: spec, done: make(chan struct{})}
	f.record("create " + spec.ID)
	return nil
}

func (f *fakeRuntime) Start(ctx context.Context, id string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return 0, fmt.Errorf("start %s: %w", id, container.ErrNotFound)
	}
	f.nextPID++
	c.pid = f.nextPID
	c.running = true
	f.record("start " + id)
	return c.pid, nil
}

// exit makes a running container's process end with code.
func (f *fakeRuntime) exit(id string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exitLocked(id, code)
}

func (f *fakeRuntime) exitLocked(id string, code int) {
	c, ok := f.containers[id]
	if !ok || !c.running {
		return
	}
	c.running = false
	c.exited = true
	c.exit = container.Exit{Code: code, At: time.Now()}
	close(c.done)
}

func (f *fakeRuntime) Stop(ctx context.Context, id string, timeout time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.containers[id]; !ok {
		return fmt.Errorf("stop %s: %w", id, container.ErrNotFound)
	}
	f.record("stop " + id)
	f.exitLocked(id, 143)
	return nil
}

func (f *fakeRuntime) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.containers[id]; !ok {
		return fmt.Errorf("remove %s: %w", id, container.ErrNotFound)
	}
	delete(f.containers, id)
	f.record("remove " + id)
	return nil
}

func (f *fakeRuntime) Wait(ctx context.Context, id string) (container.Exit, error) {
	f.mu.Lock()
	c, ok := f.containers[id]
	f.mu.Unlock()
	if !ok {
		return container.Exit{}, fmt.Errorf("wait %s: %w", id, container.ErrNotFound)
	}
	select {
	case <-c.done:
		f.mu.Lock()
		defer f.mu.Unlock()
		return c.exit, nil
	case <-ctx.Done():
		return container.Exit{}, ctx.Err()
	}
}

func (f *fakeRuntime) Exec(ctx context.Context, id string, args []string, timeout time.Duration) (int, error) {
	f.mu.Lock()
	h := f.health
	f.mu.Unlock()
	if h == nil {
		return 0, nil
	}
	return h(id), nil
}

func (f *fakeRuntime) List(ctx context.Context, key string) ([]container.Observed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []container.Observed
	for id, c := range f.containers {
		if _, ok := c.spec.Labels[key]; !ok {
			continue
		}
		out = append(out, container.Observed{ID: id, Labels: c.spec.Labels, Running: c.running, Exited: c.exited, Exit: c.exit, PID: c.pid})
	}
	return out, nil
}

func (f *fakeRuntime) eventLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.events...)
}

func (f *fakeRuntime) count(prefix string) int {
	n := 0
	for _, e := range f.eventLog() {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

// fakeNetwork hands out dynamic host ports from 49153 up.
type fakeNetwork struct {
	mu       sync.Mutex
	next     uint16
	setups   map[string]bool
	teardown int
}

var _ engine.Network = (*fakeNetwork)(nil)

func (n *fakeNetwork) SetupNetwork(ctx context.Context, req container.NetworkRequest) (container.NetworkResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.setups == nil {
		n.setups = map[string]bool{}
		n.next = 49153
	}
	n.setups[req.TaskID] = true
	res := container.NetworkResult{NetNSPath: "/run/netns/" + req.TaskID, IPv4: "10.1.0.2"}
	for _, p := range req.Ports {
		hp := p.HostPort
		if req.Mode == "host" {
			hp = p.ContainerPort // as pkg/network: the container binds the host port
		}
		if hp == 0 {
			hp = n.next
			n.next++
		}
		res.Bindings = append(res.Bindings, container.PortBinding{ContainerPort: p.ContainerPort, HostPort: hp, Protocol: p.Protocol, BindIP: "0.0.0.0"})
	}
	return res, nil
}

func (n *fakeNetwork) TeardownNetwork(ctx context.Context, req container.NetworkRequest) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.setups, req.TaskID)
	n.teardown++
	return nil
}

func (n *fakeNetwork) live() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.setups)
}

// fakeStore keeps records and the outbox in memory.
type fakeStore struct {
	mu      sync.Mutex
	records map[string][]byte
	outbox  []api.StateChange
}

var _ engine.Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore { return &fakeStore{records: map[string][]byte{}} }

func (s *fakeStore) SaveTask(arn string, record []byte, changes []api.StateChange) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[arn] = append([]byte(nil), record...)
	s.outbox = append(s.outbox, changes...)
	return nil
}

func (s *fakeStore) DeleteTask(arn string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, arn)
	return nil
}

func (s *fakeStore) TaskRecords() ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for _, b := range s.records {
		out = append(out, b)
	}
	return out, nil
}

func (s *fakeStore) changes() []api.StateChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]api.StateChange(nil), s.outbox...)
}

// changeKeys renders the outbox as "container/status" and "task/status".
func (s *fakeStore) changeKeys() []string {
	var out []string
	for _, c := range s.changes() {
		k := "task"
		if c.Kind == api.ChangeContainer {
			k = c.ContainerName
		}
		st := c.Status
		if c.HealthStatus != "" {
			st += "+" + c.HealthStatus
		}
		out = append(out, k+"/"+st)
	}
	return out
}

// harness runs one engine over fakes.
type harness struct {
	t      *testing.T
	rt     *fakeRuntime
	nw     *fakeNetwork
	store  *fakeStore
	eng    *engine.Engine
	cancel context.CancelFunc
	done   chan error
	opts   engine.Options
}

func newHarness(t *testing.T, mod func(*engine.Options)) *harness {
	h := &harness{t: t, rt: newFakeRuntime(), nw: &fakeNetwork{}, store: newFakeStore()}
	h.opts = engine.Options{
		Runtime:     h.rt,
		Network:     h.nw,
		Store:       h.store,
		DataDir:     t.TempDir(),
		StopTimeout: time.Second,
		CleanupWait: time.Hour,
	}
	if mod != nil {
		mod(&h.opts)
	}
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) start() {
	eng, err := engine.New(h.opts)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.eng, h.cancel, h.done = eng, cancel, make(chan error, 1)
	go func() { h.done <- eng.Run(ctx) }()
}

// stop ends the engine as an agent shutdown would (containers keep running).
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("engine Run: %v", err)
	}
	h.cancel = nil
}

func (h *harness) apply(def engine.TaskDef, desired engine.TaskStatus) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.eng.Apply(ctx, def, desired); err != nil {
		h.t.Fatalf("Apply %s %s: %v", def.ARN, desired, err)
	}
}

// waitTask waits until the task's state satisfies cond.
func (h *harness) waitTask(arn, what string, cond func(engine.TaskState) bool) engine.TaskState {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last engine.TaskState
	for time.Now().Before(deadline) {
		if st, ok := h.eng.Task(arn); ok {
			last = st
			if cond(st) {
				return st
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("task %s never reached %s; last state: known=%s desired=%s reason=%q containers=%s", arn, what, last.KnownStatus, last.DesiredStatus, last.StoppedReason, describe(last))
	return last
}

func (h *harness) waitStatus(arn string, want engine.TaskStatus) engine.TaskState {
	h.t.Helper()
	return h.waitTask(arn, want.String(), func(st engine.TaskState) bool { return st.KnownStatus == want })
}

func describe(st engine.TaskState) string {
	var parts []string
	for _, c := range st.Containers {
		parts = append(parts, fmt.Sprintf("%s=%s/%s(%s)", c.Name, c.KnownStatus, c.Health, c.Reason))
	}
	return strings.Join(parts, " ")
}
