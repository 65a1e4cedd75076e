package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-dev/berth/internal/testenv"
)

// hangDetector bounds how long a test waits for the agent process to exit
// after a part of it failed. It tells a hang from an exit; nothing is
// asserted about how long stopping took.
const hangDetector = 2 * time.Minute

// TestAgentExitsWhenAPartFails runs the built berth-agent, as a cluster
// member and with --dev, on a host where an address it needs is held by
// another program (as when a system agent already runs): the process must
// log why and exit 1 (not 5: a restart may succeed once the address is
// free), and an instance that registered must show agentConnected false.
// Before the fix the member and dev mode processes never exited when the
// introspection API could not listen (they waited for the agent's state
// forever), and an agent whose credentials endpoint failed kept running
// without it (issue 14, item 1).
func TestAgentExitsWhenAPartFails(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (-short)")
	}
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "iptables", "ip")
	cd := testenv.Containerd(t)
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	ep := startEndpoint(t, dir)
	admin := ep.admin

	held := holdAddr(t)
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{name: "member, introspection address taken",
			env:  []string{"BERTH_INTROSPECTION_ADDRESS=" + held},
			want: "introspection API: listen on " + held},
		{name: "member, credentials address taken",
			env:  []string{"ECS_ENABLE_TASK_IAM_ROLE=true", "BERTH_CREDENTIALS_ADDRESS=" + held},
			want: "credentials endpoint: listen on " + held},
		{name: "dev mode, introspection address taken", args: []string{"--dev", "--dev-dir", filepath.Join(dir, "dev")},
			env:  []string{"BERTH_INTROSPECTION_ADDRESS=" + held},
			want: "introspection API: listen on " + held},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bridge := fmt.Sprintf("bx%04x%d", os.Getpid()&0xffff, i)
			t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
			args := append([]string{"--config", writeFile(t, "ecs.config", ""), "--toml", writeFile(t, "agent.toml", ""),
				"--containerd-snapshotter", cd.Snapshotter}, tc.args...)
			cmd := exec.Command(bin, args...)
			cmd.Env = append([]string{
				"PATH=" + os.Getenv("PATH"),
				"ECS_CLUSTER=default",
				"ECS_BACKEND_HOST=" + ep.URL,
				"AWS_REGION=us-east-1",
				"AWS_ACCESS_KEY_ID=" + ep.agentID,
				"AWS_SECRET_ACCESS_KEY=" + ep.agentSecret,
				"ECS_DATADIR=" + filepath.Join(t.TempDir(), "data"),
				"ECS_AUDIT_LOGFILE=" + filepath.Join(t.TempDir(), "audit.log"),
				"BERTH_CONTAINERD_ADDRESS=" + cd.Address,
				"BERTH_CONTAINERD_NAMESPACE=" + cd.Namespace(t),
				"BERTH_BRIDGE_NAME=" + bridge,
				fmt.Sprintf("BERTH_BRIDGE_SUBNET=10.249.%d.0/24", 40+i),
				fmt.Sprintf("ECS_DYNAMIC_HOST_PORT_RANGE=%d-%d", 21100+100*i, 21149+100*i),
			}, tc.env...)
			if !strings.Contains(strings.Join(tc.env, " "), "BERTH_INTROSPECTION_ADDRESS") {
				cmd.Env = append(cmd.Env, "BERTH_INTROSPECTION_ADDRESS="+testenv.FreeLoopbackAddr(t))
			}
			output := &syncWriter{w: &strings.Builder{}}
			cmd.Stdout, cmd.Stderr = output, output
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				if cmd.ProcessState == nil {
					_ = cmd.Process.Kill()
					<-exited
				}
			})
			var err error
			select {
			case err = <-exited:
			case <-time.After(hangDetector):
				t.Fatalf("berth-agent still runs %s after the failure (it hangs); output:\n%s", hangDetector, output.String())
			}
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitFailure {
				t.Errorf("berth-agent exit: %v, want exit status 1; output:\n%s", err, output.String())
			}
			logged := output.String()
			if !strings.Contains(logged, tc.want) || !strings.Contains(logged, "level=error") || !strings.Contains(logged, "address already in use") {
				t.Errorf("output does not log the failure %q as an error:\n%s", tc.want, logged)
			}
			if strings.Contains(strings.Join(tc.args, " "), "--dev") {
				return
			}
			// A member that got as far as registering has closed its session.
			ctx, cancel := context.WithTimeout(context.Background(), hangDetector)
			defer cancel()
			list, err := admin.ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String("default")})
			if err != nil {
				t.Fatal(err)
			}
			if len(list.ContainerInstanceArns) == 0 {
				return
			}
			for {
				out, err := admin.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{
					Cluster: aws.String("default"), ContainerInstances: list.ContainerInstanceArns})
				if err != nil {
					t.Fatal(err)
				}
				connected := 0
				for _, ci := range out.ContainerInstances {
					if ci.AgentConnected {
						connected++
					}
				}
				if connected == 0 {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("%d instance(s) still show agentConnected after their agent exited", connected)
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
}

// holdAddr listens on a free loopback port until the test ends and returns
// its address: an address another program holds.
func holdAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}
