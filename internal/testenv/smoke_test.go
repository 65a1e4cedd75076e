package testenv_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"

	"github.com/berth-dev/berth/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// runToExit creates a container from ref, runs it to its exit and returns
// the exit code and output. The task and container are deleted before it
// returns.
func runToExit(t *testing.T, ctx context.Context, cli *containerd.Client, image containerd.Image, id string) (uint32, string) {
	t.Helper()
	ctr, err := cli.NewContainer(ctx, id,
		containerd.WithNewSnapshot(id+"-snap", image),
		containerd.WithNewSpec(oci.WithImageConfig(image)))
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	defer func() {
		if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			t.Errorf("delete container: %v", err)
		}
	}()
	var out testenv.LockedBuffer
	task, err := ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, &out)))
	if err != nil {
		t.Fatalf("create task: %v", err)
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		t.Fatalf("wait task: %v", err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start task: %v", err)
	}
	var status containerd.ExitStatus
	select {
	case status = <-exitCh:
	case <-ctx.Done():
		t.Fatalf("task did not exit: %v", ctx.Err())
	}
	// Delete closes the IO and waits for the copy goroutines, so the output
	// is complete afterwards.
	if _, err := task.Delete(ctx); err != nil {
		t.Fatalf("delete task: %v", err)
	}
	return status.ExitCode(), out.String()
}

// shimsFor lists containerd-shim processes started for container id in ns.
func shimsFor(t *testing.T, ns, id string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	var found []string
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if !strings.Contains(args[0], "containerd-shim") {
			continue
		}
		cmd := strings.Join(args, " ")
		if strings.Contains(cmd, "-namespace "+ns) && strings.Contains(cmd, "-id "+id) {
			found = append(found, e.Name()+": "+cmd)
		}
	}
	return found
}

// TestSmokeBuildPushPullRun is the end-to-end proof that the environment
// works: an image built here is pushed to the registry, pulled by the
// private containerd, run, and its output read back; the shim is gone after
// the task is deleted, and the namespace's host directories (runc state,
// cgroups) are gone after the test's cleanup.
func TestSmokeBuildPushPullRun(t *testing.T) {
	var ns string
	t.Run("run", func(t *testing.T) {
		cd := testenv.Containerd(t)
		reg := testenv.Registry(t)
		img := testenv.BuildImage(t, reg, "berth/smoke", testenv.ImageSpec{
			Files: []testenv.File{{Path: "/srv/greeting", Mode: 0o644, Data: []byte("hello from berth")}},
			Cmd: []string{"/bin/sh", "-c", "cat /srv/greeting; echo; id -u; echo $A; stat -c %a /tmp; " +
				"grep -c . /etc/passwd; for a in httpd nc wget sleep; do [ -x /bin/$a ] && printf '%s ' $a; done"},
			Env:  []string{"A=b"},
			User: "app",
		})
		t.Logf("containerd %s, snapshotter %s, registry %s", cd.Address, cd.Snapshotter, reg.Host)
		cli := cd.Client(t)
		ns = cd.Namespace(t)
		ctx, cancel := context.WithTimeout(namespaces.WithNamespace(t.Context(), ns), 2*time.Minute)
		defer cancel()

		image, err := cli.Pull(ctx, img.Ref, containerd.WithPullUnpack, containerd.WithResolver(reg.Resolver()))
		if err != nil {
			t.Fatalf("pull %s: %v", img.Ref, err)
		}
		if got := image.Target().Digest; got != img.Digest {
			t.Fatalf("pulled manifest digest %s, BuildImage returned %s", got, img.Digest)
		}
		code, out := runToExit(t, ctx, cli, image, "smoke")
		if want := "hello from berth\n1000\nb\n1777\n3\nhttpd nc wget sleep "; code != 0 || out != want {
			t.Fatalf("container exited %d with output %q, want 0 and %q", code, out, want)
		}
		if len(hostDirs(ns)) == 0 {
			t.Fatal("no runc state or cgroup directory of the namespace exists; the host check after cleanup would prove nothing")
		}
		// The shim exits on its own after the task is deleted; give it time.
		deadline := time.Now().Add(20 * time.Second)
		for left := shimsFor(t, ns, "smoke"); len(left) > 0; left = shimsFor(t, ns, "smoke") {
			if time.Now().After(deadline) {
				t.Fatalf("shim still running after task delete: %v", left)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	if ns == "" {
		return // skipped or failed before the namespace existed
	}
	if left := hostDirs(ns); len(left) > 0 {
		t.Fatalf("host directories of namespace %s left after the test's cleanup: %v", ns, left)
	}
}

// TestAuthRegistryRefusesWrongPassword proves the htpasswd registry really
// checks credentials: the right ones push and pull, a wrong password and no
// password are refused.
func TestAuthRegistryRefusesWrongPassword(t *testing.T) {
	areg := testenv.AuthRegistry(t)
	if areg.Username == "" || areg.Password == "" {
		t.Fatalf("auth registry has no credentials: %+v", areg)
	}
	ctx := t.Context()
	img, err := testenv.BuildAndPush(ctx, areg, "berth/private", testenv.ImageSpec{Cmd: []string{"true"}})
	if err != nil {
		t.Fatalf("push with the right password: %v", err)
	}

	wrong := *areg
	wrong.Password = "not-" + areg.Password
	if _, err := testenv.BuildAndPush(ctx, &wrong, "berth/private2", testenv.ImageSpec{}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("push with a wrong password: got error %v, want a 401 refusal", err)
	}
	for _, c := range []struct {
		name       string
		user, pass string
		want       int
	}{
		{"right password", areg.Username, areg.Password, http.StatusOK},
		{"wrong password", areg.Username, wrong.Password, http.StatusUnauthorized},
		{"no credentials", "", "", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+areg.Host+"/v2/berth/private/manifests/latest", nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: GET manifest: %v", c.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: GET manifest status %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}

	// containerd's resolver with the right credentials can pull it.
	cd := testenv.Containerd(t)
	cli := cd.Client(t)
	nsCtx := namespaces.WithNamespace(ctx, cd.Namespace(t))
	image, err := cli.Pull(nsCtx, img.Ref, containerd.WithResolver(areg.Resolver()))
	if err != nil {
		t.Fatalf("pull %s with credentials: %v", img.Ref, err)
	}
	if image.Target().Digest != img.Digest {
		t.Fatalf("pulled %s, pushed %s", image.Target().Digest, img.Digest)
	}
	if _, err := cli.Pull(nsCtx, img.Ref, containerd.WithResolver(wrong.Resolver())); err == nil {
		t.Fatalf("pull %s with a wrong password succeeded", img.Ref)
	}
}

// TestImageConfig checks that every ImageSpec field lands in the image
// configuration as Docker and containerd read it.
func TestImageConfig(t *testing.T) {
	reg := testenv.Registry(t)
	spec := testenv.ImageSpec{
		Entrypoint:   []string{"/bin/httpd", "-f"},
		Cmd:          []string{"-p", "80"},
		Env:          []string{"A=b"},
		User:         "1000:1000",
		WorkingDir:   "/srv",
		StopSignal:   "SIGQUIT",
		ExposedPorts: []string{"80/tcp", "53/udp"},
		Healthcheck:  &testenv.Healthcheck{Test: []string{"CMD-SHELL", "true"}, Interval: time.Second, Retries: 3},
		Labels:       map[string]string{"k": "v"},
	}
	img := testenv.BuildImage(t, reg, "berth/config:v1", spec)
	if want := reg.Host + "/berth/config:v1"; img.Ref != want {
		t.Fatalf("Ref %q, want %q", img.Ref, want)
	}
	var manifest struct {
		Config struct{ Digest string } `json:"config"`
		Layers []struct{ Digest string }
	}
	getJSON(t, "http://"+reg.Host+"/v2/berth/config/manifests/"+img.Digest.String(), &manifest)
	if len(manifest.Layers) != 1 {
		t.Errorf("image without Files has %d layers, want 1 (the busybox base)", len(manifest.Layers))
	}
	var cfg struct {
		Config struct {
			Entrypoint, Cmd, Env []string
			User, WorkingDir     string
			StopSignal           string
			ExposedPorts         map[string]struct{}
			Labels               map[string]string
			Healthcheck          struct {
				Test     []string
				Interval int64
				Retries  int
			}
		} `json:"config"`
	}
	getJSON(t, "http://"+reg.Host+"/v2/berth/config/blobs/"+manifest.Config.Digest, &cfg)
	c := cfg.Config
	checks := []struct {
		name      string
		got, want any
	}{
		{"Entrypoint", c.Entrypoint, spec.Entrypoint},
		{"Cmd", c.Cmd, spec.Cmd},
		{"Env", c.Env, []string{testenv.DefaultPath, "A=b"}},
		{"User", c.User, spec.User},
		{"WorkingDir", c.WorkingDir, spec.WorkingDir},
		{"StopSignal", c.StopSignal, spec.StopSignal},
		{"ExposedPorts", len(c.ExposedPorts), 2},
		{"Labels", c.Labels["k"], "v"},
		{"Healthcheck.Test", c.Healthcheck.Test, spec.Healthcheck.Test},
		{"Healthcheck.Interval (ns)", c.Healthcheck.Interval, int64(time.Second)},
		{"Healthcheck.Retries", c.Healthcheck.Retries, 3},
	}
	for _, ch := range checks {
		g, _ := json.Marshal(ch.got)
		w, _ := json.Marshal(ch.want)
		if !bytes.Equal(g, w) {
			t.Errorf("config %s = %s, want %s", ch.name, g, w)
		}
	}
	if _, ok := c.ExposedPorts["53/udp"]; !ok {
		t.Errorf("ExposedPorts %v lacks 53/udp", c.ExposedPorts)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", url, err)
	}
}

// TestTeardownLeavesNothing starts a separate environment on the native
// snapshotter (the fallback where overlay mounts fail), leaves a container
// running in it (as a crashed test would), closes it, and checks that no
// process, mount, file or host directory of it remains: once with
// containerd still running (teardown deletes through the API) and once after
// containerd was SIGKILLed (teardown must find and kill the orphaned shim).
func TestTeardownLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own containerd; skipped with -short")
	}
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "containerd", "runc", "containerd-shim-runc-v2", "docker-registry")
	testenv.RequireBusyboxStatic(t)
	t.Run("containerd running", func(t *testing.T) { teardownCase(t, false) })
	t.Run("containerd crashed", func(t *testing.T) { teardownCase(t, true) })
}

func teardownCase(t *testing.T, crash bool) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx, testenv.Options{NoAuthRegistry: true, Snapshotter: testenv.SnapshotterNative})
	if err != nil {
		t.Fatalf("start environment: %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = env.Close(context.Background())
		}
	}()
	reg := env.Registry()
	img := testenv.BuildImage(t, reg, "berth/sleeper", testenv.ImageSpec{Cmd: []string{"sleep", "1000"}})
	cd := env.Containerd()
	cli, err := containerd.New(cd.Address)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cli.Close()
	// The namespace name is unique: runc keeps state under
	// /run/containerd/runc/<namespace> for every containerd on the host.
	leaky := "leaky-" + strings.TrimPrefix(filepath.Base(env.Dir()), "berth-testenv-")
	nsCtx := namespaces.WithNamespace(ctx, leaky)
	image, err := cli.Pull(nsCtx, img.Ref, containerd.WithPullUnpack, containerd.WithResolver(reg.Resolver()),
		containerd.WithPullSnapshotter(cd.Snapshotter))
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	ctr, err := cli.NewContainer(nsCtx, "sleeper",
		containerd.WithSnapshotter(cd.Snapshotter),
		containerd.WithNewSnapshot("sleeper-snap", image),
		containerd.WithNewSpec(oci.WithImageConfig(image)))
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	task, err := ctr.NewTask(nsCtx, cio.NullIO)
	if err != nil {
		t.Fatalf("create task: %v", err)
	}
	if err := task.Start(nsCtx); err != nil {
		t.Fatalf("start task: %v", err)
	}
	pid := int(task.Pid())
	if len(shimsFor(t, leaky, "sleeper")) == 0 {
		t.Fatal("no shim found for the running task; the leftover check below would prove nothing")
	}
	if !mountedUnder(t, env.Dir()) {
		t.Fatal("no mount under the environment dir while a task runs; the mount check below would prove nothing")
	}
	if len(hostDirs(leaky)) == 0 {
		t.Fatal("no runc state or cgroup of the namespace while a task runs; the host check below would prove nothing")
	}
	// containerd 1.6 puts the shim's socket at sha256(address/ns/id) in
	// /run/containerd/s; a killed shim leaves it behind.
	shimSocket := fmt.Sprintf("/run/containerd/s/%x", sha256.Sum256([]byte(filepath.Join(cd.Address, leaky, "sleeper"))))
	if _, err := os.Stat(shimSocket); err != nil {
		t.Fatalf("shim socket not where expected: %v", err)
	}
	if crash {
		killContainerd(t, env.Dir())
	}

	closed = true
	if err := env.Close(ctx); err != nil {
		t.Fatalf("close environment: %v", err)
	}
	if left := env.Leftovers(); len(left) > 0 {
		t.Fatalf("left behind after Close: %v", left)
	}
	if swept, want := env.Swept(), leaky+"/sleeper"; len(swept) != 1 || swept[0] != want {
		t.Errorf("Swept() = %v, want [%s]", swept, want)
	}
	if left := shimsFor(t, leaky, "sleeper"); len(left) > 0 {
		t.Fatalf("shim left after Close: %v", left)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("container process %d still exists after Close (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(env.Dir()); !os.IsNotExist(err) {
		t.Fatalf("environment dir %s still exists (stat: %v)", env.Dir(), err)
	}
	if left := hostDirs(leaky); len(left) > 0 {
		t.Fatalf("host directories of namespace %s left after Close: %v", leaky, left)
	}
	if _, err := os.Stat(shimSocket); !os.IsNotExist(err) {
		t.Fatalf("shim socket %s left after Close (stat: %v)", shimSocket, err)
	}
}

// hostDirs lists runc state and cgroup directories named after namespace ns.
func hostDirs(ns string) []string {
	var found []string
	for _, pattern := range []string{"/run/containerd/runc/" + ns, "/sys/fs/cgroup/" + ns, "/sys/fs/cgroup/*/" + ns} {
		m, _ := filepath.Glob(pattern)
		found = append(found, m...)
	}
	return found
}

// killContainerd SIGKILLs the containerd started for dir and waits until it
// is gone, leaving its shims orphaned as a crash would.
func killContainerd(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if filepath.Base(args[0]) != "containerd" || !strings.Contains(string(b), dir) {
			continue
		}
		pid, _ := strconv.Atoi(e.Name())
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill containerd %d: %v", pid, err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			// The test process is not its parent's reaper, so a zombie
			// counts as gone: its stat state is Z.
			st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil || strings.Contains(string(st), ") Z ") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("containerd %d still alive after SIGKILL", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Fatalf("no containerd process found for %s", dir)
}

// mountedUnder reports whether anything is mounted below dir.
func mountedUnder(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatalf("read mountinfo: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			return true
		}
	}
	return false
}
