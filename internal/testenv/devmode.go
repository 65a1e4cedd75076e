package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// AgentProcess is a berth-agent binary a test started as a user does (the
// installed package's, or one the test built): its combined output and its
// exit.
type AgentProcess struct {
	Cmd  *exec.Cmd
	out  *LockedBuffer
	done chan struct{} // closed when the process has exited
	err  error         // the result of Wait, valid once done is closed
}

// LockedBuffer collects a process's output from the goroutines of exec
// (an exec.Cmd's Stdout and Stderr) while the test reads it.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartAgent starts bin with args, the test's environment and env (later
// entries win). The process is killed at the end of the test if it is
// still running, and its output logged if the test failed.
func StartAgent(t testing.TB, bin string, env []string, args ...string) *AgentProcess {
	t.Helper()
	a := &AgentProcess{out: &LockedBuffer{}, done: make(chan struct{})}
	a.Cmd = exec.Command(bin, args...)
	a.Cmd.Env = append(os.Environ(), env...)
	a.Cmd.Stdout, a.Cmd.Stderr = a.out, a.out
	if err := a.Cmd.Start(); err != nil {
		t.Fatalf("start %s %s: %v", bin, strings.Join(args, " "), err)
	}
	go func() {
		a.err = a.Cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		_ = a.Cmd.Process.Kill()
		<-a.done
		if t.Failed() {
			t.Logf("%s %s output:\n%s", bin, strings.Join(args, " "), a.out)
		}
	})
	return a
}

// Output is what the process wrote to stdout and stderr so far.
func (a *AgentProcess) Output() string { return a.out.String() }

// Done is closed once the process has exited; Err is then its Wait result.
func (a *AgentProcess) Done() <-chan struct{} { return a.done }

// Err is the process's Wait result, valid once Done is closed.
func (a *AgentProcess) Err() error { return a.err }

// Stop sends SIGTERM and returns the exit code.
func (a *AgentProcess) Stop(t testing.TB) int {
	t.Helper()
	if err := a.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM berth-agent: %v", err)
	}
	select {
	case <-a.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("berth-agent did not exit within 2 minutes of SIGTERM\n%s", a.out)
	}
	var ee *exec.ExitError
	if errors.As(a.err, &ee) {
		return ee.ExitCode()
	}
	if a.err != nil {
		t.Fatalf("wait for berth-agent: %v", a.err)
	}
	return 0
}

// DevEnv is what dev mode wrote to DIR/env: the exports a user sources
// (AWS_ENDPOINT_URL_ECS, AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE,
// AWS_REGION, ...).
type DevEnv map[string]string

// AWSConfig loads the SDK's configuration from the exports, as a user
// sourcing the file would: the shared credentials file, the profile and the
// region, with the SDK's own HTTP client (AWS_CA_BUNDLE may be set).
func (e DevEnv) AWSConfig(t testing.TB) aws.Config {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(t.Context(),
		awsconfig.WithRegion(e["AWS_REGION"]),
		awsconfig.WithSharedCredentialsFiles([]string{e["AWS_SHARED_CREDENTIALS_FILE"]}),
		awsconfig.WithSharedConfigProfile(e["AWS_PROFILE"]),
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("load the AWS configuration dev mode wrote (%v): %v", e, err)
	}
	return cfg
}

// ECS is an ECS client for dev mode's endpoint.
func (e DevEnv) ECS(t testing.TB) *ecs.Client {
	t.Helper()
	return ecs.NewFromConfig(e.AWSConfig(t), func(o *ecs.Options) { o.BaseEndpoint = aws.String(e["AWS_ENDPOINT_URL_ECS"]) })
}

// StartDevMode runs `bin --dev --dev-dir dir` (and args) with env, waits
// for DIR/env, the file that says dev mode serves, and then for its
// container instance to be connected (RunTask places only on connected
// instances). The process is killed at the end of the test if it is still
// running.
func StartDevMode(t testing.TB, bin, dir string, env []string, args ...string) (*AgentProcess, DevEnv) {
	t.Helper()
	envFile := filepath.Join(dir, "env")
	_ = os.Remove(envFile) // a restart writes it anew
	a := StartAgent(t, bin, env, append([]string{"--dev", "--dev-dir", dir}, args...)...)
	deadline := time.Now().Add(time.Minute)
	for {
		if data, err := os.ReadFile(envFile); err == nil && strings.Contains(string(data), "AWS_ENDPOINT_URL_ECS=") {
			vars := DevEnv{}
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				if k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "="); ok {
					vars[k] = v
				}
			}
			WaitConnected(t, vars.ECS(t), a)
			return a, vars
		}
		select {
		case <-a.done:
			t.Fatalf("berth-agent --dev exited before serving: %v\n%s", a.err, a.out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth-agent --dev wrote no %s within a minute\n%s", envFile, a.out)
		}
	}
}

// WaitConnected waits until the agent has registered its instance in the
// cluster "default" and holds its ACS session.
func WaitConnected(t testing.TB, client *ecs.Client, a *AgentProcess) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		list, err := client.ListContainerInstances(t.Context(), &ecs.ListContainerInstancesInput{Cluster: aws.String("default")})
		if err == nil && len(list.ContainerInstanceArns) > 0 {
			desc, err := client.DescribeContainerInstances(t.Context(), &ecs.DescribeContainerInstancesInput{
				Cluster: aws.String("default"), ContainerInstances: list.ContainerInstanceArns})
			if err == nil && len(desc.ContainerInstances) == 1 && desc.ContainerInstances[0].AgentConnected {
				return
			}
		}
		select {
		case <-a.done:
			t.Fatalf("berth-agent --dev exited before connecting: %v\n%s", a.err, a.out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's container instance was not connected within a minute (last error %v)\n%s", err, a.out)
		}
	}
}

// FreeLoopbackAddr returns a 127.0.0.1 address whose port was free a
// moment ago.
func FreeLoopbackAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FirstHostPort is the host port of a task's first network binding, 0 when
// it has none.
func FirstHostPort(task ecstypes.Task) int32 {
	for _, c := range task.Containers {
		for _, nb := range c.NetworkBindings {
			return aws.ToInt32(nb.HostPort)
		}
	}
	return 0
}
