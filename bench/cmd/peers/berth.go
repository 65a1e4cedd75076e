package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/namespaces"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/agent/devmode"
	"github.com/berth-dev/berth/pkg/logs"
)

// berthEngine is `berth-agent --dev` (endpoint and agent in one process,
// as a user starts it) driven through the ECS API with the AWS SDK: a
// bridge-mode task definition with hostPort 0, RunTask (at most 10 tasks
// per call, as ECS allows), DescribeTasks every -berth-poll (5 ms) until a task reports
// its networkBinding, then the bound host port must answer. It runs a
// copy of the agent binary from the benchmark's directory, so that every
// process it causes (the agent, per-container loggers, any helper daemon)
// is recognised by its program path.
//
// As a cluster member (-engines berth-member) the endpoint is berth-cluster,
// a process of its own (as in production, where it runs elsewhere), and
// the agent is `berth-agent` registered to it with an access key: its
// memory is the agent's alone.
type berthEngine struct {
	bin, ns, bridge, address string
	// logd is the copy of the log daemon's program (berth-logd next to
	// the agent binary), "" when the agent runs the daemon itself.
	logd string
	// member: the agent is a cluster member of endpoint (berth-cluster,
	// clusterBin); otherwise it is dev mode with the endpoint inside.
	member     bool
	clusterBin string
	endpoint   *daemonProc
	agent      *daemonProc
	client     *ecs.Client
	poll       time.Duration // DescribeTasks interval while waiting for the port
	taskDef    string

	mu    sync.Mutex // guards tasks
	tasks []string
}

// berthRegion is dev mode's default region; the benchmark sets it so that
// the host's AWS settings play no part.
const berthRegion = devmode.DefaultRegion

// newBerth copies the agent binary, and the log daemon's program next to
// it if there is one, into a directory of the engine's own.
func newBerth(s *setup, name, ns, bridge string) (*berthEngine, string, error) {
	dir := filepath.Join(s.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	e := &berthEngine{bin: filepath.Join(dir, "berth-agent"), ns: ns, bridge: bridge, address: s.shared.Address, poll: s.berthPoll}
	if err := copyFile(s.agentBin, e.bin); err != nil {
		return e, dir, fmt.Errorf("%s: copy the agent binary: %w", name, err)
	}
	if logd := logs.DaemonBinary(s.agentBin); logd != s.agentBin {
		e.logd = filepath.Join(dir, logs.DaemonProgram)
		if err := copyFile(logd, e.logd); err != nil {
			return e, dir, fmt.Errorf("%s: copy the log daemon's program: %w", name, err)
		}
	}
	return e, dir, nil
}

// agentEnv is the environment both forms of the agent get: the benchmark's
// containerd, namespace, bridge and pull behaviour.
func (e *berthEngine) agentEnv(s *setup, subnet string) ([]string, error) {
	introspection, err := freePort()
	if err != nil {
		return nil, err
	}
	return []string{
		"AWS_REGION=" + berthRegion,
		"BERTH_CONTAINERD_ADDRESS=" + s.shared.Address,
		"BERTH_CONTAINERD_NAMESPACE=" + e.ns,
		"BERTH_BRIDGE_NAME=" + e.bridge,
		"BERTH_BRIDGE_SUBNET=" + subnet,
		"BERTH_INTROSPECTION_ADDRESS=127.0.0.1:" + strconv.Itoa(introspection),
		"ECS_IMAGE_PULL_BEHAVIOR=" + s.berthPull,
	}, nil
}

func startBerth(ctx context.Context, s *setup) (*berthEngine, error) {
	e, dir, err := newBerth(s, "berth", "bench-peers-berth", s.names.berthBridge)
	if err != nil {
		return e, err
	}
	// Empty configuration files keep the host's /etc/ecs/ecs.config and
	// /etc/berth/agent.toml out of the measurement.
	empty := filepath.Join(dir, "empty.config")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		return e, err
	}
	devDir := filepath.Join(dir, "dev")
	env, err := e.agentEnv(s, s.names.berthSubnet)
	if err != nil {
		return e, err
	}
	e.agent, err = startDaemonProc(env, filepath.Join(dir, "agent.log"), e.bin,
		"--config", empty, "--toml", empty, "--dev", "--dev-dir", devDir, "--containerd-snapshotter", s.shared.Snapshotter)
	if err != nil {
		return e, err
	}
	var url string
	err = e.agent.waitFor(ctx, "berth: dev mode writes its env file", time.Minute, func() error {
		url, err = endpointURL(filepath.Join(devDir, "env"))
		return err
	})
	if err != nil {
		return e, err
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(berthRegion),
		awsconfig.WithSharedCredentialsFiles([]string{filepath.Join(devDir, "credentials")}),
		awsconfig.WithSharedConfigFiles([]string{}), awsconfig.WithSharedConfigProfile(devmode.Profile))
	if err != nil {
		return e, fmt.Errorf("berth: load the dev credentials: %w", err)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return e, fmt.Errorf("berth: read the dev credentials: %w", err)
	}
	e.client = devmode.NewECSClient(url, berthRegion, creds)
	return e, e.ready(ctx, s)
}

// berthAccount is the member endpoint's account.
const berthAccount = "000000000000"

// startBerthMember runs berth-cluster and berth-agent as a cluster member
// of it, configured through files as on a host.
func startBerthMember(ctx context.Context, s *setup) (*berthEngine, error) {
	e, dir, err := newBerth(s, "berth-member", "bench-peers-berth-member", s.names.memberBridge)
	if err != nil {
		return e, err
	}
	e.member = true
	e.clusterBin = filepath.Join(dir, "berth-cluster")
	if err := copyFile(s.clusterBin, e.clusterBin); err != nil {
		return e, fmt.Errorf("berth-member: copy the endpoint binary: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return e, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	dataDir := filepath.Join(dir, "cluster")
	clusterCfg := filepath.Join(dir, "cluster.toml")
	doc := fmt.Sprintf("listen = %q\ninsecure_http = true\nregion = %q\naccount_id = %q\ndata_dir = %q\n", addr, berthRegion, berthAccount, dataDir)
	if err := os.WriteFile(clusterCfg, []byte(doc), 0o600); err != nil {
		return e, err
	}
	admin, err := clusterKey(ctx, e.clusterBin, dataDir, "admin")
	if err != nil {
		return e, err
	}
	agentKey, err := clusterKey(ctx, e.clusterBin, dataDir, "agent")
	if err != nil {
		return e, err
	}
	e.endpoint, err = startDaemonProc(nil, filepath.Join(dir, "cluster.log"), e.clusterBin, "serve", "--config", clusterCfg)
	if err != nil {
		return e, err
	}
	err = e.endpoint.waitFor(ctx, "berth-member: berth-cluster listens", time.Minute, func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		return e, err
	}
	e.client = devmode.NewECSClient("http://"+addr, berthRegion, admin)
	if _, err := e.client.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("default")}); err != nil {
		return e, fmt.Errorf("berth-member: create the cluster: %w", err)
	}
	ecsConfig := filepath.Join(dir, "ecs.config")
	empty := filepath.Join(dir, "agent.toml")
	cfg := strings.Join([]string{
		"ECS_CLUSTER=default",
		"ECS_BACKEND_HOST=http://" + addr,
		"ECS_DATADIR=" + filepath.Join(dir, "agent"),
		"ECS_AUDIT_LOGFILE=" + filepath.Join(dir, "audit.log"),
	}, "\n") + "\n"
	if err := os.WriteFile(ecsConfig, []byte(cfg), 0o600); err != nil {
		return e, err
	}
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		return e, err
	}
	env, err := e.agentEnv(s, s.names.memberSubnet)
	if err != nil {
		return e, err
	}
	env = append(env, "AWS_ACCESS_KEY_ID="+agentKey.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+agentKey.SecretAccessKey)
	e.agent, err = startDaemonProc(env, filepath.Join(dir, "agent.log"), e.bin,
		"--config", ecsConfig, "--toml", empty, "--containerd-snapshotter", s.shared.Snapshotter)
	if err != nil {
		return e, err
	}
	return e, e.ready(ctx, s)
}

var keyRE = regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+)\nAWS_SECRET_ACCESS_KEY=(\S+)\n`)

// clusterKey creates an access key of role with berth-cluster's offline
// `keys create`, as an operator does before the first start.
func clusterKey(ctx context.Context, bin, dataDir, role string) (aws.Credentials, error) {
	out, err := command(ctx, nil, bin, "keys", "create", "--role", role, "--data-dir", dataDir)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("berth-cluster keys create --role %s: %w", role, err)
	}
	m := keyRE.FindStringSubmatch(out)
	if m == nil {
		return aws.Credentials{}, fmt.Errorf("berth-cluster keys create --role %s printed no key: %q", role, out)
	}
	return aws.Credentials{AccessKeyID: m[1], SecretAccessKey: m[2]}, nil
}

// ready waits until the agent is connected (RunTask places tasks only on
// an instance whose agent is) and registers the task definition.
func (e *berthEngine) ready(ctx context.Context, s *setup) error {
	err := e.agent.waitFor(ctx, "berth: the agent connects to the endpoint", time.Minute, func() error {
		list, err := e.client.ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{})
		if err != nil || len(list.ContainerInstanceArns) == 0 {
			return fmt.Errorf("no container instance yet (%v)", err)
		}
		out, err := e.client.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{ContainerInstances: list.ContainerInstanceArns})
		if err != nil || len(out.ContainerInstances) == 0 || !out.ContainerInstances[0].AgentConnected {
			return fmt.Errorf("agent not connected yet (%v)", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	td, err := e.client.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
		Family:      aws.String("bench-peers"),
		NetworkMode: types.NetworkModeBridge,
		ContainerDefinitions: []types.ContainerDefinition{{
			Name: aws.String("web"), Image: aws.String(s.image), Memory: aws.Int32(32), Essential: aws.Bool(true),
			PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80), HostPort: aws.Int32(0), Protocol: types.TransportProtocolTcp}},
		}},
	})
	if err != nil {
		return fmt.Errorf("berth: register task definition: %w", err)
	}
	e.taskDef = aws.ToString(td.TaskDefinition.TaskDefinitionArn)
	return nil
}

// endpointURL reads AWS_ENDPOINT_URL_ECS from dev mode's env file.
func endpointURL(envFile string) (string, error) {
	b, err := os.ReadFile(envFile)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "export AWS_ENDPOINT_URL_ECS="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s: no AWS_ENDPOINT_URL_ECS", envFile)
}

func (e *berthEngine) launch(ctx context.Context, n int, up func(addr string)) error {
	var arns []string
	for left := n; left > 0; left -= 10 {
		out, err := e.client.RunTask(ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(e.taskDef), Count: aws.Int32(int32(min(left, 10)))})
		if err != nil {
			return fmt.Errorf("run task: %w", err)
		}
		for _, t := range out.Tasks {
			arns = append(arns, aws.ToString(t.TaskArn))
		}
		e.mu.Lock()
		e.tasks = append(e.tasks, arns[len(arns)-len(out.Tasks):]...)
		e.mu.Unlock()
		if len(out.Failures) > 0 {
			return fmt.Errorf("run task: %s: %s", aws.ToString(out.Failures[0].Arn), aws.ToString(out.Failures[0].Reason))
		}
	}
	known := map[string]bool{}
	for len(known) < len(arns) {
		var waiting []string
		for _, a := range arns {
			if !known[a] {
				waiting = append(waiting, a)
			}
		}
		tasks, err := e.describe(ctx, waiting)
		if err != nil {
			return err
		}
		for _, t := range tasks {
			arn := aws.ToString(t.TaskArn)
			if aws.ToString(t.LastStatus) == "STOPPED" {
				return fmt.Errorf("task %s stopped: %s", arn, aws.ToString(t.StoppedReason))
			}
			for _, c := range t.Containers {
				for _, b := range c.NetworkBindings {
					if aws.ToInt32(b.ContainerPort) == 80 && aws.ToInt32(b.HostPort) != 0 && !known[arn] {
						known[arn] = true
						up("127.0.0.1:" + strconv.Itoa(int(aws.ToInt32(b.HostPort))))
					}
				}
			}
		}
		if len(known) < len(arns) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(e.poll):
			}
		}
	}
	return nil
}

// describe returns the tasks, 100 per DescribeTasks call.
func (e *berthEngine) describe(ctx context.Context, arns []string) ([]types.Task, error) {
	var tasks []types.Task
	for chunk := range slices.Chunk(arns, 100) {
		out, err := e.client.DescribeTasks(ctx, &ecs.DescribeTasksInput{Tasks: chunk})
		if err != nil {
			return nil, fmt.Errorf("describe tasks: %w", err)
		}
		tasks = append(tasks, out.Tasks...)
	}
	return tasks, nil
}

// clear stops every task launched and waits until all are STOPPED.
func (e *berthEngine) clear(ctx context.Context) error {
	e.mu.Lock()
	arns := e.tasks
	e.mu.Unlock()
	if len(arns) == 0 {
		return nil
	}
	for _, arn := range arns {
		if _, err := e.client.StopTask(ctx, &ecs.StopTaskInput{Task: aws.String(arn), Reason: aws.String("bench-peers")}); err != nil {
			return fmt.Errorf("stop task: %w", err)
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		tasks, err := e.describe(ctx, arns)
		if err != nil {
			return err
		}
		stopped := 0
		for _, t := range tasks {
			if aws.ToString(t.LastStatus) == "STOPPED" {
				stopped++
			}
		}
		if stopped == len(arns) {
			e.mu.Lock()
			e.tasks = slices.DeleteFunc(e.tasks, func(a string) bool { return slices.Contains(arns, a) })
			e.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("berth: %d of %d tasks STOPPED after 3 minutes", stopped, len(arns))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// memory groups every process of the engine's programs by its mode (the
// agent, the endpoint, the log daemon, any per-container logger). The
// member endpoint is reported but not counted as the agent's own: it runs
// on another host in production.
func (e *berthEngine) memory() ([]procGroup, error) {
	pids, err := testenv.FindProcs(func(a []string) bool { return e.ours(a[0]) })
	if err != nil {
		return nil, err
	}
	byMode := map[string][]int{}
	var modes []string
	for _, pid := range pids {
		m := e.mode(pid)
		if byMode[m] == nil {
			modes = append(modes, m)
		}
		byMode[m] = append(byMode[m], pid)
	}
	slices.Sort(modes)
	var groups []procGroup
	for _, m := range modes {
		own := !strings.HasPrefix(m, "berth-cluster")
		groups = append(groups, newGroup(m, own, byMode[m]))
	}
	rest, err := containerdGroups(e.address, e.ns)
	return append(groups, rest...), err
}

// ours reports whether program is one of the engine's copies.
func (e *berthEngine) ours(program string) bool {
	return program != "" && (program == e.bin || program == e.logd || program == e.clusterBin)
}

// mode names a process of the engine's programs: "berth-agent --dev",
// "berth-agent", "berth-cluster" or "<program> <hidden mode>".
func (e *berthEngine) mode(pid int) string {
	switch {
	case e.agent != nil && pid == e.agent.pid() && e.member:
		return "berth-agent (agent)"
	case e.agent != nil && pid == e.agent.pid():
		return "berth-agent --dev (agent and endpoint)"
	case e.endpoint != nil && pid == e.endpoint.pid():
		return "berth-cluster (endpoint; not counted)"
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	name := filepath.Base(args[0])
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "-") {
			return name + " " + a
		}
	}
	return name
}

// close stops the tasks through the API (dev mode leaves containers
// running when it stops), stops dev mode (which removes its credentials
// route), ends any process of the agent binary still running, and removes
// what is left in containerd and the bridge.
func (e *berthEngine) close(ctx context.Context) error {
	var errs []error
	if e.agent != nil && !e.agent.exited() && e.client != nil {
		errs = append(errs, e.clear(ctx))
	}
	if e.agent != nil {
		e.agent.stop(30 * time.Second)
	}
	if e.endpoint != nil {
		e.endpoint.stop(30 * time.Second)
	}
	for _, p := range []string{e.bin, e.logd, e.clusterBin} {
		if p != "" {
			errs = append(errs, killProgram(p))
		}
	}
	cli, err := containerd.New(e.address)
	if err != nil {
		errs = append(errs, err)
	} else {
		errs = append(errs, emptyNamespace(ctx, cli, e.ns))
		cli.Close()
	}
	errs = append(errs, delLink(ctx, e.bridge))
	return errors.Join(errs...)
}

// killProgram ends every process running the program at path (SIGTERM,
// then SIGKILL after 5 s): what the agent left running after it stopped.
func killProgram(path string) error {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		pids, err := testenv.FindProcs(func(a []string) bool { return a[0] == path })
		if err != nil || len(pids) == 0 {
			return err
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, sig)
		}
		for i := 0; i < 50; i++ {
			if pids, _ := testenv.FindProcs(func(a []string) bool { return a[0] == path }); len(pids) == 0 {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return fmt.Errorf("processes of %s survive SIGKILL", path)
}

// emptyNamespace deletes every container (killing its task), image and
// then the namespace ns.
func emptyNamespace(ctx context.Context, cli *containerd.Client, ns string) error {
	ctx = namespaces.WithNamespace(ctx, ns)
	var errs []error
	cs, err := cli.Containers(ctx)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		// Nothing was started in it (a failed start): it may not exist.
		if _, err := cli.NamespaceService().Labels(ctx, ns); errdefs.IsNotFound(err) {
			return nil
		}
	}
	for _, c := range cs {
		if t, err := c.Task(ctx, nil); err == nil {
			if _, err := t.Delete(ctx, containerd.WithProcessKill); err != nil {
				errs = append(errs, err)
			}
		}
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			errs = append(errs, err)
		}
	}
	imgs, err := cli.ImageService().List(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, i := range imgs {
		if err := cli.ImageService().Delete(ctx, i.Name, images.SynchronousDelete()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := cli.NamespaceService().Delete(ctx, ns); err != nil {
		errs = append(errs, fmt.Errorf("delete namespace %s: %w", ns, err))
	}
	return errors.Join(errs...)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
