package agent_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/network"
)

// webTask is one bridge-mode container serving "hello <id>" on port 80,
// published on a dynamic host port.
func webTask(id, image string) *api.Task {
	return &api.Task{
		Arn:           "arn:aws:ecs:us-east-1:000000000000:task/lab/" + id,
		Family:        "web",
		Version:       "1",
		DesiredStatus: api.StatusRunning,
		NetworkMode:   api.NetworkModeBridge,
		Containers: []*api.Container{{
			Name: "web", Image: image, Essential: true, Memory: 32,
			Command:      []string{"/bin/sh", "-c", "mkdir -p /www && echo hello " + id + " > /www/index.html && exec httpd -f -p 80 -h /www"},
			PortMappings: []api.PortMapping{{ContainerPort: 80, Protocol: "tcp"}},
		}},
	}
}

// runningWeb starts task on a and returns its state once it answers on its
// host port.
func runningWeb(t *testing.T, a *agent.Agent, task *api.Task) engine.TaskState {
	t.Helper()
	handle(t, a, payload(task))
	st := waitTask(t, a, task.Arn, "RUNNING", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskRunning })
	assertServes(t, st, task)
	return st
}

func hostPort(st engine.TaskState) uint16 {
	for _, b := range container(st, "web").Bindings {
		if b.ContainerPort == 80 {
			return b.HostPort
		}
	}
	return 0
}

// assertServes checks that a task's network is whole: its namespace is
// mounted and its host port answers (the DNAT rule, the veth and the
// firewall rules are in place).
func assertServes(t *testing.T, st engine.TaskState, task *api.Task) {
	t.Helper()
	if st.NetNSPath == "" || !isNetnsMount(st.NetNSPath) {
		t.Fatalf("task %s: network namespace %q is not mounted", task.Arn, st.NetNSPath)
	}
	want := "hello " + engine.TaskID(task.Arn) + "\n"
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/index.html", hostPort(st))); got != want {
		t.Fatalf("task %s answered %q, want %q", task.Arn, got, want)
	}
}

func isNetnsMount(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path && strings.Contains(line, " - nsfs ") {
			return true
		}
	}
	return false
}

// TestTwoAgentsOnOneHost runs two agents side by side as a system agent and
// `berth-agent --dev` (or a lab's agents on one VM) do with default
// settings: the same sandbox name prefix, the same network run directory
// (CNI config, sandbox records) and the same /run/netns; only their data
// directories differ (and bridges, containerd namespaces and port ranges,
// which are configuration). Each has a live task. Restarting either must
// leave the other's sandbox - namespace, rules, host port - as it was, and
// each removes only its own when its task stops.
func TestTwoAgentsOnOneHost(t *testing.T) {
	for _, dp := range []string{"builtin", "cni"} {
		t.Run(dp, func(t *testing.T) { twoAgentsOnOneHost(t, dp) })
	}
}

func twoAgentsOnOneHost(t *testing.T, datapath string) {
	on := func(h *hostEnv) *config.Config {
		cfg := h.config(t)
		cfg.Network.Datapath = datapath
		return cfg
	}
	first := newHostEnv(t)
	second := newHostEnv(t, func(h *hostEnv) { h.Prefix, h.NetRunDir = first.Prefix, first.NetRunDir })
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "tools/busybox:latest", testenv.ImageSpec{Cmd: []string{"/bin/sh"}})
	task1, task2 := webTask("owner-first", img.Ref), webTask("owner-second", img.Ref)

	a1, stop1 := first.startAgent(t, on(first))
	st1 := runningWeb(t, a1, task1)
	a2, stop2 := second.startAgent(t, on(second)) // a fresh agent's start-up clean-up
	assertServes(t, st1, task1)
	st2 := runningWeb(t, a2, task2)

	stop2()
	a2, stop2 = second.startAgent(t, on(second)) // a restart's clean-up
	assertServes(t, st1, task1)
	assertServes(t, st2, task2)
	stop1()
	a1, stop1 = first.startAgent(t, on(first))
	assertServes(t, st2, task2)
	assertServes(t, st1, task1)

	// Each agent removes its own sandbox, and only that.
	handle(t, a1, payload(stopped(task1)))
	waitTask(t, a1, task1.Arn, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
	assertServes(t, st2, task2)
	handle(t, a2, payload(stopped(task2)))
	waitTask(t, a2, task2.Arn, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
	for _, p := range []string{st1.NetNSPath, st2.NetNSPath} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("namespace %s left after its task stopped (%v)", p, err)
		}
	}
	stop1()
	stop2()
}

// cniPlugin returns the path of an installed CNI plugin.
func cniPlugin(t *testing.T, name string) string {
	t.Helper()
	for _, d := range network.DefaultPluginDirs {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	t.Fatalf("CNI plugin %s not found in %v", name, network.DefaultPluginDirs)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// metricValue returns the value of one sample line of /metrics ("" if absent).
func metricValue(t *testing.T, a *agent.Agent, name string) string {
	t.Helper()
	for _, line := range strings.Split(httpGet(t, "http://"+a.IntrospectionAddr().String()+"/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// cleanupReport is the body of the introspection API's /v1/cleanup.
type cleanupReport struct {
	Pending []struct {
		Resource, Task, Error string
		Attempts              int
	}
}

func getCleanup(a *agent.Agent) (cleanupReport, error) {
	var rep cleanupReport
	resp, err := http.Get("http://" + a.IntrospectionAddr().String() + "/v1/cleanup")
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("GET /v1/cleanup: %s: %s", resp.Status, b)
	}
	return rep, json.Unmarshal(b, &rep)
}

// assertReported checks that the agent reports one sandbox it could not
// remove, in /metrics and in /v1/cleanup, naming the cause.
func assertReported(t *testing.T, a *agent.Agent, cause string) {
	t.Helper()
	if v := metricValue(t, a, "berth_network_cleanup_pending"); v != "1" {
		t.Errorf("/metrics berth_network_cleanup_pending = %q, want 1", v)
	}
	rep, err := getCleanup(a)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	if len(rep.Pending) != 1 || !strings.Contains(rep.Pending[0].Error, cause) || rep.Pending[0].Attempts < 1 {
		t.Errorf("/v1/cleanup = %+v, want one pending sandbox failing with %q", rep, cause)
	}
}

// TestUnremovableNetworkIsRetriedAndReported: while a CNI plugin is
// missing (as during a package upgrade) a stopped task's sandbox cannot be
// removed. The agent must keep running and report it, start again with it
// still there, and remove it by itself once the plugin is back.
func TestUnremovableNetworkIsRetriedAndReported(t *testing.T) {
	h := newHostEnv(t)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "tools/busybox:latest", testenv.ImageSpec{Cmd: []string{"/bin/sh"}})
	plugins := t.TempDir()
	for _, p := range []string{"bridge", "host-local", "portmap", "firewall", "loopback"} {
		if err := os.Symlink(cniPlugin(t, p), filepath.Join(plugins, p)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := h.config(t)
	cfg.Network.Datapath = "cni" // the built-in datapath runs no plugin
	cfg.Network.CNIPath = []string{plugins}
	task := webTask("unremovable", img.Ref)

	a, stop := h.startAgent(t, cfg)
	st := runningWeb(t, a, task)
	if err := os.Remove(filepath.Join(plugins, "portmap")); err != nil {
		t.Fatal(err)
	}
	handle(t, a, payload(stopped(task)))
	waitTask(t, a, task.Arn, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
	if !isNetnsMount(st.NetNSPath) {
		t.Fatalf("namespace %s was removed although CNI DEL cannot have run", st.NetNSPath)
	}
	assertReported(t, a, "portmap")

	// A restart while the plugin is still missing: the agent starts.
	stop()
	a, stop = h.startAgent(t, cfg)
	assertReported(t, a, "portmap")

	// The plugin is back: the agent removes the sandbox by itself.
	if err := os.Symlink(cniPlugin(t, "portmap"), filepath.Join(plugins, "portmap")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for isNetnsMount(st.NetNSPath) || metricValue(t, a, "berth_network_cleanup_pending") != "0" {
		if time.Now().After(deadline) {
			rep, err := getCleanup(a)
			t.Fatalf("sandbox not removed after the plugin came back; /v1/cleanup: %+v (%v)", rep, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := os.Stat(st.NetNSPath); !os.IsNotExist(err) {
		t.Errorf("netns file %s left (%v)", st.NetNSPath, err)
	}
	if v := metricValue(t, a, "berth_network_cleanup_recovered_total"); v != "1" {
		t.Errorf("berth_network_cleanup_recovered_total = %q, want 1", v)
	}
	out, err := exec.Command("iptables-save").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	id := filepath.Base(st.NetNSPath)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, id) || strings.Contains(line, st.IPv4+"/32") {
			t.Errorf("rule of the removed sandbox left: %s", line)
		}
	}
	stop()
}
