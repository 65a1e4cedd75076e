package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/errdefs"

	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/introspection"
	"github.com/berth-dev/berth/pkg/network"
	"github.com/berth-dev/berth/pkg/runtime"
	"github.com/berth-dev/berth/pkg/state"
)

// runtimeAdapter maps the engine's runtime interface onto pkg/runtime.
type runtimeAdapter struct {
	rt *runtime.Runtime
	// auth, when set, gives the login for a task's pull from an ECR-style
	// registry (the task's execution role); nil results leave the
	// agent-wide registry credentials in force.
	auth pullAuthorizer

	// mu guards exits.
	mu sync.Mutex
	// exits holds the exit channel Start returned until the engine's
	// waiter takes it; after a restart Wait re-attaches instead.
	exits map[string]<-chan runtime.ExitStatus
}

var _ engine.ContainerRuntime = (*runtimeAdapter)(nil)

// pullAuthorizer picks the registry login of one task's pull.
type pullAuthorizer interface {
	PullCredentials(ctx context.Context, taskArn, ref string) (*runtime.Credentials, error)
}

var _ pullAuthorizer = (*registryAuth)(nil)

func newRuntimeAdapter(rt *runtime.Runtime, auth pullAuthorizer) *runtimeAdapter {
	return &runtimeAdapter{rt: rt, auth: auth, exits: map[string]<-chan runtime.ExitStatus{}}
}

// engineErr maps the runtime's "does not exist" errors onto the engine's.
func engineErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, runtime.ErrContainerNotFound) || errors.Is(err, runtime.ErrNoTask) {
		return fmt.Errorf("%w: %w", engine.ErrNotFound, err)
	}
	return err
}

// opErr maps the error of a pull, create, start, stop or remove onto the
// engine's sentinels: containerd out of reach (the engine waits and
// retries), a container that exists already, or one that does not.
func (a *runtimeAdapter) opErr(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, runtime.ErrContainerExists):
		return fmt.Errorf("%w: %w", engine.ErrExists, err)
	case a.rt.Unreachable(ctx, err):
		return fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	return engineErr(err)
}

func (a *runtimeAdapter) Pull(ctx context.Context, ref string) (engine.Image, error) {
	var opts runtime.PullOptions
	if a.auth != nil {
		creds, err := a.auth.PullCredentials(ctx, engine.PullTask(ctx), ref)
		if err != nil {
			return engine.Image{}, fmt.Errorf("pull %s: registry login: %w", ref, err)
		}
		opts.Credentials = creds
	}
	img, err := a.rt.Pull(ctx, ref, opts)
	if err != nil {
		return engine.Image{}, a.opErr(ctx, err)
	}
	return engine.Image{Ref: img.Ref, Digest: img.Digest}, nil
}

func (a *runtimeAdapter) Create(ctx context.Context, s engine.ContainerSpec) error {
	ref, err := runtime.NormalizeReference(s.Image)
	if err != nil {
		return err
	}
	spec := runtime.ContainerSpec{
		ID:         s.ID,
		Image:      ref,
		Entrypoint: s.Entrypoint,
		Command:    s.Command,
		Env:        s.Env,
		WorkingDir: s.WorkingDir,
		User:       s.User,
		Resources: runtime.Resources{
			MemoryLimit:       s.MemoryLimit,
			MemoryReservation: s.MemoryReservation,
		},
		Security: runtime.Security{
			CapAdd:         s.CapAdd,
			CapDrop:        s.CapDrop,
			Privileged:     s.Privileged,
			ReadonlyRootfs: s.ReadonlyRootfs,
		},
		ShmSize:     s.ShmSize,
		NetNSPath:   s.NetNSPath,
		HostNetwork: s.HostNetwork,
		Hostname:    s.Hostname,
		DNS:         runtime.DNS{Servers: s.DNS, Search: s.DNSSearch},
		ExtraHosts:  s.ExtraHosts,
		StopSignal:  s.StopSignal,
		Init:        s.Init,
		Labels:      s.Labels,
	}
	if s.CPUShares > 0 {
		spec.Resources.CPUShares = uint64(s.CPUShares)
	}
	for _, u := range s.Ulimits {
		spec.Resources.Ulimits = append(spec.Resources.Ulimits, runtime.Ulimit{Name: u.Name, Soft: rlimit(u.Soft), Hard: rlimit(u.Hard)})
	}
	for _, t := range s.Tmpfs {
		tm, err := tmpfsMount(t)
		if err != nil {
			return err
		}
		spec.Tmpfs = append(spec.Tmpfs, tm)
	}
	for _, m := range s.Mounts {
		spec.Mounts = append(spec.Mounts, runtime.Mount{Source: m.Source, Destination: m.Destination, ReadOnly: m.ReadOnly})
	}
	if s.Log.Driver != "none" && s.LogPath != "" {
		lo := runtime.LogOptions{Dir: filepath.Dir(s.LogPath)}
		if v := s.Log.Options["max-size"]; v != "" {
			n, err := parseSize(v)
			if err != nil {
				return fmt.Errorf("log option max-size: %w", err)
			}
			lo.MaxSize = n
		}
		if v := s.Log.Options["max-file"]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("log option max-file %q: %w", v, err)
			}
			lo.MaxFile = n
		}
		spec.Log = lo
	}
	return a.opErr(ctx, a.rt.Create(ctx, spec))
}

// rlimit maps Docker's -1 (unlimited) onto the largest rlimit.
func rlimit(v int64) uint64 {
	if v < 0 {
		return ^uint64(0)
	}
	return uint64(v)
}

// tmpfsMount splits Docker's tmpfs options ("rw,size=16m,mode=1777").
func tmpfsMount(t engine.Tmpfs) (runtime.Tmpfs, error) {
	out := runtime.Tmpfs{Destination: t.Path}
	for _, o := range strings.Split(t.Options, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if v, ok := strings.CutPrefix(o, "size="); ok {
			n, err := parseSize(v)
			if err != nil {
				return out, fmt.Errorf("tmpfs %s size: %w", t.Path, err)
			}
			out.Size = n
			continue
		}
		out.Options = append(out.Options, o)
	}
	return out, nil
}

// parseSize reads Docker sizes: "10m", "64k", "1g", "512" (bytes).
func parseSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for suffix, m := range map[string]int64{"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "b": 1} {
		if strings.HasSuffix(s, suffix) {
			num := strings.TrimSuffix(s, suffix)
			if _, err := strconv.ParseFloat(num, 64); err == nil {
				s, mult = num, m
				break
			}
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q is not a number with an optional k, m or g suffix", s)
	}
	return int64(f * float64(mult)), nil
}

func (a *runtimeAdapter) Start(ctx context.Context, id string) (int, error) {
	ch, err := a.rt.Start(ctx, id)
	if err != nil {
		return 0, a.opErr(ctx, err)
	}
	a.mu.Lock()
	a.exits[id] = ch
	a.mu.Unlock()
	return a.pid(ctx, id), nil
}

// pid reads the running process's PID; 0 when it cannot be read (it is
// informational only).
func (a *runtimeAdapter) pid(ctx context.Context, id string) int {
	c, err := a.rt.Client().LoadContainer(ctx, id)
	if err != nil {
		return 0
	}
	t, err := c.Task(ctx, nil)
	if err != nil {
		return 0
	}
	return int(t.Pid())
}

func (a *runtimeAdapter) Wait(ctx context.Context, id string) (engine.Exit, error) {
	a.mu.Lock()
	ch, ok := a.exits[id]
	delete(a.exits, id)
	a.mu.Unlock()
	if !ok {
		var err error
		ch, err = a.rt.Attach(ctx, id)
		if err != nil {
			return engine.Exit{}, engineErr(err)
		}
	}
	select {
	case st, ok := <-ch:
		if !ok {
			return engine.Exit{}, errors.New("runtime closed before the container exited")
		}
		return engine.Exit{Code: int(st.ExitCode), At: st.ExitedAt, OOMKill: st.OOMKilled}, nil
	case <-ctx.Done():
		return engine.Exit{}, ctx.Err()
	}
}

func (a *runtimeAdapter) Stop(ctx context.Context, id string, timeout time.Duration) error {
	return a.opErr(ctx, a.rt.Stop(ctx, id, timeout))
}

func (a *runtimeAdapter) Remove(ctx context.Context, id string) error {
	a.mu.Lock()
	delete(a.exits, id)
	a.mu.Unlock()
	return a.opErr(ctx, a.rt.Remove(ctx, id))
}

func (a *runtimeAdapter) Exec(ctx context.Context, id string, args []string, timeout time.Duration) (int, error) {
	res, err := a.rt.Exec(ctx, id, runtime.ExecOptions{Args: args, Timeout: timeout})
	if err != nil {
		return -1, engineErr(err)
	}
	return int(res.ExitCode), nil
}

func (a *runtimeAdapter) List(ctx context.Context, key string) ([]engine.Observed, error) {
	infos, err := a.rt.List(ctx, nil)
	if err != nil {
		return nil, err
	}
	var out []engine.Observed
	for _, ci := range infos {
		if _, ok := ci.Labels[key]; !ok {
			continue
		}
		o := engine.Observed{ID: ci.ID, Labels: ci.Labels, PID: int(ci.Pid)}
		switch {
		case ci.State == runtime.TaskRunning || ci.State == runtime.TaskPaused || ci.State == runtime.TaskUnknown:
			o.Running = true
		case ci.Exit != nil:
			o.Exited = true
			o.Exit = engine.Exit{Code: int(ci.Exit.ExitCode), At: ci.Exit.ExitedAt, OOMKill: ci.Exit.OOMKilled}
		case ci.State == runtime.TaskStopped:
			o.Exited = true
		}
		out = append(out, o)
	}
	return out, nil
}

// networkAdapter maps the engine's network interface onto pkg/network; the
// handle the engine persists is the network.Sandbox as JSON.
type networkAdapter struct {
	m *network.Manager
}

var _ engine.Network = networkAdapter{}

func (n networkAdapter) Setup(ctx context.Context, req engine.NetworkRequest) (engine.NetworkResult, error) {
	sr := network.SetupRequest{Owner: req.TaskID, Mode: network.Mode(req.Mode)}
	for _, p := range req.Ports {
		sr.Ports = append(sr.Ports, network.PortRequest{ContainerPort: p.ContainerPort, HostPort: p.HostPort, Protocol: network.Protocol(p.Protocol)})
	}
	sb, err := n.m.Setup(ctx, sr)
	if err != nil {
		return engine.NetworkResult{}, err
	}
	handle, err := json.Marshal(sb)
	if err != nil {
		// Without a handle nothing could tear it down again: undo now.
		return engine.NetworkResult{}, errors.Join(fmt.Errorf("encode sandbox: %w", err), n.m.Teardown(ctx, *sb))
	}
	res := engine.NetworkResult{NetNSPath: sb.NetnsPath, IPv4: sb.IP, Handle: handle}
	for _, b := range sb.Bindings {
		res.Bindings = append(res.Bindings, engine.PortBinding{ContainerPort: b.ContainerPort, HostPort: b.HostPort, Protocol: string(b.Protocol), BindIP: b.BindIP})
	}
	return res, nil
}

func (n networkAdapter) Teardown(ctx context.Context, req engine.NetworkRequest) error {
	if len(req.Handle) == 0 {
		// Setup never returned (a crash in the middle of it); the sweep at
		// start-up (network.Cleanup) removed what it made.
		return nil
	}
	var sb network.Sandbox
	if err := json.Unmarshal(req.Handle, &sb); err != nil {
		return fmt.Errorf("decode sandbox of task %s: %w", req.TaskID, err)
	}
	return n.m.Teardown(ctx, sb)
}

// cleanup sweeps every sandbox, netns, rule and port of this agent that no
// live task holds. What cannot be removed now does not stop the agent: the
// network retries it in the background and reports it (pending).
func (n networkAdapter) cleanup(ctx context.Context, handles [][]byte) error {
	var live []network.Sandbox
	for _, h := range handles {
		var sb network.Sandbox
		if err := json.Unmarshal(h, &sb); err != nil {
			return fmt.Errorf("decode sandbox: %w", err)
		}
		live = append(live, sb)
	}
	_, err := n.m.Cleanup(ctx, live, nil)
	return err
}

// pending maps what the network retries onto the introspection API's
// /v1/cleanup.
func (n networkAdapter) pending() []introspection.PendingCleanup {
	var out []introspection.PendingCleanup
	for _, l := range n.m.Pending() {
		out = append(out, introspection.PendingCleanup{Resource: l.Resource, Task: l.Owner, Error: l.Err,
			Attempts: l.Attempts, Since: l.Since, NextAttempt: l.NextAttempt})
	}
	return out
}

// storeAdapter maps the engine's store onto pkg/state.
type storeAdapter struct {
	db *state.DB
}

var _ engine.Store = storeAdapter{}

func (s storeAdapter) SaveTask(ctx context.Context, arn string, record []byte, changes []engine.StateChange) error {
	out := make([]state.StateChange, 0, len(changes))
	for _, c := range changes {
		sc := state.StateChange{
			Kind:               state.ChangeKind(c.Kind),
			TaskARN:            c.TaskARN,
			Cluster:            c.Cluster,
			Status:             c.Status,
			Reason:             c.Reason,
			ContainerName:      c.ContainerName,
			RuntimeID:          c.RuntimeID,
			ImageDigest:        c.ImageDigest,
			ExitCode:           c.ExitCode,
			HealthStatus:       c.HealthStatus,
			PullStartedAt:      c.PullStartedAt,
			PullStoppedAt:      c.PullStoppedAt,
			ExecutionStoppedAt: c.ExecutionStoppedAt,
			At:                 c.At,
		}
		for _, b := range c.NetworkBindings {
			sc.NetworkBindings = append(sc.NetworkBindings, state.NetworkBinding{ContainerPort: b.ContainerPort, HostPort: b.HostPort, Protocol: b.Protocol, BindIP: b.BindIP})
		}
		out = append(out, sc)
	}
	return s.db.SaveTask(arn, record, out)
}

func (s storeAdapter) DeleteTask(ctx context.Context, arn string) error { return s.db.DeleteTask(arn) }

func (s storeAdapter) LoadTasks(ctx context.Context) ([][]byte, error) {
	entries, err := s.db.Tasks()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Record)
	}
	return out, nil
}

// portStore persists the network's port allocations in the state database.
type portStore struct {
	db *state.DB
}

var _ network.PortStore = portStore{}

func (p portStore) LoadPorts() ([]network.Allocation, error) {
	in, err := p.db.LoadPorts()
	if err != nil {
		return nil, err
	}
	out := make([]network.Allocation, 0, len(in))
	for _, a := range in {
		out = append(out, network.Allocation{Owner: a.Owner, Protocol: network.Protocol(a.Protocol), HostPort: a.HostPort})
	}
	return out, nil
}

func (p portStore) SavePorts(in []network.Allocation) error {
	out := make([]state.PortAllocation, 0, len(in))
	for _, a := range in {
		out = append(out, state.PortAllocation{Owner: a.Owner, Protocol: string(a.Protocol), HostPort: a.HostPort})
	}
	return p.db.SavePorts(out)
}

// logRemover deletes a container's json-file log and its rotated files.
type logRemover struct{}

func (logRemover) RemoveLogs(ctx context.Context, path string) error {
	// Rotated files are path.1, path.2, ... (see logs.Config).
	rotated, err := filepath.Glob(path + ".*")
	if err != nil {
		return fmt.Errorf("list rotated logs of %s: %w", path, err)
	}
	var errs []error
	for _, p := range append(rotated, path) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// imageStore lists and deletes the images of the agent's containerd
// namespace for the engine's image clean-up.
// TODO(runtime): this belongs in pkg/runtime (ListImages/RemoveImage); it
// talks to containerd through Runtime.Client until those exist.
type imageStore struct {
	rt *runtime.Runtime
}

var _ engine.ImageStore = imageStore{}

func (s imageStore) Images(ctx context.Context) ([]engine.ImageInfo, error) {
	ctx = namespaces.WithNamespace(ctx, s.rt.Namespace())
	imgs, err := s.rt.Client().ImageService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]engine.ImageInfo, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, engine.ImageInfo{Ref: img.Name, UpdatedAt: img.UpdatedAt})
	}
	return out, nil
}

func (s imageStore) RemoveImage(ctx context.Context, ref string) error {
	ctx = namespaces.WithNamespace(ctx, s.rt.Namespace())
	if err := s.rt.Client().ImageService().Delete(ctx, ref); err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("remove image %s: %w", ref, engine.ErrNotFound)
		}
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	return nil
}
