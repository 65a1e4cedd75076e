// Package agentproc runs the test binaries of the agent's packages in their
// other modes: as the log daemon and the shim logger (the runtime names the
// running executable, pkg/logs serves both) and as a child agent
// process that a test can kill -9, and it sweeps a test agent's network. It
// is imported by the tests of
// pkg/agent, pkg/agent/devmode, internal/simfleet/e2e, pkg/runtime and
// pkg/logship (pkg/logs serves those modes in its own tests: it cannot
// import this package, which imports it).
package agentproc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/logs"
	"github.com/berth-dev/berth/pkg/network"
)

// Main is a TestMain body: it serves the log capture modes (the log daemon
// and the shim logger, logs.ServeMode), then the child
// mode when the variable childEnv is set (runChild gets its value and
// returns the exit code; childEnv may be empty when the package has no
// child), and otherwise runs the tests through testenv.Main.
func Main(m *testing.M, childEnv string, runChild func(spec string) int) int {
	if code, ok := logs.ServeMode(context.Background(), filepath.Base(os.Args[0]), os.Args[1:], os.Stderr); ok {
		return code
	}
	if childEnv != "" && runChild != nil {
		if spec := os.Getenv(childEnv); spec != "" {
			return runChild(spec)
		}
	}
	return testenv.Main(m)
}

// Child is this test binary running as a child agent. Its standard output
// arrives line by line on Lines (closed when it ends); its standard error
// goes to a file that is shown in the test log if the test fails.
type Child struct {
	Lines <-chan string
	cmd   *exec.Cmd
	log   string
	done  chan struct{}
}

// stopGrace is how long a child has to stop after SIGTERM at cleanup.
const stopGrace = 30 * time.Second

// Start runs the test binary with childEnv set to spec as JSON and no test
// selected, so that Main hands it to runChild. At cleanup a child still
// running is sent SIGTERM (SIGKILL after 30 s) and waited for.
func Start(t testing.TB, childEnv string, spec any) *Child {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatalf("agentproc: encode child spec: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	logFile, err := os.Create(filepath.Join(t.TempDir(), "child.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("agentproc: start child agent: %v", err)
	}
	lines := make(chan string, 16)
	c := &Child{Lines: lines, cmd: cmd, log: logFile.Name(), done: make(chan struct{})}
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	go func() {
		defer close(c.done)
		_ = cmd.Wait()
		logFile.Close()
	}()
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("child agent log:\n%s", c.Log())
		}
	})
	return c
}

// Kill sends SIGKILL (no deferred function, no clean-up, no flush) and
// waits for the child to end.
func (c *Child) Kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// Stop sends SIGTERM, waits up to 30 s, then kills.
func (c *Child) Stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(stopGrace):
		c.Kill()
	}
}

// AgentNetwork names what an agent under test uses of the host's network.
type AgentNetwork struct {
	// DataDir is the agent's ECS_DATADIR; its owner tag, which is part of
	// every sandbox name, derives from it (network.OwnerForDir).
	DataDir string
	// RunDir is the agent's WithNetworkRunDir.
	RunDir string
	// Prefix is the agent's WithNamePrefix.
	Prefix         string
	Bridge, Subnet string
}

// SweepNetwork removes, at the end of a test, what an agent with this
// network may have left on the host if the test failed with tasks running:
// its sandboxes, CNI rules and leases (network.Sandboxer.Cleanup with no live
// sandbox, as the agent's own start-up would), namespaces under the prefix
// and the bridge. Register it before starting the agent, so that it runs
// after the agent stopped; it runs after the test's assertions, so it
// cannot make them pass.
func SweepNetwork(t testing.TB, n AgentNetwork) {
	t.Helper()
	owner, err := network.OwnerForDir(n.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m, err := network.New(network.Options{NamePrefix: n.Prefix, Owner: owner, Bridge: n.Bridge, Subnet: n.Subnet}.InRunDir(n.RunDir))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			var rep network.CleanupReport
			rep, err = m.Cleanup(ctx, nil, nil)
			if err == nil && len(rep.Pending) > 0 {
				err = fmt.Errorf("could not remove %+v", rep.Pending)
			}
			if err == nil {
				err = m.Uninstall(ctx)
			}
			cancel()
		}
		if err != nil {
			t.Errorf("sweep the agent's network %s: %v", n.Prefix, err)
		}
		entries, _ := os.ReadDir("/run/netns")
		for _, en := range entries {
			if strings.HasPrefix(en.Name(), n.Prefix) {
				_ = exec.Command("ip", "netns", "del", en.Name()).Run()
			}
		}
		_ = exec.Command("ip", "link", "del", n.Bridge).Run() // CNI leaves the bridge by design
	})
}

// Log returns what the child wrote to its standard error so far.
func (c *Child) Log() string {
	b, _ := os.ReadFile(c.log)
	return string(b)
}
