package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/agent/devmode"
	"github.com/berth-dev/berth/pkg/cluster/auth"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestSystemdNotify runs the built agent as systemd would (NOTIFY_SOCKET,
// WATCHDOG_USEC) against a real endpoint and containerd, and reads what it
// sends: READY=1 only once the instance is registered, WATCHDOG=1 pings at
// half the watchdog interval, and STOPPING=1 with exit 0 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (-short)")
	}
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "iptables", "ip")
	cd := testenv.Containerd(t)
	dir := t.TempDir()
	ep := startEndpoint(t, dir)
	bin := buildAgent(t, dir)
	sockPath := filepath.Join(dir, "notify.sock")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()

	suffix := fmt.Sprintf("%04x", os.Getpid()&0xffff)
	bridge := "bn" + suffix
	// Empty files, so the host's /etc/ecs/ecs.config never leaks in.
	cmd := exec.Command(bin, "--config", writeFile(t, "ecs.config", ""), "--toml", writeFile(t, "agent.toml", ""),
		"--containerd-snapshotter", cd.Snapshotter)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"NOTIFY_SOCKET=" + sockPath,
		"WATCHDOG_USEC=1000000",
		"ECS_CLUSTER=default",
		"ECS_BACKEND_HOST=" + ep.URL,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=" + ep.agentID,
		"AWS_SECRET_ACCESS_KEY=" + ep.agentSecret,
		"ECS_DATADIR=" + filepath.Join(dir, "data"),
		"BERTH_CONTAINERD_ADDRESS=" + cd.Address,
		"BERTH_CONTAINERD_NAMESPACE=" + cd.Namespace(t),
		"BERTH_BRIDGE_NAME=" + bridge,
		"BERTH_BRIDGE_SUBNET=10.249.17.0/24",
		"BERTH_INTROSPECTION_ADDRESS=" + testenv.FreeLoopbackAddr(t),
		"BERTH_CREDENTIALS_ADDRESS=" + testenv.FreeLoopbackAddr(t),
		"ECS_DYNAMIC_HOST_PORT_RANGE=21000-21049",
	}
	var output strings.Builder
	cmd.Stdout, cmd.Stderr = &output, &output
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
		_ = exec.Command("ip", "link", "del", bridge).Run()
	})

	// read returns the next datagram, failing the test after d.
	read := func(d time.Duration) string {
		t.Helper()
		buf := make([]byte, 4096)
		if err := sock.SetReadDeadline(time.Now().Add(d)); err != nil {
			t.Fatal(err)
		}
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("no sd_notify message within %s (%v); agent output:\n%s", d, err, output.String())
		}
		return string(buf[:n])
	}

	var seen []string
	for !strings.Contains(strings.Join(seen, "\n"), "READY=1") {
		msg := read(90 * time.Second)
		if strings.Contains(msg, "WATCHDOG=1") {
			t.Fatalf("watchdog ping before READY=1: %q", seen)
		}
		seen = append(seen, msg)
	}
	ready := seen[len(seen)-1]
	if !strings.Contains(ready, "registered as arn:aws:ecs:") {
		t.Errorf("READY message %q does not name the registered instance", ready)
	}
	list, err := ep.admin.ListContainerInstances(t.Context(), &ecs.ListContainerInstancesInput{Cluster: aws.String("default")})
	if err != nil || len(list.ContainerInstanceArns) != 1 || !strings.Contains(ready, list.ContainerInstanceArns[0]) {
		t.Errorf("after READY=1 the cluster lists %v (%v); want exactly the instance named in %q", list.ContainerInstanceArns, err, ready)
	}

	// WATCHDOG_USEC=1s: pings every 500ms while the engine answers.
	pings := 0
	start := time.Now()
	for pings < 3 {
		if msg := read(10 * time.Second); strings.Contains(msg, "WATCHDOG=1") {
			pings++
		}
	}
	if el := time.Since(start); el > 8*time.Second {
		t.Errorf("3 watchdog pings took %s; want about 1.5s at half of WATCHDOG_USEC", el)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	stopping := false
	for !stopping && time.Now().Before(deadline) {
		stopping = strings.Contains(read(time.Until(deadline)), "STOPPING=1")
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("agent exit after SIGTERM: %v; want exit 0; output:\n%s", err, output.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("agent did not exit within 60s of SIGTERM")
	}
}

// testEndpoint is a cluster endpoint on loopback with the cluster
// "default", an admin client and an agent key.
type testEndpoint struct {
	*devmode.Endpoint
	admin                *ecs.Client
	agentID, agentSecret string
}

func startEndpoint(t *testing.T, dir string) *testEndpoint {
	t.Helper()
	ep, err := devmode.StartEndpoint(t.Context(), devmode.EndpointOptions{DataDir: filepath.Join(dir, "endpoint"),
		Region: "us-east-1", AccountID: devmode.DefaultAccount})
	if err != nil {
		t.Fatalf("start endpoint: %v", err)
	}
	t.Cleanup(func() { ep.Close() })
	adminID, adminSecret, err := ep.Keys.Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	te := &testEndpoint{Endpoint: ep,
		admin: devmode.NewECSClient(ep.URL, "us-east-1", aws.Credentials{AccessKeyID: adminID, SecretAccessKey: adminSecret})}
	if te.agentID, te.agentSecret, err = ep.Keys.Create(auth.RoleAgent, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := te.admin.CreateCluster(t.Context(), &ecs.CreateClusterInput{ClusterName: aws.String("default")}); err != nil {
		t.Fatal(err)
	}
	return te
}

// buildAgent builds berth-agent into dir.
func buildAgent(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "berth-agent")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
