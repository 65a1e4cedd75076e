package network

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv carries a testNet to the helper process of the crash test.
const childEnv = "BERTH_NETWORK_CRASH_CHILD"

type childConfig struct {
	Opts  Options
	Store string
	Range PortRange
	// KillAfter names a step of the built-in setup after which the child
	// kills itself with SIGKILL.
	KillAfter string
}

// TestCrashChild is not a test of its own: run by TestCrashBetweenSetupAndRecord
// as a child process, it sets up a sandbox, prints its ID and waits to be
// killed before "recording" the result anywhere.
func TestCrashChild(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("helper process for TestCrashBetweenSetupAndRecord")
	}
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	ports, err := NewPortAllocator(AllocatorOptions{Range: cfg.Range, Store: &FilePortStore{Path: cfg.Store}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Opts.Ports = ports
	m, err := New(cfg.Opts)
	if err != nil {
		t.Fatal(err)
	}
	m.stepHook = func(step string) error {
		if step == cfg.KillAfter {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
		return nil
	}
	sb, err := m.Setup(bg(), SetupRequest{Ports: []PortRequest{{ContainerPort: 80}, {ContainerPort: 53, Protocol: UDP}}})
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("SANDBOX " + sb.ID + "\n")
	time.Sleep(time.Minute)
}

// crashChild returns the command that runs TestCrashChild with the test
// net's state and the options o; with killAfter set, the child kills
// itself after that step of the built-in setup.
func crashChild(t *testing.T, tn *testNet, o Options, killAfter ...string) *exec.Cmd {
	t.Helper()
	cfg := childConfig{Opts: o, Store: tn.store.Path, Range: tn.rng}
	if len(killAfter) > 0 {
		cfg.KillAfter = killAfter[0]
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	return cmd
}

func TestCrashBetweenSetupAndRecord(t *testing.T) {
	requireHost(t)
	eachDatapath(t, func(t *testing.T, dp Datapath, off int) {
		tn := newTestNetOn(t, "crash", 15+off, dp)
		before := snapshot(t, tn)
		o := tn.opts
		cmd := crashChild(t, tn, o)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var id string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "SANDBOX "); ok {
				id = rest
				break
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if id == "" {
			t.Fatal("child exited without setting up a sandbox")
		}
		during := snapshot(t, tn)
		if len(during.ipam) != 1 || len(during.links) != 1 || len(during.iptables)+len(during.nft) == 0 {
			t.Fatalf("after the kill, want the child's sandbox in place; got\n%s", during)
		}

		// The next start: a new allocator and manager over the same state, and a
		// caller that recorded nothing.
		m := tn.manager(t)
		rep, err := m.Cleanup(bg(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.TornDown) != 1 || rep.TornDown[0] != id {
			t.Fatalf("cleanup report: want %s torn down, got %+v", id, rep)
		}
		if left := leftoverChains(t, tn, []string{id}); len(left) != 0 {
			t.Fatalf("chains of the crashed sandbox left: %v", left)
		}
		after := snapshot(t, tn)
		if before.String() != after.String() {
			t.Fatalf("crashed sandbox left state behind:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if got := m.Ports().Allocations(); len(got) != 0 {
			t.Fatalf("ports still held: %+v", got)
		}
		if _, err := os.Stat(filepath.Join(o.NetnsDir, id)); !os.IsNotExist(err) {
			t.Fatalf("netns of %s still there: %v", id, err)
		}
	})
}

// TestCleanupSweepsWithoutRecords covers state whose records were lost
// entirely: the sweep finds the rules by the ID in their comments, the
// firewall rules by the leased address and the lease by its content.
func TestCleanupSweepsWithoutRecords(t *testing.T) {
	requireHost(t)
	eachDatapath(t, func(t *testing.T, dp Datapath, off int) {
		tn := newTestNetOn(t, "sweep", 16+off, dp)
		m := tn.manager(t)
		before := snapshot(t, tn)
		live, err := m.Setup(bg(), SetupRequest{Ports: []PortRequest{{ContainerPort: 80}}})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Teardown(bg(), *live)
		withNetns, err := m.Setup(bg(), SetupRequest{Ports: []PortRequest{{ContainerPort: 80}}})
		if err != nil {
			t.Fatal(err)
		}
		bare, err := m.Setup(bg(), SetupRequest{Ports: []PortRequest{{ContainerPort: 80}}})
		if err != nil {
			t.Fatal(err)
		}
		// Lose the records of both; of the second also the netns (which takes
		// its veth with it) and the libcni cache, as a reboot of /run would.
		for _, sb := range []*Sandbox{withNetns, bare} {
			if err := os.Remove(m.recordPath(sb.ID)); err != nil {
				t.Fatal(err)
			}
		}
		if err := RemoveNetns(bare.NetnsPath); err != nil {
			t.Fatal(err)
		}
		caches, _ := filepath.Glob("/var/lib/cni/results/*" + bare.ID + "*")
		for _, c := range caches {
			_ = os.Remove(c)
		}

		rep, err := m.Cleanup(bg(), []Sandbox{*live}, nil)
		if err != nil {
			t.Fatal(err)
		}
		swept := len(rep.Chains) > 0
		if dp == DatapathBuiltin {
			swept = strings.Contains(strings.Join(rep.Rules, "\n"), bare.ID)
		}
		if !swept || len(rep.Leases) != 1 || !strings.Contains(rep.Leases[0], bare.ID) {
			t.Fatalf("sweep report: want the orphan's port mapping rules and lease; got %+v", rep)
		}
		if err := m.Teardown(bg(), *live); err != nil {
			t.Fatal(err)
		}
		if left := leftoverChains(t, tn, []string{live.ID, withNetns.ID, bare.ID}); len(left) != 0 {
			t.Fatalf("chains of the orphans left: %v", left)
		}
		after := snapshot(t, tn)
		if before.String() != after.String() {
			t.Fatalf("orphans left state behind:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if got := m.Ports().Allocations(); len(got) != 0 {
			t.Fatalf("ports still held: %+v", got)
		}
	})
}

// TestSetupFailureUndoesEverything makes the last plugin of the chain
// (firewall) fail on ADD, after bridge and portmap succeeded, and checks that
// Setup's undo (CNI DEL with the same parameters, netns removal, port
// release) leaves nothing behind.
func TestSetupFailureUndoesEverything(t *testing.T) {
	requireHost(t)
	tn := newTestNet(t, "fail", 18)
	plugins := pluginDir(t)
	if err := os.Remove(filepath.Join(plugins, "firewall")); err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/sh
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","code":999,"msg":"injected failure"}'; exit 1 ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}' ;;
esac
exit 0
`
	if err := os.WriteFile(filepath.Join(plugins, "firewall"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tn.opts.PluginDirs = []string{plugins}
	m := tn.manager(t)
	before := snapshot(t, tn)
	_, err := m.Setup(bg(), SetupRequest{Ports: []PortRequest{{ContainerPort: 80}}})
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("want the injected firewall failure, got %v", err)
	}
	after := snapshot(t, tn)
	if before.String() != after.String() {
		t.Fatalf("failed setup left state behind:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := m.Ports().Allocations(); len(got) != 0 {
		t.Fatalf("ports still held: %+v", got)
	}
	entries, _ := os.ReadDir(tn.opts.NetnsDir)
	recs, _ := os.ReadDir(tn.opts.StateDir)
	if len(entries) != 0 || len(recs) != 0 {
		t.Fatalf("netns files %v and records %v left", entries, recs)
	}
}

// TestTeardownAfterRestart persists a Sandbox as JSON, as the engine does,
// and tears it down through a new Sandboxer and allocator over the same state.
func TestTeardownAfterRestart(t *testing.T) {
	requireHost(t)
	eachDatapath(t, func(t *testing.T, dp Datapath, off int) {
		tn := newTestNetOn(t, "restart", 19+off, dp)
		before := snapshot(t, tn)
		m := tn.manager(t)
		sb, err := m.Setup(bg(), SetupRequest{Ports: []PortRequest{{ContainerPort: 80}, {ContainerPort: 8000, ContainerPortEnd: 8002, Protocol: UDP}}})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(sb)
		if err != nil {
			t.Fatal(err)
		}
		m2 := tn.manager(t)
		if got := len(m2.Ports().Allocations()); got != 4 {
			t.Fatalf("after restart: want 4 held ports (1 tcp + 3 udp), got %d", got)
		}
		var back Sandbox
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatal(err)
		}
		if err := m2.Teardown(bg(), back); err != nil {
			t.Fatal(err)
		}
		if left := leftoverChains(t, tn, []string{sb.ID}); len(left) != 0 {
			t.Fatalf("chains left: %v", left)
		}
		if after := snapshot(t, tn); before.String() != after.String() {
			t.Fatalf("teardown after restart left state behind:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if got := m2.Ports().Allocations(); len(got) != 0 {
			t.Fatalf("ports still held: %+v", got)
		}
	})
}

// pluginDir returns a directory with links to the real CNI plugins, for
// tests that replace or remove one of them.
func pluginDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cni")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "firewall", "loopback"} {
		if err := os.Symlink(realPlugin(t, p), filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func realPlugin(t *testing.T, name string) string {
	t.Helper()
	for _, d := range DefaultPluginDirs {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	t.Fatalf("CNI plugin %s not found in %v", name, DefaultPluginDirs)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// forwardRules returns the filter CNI-FORWARD rules that name ip.
func forwardRules(t *testing.T, ip string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(run(t, "iptables-save", "-t", "filter"), "\n") {
		if strings.HasPrefix(line, "-A CNI-FORWARD ") && strings.Contains(line, " "+ip+"/32 ") {
			out = append(out, line)
		}
	}
	return out
}

// TestKill9DuringSetupLeavesNoForwardRule kills the agent (SIGKILL) in the
// middle of CNI ADD, right after the firewall plugin added its CNI-FORWARD
// rules for the sandbox's address and before libcni cached the result. The
// next start's clean-up must remove those rules too: they carry no comment,
// and once the address's lease is released nothing names them any more.
func TestKill9DuringSetupLeavesNoForwardRule(t *testing.T) {
	requireHost(t)
	tn := newTestNet(t, "fwdkill", 22)
	before := snapshot(t, tn)
	plugins := pluginDir(t)
	// The firewall plugin runs for real, then kills the process that ran
	// it (the child "agent") before the process can record anything.
	wrapper := "#!/bin/sh\nout=$(" + realPlugin(t, "firewall") + ")\nrc=$?\n" +
		"if [ \"$CNI_COMMAND\" = ADD ]; then kill -9 $PPID; sleep 5; fi\nprintf '%s' \"$out\"\nexit $rc\n"
	if err := os.Remove(filepath.Join(plugins, "firewall")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plugins, "firewall"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	o := tn.opts
	o.PluginDirs = []string{plugins}
	out, err := crashChild(t, tn, o).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was to be killed inside CNI ADD; it ended with %v:\n%s", err, out)
	}
	leases := snapshot(t, tn).ipam
	if len(leases) != 1 {
		t.Fatalf("after the kill, want the child's one lease; got %v", leases)
	}
	ip := leases[0]
	if got := forwardRules(t, ip); len(got) == 0 {
		t.Fatalf("after the kill, want the firewall plugin's CNI-FORWARD rules for %s; got none", ip)
	}

	// The next start, with the plugins in place.
	m := tn.manager(t)
	rep, err := m.Cleanup(bg(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.TornDown) != 1 {
		t.Fatalf("cleanup report: want the crashed sandbox torn down, got %+v", rep)
	}
	if got := forwardRules(t, ip); len(got) != 0 {
		t.Errorf("CNI-FORWARD rules for %s left after clean-up:\n%s", ip, strings.Join(got, "\n"))
	}
	if after := snapshot(t, tn); before.String() != after.String() {
		t.Errorf("crashed setup left state behind:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
