package chaos_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
)

// proc is one run after another of a built binary (berth-cluster serve or
// berth-agent), all logging into one file.
type proc struct {
	name    string
	args    []string
	env     []string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

// start runs the binary once more; the test's cleanup ends it if it still runs.
func (p *proc) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "=== chaos: start %s at %s\n", p.name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	first := p.cmd == nil
	p.cmd, p.done = cmd, done
	if first {
		t.Cleanup(func() { p.stop(t) })
	}
}

func (p *proc) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL, as a crash or `kill -9` does.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if !p.running() {
		t.Fatalf("kill %s: it is not running; its log:\n%s", p.name, p.tail())
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends the process with SIGTERM, as systemd does, and waits; SIGKILL
// (and a failed test) if it does not stop within a minute.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("%s exited with %d after SIGTERM; its log:\n%s", p.name, code, p.tail())
		}
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		t.Errorf("%s did not stop within a minute of SIGTERM; its log:\n%s", p.name, p.tail())
	}
}

// tail is the end of the process's log, for failure messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logPath)
	const max = 8000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// endpoint is berth-cluster serve on a fixed loopback address of the
// private network namespace, restartable on its data.
type endpoint struct {
	proc
	addr, dataDir string
}

const (
	region  = "us-east-1"
	account = "123456789012"
	cluster = "default"
)

var credRE = regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+)\nAWS_SECRET_ACCESS_KEY=(\S+)\n`)

func newEndpoint(t *testing.T, bin, dir string) *endpoint {
	t.Helper()
	e := &endpoint{addr: "127.0.0.1:4400", dataDir: filepath.Join(dir, "data")}
	cfg := filepath.Join(dir, "cluster.toml")
	doc := fmt.Sprintf("listen = %q\ninsecure_http = true\nregion = %q\naccount_id = %q\ndata_dir = %q\n", e.addr, region, account, e.dataDir)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	e.proc = proc{name: "berth-cluster", args: []string{bin, "serve", "--config", cfg},
		env: []string{"PATH=" + os.Getenv("PATH")}, logPath: filepath.Join(dir, "cluster.log")}
	return e
}

// key creates an access key with the offline `keys create`, as an operator
// does before the first start.
func (e *endpoint) key(t *testing.T, role string) aws.Credentials {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(e.args[0], "keys", "create", "--role", role, "--data-dir", e.dataDir)
	cmd.Env, cmd.Stdout, cmd.Stderr = e.env, &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("berth-cluster keys create --role %s: %v\n%s", role, err, errb.String())
	}
	m := credRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("berth-cluster keys create printed no key: %q", out.String())
	}
	return aws.Credentials{AccessKeyID: m[1], SecretAccessKey: m[2]}
}

// startServing starts the endpoint and waits until it accepts connections.
func (e *endpoint) startServing(t *testing.T) {
	t.Helper()
	e.start(t)
	deadline := time.Now().Add(time.Minute)
	for {
		if c, err := net.Dial("tcp", e.addr); err == nil {
			c.Close()
			return
		}
		if !e.running() || time.Now().After(deadline) {
			t.Fatalf("berth-cluster does not listen on %s; its log:\n%s", e.addr, e.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *endpoint) client(c aws.Credentials) *ecs.Client {
	return ecs.New(ecs.Options{Region: region, BaseEndpoint: aws.String("http://" + e.addr),
		Credentials: credentials.StaticCredentialsProvider{Value: c}, HTTPClient: awshttp.NewBuildableClient(),
		Retryer: aws.NopRetryer{}})
}

// newAgent is berth-agent as a cluster member, configured through an
// ecs.config file as on a host, with containerd and its namespace, a short
// clean-up wait, and otherwise the defaults (the network namespace is the
// test's own).
func newAgent(t *testing.T, bin, dir, endpointURL string, key aws.Credentials, containerd, snapshotter, ns string) *proc {
	t.Helper()
	cfg := strings.Join([]string{
		"ECS_CLUSTER=" + cluster,
		"ECS_BACKEND_HOST=" + endpointURL,
		"AWS_REGION=" + region,
		"ECS_DATADIR=" + filepath.Join(dir, "data"),
		"ECS_AUDIT_LOGFILE=" + filepath.Join(dir, "audit.log"),
		"BERTH_CONTAINERD_ADDRESS=" + containerd,
		"BERTH_CONTAINERD_NAMESPACE=" + ns,
		"ECS_CONTAINER_STOP_TIMEOUT=2s",
		"ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION=5s",
	}, "\n") + "\n"
	cfgPath := filepath.Join(dir, "ecs.config")
	tomlPath := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tomlPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return &proc{name: "berth-agent", logPath: filepath.Join(dir, "agent.log"),
		args: []string{bin, "--config", cfgPath, "--toml", tomlPath, "--containerd-snapshotter", snapshotter},
		env:  []string{"PATH=" + os.Getenv("PATH"), "AWS_ACCESS_KEY_ID=" + key.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + key.SecretAccessKey}}
}

// buildBinaries builds berth-agent and berth-cluster into dir.
func buildBinaries(t *testing.T, dir string) {
	t.Helper()
	for _, b := range []struct{ out, pkg string }{
		{"berth-agent", "github.com/berth-dev/berth/cmd/agent"},
		{"berth-cluster", "github.com/berth-dev/berth/cmd/cluster"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
}

// waitFor polls cond every 100 ms until it returns nil or d passes, and
// returns its last error.
func waitFor(ctx context.Context, d time.Duration, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("not so after %v", d), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
