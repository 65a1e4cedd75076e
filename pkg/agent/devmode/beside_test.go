package devmode_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/containerd/containerd"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testenv/agentproc"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/agent/devmode"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/network"
)

// The system agent's default listeners (BERTH_INTROSPECTION_ADDRESS,
// BERTH_CREDENTIALS_ADDRESS).
const (
	systemIntrospection = "127.0.0.1:51678"
	systemCredentials   = "127.0.0.1:51679"
)

// TestDevModeBesideSystemAgent starts dev mode, with its defaults, on a
// host where a system agent runs a task, runs and stops a task in dev mode,
// stops dev mode, and checks that nothing of the system agent changed: its
// task and container (same process), its sandbox (same network namespace,
// same addresses), its iptables rules and nftables table, its bridge, and
// its ports (the
// task's host port, the introspection API and the credentials endpoint on
// the system defaults 51678 and 51679). The system agent is a cluster
// member as berth-agent.service runs it, with task roles, on its own data
// directory, bridge, subnet, containerd namespace and netns names (a test
// must not take the host's own), and on the default listener ports. Both
// run on the same datapath, once each: built-in (the default) and CNI.
func TestDevModeBesideSystemAgent(t *testing.T) {
	for _, dp := range []string{"builtin", "cni"} {
		t.Run(dp, func(t *testing.T) { devModeBesideSystemAgent(t, dp) })
	}
}

func devModeBesideSystemAgent(t *testing.T, datapath string) {
	e := newE2E(t, acs.Options{})
	for _, addr := range []string{systemIntrospection, systemCredentials} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("this test runs the system agent on its default ports, and %s is taken: %v", addr, err)
		}
		ln.Close()
	}
	sys := e.spec()
	sys.TaskRoles = true
	sys.Introspection, sys.Credentials = systemIntrospection, systemCredentials
	sys.Datapath = datapath
	sysArn, _, _ := e.runAgent(sys)
	task := e.runTasks(e.taskDef("system-web", 0), 1)[0]
	running := e.waitStatus(task, "RUNNING", 90*time.Second)
	port := testenv.FirstHostPort(running)
	before := snapshotAgent(t, e, sys, task, port, sysArn)

	// Dev mode with its defaults (bridge, subnet, netns names, CNI state,
	// host ports, addresses); only its containerd namespace is the test's,
	// so that testenv removes what its tasks leave.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "agent"), 0o700); err != nil { // the sweep's owner tag needs it
		t.Fatal(err)
	}
	agentproc.SweepNetwork(t, agentproc.AgentNetwork{DataDir: filepath.Join(dir, "agent"), RunDir: filepath.Join(dir, "run"),
		Prefix: devmode.DevNamePrefix, Bridge: devmode.DevBridge, Subnet: devmode.DevSubnet})
	devNS := e.cd.Namespace(t)
	noFiles := func(string) ([]byte, error) { return nil, fs.ErrNotExist }
	cfg, _, err := config.Load(config.LoadOptions{ReadFile: noFiles, Env: []string{
		"BERTH_CONTAINERD_ADDRESS=" + e.cd.Address, "BERTH_CONTAINERD_NAMESPACE=" + devNS, "ECS_CONTAINER_STOP_TIMEOUT=2s",
		"BERTH_NETWORK_DATAPATH=" + datapath}})
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan *devmode.Dev, 1)
	done := make(chan error, 1)
	go func() {
		done <- devmode.Run(ctx, devmode.Options{Dir: dir, Config: cfg, Logger: logger(),
			AgentOptions: []agent.Option{agent.WithLoggerBinary(exe), agent.WithSnapshotter(e.cd.Snapshotter)},
			Membership:   agent.Membership{SubmitPoll: 50 * time.Millisecond},
			Started:      func(d *devmode.Dev) { started <- d }})
	}()
	stopDev := func() error {
		cancel()
		select {
		case err := <-done:
			done <- err
			return err
		case <-time.After(hangDetector):
			t.Fatal("dev mode did not stop")
			return nil
		}
	}
	t.Cleanup(func() { _ = stopDev() })
	var dev *devmode.Dev
	select {
	case dev = <-started:
	case err := <-done:
		done <- err
		t.Fatalf("dev mode stopped next to the system agent: %v", err)
	case <-time.After(hangDetector):
		t.Fatal("dev mode did not start")
	}

	// A task in dev mode, on its own bridge and host port range.
	devE := &e2e{t: t, admin: devmode.NewECSClient(dev.Endpoint.URL, region, dev.Admin), image: e.image}
	devTask := devE.runTasks(devE.taskDef("dev-web", 0), 1)[0]
	devRunning := devE.waitStatus(devTask, "RUNNING", 90*time.Second)
	devPort := testenv.FirstHostPort(devRunning)
	if devPort < devmode.DevPortFirst || devPort > devmode.DevPortLast {
		t.Errorf("dev mode's task got host port %d, want one of dev mode's %d-%d", devPort, devmode.DevPortFirst, devmode.DevPortLast)
	}
	if body, err := testenv.GetLoopback(devPort); err != nil || body != "hello from berth\n" {
		t.Errorf("dev mode's task port %d answered %q, %v", devPort, body, err)
	}
	if _, err := devE.admin.StopTask(context.Background(), &ecs.StopTaskInput{Cluster: aws.String(devmode.ClusterName), Task: aws.String(devTask)}); err != nil {
		t.Fatal(err)
	}
	devE.waitStatus(devTask, "STOPPED", 60*time.Second)
	if err := stopDev(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("dev mode: %v", err)
	}

	after := snapshotAgent(t, e, sys, task, port, sysArn)
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if !slices.Equal(before[k], after[k]) {
			t.Errorf("the system agent's %s changed while dev mode ran next to it:\nbefore:\n%s\nafter:\n%s",
				k, strings.Join(before[k], "\n"), strings.Join(after[k], "\n"))
		}
	}
}

// snapshotAgent records what of the system agent dev mode must not touch,
// by kind; each kind must be present.
func snapshotAgent(t *testing.T, e *e2e, s agentSpec, task string, port int32, arn string) map[string][]string {
	t.Helper()
	snap := map[string][]string{}
	desc, err := e.describe(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	snap["task"] = []string{aws.ToString(desc.LastStatus), aws.ToString(desc.Containers[0].RuntimeId)}

	// The container and its process.
	cli := e.cd.Client(t)
	ctx := namespaced(t, s.NS)
	cs, err := cli.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		line := c.ID()
		if tk, err := c.Task(ctx, nil); err == nil {
			st, _ := tk.Status(ctx)
			line += fmt.Sprintf(" pid %d %s", tk.Pid(), st.Status)
		}
		snap["container"] = append(snap["container"], line)
	}
	if len(snap["container"]) != 1 || !strings.Contains(snap["container"][0], string(containerd.Running)) {
		t.Fatalf("system agent's containers: %v, want its one task's, running", snap["container"])
	}

	// The sandbox: its netns (the same namespace: same inode) and addresses.
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, en := range entries {
		if !strings.HasPrefix(en.Name(), s.Prefix) {
			continue
		}
		ids = append(ids, en.Name())
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/run/netns", en.Name()), &st); err != nil {
			t.Fatal(err)
		}
		addrs, err := exec.Command("ip", "-n", en.Name(), "-o", "addr", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("ip -n %s addr show: %v\n%s", en.Name(), err, addrs)
		}
		snap["sandbox"] = append(snap["sandbox"], fmt.Sprintf("%s inode %d", en.Name(), st.Ino))
		for _, l := range strings.Split(strings.TrimSpace(string(addrs)), "\n") {
			// The kernel's duplicate address detection of the link-local
			// IPv6 address ends on its own a moment after the interface
			// came up ("tentative"): not a change made by anyone.
			f := slices.DeleteFunc(strings.Fields(l), func(w string) bool { return w == "tentative" })
			snap["sandbox"] = append(snap["sandbox"], strings.Join(f, " "))
		}
	}
	if len(ids) != 1 {
		t.Fatalf("system agent's network namespaces: %v, want its task's", ids)
	}

	// Its iptables rules: those naming its sandbox (CNI's comments), its
	// bridge (also its credentials route's comment) or its task's port.
	for _, table := range []string{"nat", "filter"} {
		out, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			t.Fatalf("iptables-save -t %s: %v", table, err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "-A ") && (strings.Contains(l, ids[0]) || strings.Contains(l, s.Bridge) ||
				strings.Contains(l, fmt.Sprintf("--dport %d ", port))) {
				snap["iptables rules"] = append(snap["iptables rules"], table+": "+l)
			}
		}
	}
	slices.Sort(snap["iptables rules"])
	// On the built-in datapath its host ports are in its own nftables
	// table (named after its sandbox ID prefix), each rule commented with
	// the sandbox ID.
	taskRules := snap["iptables rules"]
	if s.Datapath != "cni" {
		owner, err := network.OwnerForDir(s.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		table := s.Prefix + owner
		out, err := exec.Command("nft", "list", "table", "ip", table).CombinedOutput()
		if err != nil {
			t.Fatalf("nft list table ip %s: %v\n%s", table, err, out)
		}
		snap["nftables table"] = strings.Split(strings.TrimSpace(string(out)), "\n")
		taskRules = snap["nftables table"]
	}
	if !slices.ContainsFunc(snap["iptables rules"], func(l string) bool { return strings.Contains(l, "berth:creds:"+s.Bridge) }) ||
		!slices.ContainsFunc(taskRules, func(l string) bool { return strings.Contains(l, ids[0]) }) {
		t.Fatalf("the system agent's rules lack its credentials route or its task's:\n%s\n%s",
			strings.Join(snap["iptables rules"], "\n"), strings.Join(snap["nftables table"], "\n"))
	}

	// Its bridge.
	for _, args := range [][]string{{"-o", "link", "show", "dev", s.Bridge}, {"-o", "-4", "addr", "show", "dev", s.Bridge}} {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
		snap["bridge"] = append(snap["bridge"], strings.Join(strings.Fields(string(out)), " "))
	}

	// Its ports: the task's host port, the introspection API (answering as
	// this agent) and the credentials endpoint.
	body, err := testenv.GetLoopback(port)
	snap["ports"] = append(snap["ports"], fmt.Sprintf("task port %d: %q %v", port, body, err))
	c := http.Client{Timeout: 5 * time.Second}
	var md struct{ ContainerInstanceArn string }
	if resp, err := c.Get("http://" + systemIntrospection + "/v1/metadata"); err == nil {
		_ = json.NewDecoder(resp.Body).Decode(&md)
		resp.Body.Close()
	}
	snap["ports"] = append(snap["ports"], "introspection "+systemIntrospection+": "+md.ContainerInstanceArn)
	if md.ContainerInstanceArn != arn {
		t.Errorf("%s/v1/metadata names %q, want the system agent's %s", systemIntrospection, md.ContainerInstanceArn, arn)
	}
	status := "no answer"
	if resp, err := c.Get("http://" + systemCredentials + "/v2/credentials/none"); err == nil {
		status = resp.Status
		resp.Body.Close()
	}
	snap["ports"] = append(snap["ports"], "credentials "+systemCredentials+": "+status)
	if body != "hello from berth\n" || status == "no answer" {
		t.Errorf("the system agent's ports: %v", snap["ports"])
	}
	if aws.ToString(desc.LastStatus) != string(types.DesiredStatusRunning) {
		t.Errorf("system agent's task is %s, want RUNNING", aws.ToString(desc.LastStatus))
	}
	return snap
}
