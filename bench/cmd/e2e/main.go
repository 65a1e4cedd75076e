// Command e2e measures RunTask to RUNNING through Berth's dev mode (cluster
// endpoint, ACS delivery, agent, containerd, bridge networking with a
// dynamic host port, state changes back to the endpoint, observed with
// DescribeTasks) for 1 and for 20 tasks, against raw containerd creating and
// starting the same containers (same image and command, no network), in
// interleaved rounds of the same run. It prints medians and their ratio.
//
// It uses the containerd and registry of the BERTH_TEST_* variables when
// set, otherwise starts private ones via internal/testenv. Run as root:
//
//	go run ./bench/cmd/e2e -rounds 3 [-datapath builtin|cni]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/agent/devmode"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/logs"
	"github.com/berth-dev/berth/pkg/network"
	"github.com/berth-dev/berth/pkg/state"
)

func main() {
	// This binary is the runtime's LoggerBinary: it serves the log daemon.
	if code, ok := logs.ServeMode(context.Background(), "bench-e2e", os.Args[1:], os.Stderr); ok {
		os.Exit(code)
	}
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per side and task count")
	flag.StringVar(&o.datapath, "datapath", "builtin", "the agent's BERTH_NETWORK_DATAPATH (builtin or cni)")
	flag.StringVar(&o.pull, "pull", "prefer-cached", "the agent's ECS_IMAGE_PULL_BEHAVIOR (prefer-cached: the image is local, as on the raw side; default asks the registry for every task)")
	flag.DurationVar(&o.poll, "poll", 5*time.Millisecond, "DescribeTasks interval while waiting for RUNNING (the measurement's resolution)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the timed rounds (endpoint and agent, this process) to this file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench e2e:", err)
			os.Exit(1)
		}
		o.profile = f
	}
	err := run(ctx, o)
	if o.profile != nil {
		err = errors.Join(err, o.profile.Close())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench e2e:", err)
		os.Exit(1)
	}
}

const region = "us-east-1"

// script runs until SIGTERM (a shell as PID 1 ignores it otherwise).
var command = []string{"/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done"}

// options are the flags.
type options struct {
	rounds         int
	datapath, pull string
	poll           time.Duration
	profile        *os.File // the CPU profile of the timed rounds, if asked for
}

func run(ctx context.Context, o options) (retErr error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root (containerd, runc, CNI); see scripts/test-deps.sh")
	}
	shared, err := testenv.AcquireShared(ctx)
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, shared.Close(ctx)) }()
	address, snapshotter, reg := shared.Address, shared.Snapshotter, shared.Registry
	img, err := testenv.BuildAndPush(ctx, reg, "bench/e2e", testenv.ImageSpec{Cmd: command})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "berth-bench-e2e-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	b, err := startBerth(ctx, dir, address, snapshotter, o)
	if err != nil {
		return err
	}
	defer b.stop()
	raw, err := newRaw(ctx, address, snapshotter, img.Ref, reg)
	if err != nil {
		return err
	}
	defer raw.close()

	td, err := b.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
		Family: aws.String("bench"),
		ContainerDefinitions: []types.ContainerDefinition{{
			Name: aws.String("app"), Image: aws.String(img.Ref), Memory: aws.Int32(16), Essential: aws.Bool(true),
			Command:      command,
			PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80), HostPort: aws.Int32(0)}},
		}},
	})
	if err != nil {
		return fmt.Errorf("register task definition: %w", err)
	}
	// One untimed task first: the image is pulled and the bridge created,
	// as on any agent that has run a task before.
	if _, err := b.runToRunning(ctx, td.TaskDefinition.TaskDefinitionArn, 1); err != nil {
		return err
	}
	fmt.Printf("rounds: %d per side; snapshotter %s; datapath %s; pull %s; poll %s; load average %s\n",
		o.rounds, snapshotter, o.datapath, o.pull, o.poll, testenv.LoadAverage())
	if o.profile != nil {
		if err := pprof.StartCPUProfile(o.profile); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for _, n := range []int{1, 20} {
		var berthT, rawT []time.Duration
		for r := 0; r < o.rounds; r++ {
			d, err := b.runToRunning(ctx, td.TaskDefinition.TaskDefinitionArn, n)
			if err != nil {
				return err
			}
			berthT = append(berthT, d)
			d, err = raw.createAndStart(ctx, n)
			if err != nil {
				return err
			}
			rawT = append(rawT, d)
		}
		bm, rm := median(berthT), median(rawT)
		fmt.Printf("RunTask->RUNNING %2d task(s): berth %v (rounds %v), raw containerd %v (rounds %v), ratio %.2fx\n",
			n, bm.Round(time.Millisecond), rounded(berthT), rm.Round(time.Millisecond), rounded(rawT), float64(bm)/float64(rm))
	}
	fmt.Printf("load average at the end %s\n", testenv.LoadAverage())
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func rounded(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// berth is dev mode's two halves in this process.
type berth struct {
	ep     *devmode.Endpoint
	admin  *ecs.Client
	cancel context.CancelFunc
	done   chan error
	bridge string
	poll   time.Duration
	// table is the agent's nftables table (built-in datapath).
	table string
}

func startBerth(ctx context.Context, dir, address, snapshotter string, o options) (*berth, error) {
	ep, err := devmode.StartEndpoint(ctx, devmode.EndpointOptions{DataDir: filepath.Join(dir, "cluster"), Region: region, AccountID: devmode.DefaultAccount})
	if err != nil {
		return nil, err
	}
	adminID, adminSecret, err := ep.Keys.Create(auth.RoleAdmin, time.Now())
	if err != nil {
		ep.Close()
		return nil, err
	}
	agentID, agentSecret, err := ep.Keys.Create(auth.RoleAgent, time.Now())
	if err != nil {
		ep.Close()
		return nil, err
	}
	b := &berth{ep: ep, admin: devmode.NewECSClient(ep.URL, region, aws.Credentials{AccessKeyID: adminID, SecretAccessKey: adminSecret}),
		done: make(chan error, 1), bridge: "bbe2e0", poll: o.poll}
	if _, err := b.admin.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("default")}); err != nil {
		ep.Close()
		return nil, err
	}
	env := []string{
		"ECS_CLUSTER=default", "ECS_BACKEND_HOST=" + ep.URL, "AWS_REGION=" + region,
		"ECS_DATADIR=" + filepath.Join(dir, "agent"),
		"BERTH_CONTAINERD_ADDRESS=" + address, "BERTH_CONTAINERD_NAMESPACE=bench-e2e-berth",
		"BERTH_BRIDGE_NAME=" + b.bridge, "BERTH_BRIDGE_SUBNET=10.253.0.0/22",
		"ECS_DYNAMIC_HOST_PORT_RANGE=46000-46999", "ECS_CONTAINER_STOP_TIMEOUT=2s",
		"BERTH_NETWORK_DATAPATH=" + o.datapath,
		"ECS_IMAGE_PULL_BEHAVIOR=" + o.pull,
	}
	if err := os.MkdirAll(filepath.Join(dir, "agent"), 0o700); err != nil {
		ep.Close()
		return nil, err
	}
	owner, err := network.OwnerForDir(filepath.Join(dir, "agent"))
	if err != nil {
		ep.Close()
		return nil, err
	}
	b.table = "bbe2e-" + owner
	cfg, err := agent.ConfigFromEnv(env)
	if err != nil {
		ep.Close()
		return nil, err
	}
	cfg.Listen.Introspection = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.Containers.TaskCleanupWait = time.Second
	exe, _ := os.Executable()
	quiet := slog.New(slog.DiscardHandler)
	registered := make(chan string, 1)
	a, err := agent.New(cfg, agent.WithLogger(quiet), agent.WithLoggerBinary(exe), agent.WithSnapshotter(snapshotter),
		agent.WithNetworkRunDir(filepath.Join(dir, "net")), agent.WithNamePrefix("bbe2e-"),
		agent.WithMembership(agent.Membership{
			Credentials: credentials.NewStaticCredentialsProvider(agentID, agentSecret, ""),
			Registered:  func(id state.InstanceIdentity) { registered <- id.ContainerInstanceArn }}))
	if err != nil {
		ep.Close()
		return nil, err
	}
	mctx, cancel := context.WithCancel(ctx)
	b.cancel = cancel
	go func() {
		b.done <- a.Run(mctx)
	}()
	select {
	case arn := <-registered:
		// RunTask places tasks only on instances whose agent is connected.
		for i := 0; ; i++ {
			out, err := b.admin.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{ContainerInstances: []string{arn}})
			if err == nil && len(out.ContainerInstances) == 1 && out.ContainerInstances[0].AgentConnected {
				break
			}
			if i == 600 {
				b.stop()
				return nil, errors.New("agent did not connect within a minute")
			}
			time.Sleep(100 * time.Millisecond)
		}
	case err := <-b.done:
		ep.Close()
		return nil, fmt.Errorf("agent: %w", err)
	case <-time.After(time.Minute):
		b.stop()
		return nil, errors.New("agent did not register within a minute")
	}
	return b, nil
}

func (b *berth) stop() {
	b.cancel()
	<-b.done
	b.ep.Close()
	_ = exec.Command("ip", "link", "del", b.bridge).Run()
	_ = exec.Command("nft", "delete", "table", "ip", b.table).Run()
	_ = network.RemoveBridgeForwardRules(context.Background(), b.bridge)
}

// runToRunning runs n tasks, times RunTask until DescribeTasks shows them
// all RUNNING, then stops them (untimed) and waits until they are STOPPED.
func (b *berth) runToRunning(ctx context.Context, td *string, n int) (time.Duration, error) {
	start := time.Now()
	var arns []string
	for left := n; left > 0; left -= 10 {
		out, err := b.admin.RunTask(ctx, &ecs.RunTaskInput{TaskDefinition: td, Count: aws.Int32(int32(min(left, 10)))})
		if err != nil {
			return 0, fmt.Errorf("run task: %w", err)
		}
		if len(out.Failures) > 0 {
			return 0, fmt.Errorf("run task: %+v", out.Failures)
		}
		for _, t := range out.Tasks {
			arns = append(arns, aws.ToString(t.TaskArn))
		}
	}
	if err := b.waitAll(ctx, arns, "RUNNING"); err != nil {
		return 0, err
	}
	d := time.Since(start)
	for _, arn := range arns {
		if _, err := b.admin.StopTask(ctx, &ecs.StopTaskInput{Task: aws.String(arn)}); err != nil {
			return 0, fmt.Errorf("stop task: %w", err)
		}
	}
	return d, b.waitAll(ctx, arns, "STOPPED")
}

func (b *berth) waitAll(ctx context.Context, arns []string, want string) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		done := 0
		for i := 0; i < len(arns); i += 100 {
			out, err := b.admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Tasks: arns[i:min(i+100, len(arns))]})
			if err != nil {
				return fmt.Errorf("describe tasks: %w", err)
			}
			for _, t := range out.Tasks {
				if s := aws.ToString(t.LastStatus); s == want {
					done++
				} else if s == "STOPPED" {
					return fmt.Errorf("task %s stopped: %s", aws.ToString(t.TaskArn), aws.ToString(t.StoppedReason))
				}
			}
		}
		if done == len(arns) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d tasks %s after 3 minutes", done, len(arns), want)
		}
		time.Sleep(b.poll)
	}
}

// raw creates and starts the same containers with the containerd client.
type raw struct {
	cli   *containerd.Client
	img   containerd.Image
	ctx   context.Context
	snap  string
	count int
}

func newRaw(ctx context.Context, address, snapshotter, ref string, reg *testenv.RegistryInstance) (*raw, error) {
	cli, err := containerd.New(address)
	if err != nil {
		return nil, err
	}
	rctx := namespaces.WithNamespace(ctx, "bench-e2e-raw")
	img, err := cli.Pull(rctx, ref, containerd.WithPullUnpack, containerd.WithPullSnapshotter(snapshotter), containerd.WithResolver(reg.Resolver()))
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("raw: pull %s: %w", ref, err)
	}
	return &raw{cli: cli, img: img, ctx: rctx, snap: snapshotter}, nil
}

// createAndStart times n concurrent create+start, then removes them.
func (r *raw) createAndStart(ctx context.Context, n int) (time.Duration, error) {
	ctx = namespaces.WithNamespace(ctx, "bench-e2e-raw")
	start := time.Now()
	tasks := make([]containerd.Task, n)
	ctrs := make([]containerd.Container, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		r.count++
		id := fmt.Sprintf("raw-%d", r.count)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := r.cli.NewContainer(ctx, id, containerd.WithImage(r.img), containerd.WithSnapshotter(r.snap),
				containerd.WithNewSnapshot(id+"-snap", r.img), containerd.WithNewSpec(oci.WithImageConfig(r.img), oci.WithProcessArgs(command...)))
			if err != nil {
				errs[i] = err
				return
			}
			ctrs[i] = c
			t, err := c.NewTask(ctx, cio.NullIO)
			if err != nil {
				errs[i] = err
				return
			}
			tasks[i] = t
			errs[i] = t.Start(ctx)
		}(i)
	}
	wg.Wait()
	d := time.Since(start)
	for i := range ctrs {
		if tasks[i] != nil {
			_, _ = tasks[i].Delete(ctx, containerd.WithProcessKill)
		}
		if ctrs[i] != nil {
			_ = ctrs[i].Delete(ctx, containerd.WithSnapshotCleanup)
		}
	}
	return d, errors.Join(errs...)
}

func (r *raw) close() {
	_ = r.cli.ImageService().Delete(r.ctx, r.img.Name())
	_ = r.cli.NamespaceService().Delete(r.ctx, "bench-e2e-raw")
	r.cli.Close()
}
