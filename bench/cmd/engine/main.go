// Command engine benchmarks the agent (pkg/agent with pkg/engine) on real
// containerd against raw baselines measured in the same run:
//
//   - start: one payload of N single-container tasks until every task is
//     RUNNING, versus the raw containerd client creating and starting the
//     same N containers concurrently (ratio);
//   - memory: the agent process's RSS with M running tasks (and idle);
//   - recovery: SIGKILL the agent with M running tasks, start it again and
//     time until it has recovered them (ready) and reports them RUNNING.
//
// The agent runs as a child process (this binary in "agent" mode) so that
// its RSS is its own and kill -9 is real. It uses the containerd and
// registry of BERTH_TEST_* variables when set, otherwise starts private ones
// via internal/testenv. Run as root: go run ./bench/cmd/engine
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/logs"
)

const agentEnv = "BERTH_BENCH_ENGINE_AGENT"

// agentSpec is what the child agent needs to know.
type agentSpec struct {
	Containerd, Snapshotter, Namespace string
	DataDir, NetRunDir, Bridge, Subnet string
	PullBehavior                       string
}

func main() {
	// This binary is the runtime's LoggerBinary: it serves the log daemon.
	if code, ok := logs.ServeMode(context.Background(), "bench-engine", os.Args[1:], os.Stderr); ok {
		os.Exit(code)
	}
	if spec := os.Getenv(agentEnv); spec != "" {
		if err := runAgent(spec); err != nil {
			fmt.Fprintln(os.Stderr, "bench agent:", err)
			os.Exit(1)
		}
		return
	}
	n := flag.Int("tasks", 50, "tasks delivered at once for the start benchmark")
	m := flag.Int("running", 100, "running tasks for the memory and recovery benchmarks")
	mode := flag.String("network", "host", "network mode of the tasks: host, bridge or none")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *n, *m, *mode); err != nil {
		fmt.Fprintln(os.Stderr, "bench engine:", err)
		os.Exit(1)
	}
}

// runAgent is the child: it runs an agent, prints "READY <addr>" once the
// stored tasks are recovered, then hands each payload file named on stdin
// to the agent and prints "ACK" when it is stored.
func runAgent(raw string) error {
	var s agentSpec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return err
	}
	env := []string{
		"ECS_CLUSTER=bench",
		"ECS_DATADIR=" + s.DataDir,
		"BERTH_CONTAINERD_ADDRESS=" + s.Containerd,
		"BERTH_CONTAINERD_NAMESPACE=" + s.Namespace,
		"BERTH_BRIDGE_NAME=" + s.Bridge,
		"BERTH_BRIDGE_SUBNET=" + s.Subnet,
		"ECS_CONTAINER_STOP_TIMEOUT=2s",
		"ECS_IMAGE_PULL_BEHAVIOR=" + s.PullBehavior,
		"ECS_DISABLE_IMAGE_CLEANUP=true",
	}
	cfg, err := agent.ConfigFromEnv(env)
	if err != nil {
		return err
	}
	cfg.Listen.Introspection = netip.MustParseAddrPort("127.0.0.1:0")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	a, err := agent.New(cfg,
		agent.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		agent.WithLoggerBinary(self),
		agent.WithNetworkRunDir(s.NetRunDir),
		agent.WithNamePrefix(s.Bridge+"-"),
		agent.WithSnapshotter(s.Snapshotter))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	if err := a.Ready(ctx); err != nil {
		return err
	}
	fmt.Println("READY", a.IntrospectionAddr())
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for {
		select {
		case err := <-done:
			return err
		case path, ok := <-lines:
			if !ok {
				stop()
				return <-done
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			f, err := api.DecodeFrame(b)
			if err != nil {
				return err
			}
			if err := a.HandlePayload(ctx, f.(*api.PayloadMessage)); err != nil {
				return err
			}
			fmt.Println("ACK")
		}
	}
}

func run(ctx context.Context, n, m int, mode string) (retErr error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root (containerd, runc, CNI); see scripts/test-deps.sh")
	}
	shared, err := testenv.AcquireShared(ctx)
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, shared.Close(ctx)) }()
	address, snapshotter, reg := shared.Address, shared.Snapshotter, shared.Registry
	img, err := testenv.BuildAndPush(ctx, reg, "bench/engine", testenv.ImageSpec{Cmd: []string{"/bin/sleep", "3600"}})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "berth-bench-engine-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	id := randomHex(3)
	spec := agentSpec{
		Containerd: address, Snapshotter: snapshotter, Namespace: "bench-engine-" + id,
		DataDir: filepath.Join(dir, "data"), NetRunDir: filepath.Join(dir, "run"),
		Bridge: "bb" + id, Subnet: "10.199.0.0/16", PullBehavior: "prefer-cached",
	}
	cli, err := containerd.New(address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		return err
	}
	defer cli.Close()
	nctx := namespaces.WithNamespace(ctx, spec.Namespace)
	if err := cli.NamespaceService().Create(nctx, spec.Namespace, map[string]string{"containerd.io/defaults/snapshotter": snapshotter}); err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}
	defer func() {
		cleanNamespace(context.WithoutCancel(ctx), cli, spec.Namespace)
		_ = exec.Command("ip", "link", "del", spec.Bridge).Run()
	}()
	image, err := cli.Pull(nctx, img.Ref, containerd.WithPullUnpack, containerd.WithPullSnapshotter(snapshotter))
	if err != nil {
		return fmt.Errorf("pull %s: %w", img.Ref, err)
	}
	fmt.Printf("containerd %s, snapshotter %s, image %s, network mode %s, pull behaviour %s\n\n", address, snapshotter, img.Ref, mode, spec.PullBehavior)

	raw, err := rawStart(nctx, cli, image, n, snapshotter, mode == "host")
	if err != nil {
		return fmt.Errorf("raw baseline: %w", err)
	}

	ag, err := startAgent(ctx, spec)
	if err != nil {
		return err
	}
	defer func() { ag.stop() }()
	idle, _ := rss(ag.cmd.Process.Pid)

	first := tasks(0, n, img.Ref, mode)
	t0 := time.Now()
	if err := ag.send(dir, first, api.StatusRunning); err != nil {
		return err
	}
	if err := ag.waitAll(ctx, "RUNNING", n, 5*time.Minute); err != nil {
		return err
	}
	berthStart := time.Since(t0)
	fmt.Printf("start: %d tasks in one payload until all RUNNING\n", n)
	fmt.Printf("  raw containerd (create+start %d containers concurrently)  %8.0f ms\n", n, ms(raw))
	fmt.Printf("  berth agent (payload -> all RUNNING)                      %8.0f ms\n", ms(berthStart))
	fmt.Printf("  ratio                                                     %8.2fx\n\n", float64(berthStart)/float64(raw))

	all := append(first, tasks(n, m-n, img.Ref, mode)...)
	if m > n {
		if err := ag.send(dir, all[n:], api.StatusRunning); err != nil {
			return err
		}
		if err := ag.waitAll(ctx, "RUNNING", m, 5*time.Minute); err != nil {
			return err
		}
	}
	time.Sleep(2 * time.Second) // let allocations settle before reading RSS
	busy, err := rss(ag.cmd.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("memory: agent RSS idle %.1f MiB, with %d running tasks %.1f MiB (%.1f KiB per task)\n",
		float64(idle)/1024, m, float64(busy)/1024, float64(busy-idle)/float64(m))
	if err := printAgentSide(ag.cmd.Process.Pid, spec.DataDir); err != nil {
		return err
	}

	// Recovery: kill -9, start again, time to ready and to all RUNNING.
	ag.kill()
	t0 = time.Now()
	ag, err = startAgent(ctx, spec)
	if err != nil {
		return err
	}
	ready := time.Since(t0)
	if err := ag.waitAll(ctx, "RUNNING", m, 5*time.Minute); err != nil {
		return err
	}
	reported := time.Since(t0)
	fmt.Printf("recovery: kill -9 with %d running tasks, restart\n", m)
	fmt.Printf("  process start -> tasks recovered (ready)   %8.0f ms\n", ms(ready))
	fmt.Printf("  process start -> all %d reported RUNNING  %8.0f ms\n\n", m, ms(reported))

	if err := ag.send(dir, all, api.StatusStopped); err != nil {
		return err
	}
	return ag.waitAll(ctx, "STOPPED", m, 5*time.Minute)
}

// rawStart creates and starts n containers concurrently with the raw
// client, then removes them again; it returns the create+start wall time.
func rawStart(ctx context.Context, cli *containerd.Client, image containerd.Image, n int, snapshotter string, hostNet bool) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make([]error, n)
	tasks := make([]containerd.Task, n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("raw-%d", i)
			opts := []oci.SpecOpts{oci.WithImageConfig(image), oci.WithProcessArgs("/bin/sleep", "3600"), oci.WithMemoryLimit(16 << 20)}
			if hostNet {
				opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace))
			}
			c, err := cli.NewContainer(ctx, id, containerd.WithSnapshotter(snapshotter),
				containerd.WithNewSnapshot(id, image), containerd.WithNewSpec(opts...))
			if err != nil {
				errs[i] = err
				return
			}
			t, err := c.NewTask(ctx, cio.NullIO)
			if err != nil {
				errs[i] = err
				return
			}
			if err := t.Start(ctx); err != nil {
				errs[i] = err
				return
			}
			tasks[i] = t
		}()
	}
	wg.Wait()
	d := time.Since(start)
	cs, _ := cli.Containers(ctx)
	for _, c := range cs {
		if t, err := c.Task(ctx, nil); err == nil {
			_, _ = t.Delete(ctx, containerd.WithProcessKill)
		}
		_ = c.Delete(ctx, containerd.WithSnapshotCleanup)
	}
	return d, errors.Join(errs...)
}

func tasks(from, count int, ref, mode string) []*api.Task {
	var out []*api.Task
	for i := from; i < from+count; i++ {
		out = append(out, &api.Task{
			Arn:         fmt.Sprintf("arn:aws:ecs:us-east-1:000000000000:task/bench/t%04d", i),
			Family:      "bench",
			Version:     "1",
			NetworkMode: mode,
			Containers: []*api.Container{{
				Name: "main", Image: ref, Essential: true, Memory: 16,
				Command: []string{"/bin/sleep", "3600"},
			}},
		})
	}
	return out
}

// child is a running child agent.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	addr  string
	seq   int
}

func startAgent(ctx context.Context, spec agentSpec) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(spec)
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), agentEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 4)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	line, err := c.next(ctx, 2*time.Minute)
	if err != nil {
		c.kill()
		return nil, err
	}
	c.addr = strings.TrimPrefix(line, "READY ")
	return c, nil
}

func (c *child) next(ctx context.Context, timeout time.Duration) (string, error) {
	select {
	case l, ok := <-c.lines:
		if !ok {
			return "", errors.New("agent exited")
		}
		return l, nil
	case <-time.After(timeout):
		return "", errors.New("agent did not answer")
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// send delivers one payload with the tasks at the desired status.
func (c *child) send(dir string, ts []*api.Task, desired string) error {
	c.seq++
	p := &api.PayloadMessage{MessageID: fmt.Sprintf("bench-%d", c.seq), ClusterArn: "arn:aws:ecs:us-east-1:000000000000:cluster/bench"}
	for _, t := range ts {
		cp := *t
		cp.DesiredStatus = desired
		p.Tasks = append(p.Tasks, &cp)
	}
	b, err := api.EncodeFrame(p)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, fmt.Sprintf("payload-%d.json", c.seq))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(c.stdin, path); err != nil {
		return err
	}
	l, err := c.next(context.Background(), 2*time.Minute)
	if err != nil || l != "ACK" {
		return fmt.Errorf("payload not acknowledged: %q %v", l, err)
	}
	return nil
}

// waitAll polls /v1/tasks until count tasks have the known status.
func (c *child) waitAll(ctx context.Context, status string, count int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 10 * time.Second}
	for {
		resp, err := client.Get("http://" + c.addr + "/v1/tasks")
		if err == nil {
			var body struct {
				Tasks []struct{ KnownStatus string }
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			n := 0
			for _, t := range body.Tasks {
				if t.KnownStatus == status {
					n++
				}
			}
			if err == nil && n >= count {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not all %d tasks %s within %s", count, status, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

func (c *child) stop() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		c.kill()
	}
}

// printAgentSide reports the memory of the agent and of every process it
// caused besides containerd and its shims: the log daemon serving its data
// directory and any per-container loggers.
func printAgentSide(agentPID int, dataDir string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var agentMem, daemon, loggers testenv.Memory
	if err := agentMem.Add(agentPID); err != nil {
		return err
	}
	pids, err := testenv.FindProcs(func(a []string) bool {
		return len(a) == 4 && a[0] == self && a[1] == logs.DaemonMode && a[2] == "run" && strings.HasPrefix(a[3], dataDir)
	})
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := daemon.Add(pid); err != nil {
			return err
		}
	}
	pids, err = testenv.FindProcs(func(a []string) bool { return len(a) > 1 && a[0] == self && a[1] == logs.LoggerMode })
	if err != nil {
		return err
	}
	for _, pid := range pids {
		_ = loggers.Add(pid)
	}
	total := testenv.Memory{Procs: agentMem.Procs + daemon.Procs + loggers.Procs, RSS: agentMem.RSS + daemon.RSS + loggers.RSS,
		PSS: agentMem.PSS + daemon.PSS + loggers.PSS, Anon: agentMem.Anon + daemon.Anon + loggers.Anon}
	fmt.Printf("  agent:             %s\n  log daemon:        %s\n  container loggers: %s\n  agent side total:  %s\n\n",
		agentMem, daemon, loggers, total)
	return nil
}

// rss returns a process's resident set size in KiB.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

func cleanNamespace(ctx context.Context, cli *containerd.Client, ns string) {
	ctx = namespaces.WithNamespace(ctx, ns)
	cs, _ := cli.Containers(ctx)
	for _, c := range cs {
		if t, err := c.Task(ctx, nil); err == nil {
			_, _ = t.Delete(ctx, containerd.WithProcessKill)
		}
		_ = c.Delete(ctx, containerd.WithSnapshotCleanup)
	}
	imgs, _ := cli.ImageService().List(ctx)
	for _, i := range imgs {
		_ = cli.ImageService().Delete(ctx, i.Name)
	}
	_ = cli.NamespaceService().Delete(ctx, ns)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
