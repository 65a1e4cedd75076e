package lb

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestKilledAndRestarted runs the berth-lb binary as an operator does:
// killed with SIGKILL, HAProxy keeps serving the last known targets
// (zero failed requests while berth-lb is gone, targets changed meanwhile
// are not seen); started again, it adopts the same HAProxy (no restart,
// no reload) and catches up: the new target gets traffic, the
// deregistered one goes. A second berth-lb on the same run directory
// refuses to start; SIGTERM exits 0 and leaves HAProxy serving.
func TestKilledAndRestarted(t *testing.T) {
	l := startLab(t)
	ctx := context.Background()
	tg := l.createLB(ctx, t, "web")
	a, b, c := newTarget(t, "a"), newTarget(t, "b"), newTarget(t, "c")
	url := fmt.Sprintf("http://127.0.0.1:%d/", l.listenerPort)
	l.register(ctx, t, tg, a, c)

	dir := t.TempDir()
	bin := filepath.Join(dir, "berth-lb")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/lb").CombinedOutput(); err != nil {
		t.Fatalf("build berth-lb: %v\n%s", err, out)
	}
	cfg := l.config()
	conf := filepath.Join(dir, "lb.toml")
	toml := fmt.Sprintf("endpoint = %q\nregion = %q\naccess_key_id = %q\nsecret_access_key = %q\nload_balancers = [%q]\n"+
		"bind_address = \"127.0.0.1\"\nhaproxy = %q\nrun_dir = %q\npoll_interval = \"200ms\"\n",
		cfg.Endpoint, cfg.Region, cfg.AccessKeyID, cfg.SecretAccessKey, l.lbName, cfg.HAProxy, cfg.RunDir)
	if err := os.WriteFile(conf, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}

	first := startBinary(t, bin, conf)
	l.waitHealth(ctx, t, tg, a, "healthy")
	l.waitHealth(ctx, t, tg, c, "healthy")
	waitServedBy(t, url, "a")
	h := l.haproxyOf()
	before, err := h.status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	master := h.masterPID()

	t.Run("second berth-lb on the same directory refuses", func(t *testing.T) {
		out, err := exec.Command(bin, "--config", conf).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "another berth-lb serves it") {
			t.Errorf("second berth-lb: %v\n%s", err, out)
		}
	})

	ld := startLoad(t, url)
	first.kill(t, syscall.SIGKILL)
	l.register(ctx, t, tg, b)
	l.deregister(ctx, t, tg, a)
	// With berth-lb gone, HAProxy goes on with what it has: a and c.
	time.Sleep(4 * time.Second) // past a's deregistration delay
	if n := b.served.Load(); n != 0 {
		t.Errorf("b got %d requests while berth-lb was down", n)
	}
	if st := l.serverStatus(ctx, t, a); st != "UP" {
		t.Errorf("a while berth-lb was down: %q, want UP", st)
	}

	second := startBinary(t, bin, conf)
	l.waitHealth(ctx, t, tg, b, "healthy")
	waitFor(t, "a removed", func() bool { return !l.hasServer(ctx, t, a) }, func() string { return l.serverStatus(ctx, t, a) })
	waitServedBy(t, url, "b")
	ld.check(t, "berth-lb killed and restarted")
	after, err := h.status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.masterPID() != master || after.reloads != before.reloads || after.worker != before.worker {
		t.Errorf("haproxy was restarted or reloaded: master %d → %d, %+v → %+v", master, h.masterPID(), before, after)
	}
	if !strings.Contains(second.output(), "adopting the running haproxy") {
		t.Errorf("the restarted berth-lb did not log adopting HAProxy:\n%s", second.output())
	}

	second.kill(t, syscall.SIGTERM)
	if code := second.exitCode(); code != 0 {
		t.Errorf("SIGTERM: exit %d, want 0\n%s", code, second.output())
	}
	for range 10 {
		if _, body, err := get(ctx, http.DefaultClient, url); err != nil || (body != "b" && body != "c") {
			t.Errorf("after berth-lb stopped: %q %v, want b's or c's answer", body, err)
		}
	}
}

// binary is a running berth-lb process.
type binary struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startBinary(t *testing.T, bin, conf string) *binary {
	t.Helper()
	p := &binary{cmd: exec.Command(bin, "--config", conf), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		t.Logf("berth-lb pid %d output:\n%s", p.cmd.Process.Pid, p.output())
	})
	return p
}

func (p *binary) kill(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(waitLimit):
		t.Fatalf("berth-lb still runs %s after %v", waitLimit, sig)
	}
}

func (p *binary) exitCode() int  { return p.cmd.ProcessState.ExitCode() }
func (p *binary) output() string { return p.out.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
