package devmode_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/agent"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-dev/berth/pkg/agent/devmode"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/config"
)

// runningDev is dev mode running in this process.
type runningDev struct {
	cancel  context.CancelFunc
	done    chan error
	started chan *devmode.Dev
	mu      sync.Mutex
	out     strings.Builder
	// log is what dev mode logged (also on stderr with BERTH_TEST_VERBOSE).
	log syncBuffer
}

// startDev runs dev mode on dir until the test ends (or stop).
func startDev(t *testing.T, dir string, cfg *config.Config, s agentSpec) *runningDev {
	t.Helper()
	r := &runningDev{done: make(chan error, 1), started: make(chan *devmode.Dev, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		r.done <- devmode.Run(ctx, devmode.Options{
			Dir: dir, Config: cfg, Out: lockedWriter{&r.mu, &r.out}, Logger: teeLogger(&r.log),
			AgentOptions: s.options(),
			Membership:   agent.Membership{SubmitPoll: 50 * time.Millisecond},
			Started:      func(d *devmode.Dev) { r.started <- d },
		})
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels dev mode and returns what Run returned.
func (r *runningDev) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(hangDetector):
		t.Fatal("dev mode did not stop")
		return nil
	}
}

// waitStarted waits until dev mode's agent is connected and DIR/env
// written, and returns what Options.Started got.
func (r *runningDev) waitStarted(t *testing.T) *devmode.Dev {
	t.Helper()
	select {
	case dev := <-r.started:
		return dev
	case err := <-r.done:
		r.done <- err
		t.Fatalf("dev mode stopped before it was up: %v", err)
	case <-time.After(hangDetector):
		t.Fatal("dev mode did not start")
	}
	return nil
}

func (r *runningDev) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// waitEnv waits, as a script would, until DIR/env exists, and at that
// moment checks through it (the AWS SDK's own configuration loading) that
// the cluster has one instance and that its agent is connected: a script
// that runs tasks as soon as the file is there must never find no
// instance. It returns the file's variables.
func (r *runningDev) waitEnv(t *testing.T, envFile string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(hangDetector)
	var vars map[string]string
	for {
		if b, err := os.ReadFile(envFile); err == nil {
			vars = parseEnv(string(b))
			break
		}
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("dev mode stopped before writing %s: %v", envFile, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", envFile, hangDetector)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(),
		awsconfig.WithSharedCredentialsFiles([]string{vars["AWS_SHARED_CREDENTIALS_FILE"]}),
		awsconfig.WithSharedConfigProfile(vars["AWS_PROFILE"]), awsconfig.WithRegion(vars["AWS_REGION"]))
	if err != nil {
		t.Fatal(err)
	}
	client := ecs.NewFromConfig(cfg, func(o *ecs.Options) { o.BaseEndpoint = aws.String(vars["AWS_ENDPOINT_URL_ECS"]) })
	list, err := client.ListContainerInstances(context.Background(), &ecs.ListContainerInstancesInput{})
	if err != nil || len(list.ContainerInstanceArns) != 1 {
		var arns []string
		if list != nil {
			arns = list.ContainerInstanceArns
		}
		t.Fatalf("when %s appeared the cluster listed instances %v (%v); want the dev agent's", envFile, arns, err)
	}
	out, err := client.DescribeContainerInstances(context.Background(), &ecs.DescribeContainerInstancesInput{ContainerInstances: list.ContainerInstanceArns})
	if err != nil || len(out.ContainerInstances) != 1 || !out.ContainerInstances[0].AgentConnected {
		t.Fatalf("when %s appeared the instance was not connected (%+v, %v)", envFile, out, err)
	}
	vars["instance"] = list.ContainerInstanceArns[0]
	return vars
}

func parseEnv(content string) map[string]string {
	vars := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(content))
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		vars[k] = v
	}
	return vars
}

// printedAddress returns the address that dev mode printed after prefix
// (e.g. "introspection API: http://").
func printedAddress(t *testing.T, out, prefix string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return strings.Fields(rest)[0]
		}
	}
	t.Fatalf("dev mode did not print %q:\n%s", prefix, out)
	return ""
}

// TestDevModeRestartKeepsAddresses runs dev mode twice on one directory, as
// a user restarts it: DIR/env appears only once the agent is registered
// and connected, and is gone after a stop; the endpoint, the introspection
// API and the credentials endpoint keep their addresses (none of them the
// system agent's 127.0.0.1:51678 or :51679), printed and kept in
// DIR/addresses; the instance stays the same. When the kept endpoint port
// is taken, dev mode says so, naming the port and the file (issue 14,
// item 5).
func TestDevModeRestartKeepsAddresses(t *testing.T) {
	e := newE2E(t, acs.Options{}) // containerd and registry; its endpoint is unused here
	s := e.spec()
	cfg, err := s.config()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	addrsFile := filepath.Join(dir, devmode.AddressesFile)

	first := startDev(t, dir, cfg, s)
	env1 := first.waitEnv(t, envFile)
	<-first.started
	out1 := first.output()
	intro1 := printedAddress(t, out1, "introspection API: http://")
	creds1 := printedAddress(t, out1, "credentials endpoint: ")
	for _, a := range []string{intro1, creds1} {
		if !strings.HasPrefix(a, "127.0.0.1:") || strings.HasSuffix(a, ":51678") || strings.HasSuffix(a, ":51679") {
			t.Errorf("dev mode listens on %s; want a free loopback port, not the system agent's", a)
		}
	}
	if b, err := os.ReadFile(addrsFile); err != nil || !strings.Contains(string(b), "endpoint="+strings.TrimPrefix(env1["AWS_ENDPOINT_URL_ECS"], "http://")) ||
		!strings.Contains(string(b), "introspection="+intro1) || !strings.Contains(string(b), "credentials="+creds1) {
		t.Errorf("%s (%v) does not keep the addresses printed:\n%s\nprinted:\n%s", addrsFile, err, b, out1)
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + intro1 + "/v1/metadata"); err != nil || resp.StatusCode != 200 {
		t.Errorf("the printed introspection API does not answer: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if err := first.stop(t); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("dev mode: %v", err)
	}
	if _, err := os.Stat(envFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after dev mode stopped (%v): a script would take it for a running dev mode", envFile, err)
	}

	second := startDev(t, dir, cfg, s)
	env2 := second.waitEnv(t, envFile)
	<-second.started
	out2 := second.output()
	if env2["AWS_ENDPOINT_URL_ECS"] != env1["AWS_ENDPOINT_URL_ECS"] {
		t.Errorf("after a restart the endpoint is %s, want the same %s", env2["AWS_ENDPOINT_URL_ECS"], env1["AWS_ENDPOINT_URL_ECS"])
	}
	if got := printedAddress(t, out2, "introspection API: http://"); got != intro1 {
		t.Errorf("after a restart the introspection API is %s, want the same %s", got, intro1)
	}
	if got := printedAddress(t, out2, "credentials endpoint: "); got != creds1 {
		t.Errorf("after a restart the credentials endpoint is %s, want the same %s", got, creds1)
	}
	if env2["instance"] != env1["instance"] {
		t.Errorf("after a restart the instance is %s, want the same %s", env2["instance"], env1["instance"])
	}
	if err := second.stop(t); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("dev mode: %v", err)
	}

	// Something else takes the endpoint's port while dev mode is stopped.
	endpoint := strings.TrimPrefix(env1["AWS_ENDPOINT_URL_ECS"], "http://")
	ln, err := net.Listen("tcp", endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	third := startDev(t, dir, cfg, s)
	select {
	case err = <-third.done:
		third.done <- err
	case <-time.After(hangDetector):
		t.Fatal("dev mode did not stop although its endpoint's port is taken")
	}
	if err == nil || !strings.Contains(err.Error(), "endpoint address "+endpoint+" kept in "+addrsFile+" is taken") {
		t.Errorf("dev mode with its port taken returned %v; want an error naming %s and %s", err, endpoint, addrsFile)
	}
}
