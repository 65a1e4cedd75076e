package chaos_test

import (
	"bufio"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const (
	// privateEnv tells the test binary that it is the child that runs the
	// suite in its own namespaces; its value is the directory of the built
	// binaries.
	privateEnv = "BERTH_CHAOS_PRIVATE"
	// fullEnv=full (make chaos) runs the full suite; otherwise the short one.
	fullEnv = "BERTH_CHAOS"
	// seedEnv replays a run: every random choice comes from this seed.
	seedEnv = "BERTH_CHAOS_SEED"
)

// plan is how much of each fault one run injects.
type plan struct {
	AgentKills     int
	ContainerdDown time.Duration
	EndpointDown   time.Duration
	HostKills      int
	// MaxTasks bounds the tasks running at once.
	MaxTasks int
}

func planFor() plan {
	if os.Getenv(fullEnv) == "full" {
		return plan{AgentKills: 25, ContainerdDown: 10 * time.Second, EndpointDown: 45 * time.Second, HostKills: 4, MaxTasks: 8}
	}
	return plan{AgentKills: 4, ContainerdDown: 5 * time.Second, EndpointDown: 10 * time.Second, HostKills: 1, MaxTasks: 4}
}

// TestChaos runs the fault-injection suite (see the package comment). It
// runs itself again in a child process with a mount namespace of its own
// (with an empty tmpfs on /run, so network namespaces, shim sockets and
// runc state never touch the host's) and a network namespace of its own
// (so the agent's bridge, rules and host ports are the child's only, and
// "no rule left" is exact).
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection with real containerd (-short)")
	}
	bins := os.Getenv(privateEnv)
	if bins == "" {
		runPrivate(t)
		return
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		t.Fatalf("mount a fresh /run: %v", err)
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v\n%s", err, out)
	}
	runSuite(t, bins)
}

// runPrivate builds the binaries and runs TestChaos in a child in new mount
// and network namespaces; it logs the child's figures.
func runPrivate(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "go", "ip", "iptables-save", "nft", "containerd", "runc", "containerd-shim-runc-v2", "docker-registry")
	testenv.RequireBusyboxStatic(t)
	bins := t.TempDir()
	buildBinaries(t, bins)
	logPath := filepath.Join(t.TempDir(), "chaos.log")
	out, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChaos$", "-test.v", "-test.count=1", "-test.timeout=50m")
	// The child starts its own containerd and registry in its namespaces:
	// the runner's are not reachable from there.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BERTHTEST_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, privateEnv+"="+bins)
	cmd.Stdout, cmd.Stderr = out, out
	// Go makes the child's mounts private after unsharing, so nothing it
	// mounts reaches the host.
	// The parent-death signal follows the thread that started the child:
	// keep that thread until the child has ended.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGTERM}
	runtime.LockOSThread()
	err = cmd.Run()
	runtime.UnlockOSThread()
	b, _ := os.ReadFile(logPath)
	if keep := os.Getenv("BERTH_CHAOS_LOG"); keep != "" {
		_ = os.WriteFile(keep, b, 0o644)
	}
	if err != nil || !strings.Contains(string(b), "--- PASS: TestChaos") {
		t.Fatalf("the suite in its namespaces: %v\n%s", err, b)
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if i := strings.Index(sc.Text(), "chaos: "); i >= 0 {
			t.Log(sc.Text()[i:])
		}
	}
}

// figures are what a run reports (docs/reliability.md).
type figures struct {
	agentKills, containerdKills, endpointOutages, hostKills int
	runAcked, stopAcked                                     int
	checks, violations                                      int
	recover                                                 map[string][]time.Duration
}

func (f *figures) recovered(kind string, d time.Duration) {
	f.recover[kind] = append(f.recover[kind], d)
}

func (f *figures) String() string {
	var kinds []string
	for k := range f.recover {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var rec []string
	for _, k := range kinds {
		ds := append([]time.Duration(nil), f.recover[k]...)
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		rec = append(rec, fmt.Sprintf("%s median %s max %s (n=%d)", k, ds[len(ds)/2].Round(100*time.Millisecond),
			ds[len(ds)-1].Round(100*time.Millisecond), len(ds)))
	}
	return fmt.Sprintf("agent kill -9: %d, containerd kills: %d, endpoint outages: %d, containers killed from the host: %d, "+
		"RunTask acknowledged: %d tasks, StopTask acknowledged: %d, invariant checks: %d, violations: %d; time to recover: %s",
		f.agentKills, f.containerdKills, f.endpointOutages, f.hostKills, f.runAcked, f.stopAcked, f.checks, f.violations, strings.Join(rec, "; "))
}

func runSuite(t *testing.T, bins string) {
	p := planFor()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(seedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", seedEnv, err)
		}
	}
	t.Logf("chaos: plan %+v, seed %d (%s=%d replays the choices)", p, seed, seedEnv, seed)
	h := newHarness(t, bins, mrand.New(mrand.NewPCG(seed, seed)))
	defer func() { t.Logf("chaos: %s", h.fig.String()) }()

	h.runTasks(t, 2)
	h.converge(t, "the first tasks")

	// kill -9 of the agent while tasks start and stop.
	for i := 0; i < p.AgentKills; i++ {
		for n := 1 + h.rnd.IntN(2); n > 0; n-- {
			if len(h.expectRunning()) < p.MaxTasks && (h.rnd.IntN(3) > 0 || len(h.expectRunning()) == 0) {
				h.runTasks(t, 1+h.rnd.IntN(2))
			} else {
				h.stopTask(t, h.pick(h.expectRunning()))
			}
		}
		// A task's pull from the loopback registry, network set-up, create
		// and start take about a second: the kill lands within them.
		time.Sleep(time.Duration(h.rnd.IntN(1200)) * time.Millisecond)
		h.agent.kill(t)
		t.Logf("step: agent killed")
		h.fig.agentKills++
		h.waitDisconnected(t)
		h.agent.start(t)
		h.fig.recovered("agent kill -9", h.converge(t, fmt.Sprintf("agent kill %d", i+1)))
	}

	// containerd killed; a task placed and one stopped while it is down.
	h.containerd.Kill(t)
	t.Logf("step: containerd killed")
	h.fig.containerdKills++
	h.runTasks(t, 1)
	if r := h.expectRunning(); len(r) > 1 {
		h.stopTask(t, h.pick(r))
	}
	time.Sleep(p.ContainerdDown)
	h.containerd.Restart(t)
	h.fig.recovered("containerd down "+p.ContainerdDown.String(), h.converge(t, "containerd restarted"))

	// The endpoint down; a container killed from the host meanwhile, whose
	// task's stop must be reported once the endpoint is back.
	if len(h.expectRunning()) == 0 {
		h.runTasks(t, 1)
		h.converge(t, "before the endpoint outage")
	}
	h.endpoint.kill(t)
	t.Logf("step: endpoint killed")
	h.fig.endpointOutages++
	h.killFromHost(t, h.pick(h.expectRunning()))
	time.Sleep(p.EndpointDown)
	h.endpoint.startServing(t)
	h.fig.recovered("endpoint down "+p.EndpointDown.String(), h.converge(t, "endpoint back"))

	// Containers killed from the host.
	for i := 0; i < p.HostKills; i++ {
		if len(h.expectRunning()) == 0 {
			h.runTasks(t, 1)
			h.converge(t, "before a host kill")
		}
		h.killFromHost(t, h.pick(h.expectRunning()))
		h.fig.recovered("container killed from the host", h.converge(t, fmt.Sprintf("host kill %d", i+1)))
	}

	// Everything stopped: nothing may be left.
	for _, arn := range h.expectRunning() {
		h.stopTask(t, arn)
	}
	h.converge(t, "all stopped")
	h.checkNothingLeft(t)
}
