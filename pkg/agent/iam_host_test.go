package agent_test

import (
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/network"
)

// credProbe is the static aws-sdk-go-v2 program the task role tests run
// inside task containers.
const credProbe = "github.com/berth-dev/berth/internal/testenv/cmd/credprobe"

// rejectUnredirected rejects, until the test ends, every packet the host
// itself sends to 169.254.170.2 that the credentials redirect did not
// rewrite: if the redirect is missing, the test fails on a refused
// connection instead of sending the packet off the machine.
func rejectUnredirected(t *testing.T, tag string) {
	t.Helper()
	rule := []string{"OUTPUT", "-d", network.CredentialsAddress + "/32", "-m", "comment", "--comment", "berth:test-guard:" + tag, "-j", "REJECT"}
	if out, err := exec.Command("iptables", append([]string{"-w", "-I"}, rule...)...).CombinedOutput(); err != nil {
		t.Fatalf("install the guard rule: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("iptables", append([]string{"-w", "-D"}, rule...)...).CombinedOutput(); err != nil {
			t.Errorf("remove the guard rule: %v: %s", err, out)
		}
	})
}

// TestHostNetworkTaskRoleCredentials: with
// ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST=true, an aws-sdk-go-v2 program in a
// host-network task gets its role's key through 169.254.170.2 (the nat
// OUTPUT redirect to the agent's loopback listener) with the SDK's default
// chain, and its task metadata v4; the redirect exists once while the agent
// runs and is gone after a clean stop.
func TestHostNetworkTaskRoleCredentials(t *testing.T) {
	testenv.LockHost(t, testenv.LockCredentialsRedirect)
	h := newHostEnv(t)
	if exec.Command("ip", "route", "get", network.CredentialsAddress).Run() != nil {
		// The kernel looks a route up before the nat OUTPUT hook runs; a
		// host with no default route (as a sealed CI machine may be) gets
		// one through loopback for the test, as the redirect rewrites the
		// destination to 127.0.0.1 anyway.
		route := []string{network.CredentialsAddress + "/32", "dev", "lo"}
		if out, err := exec.Command("ip", append([]string{"route", "add"}, route...)...).CombinedOutput(); err != nil {
			t.Fatalf("add a route to %s: %v: %s", network.CredentialsAddress, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", append([]string{"route", "del"}, route...)...).Run() })
	}
	rejectUnredirected(t, h.Bridge)
	cfg := h.config(t)
	cfg.IAM.EnableTaskRole = true
	cfg.IAM.EnableTaskRoleNetworkHost = true
	cfg.IAM.AuditLogFile = filepath.Join(t.TempDir(), "audit.log")
	cfg.Listen.Credentials = netip.MustParseAddrPort("127.0.0.1:0")

	reg := testenv.Registry(t)
	loop := `while true; do /credprobe; PROBE_URL=$ECS_CONTAINER_METADATA_URI_V4/task /credprobe; sleep 0.3; done`
	img := testenv.BuildImage(t, reg, "agent/hostprobe", testenv.ImageSpec{
		Files: []testenv.File{{Path: "/credprobe", Mode: 0o755, Data: testenv.BuildStatic(t, credProbe)}},
		Cmd:   []string{"/bin/sh", "-c", loop},
		Env:   []string{"PROBE_TIMEOUT=5s"},
	})
	arn := "arn:aws:ecs:us-east-1:000000000000:task/lab/" + randomHex(16)
	creds := &api.IAMRoleCredentials{CredentialsID: "host-iam-" + randomHex(8), RoleArn: "arn:aws:iam::000000000000:role/hostprobe",
		AccessKeyID: "ASIAHOSTNETWORKROLE", SecretAccessKey: "host-secret-never-logged", SessionToken: "host-token-never-logged",
		Expiration: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	payload := func(desired string) *api.PayloadMessage {
		return &api.PayloadMessage{MessageID: randomHex(8), ClusterArn: "arn:aws:ecs:us-east-1:000000000000:cluster/lab",
			Tasks: []*api.Task{{Arn: arn, Family: "hostprobe", Version: "1", DesiredStatus: desired, NetworkMode: api.NetworkModeHost,
				RoleCredentials: creds,
				Containers:      []*api.Container{{Name: "probe", Image: img.Ref, Essential: true, Memory: 64}}}}}
	}

	a, stop := h.startAgent(t, cfg)
	outputRules := func() []string {
		var out []string
		for _, r := range agentCredsRules(t, cfg.Network.BridgeName) {
			if strings.HasPrefix(r, "nat -A OUTPUT ") {
				out = append(out, r)
			}
		}
		return out
	}
	if r := outputRules(); len(r) != 1 {
		t.Fatalf("want one nat OUTPUT redirect while the agent runs, got:\n%s", strings.Join(r, "\n"))
	}
	handle(t, a, payload("RUNNING"))
	st := waitTask(t, a, arn, "RUNNING", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskRunning })
	log := &containerLog{t: t, path: container(st, "probe").LogPath}
	log.wait("KEY ASIAHOSTNETWORKROLE ", time.Minute)
	log.wait(`\"TaskARN\":\"`+arn+`\"`, time.Minute) // JSON in the json-file log

	handle(t, a, payload("STOPPED"))
	waitTask(t, a, arn, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
	stop()
	if r := outputRules(); len(r) != 0 {
		t.Fatalf("after a clean stop the nat OUTPUT redirect remains:\n%s", strings.Join(r, "\n"))
	}
	b, err := os.ReadFile(cfg.IAM.AuditLogFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), arn+" GetCredentials") || strings.Contains(string(b), creds.SecretAccessKey) {
		t.Fatalf("audit log: want the host task's GetCredentials line and no secret:\n%s", b)
	}
}

// fakeIMDS is a stand-in for the instance metadata service, reachable at
// 169.254.169.254 only from the sources of one subnet (policy routing to a
// namespace of the test's own), so that a task's request never leaves the
// machine whether or not the agent blocks it.
type fakeIMDS struct {
	hits atomic.Int64
}

// startFakeIMDS serves "fake-imds" on 169.254.169.254:80 inside a new
// network namespace joined to the host by a veth pair, and routes traffic
// from subnet to 169.254.169.254 there; everything is removed when the test
// ends.
func startFakeIMDS(t *testing.T, subnet string) *fakeIMDS {
	t.Helper()
	id := randomHex(3)
	ns, hostIf, nsIf := "bi"+id, "bi"+id+"h", "bi"+id+"n"
	third, fourth := mrand.IntN(256), mrand.IntN(64)*4
	hostIP, nsIP := fmt.Sprintf("10.252.%d.%d", third, fourth+1), fmt.Sprintf("10.252.%d.%d", third, fourth+2)
	table, pref := fmt.Sprint(20000+mrand.IntN(20000)), fmt.Sprint(5000+mrand.IntN(20000))
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip("link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", hostIf).Run() })
	ip("addr", "add", hostIP+"/30", "dev", hostIf)
	ip("link", "set", hostIf, "up")
	ip("-n", ns, "addr", "add", nsIP+"/30", "dev", nsIf)
	ip("-n", ns, "addr", "add", network.IMDSAddress+"/32", "dev", "lo")
	ip("-n", ns, "link", "set", "lo", "up")
	ip("-n", ns, "link", "set", nsIf, "up")
	ip("-n", ns, "route", "add", "default", "via", hostIP)
	ip("route", "add", network.IMDSAddress+"/32", "via", nsIP, "dev", hostIf, "table", table)
	rule := []string{"from", subnet, "to", network.IMDSAddress + "/32", "lookup", table, "pref", pref}
	ip(append([]string{"rule", "add"}, rule...)...)
	t.Cleanup(func() { _ = exec.Command("ip", append([]string{"rule", "del"}, rule...)...).Run() })

	var ln net.Listener
	err := network.InNetns("/run/netns/"+ns, func() (err error) {
		ln, err = net.Listen("tcp", network.IMDSAddress+":80")
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", ns, err)
	}
	f := &fakeIMDS{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		io.WriteString(w, "fake-imds")
	}), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return f
}

// TestIMDSBlockedFromTasks: a bridge task reaches the instance metadata
// address while ECS_AWSVPC_BLOCK_IMDS is off; after the agent restarts
// with it on, the same running task's requests go unanswered and none
// reaches the service. The stand-in service answers only this test's
// subnet, so no request ever leaves the machine.
func TestIMDSBlockedFromTasks(t *testing.T) {
	h := newHostEnv(t)
	imds := startFakeIMDS(t, h.Subnet)
	cfg := h.config(t)
	cfg.IAM.EnableTaskRole = true
	cfg.IAM.AuditLogFile = ""
	cfg.Listen.Credentials = netip.MustParseAddrPort("127.0.0.1:0")

	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "agent/imdsprobe", testenv.ImageSpec{
		Files: []testenv.File{{Path: "/credprobe", Mode: 0o755, Data: testenv.BuildStatic(t, credProbe)}},
		Cmd:   []string{"/bin/sh", "-c", `while true; do /credprobe; sleep 0.3; done`},
		Env:   []string{"PROBE_URL=http://" + network.IMDSAddress + "/latest/meta-data/", "PROBE_TIMEOUT=2s"},
	})
	arn := "arn:aws:ecs:us-east-1:000000000000:task/lab/" + randomHex(16)
	payload := func(desired string) *api.PayloadMessage {
		return &api.PayloadMessage{MessageID: randomHex(8), ClusterArn: "arn:aws:ecs:us-east-1:000000000000:cluster/lab",
			Tasks: []*api.Task{{Arn: arn, Family: "imdsprobe", Version: "1", DesiredStatus: desired, NetworkMode: "bridge",
				Containers: []*api.Container{{Name: "probe", Image: img.Ref, Essential: true, Memory: 64}}}}}
	}

	// Unblocked: the control that shows the path to the stand-in works.
	a, stop := h.startAgent(t, cfg)
	handle(t, a, payload("RUNNING"))
	st := waitTask(t, a, arn, "RUNNING", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskRunning })
	log := &containerLog{t: t, path: container(st, "probe").LogPath}
	log.wait("200 fake-imds", time.Minute)
	stop()

	cfg.IAM.AWSVPCBlockIMDS = true
	a, _ = h.startAgent(t, cfg)
	blocked := false
	for _, r := range agentCredsRules(t, cfg.Network.BridgeName) {
		blocked = blocked || (strings.HasPrefix(r, "filter -A FORWARD ") && strings.Contains(r, network.IMDSAddress))
	}
	if !blocked {
		t.Fatalf("agent started with ECS_AWSVPC_BLOCK_IMDS=true: no FORWARD rule for %s:\n%s", network.IMDSAddress,
			strings.Join(agentCredsRules(t, cfg.Network.BridgeName), "\n"))
	}
	// A request answered just before the rule went in may still be on its
	// way to the log; then every request must fail.
	time.Sleep(time.Second)
	log.skipToEnd()
	from, hits := log.off, imds.hits.Load()
	log.wait("ERR ", time.Minute)
	log.wait("ERR ", time.Minute)
	b, _ := os.ReadFile(log.path)
	if tail := string(b[min(from, len(b)):]); strings.Contains(tail, "200 fake-imds") {
		t.Fatalf("a task reached the metadata service with the block on:\n%s", tail)
	}
	if n := imds.hits.Load(); n != hits {
		t.Fatalf("the metadata service got %d requests after the block went in", n-hits)
	}
	handle(t, a, payload("STOPPED"))
	waitTask(t, a, arn, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
}
