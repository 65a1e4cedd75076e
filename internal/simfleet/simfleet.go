// Package simfleet is a simulated agent fleet for tests and benchmarks of
// the cluster endpoint's scheduler and services: N fake container
// instances that register with their own agent keys through the ECS API,
// hold real ACS sessions (the agent's own pkg/registration client against
// pkg/cluster/acs), acknowledge payloads, and report task state changes
// through SubmitTaskStateChange as an agent does, with configurable delays
// and failures, but without running containers. Only tests and bench/
// import it.
package simfleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/registration"
)

// Behaviour is how one simulated task behaves.
type Behaviour struct {
	// FailToStart makes the task stop before RUNNING, as a task whose
	// image cannot be pulled does.
	FailToStart bool
	// ExitAfter, when positive, makes the task's essential container exit
	// (code 1) that long after RUNNING.
	ExitAfter time.Duration
}

// Options configure a Fleet.
type Options struct {
	// Endpoint is the cluster endpoint's URL (http://127.0.0.1:PORT), or
	// several replicas' URLs separated by commas (as ECS_BACKEND_HOST).
	Endpoint string
	Region   string
	Cluster  string
	// NewAgentKey creates an agent key for one instance.
	NewAgentKey func() (id, secret string, err error)
	// CPU and Memory are each instance's registered resources; zero means
	// 4096 units and 8192 MiB.
	CPU, Memory int32
	// StartDelay is how long a task takes from its payload to RUNNING (or
	// to its failure); StopDelay from desired STOPPED to STOPPED.
	StartDelay, StopDelay time.Duration
	// Behave decides each task's behaviour; nil means every task starts
	// and runs until stopped.
	Behave func(t *api.Task) Behaviour
	Logger *slog.Logger
}

// Fleet is a set of simulated instances. Close stops them.
type Fleet struct {
	o      Options
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards instances.
	mu        sync.Mutex
	instances []*Instance
	// nextPort hands out simulated dynamic host ports (from 32768).
	nextPort atomic.Int32
}

// Start returns an empty fleet; Add registers instances.
func Start(ctx context.Context, o Options) (*Fleet, error) {
	if o.Endpoint == "" || o.Region == "" || o.Cluster == "" || o.NewAgentKey == nil {
		return nil, errors.New("simfleet: Endpoint, Region, Cluster and NewAgentKey are required")
	}
	if o.CPU == 0 {
		o.CPU = 4096
	}
	if o.Memory == 0 {
		o.Memory = 8192
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &Fleet{o: o, ctx: ctx, cancel: cancel}
	f.nextPort.Store(32767)
	return f, nil
}

// Close ends every session and task goroutine and waits for them.
func (f *Fleet) Close() {
	f.cancel()
	f.wg.Wait()
}

// Instance is one simulated container instance.
type Instance struct {
	f      *Fleet
	Arn    string
	client *ecs.Client
	cancel context.CancelFunc
	done   chan struct{}
	sess   *registration.Session

	// mu guards tasks.
	mu    sync.Mutex
	tasks map[string]*simTask
}

type simTask struct {
	arn        string
	containers []string
	// bindings are the host ports the task's containers got (dynamic ones
	// from the fleet's counter), reported with RUNNING.
	bindings  map[string][]types.NetworkBinding
	behaviour Behaviour
	stop      chan struct{} // closed when desired STOPPED arrives
	kill      chan struct{} // closed by Kill
	stopOnce  sync.Once
	killOnce  sync.Once
	// stopped is set once STOPPED was reported; guarded by Instance.mu.
	stopped bool
}

// newClient is an instance's ECS client. An Endpoint naming several
// replicas (comma-separated) gets the agent's own client, which moves to
// the next replica when one cannot be reached.
func (f *Fleet) newClient(ctx context.Context, id, secret string) (*ecs.Client, error) {
	if strings.Contains(f.o.Endpoint, ",") {
		c, err := registration.NewClient(ctx, registration.ClientOptions{Endpoint: f.o.Endpoint, Region: f.o.Region,
			Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""), Logger: f.o.Logger})
		if err != nil {
			return nil, err
		}
		return c.ECS, nil
	}
	return ecs.New(ecs.Options{
		Region:       f.o.Region,
		BaseEndpoint: aws.String(f.o.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(id, secret, ""),
		HTTPClient:   awshttp.NewBuildableClient(),
	}), nil
}

// Add registers n instances with the given attributes (ecs.availability-zone
// and so on), opens their ACS sessions and waits until each is connected.
func (f *Fleet) Add(ctx context.Context, n int, attrs map[string]string) ([]*Instance, error) {
	var out []*Instance
	for i := 0; i < n; i++ {
		in, err := f.addOne(ctx, attrs)
		if err != nil {
			return out, err
		}
		out = append(out, in)
	}
	for _, in := range out {
		if err := in.waitConnected(ctx); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (f *Fleet) addOne(ctx context.Context, attrs map[string]string) (*Instance, error) {
	id, secret, err := f.o.NewAgentKey()
	if err != nil {
		return nil, fmt.Errorf("simfleet: create agent key: %w", err)
	}
	client, err := f.newClient(ctx, id, secret)
	if err != nil {
		return nil, fmt.Errorf("simfleet: %w", err)
	}
	var as []types.Attribute
	for k, v := range attrs {
		as = append(as, types.Attribute{Name: aws.String(k), Value: aws.String(v)})
	}
	out, err := client.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{
		Cluster: aws.String(f.o.Cluster),
		TotalResources: []types.Resource{
			{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: f.o.CPU},
			{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: f.o.Memory},
			{Name: aws.String("PORTS"), Type: aws.String("STRINGSET"), StringSetValue: []string{"22"}},
			{Name: aws.String("PORTS_UDP"), Type: aws.String("STRINGSET"), StringSetValue: []string{}},
		},
		Attributes:  as,
		VersionInfo: &types.VersionInfo{AgentVersion: aws.String("1.0.0-simfleet"), DockerVersion: aws.String("containerd")},
	})
	if err != nil {
		return nil, fmt.Errorf("simfleet: register instance: %w", err)
	}
	arn := aws.ToString(out.ContainerInstance.ContainerInstanceArn)
	ictx, cancel := context.WithCancel(f.ctx)
	in := &Instance{f: f, Arn: arn, client: client, cancel: cancel, done: make(chan struct{}), tasks: map[string]*simTask{}}
	sess, err := registration.NewSession(registration.SessionOptions{
		API:                  client,
		Credentials:          credentials.NewStaticCredentialsProvider(id, secret, ""),
		Region:               f.o.Region,
		ClusterArn:           clusterArnOf(arn),
		ContainerInstanceArn: arn,
		Handler:              in,
		Tasks:                in,
		AgentVersion:         "1.0.0-simfleet",
		Backoff:              registration.Backoff{Min: 50 * time.Millisecond, Max: time.Second, Jitter: 0.2},
		Logger:               f.o.Logger,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("simfleet: %w", err)
	}
	in.sess = sess
	f.mu.Lock()
	f.instances = append(f.instances, in)
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(in.done)
		if err := sess.Run(ictx); err != nil && ictx.Err() == nil {
			f.o.Logger.Warn("simfleet: ACS session ended", "instance", arn, "err", err)
		}
	}()
	return in, nil
}

// clusterArnOf turns arn:...:container-instance/<cluster>/<id> into the
// cluster's ARN.
func clusterArnOf(instanceArn string) string {
	const marker = ":container-instance/"
	for i := 0; i+len(marker) <= len(instanceArn); i++ {
		if instanceArn[i:i+len(marker)] == marker {
			rest := instanceArn[i+len(marker):]
			for j := 0; j < len(rest); j++ {
				if rest[j] == '/' {
					return instanceArn[:i] + ":cluster/" + rest[:j]
				}
			}
		}
	}
	return ""
}

func (in *Instance) waitConnected(ctx context.Context) error {
	for !in.sess.Connected() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("simfleet: instance %s never connected: %w", in.Arn, ctx.Err())
		case <-in.done:
			return fmt.Errorf("simfleet: instance %s: session ended before connecting", in.Arn)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// Disconnect ends the instance's ACS session (its agent goes away); its
// tasks keep "running" but report nothing more.
func (in *Instance) Disconnect() {
	in.cancel()
	<-in.done
}

// Connects returns how many times the instance's ACS session connected
// (more than once: it moved to another replica or reconnected).
func (in *Instance) Connects() int64 { return in.sess.Connects() }

// Instances returns the fleet's instances in the order they were added.
func (f *Fleet) Instances() []*Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*Instance(nil), f.instances...)
}

// Running returns the ARNs of the instance's tasks not yet reported STOPPED.
func (in *Instance) Running() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []string
	for arn, t := range in.tasks {
		if !t.stopped {
			out = append(out, arn)
		}
	}
	sort.Strings(out)
	return out
}

// ActiveTaskARNs implements registration.TaskLister.
func (in *Instance) ActiveTaskARNs() []string { return in.Running() }

// Kill makes a task's essential container exit (code 137) now, as if it
// had been killed on the host; false when no instance runs it.
func (f *Fleet) Kill(taskArn string) bool {
	for _, in := range f.Instances() {
		in.mu.Lock()
		t := in.tasks[taskArn]
		in.mu.Unlock()
		if t != nil {
			t.killOnce.Do(func() { close(t.kill) })
			return true
		}
	}
	return false
}

var (
	_ registration.PayloadHandler = (*Instance)(nil)
	_ registration.TaskLister     = (*Instance)(nil)
)

// HandlePayload implements registration.PayloadHandler: a new task starts
// its simulated life; desired STOPPED stops it. Redelivery is idempotent.
func (in *Instance) HandlePayload(ctx context.Context, p *api.PayloadMessage) error {
	for _, t := range p.Tasks {
		if t == nil {
			continue
		}
		in.mu.Lock()
		st := in.tasks[t.Arn]
		if st == nil {
			st = &simTask{arn: t.Arn, stop: make(chan struct{}), kill: make(chan struct{}), bindings: map[string][]types.NetworkBinding{}}
			for _, c := range t.Containers {
				st.containers = append(st.containers, c.Name)
				for _, pm := range c.PortMappings {
					host := int32(pm.HostPort)
					if host == 0 {
						host = in.f.nextPort.Add(1)
					}
					st.bindings[c.Name] = append(st.bindings[c.Name], types.NetworkBinding{BindIP: aws.String("0.0.0.0"),
						ContainerPort: aws.Int32(int32(pm.ContainerPort)), HostPort: aws.Int32(host), Protocol: types.TransportProtocol(pm.EffectiveProtocol())})
				}
			}
			if in.f.o.Behave != nil {
				st.behaviour = in.f.o.Behave(t)
			}
			in.tasks[t.Arn] = st
			if t.DesiredStatus == "STOPPED" {
				// Never started here: report it stopped so the endpoint
				// releases it, as an agent that lost it would.
				st.stopOnce.Do(func() { close(st.stop) })
			}
			in.f.wg.Add(1)
			go func() {
				defer in.f.wg.Done()
				in.live(st)
			}()
		}
		in.mu.Unlock()
		if t.DesiredStatus == "STOPPED" {
			st.stopOnce.Do(func() { close(st.stop) })
		}
	}
	return nil
}

// live runs one task's simulated life and reports it.
func (in *Instance) live(t *simTask) {
	ctx := in.f.ctx
	wait := func(d time.Duration, stop <-chan struct{}) (stopped bool, ok bool) {
		var timer <-chan time.Time
		if d > 0 {
			tm := time.NewTimer(d)
			defer tm.Stop()
			timer = tm.C
		}
		select {
		case <-ctx.Done():
			return false, false
		case <-stop:
			return true, true
		case <-t.kill:
			return true, true
		case <-timer:
			return false, true
		}
	}
	stopped, ok := wait(max(in.f.o.StartDelay, time.Nanosecond), t.stop)
	if !ok {
		return
	}
	switch {
	case stopped:
		in.report(t, "STOPPED", nil, "Task stopped before it started")
		return
	case t.behaviour.FailToStart:
		in.report(t, "STOPPED", nil, "CannotPullContainerError: simulated pull failure")
		return
	}
	if !in.report(t, "RUNNING", nil, "") {
		return
	}
	var exitAfter time.Duration = -1
	if t.behaviour.ExitAfter > 0 {
		exitAfter = t.behaviour.ExitAfter
	}
	var code int32
	reason := ""
	if exitAfter > 0 {
		_, ok = wait(exitAfter, t.stop)
		code = 1
	} else {
		_, ok = wait(0, t.stop)
	}
	if !ok {
		return
	}
	select {
	case <-t.kill:
		code = 137
	case <-t.stop:
		code = 0
		if in.f.o.StopDelay > 0 {
			if _, ok := wait(in.f.o.StopDelay, nil); !ok {
				return
			}
		}
	default:
	}
	if code != 0 {
		reason = "Essential container in task exited"
	}
	in.report(t, "STOPPED", &code, reason)
}

// report submits a task state change, retrying while the fleet runs.
func (in *Instance) report(t *simTask, status string, exitCode *int32, reason string) bool {
	input := &ecs.SubmitTaskStateChangeInput{Cluster: aws.String(in.f.o.Cluster), Task: aws.String(t.arn), Status: aws.String(status)}
	if reason != "" {
		input.Reason = aws.String(reason)
	}
	for _, name := range t.containers {
		cs := types.ContainerStateChange{ContainerName: aws.String(name), Status: aws.String(status), RuntimeId: aws.String("sim-" + name)}
		if status == "RUNNING" {
			cs.NetworkBindings = t.bindings[name]
		}
		if status == "STOPPED" {
			cs.ExitCode = exitCode
			if reason != "" {
				cs.Reason = aws.String(reason)
			}
		}
		input.Containers = append(input.Containers, cs)
	}
	for attempt := 0; ; attempt++ {
		_, err := in.client.SubmitTaskStateChange(in.f.ctx, input)
		if err == nil {
			break
		}
		if in.f.ctx.Err() != nil {
			return false
		}
		in.f.o.Logger.Warn("simfleet: submit state change", "task", t.arn, "status", status, "attempt", attempt, "err", err)
		select {
		case <-in.f.ctx.Done():
			return false
		case <-time.After(time.Duration(min(attempt+1, 20)) * 50 * time.Millisecond):
		}
	}
	if status == "STOPPED" {
		in.mu.Lock()
		t.stopped = true
		in.mu.Unlock()
	}
	return true
}

// Zones returns attributes for instance i of a fleet spread over zones.
func Zones(i int, zones ...string) map[string]string {
	return map[string]string{"ecs.availability-zone": zones[i%len(zones)], "sim.index": strconv.Itoa(i)}
}
