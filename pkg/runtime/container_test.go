package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/container"
)

func TestEntrypointCommandEnvUserWorkdirFollowDocker(t *testing.T) {
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/semantics", testenv.ImageSpec{
		Entrypoint: []string{"/bin/echo", "image-entrypoint"},
		Cmd:        []string{"image-cmd"},
		Env:        []string{"FROM_IMAGE=yes", "OVERRIDE=image"},
		WorkingDir: "/tmp",
	})
	userImg := testenv.BuildImage(t, reg, "rt/semantics-user", testenv.ImageSpec{
		Cmd: []string{"/bin/sh", "-c", "echo $(id -u):$(id -g) $(pwd)"}, User: "app",
	})
	tr.pull(t, img.Ref)
	tr.pull(t, userImg.Ref)
	sh := func(script string) []string { return []string{"/bin/sh", "-c", script} }
	cases := []struct {
		name string
		spec container.Spec
		want string
	}{
		{"image ENTRYPOINT and CMD", container.Spec{}, "image-entrypoint image-cmd"},
		{"command replaces CMD, keeps ENTRYPOINT", container.Spec{Command: []string{"given-cmd"}}, "image-entrypoint given-cmd"},
		{"entrypoint replaces ENTRYPOINT and drops CMD", container.Spec{Entrypoint: []string{"/bin/echo", "given-entry"}}, "given-entry"},
		{"entrypoint and command", container.Spec{Entrypoint: []string{"/bin/echo", "given-entry"}, Command: []string{"given-cmd"}}, "given-entry given-cmd"},
		{"image env merged with spec env", container.Spec{Entrypoint: sh("echo $FROM_IMAGE $OVERRIDE $ADDED")}, "yes image"},
		{"spec env overrides image env", container.Spec{Entrypoint: sh("echo $FROM_IMAGE $OVERRIDE $ADDED"), Env: []string{"OVERRIDE=spec", "ADDED=1"}}, "yes spec 1"},
		{"image PATH kept", container.Spec{Entrypoint: sh("echo $PATH")}, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		{"image WORKDIR", container.Spec{Entrypoint: sh("pwd")}, "/tmp"},
		{"spec working dir", container.Spec{Entrypoint: sh("pwd"), WorkingDir: "/etc"}, "/etc"},
		{"default user is root", container.Spec{Entrypoint: sh("echo $(id -u):$(id -g)")}, "0:0"},
		{"user by name", container.Spec{Entrypoint: sh("echo $(id -u):$(id -g)"), User: "app"}, "1000:1000"},
		{"user by uid takes the passwd group", container.Spec{Entrypoint: sh("echo $(id -u):$(id -g)"), User: "1000"}, "1000:1000"},
		{"uid:gid", container.Spec{Entrypoint: sh("echo $(id -u):$(id -g)"), User: "65534:1000"}, "65534:1000"},
		{"name:group", container.Spec{Entrypoint: sh("echo $(id -u):$(id -g)"), User: "nobody:app"}, "65534:1000"},
		{"image USER", container.Spec{Image: userImg.Ref}, "1000:1000 /"},
		{"spec user overrides image USER", container.Spec{Image: userImg.Ref, User: "root"}, "0:0 /"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := c.spec
			if spec.Image == "" {
				spec.Image = img.Ref
			}
			st, out := tr.run(t, spec)
			if st.ExitCode != 0 {
				t.Fatalf("exit %d, stderr %q", st.ExitCode, out.stderr)
			}
			if got := strings.TrimSpace(out.stdout); got != c.want {
				t.Errorf("output %q, want %q", got, c.want)
			}
		})
	}
	t.Run("an existing ID is refused and left intact", func(t *testing.T) {
		spec := container.Spec{ID: "dup", Image: img.Ref}
		tr.create(t, &spec)
		defer tr.Remove(t.Context(), "dup")
		if err := tr.Create(t.Context(), spec); !errors.Is(err, ErrContainerExists) {
			t.Fatalf("second Create = %v, want ErrContainerExists", err)
		}
		st, out := tr.runExisting(t, "dup")
		if st.ExitCode != 0 || strings.TrimSpace(out.stdout) != "image-entrypoint image-cmd" {
			t.Errorf("the first container was damaged: exit %+v, output %q", st, out.stdout)
		}
	})
	t.Run("unknown user is an error", func(t *testing.T) {
		err := tr.Create(t.Context(), container.Spec{ID: "baduser", Image: img.Ref, User: "ghost"})
		if err == nil {
			t.Fatal("Create with a user missing from the image succeeded")
		}
		if err := tr.Remove(t.Context(), "baduser"); err != nil {
			t.Errorf("Remove after failed Create: %v", err)
		}
	})
}

// cgroupFile returns the host path of a cgroup file of a container.
func (tr *testRuntime) cgroupFile(t *testing.T, id, v1Controller, file string) string {
	t.Helper()
	c, err := tr.Client().LoadContainer(tr.withNS(t.Context()), id)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Spec(tr.withNS(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if cgroups.Mode() == cgroups.Unified {
		return filepath.Join("/sys/fs/cgroup", s.Linux.CgroupsPath, file)
	}
	return filepath.Join("/sys/fs/cgroup", v1Controller, s.Linux.CgroupsPath, file)
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return strings.TrimSpace(string(b))
}

func TestLimitsAreEnforced(t *testing.T) {
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/limits", testenv.ImageSpec{Cmd: []string{"/bin/sh", "-c", "sleep 300"}})
	tr.pull(t, img.Ref)

	t.Run("memory limit OOM-kills and is reported", func(t *testing.T) {
		// tail keeps an ever-growing "line" from /dev/zero in memory.
		st, _ := tr.run(t, container.Spec{Image: img.Ref, Command: []string{"/bin/tail", "/dev/zero"},
			MemoryLimit: 32 << 20})
		if !st.OOMKilled || st.ExitCode != 137 {
			t.Errorf("exit = %+v, want OOMKilled with code 137", st)
		}
	})
	t.Run("a normal exit is not OOM", func(t *testing.T) {
		st, _ := tr.run(t, container.Spec{Image: img.Ref, Command: []string{"/bin/sh", "-c", "exit 3"},
			MemoryLimit: 32 << 20})
		if st.OOMKilled || st.ExitCode != 3 {
			t.Errorf("exit = %+v, want code 3 without OOM", st)
		}
	})
	t.Run("cpu shares, memory limit, swap and reservation in the cgroup", func(t *testing.T) {
		spec := container.Spec{Image: img.Ref, CPUShares: 512, MemoryLimit: 64 << 20, MemoryReservation: 48 << 20}
		id := tr.create(t, &spec)
		defer tr.Remove(t.Context(), id)
		if _, err := tr.Start(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		if cgroups.Mode() == cgroups.Unified {
			checks := map[string]string{"memory.max": "67108864", "memory.low": "50331648", "memory.swap.max": "0"}
			for f, want := range checks {
				if got := readTrim(t, tr.cgroupFile(t, id, "", f)); got != want {
					t.Errorf("%s = %s, want %s", f, got, want)
				}
			}
			// runc maps shares 512 to weight 1+((512-2)*9999)/262142 = 20.
			if got := readTrim(t, tr.cgroupFile(t, id, "", "cpu.weight")); got != "20" {
				t.Errorf("cpu.weight = %s, want 20 (shares 512)", got)
			}
			return
		}
		checks := []struct{ ctrl, file, want string }{
			{"cpu", "cpu.shares", "512"},
			{"memory", "memory.limit_in_bytes", "67108864"},
			{"memory", "memory.soft_limit_in_bytes", "50331648"},
			{"memory", "memory.memsw.limit_in_bytes", "67108864"},
		}
		for _, c := range checks {
			if got := readTrim(t, tr.cgroupFile(t, id, c.ctrl, c.file)); got != c.want {
				t.Errorf("%s = %s, want %s", c.file, got, c.want)
			}
		}
	})
	t.Run("ulimit nofile", func(t *testing.T) {
		st, out := tr.run(t, container.Spec{Image: img.Ref, Command: []string{"/bin/sh", "-c", "ulimit -n; ulimit -Hn"},
			Ulimits: []container.Ulimit{{Name: "nofile", Soft: 1234, Hard: 2345}}})
		if st.ExitCode != 0 || out.stdout != "1234\n2345\n" {
			t.Errorf("exit %d, output %q; want 1234 and 2345", st.ExitCode, out.stdout)
		}
	})
	t.Run("read-only root filesystem", func(t *testing.T) {
		st, out := tr.run(t, container.Spec{Image: img.Ref, Command: []string{"/bin/sh", "-c", "touch /newfile && echo wrote; touch /tmp/x2 && echo tmp-ok"},
			ReadonlyRootfs: true, Tmpfs: []container.Tmpfs{{Path: "/tmp", Options: "size=1m"}}})
		if strings.Contains(out.stdout, "wrote") || !strings.Contains(out.stderr, "Read-only file system") {
			t.Errorf("write to read-only root: stdout %q stderr %q", out.stdout, out.stderr)
		}
		if !strings.Contains(out.stdout, "tmp-ok") || st.ExitCode != 0 {
			t.Errorf("tmpfs on a read-only root is not writable: exit %d, stdout %q", st.ExitCode, out.stdout)
		}
	})
	t.Run("privileged refused when disabled", func(t *testing.T) {
		tr2 := newTestRuntime(t, func(o *Options) { o.DisablePrivileged = true })
		tr2.pull(t, img.Ref)
		err := tr2.Create(t.Context(), container.Spec{ID: "priv", Image: img.Ref, Privileged: true})
		if !errors.Is(err, ErrPrivilegedDisabled) {
			t.Errorf("Create privileged = %v, want ErrPrivilegedDisabled", err)
		}
	})
	t.Run("unsupported settings are named", func(t *testing.T) {
		unsupported := map[string]container.Spec{
			"init":   {ID: "u1", Image: img.Ref, Init: true},
			"ulimit": {ID: "u2", Image: img.Ref, Ulimits: []container.Ulimit{{Name: "bogus"}}},
			"capAdd": {ID: "u3", Image: img.Ref, CapAdd: []string{"FLY"}},
		}
		// A security module the host lacks refuses its option.
		lsm := hostLSMs()
		if !lsm.apparmor {
			unsupported["apparmor:berth-test"] = container.Spec{ID: "u4", Image: img.Ref, AppArmorProfile: "berth-test"}
		}
		if !lsm.selinux {
			unsupported["label:type:spc_t"] = container.Spec{ID: "u5", Image: img.Ref, SELinuxOptions: []string{"type:spc_t"}}
		}
		for name, spec := range unsupported {
			err := tr.Create(t.Context(), spec)
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), name) {
				t.Errorf("%s: Create = %v, want ErrUnsupported naming %q", name, err, name)
			}
		}
	})
}

func TestStopSignalsAndTimeouts(t *testing.T) {
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	stubborn := testenv.BuildImage(t, reg, "rt/stubborn", testenv.ImageSpec{
		Cmd: []string{"/bin/sh", "-c", `trap "echo got-term" TERM; echo ready; while true; do sleep 0.1; done`},
	})
	polite := testenv.BuildImage(t, reg, "rt/polite", testenv.ImageSpec{
		StopSignal: "SIGUSR1",
		Cmd:        []string{"/bin/sh", "-c", `trap "echo got-usr1; exit 0" USR1; echo ready; while true; do sleep 0.1; done`},
	})
	tr.pull(t, stubborn.Ref)
	tr.pull(t, polite.Ref)

	startReady := func(t *testing.T, spec container.Spec) (string, <-chan ExitStatus) {
		id := tr.create(t, &spec)
		ch, _, err := tr.startWatch(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; !strings.Contains(tr.logsOf(t, id).stdout, "ready"); i++ {
			if i > 200 {
				t.Fatal("container never printed ready")
			}
			time.Sleep(50 * time.Millisecond)
		}
		return id, ch
	}

	t.Run("ignoring SIGTERM means SIGKILL after the timeout", func(t *testing.T) {
		id, ch := startReady(t, container.Spec{Image: stubborn.Ref})
		defer tr.Remove(t.Context(), id)
		const timeout = 2 * time.Second
		began := time.Now()
		if err := tr.Stop(t.Context(), id, timeout); err != nil {
			t.Fatal(err)
		}
		took := time.Since(began)
		st := waitExit(t, ch, 30*time.Second)
		if st.ExitCode != 137 {
			t.Errorf("exit code %d, want 137 (SIGKILL)", st.ExitCode)
		}
		if took < timeout {
			t.Errorf("Stop returned after %s, before the %s timeout", took, timeout)
		}
		// Generous bound: it must be the timeout that ended it, not some
		// other mechanism minutes later.
		if took > timeout+15*time.Second {
			t.Errorf("Stop took %s for a %s timeout", took, timeout)
		}
		if !strings.Contains(tr.logsOf(t, id).stdout, "got-term") {
			t.Error("the container never received SIGTERM")
		}
	})
	t.Run("image STOPSIGNAL is used", func(t *testing.T) {
		id, ch := startReady(t, container.Spec{Image: polite.Ref})
		defer tr.Remove(t.Context(), id)
		if err := tr.Stop(t.Context(), id, time.Minute); err != nil {
			t.Fatal(err)
		}
		st := waitExit(t, ch, 30*time.Second)
		if st.ExitCode != 0 || !strings.Contains(tr.logsOf(t, id).stdout, "got-usr1") {
			t.Errorf("exit %+v, output %q; want a clean exit on SIGUSR1", st, tr.logsOf(t, id).stdout)
		}
	})
	t.Run("stop and remove are idempotent", func(t *testing.T) {
		for range 2 {
			if err := tr.Stop(t.Context(), "never-existed", time.Second); err != nil {
				t.Errorf("Stop of a missing container: %v", err)
			}
			if err := tr.Remove(t.Context(), "never-existed"); err != nil {
				t.Errorf("Remove of a missing container: %v", err)
			}
		}
	})
}

func TestExecStatsListAttach(t *testing.T) {
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/ops", testenv.ImageSpec{Cmd: []string{"/bin/sh", "-c", "while true; do sleep 0.1; done"}})
	tr.pull(t, img.Ref)
	spec := container.Spec{Image: img.Ref, Labels: map[string]string{"test.group": "ops", "test.role": "main"},
		Hostname: "ops-host", ExtraHosts: []string{"db:10.9.8.7"}, DNSSearch: []string{"svc.test"}}
	id := tr.create(t, &spec)
	defer tr.Remove(t.Context(), id)
	ch, _, err := tr.startWatch(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}

	res, err := tr.ExecWith(t.Context(), id, ExecOptions{Args: []string{"/bin/sh", "-c", "hostname; cat /etc/resolv.conf /etc/hosts; echo err >&2; exit 3"}, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.Output)
	if res.ExitCode != 3 {
		t.Errorf("exec exit code %d, want 3", res.ExitCode)
	}
	for _, want := range []string{"ops-host", "search svc.test", "10.9.8.7\tdb", "err", "nameserver 8.8.8.8"} {
		if !strings.Contains(out, want) {
			t.Errorf("exec output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "127.0.0.53") {
		t.Errorf("the host's systemd-resolved stub leaked into a container with its own netns:\n%s", out)
	}
	began := time.Now()
	_, err = tr.ExecWith(t.Context(), id, ExecOptions{Args: []string{"/bin/sleep", "30"}, Timeout: 500 * time.Millisecond})
	if !errors.Is(err, ErrExecTimeout) {
		t.Errorf("exec past its timeout: %v, want ErrExecTimeout", err)
	}
	if time.Since(began) > 20*time.Second {
		t.Errorf("timed-out exec returned after %s", time.Since(began))
	}

	st, err := tr.Stats(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUUsageNanos == 0 || st.MemoryUsageBytes == 0 || st.Pids == 0 {
		t.Errorf("stats look empty: %+v", st)
	}

	list, err := tr.Containers(t.Context(), map[string]string{"test.group": "ops", "test.role": "main"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != id || list[0].State != TaskRunning {
		t.Errorf("List by labels = %+v, want only %s running", list, id)
	}
	if list, _ := tr.Containers(t.Context(), map[string]string{"test.group": "other"}); len(list) != 0 {
		t.Errorf("List with a non-matching label = %+v", list)
	}

	// A second Runtime stands in for the restarted agent: it re-attaches,
	// and the first one's monitor keeps working too.
	tr2, err := New(t.Context(), tr.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	ch2, err := tr2.Attach(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr2.Stop(t.Context(), id, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	st2 := waitExit(t, ch2, 30*time.Second)
	st1 := waitExit(t, ch, 30*time.Second)
	if st2.ExitCode != st1.ExitCode || st2.ExitedAt.IsZero() {
		t.Errorf("re-attached exit %+v differs from original %+v", st2, st1)
	}
	// Attaching after the exit delivers the recorded exit at once.
	ch3, err := tr2.Attach(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if st3 := waitExit(t, ch3, 10*time.Second); st3.ExitCode != st1.ExitCode {
		t.Errorf("attach after exit: %+v, want %+v", st3, st1)
	}
	if list, _ := tr.Containers(t.Context(), map[string]string{"test.group": "ops"}); len(list) != 1 || list[0].Exit == nil || list[0].State != TaskNone {
		t.Errorf("List after exit = %+v, want the recorded exit and no task", list)
	}
	if _, err := tr.ExecWith(t.Context(), id, ExecOptions{Args: []string{"/bin/true"}}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("exec in a stopped container: %v, want ErrNotRunning", err)
	}
}

func TestCapabilitiesAndJoinedNetworkNamespace(t *testing.T) {
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/caps", testenv.ImageSpec{
		Cmd:   []string{"/bin/sh", "-c", "grep CapEff /proc/self/status"},
		Files: []testenv.File{{Path: "/srv/index.html", Mode: 0o644, Data: []byte("netns-ok")}},
	})
	tr.pull(t, img.Ref)

	capEff := func(t *testing.T, sec container.Spec) uint64 {
		t.Helper()
		sec.Image = img.Ref
		st, out := tr.run(t, sec)
		var v uint64
		if _, err := fmt.Sscanf(strings.TrimSpace(out.stdout), "CapEff:\t%x", &v); err != nil || st.ExitCode != 0 {
			t.Fatalf("CapEff output %q (exit %d): %v", out.stdout, st.ExitCode, err)
		}
		return v
	}
	const chown, netAdmin, sysAdmin = 1 << 0, 1 << 12, 1 << 21
	def := capEff(t, container.Spec{})
	if def&chown == 0 || def&netAdmin != 0 || def&sysAdmin != 0 {
		t.Errorf("default capabilities %x: want CHOWN without NET_ADMIN and SYS_ADMIN", def)
	}
	if got := capEff(t, container.Spec{CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"chown"}}); got&netAdmin == 0 || got&chown != 0 {
		t.Errorf("capAdd NET_ADMIN, capDrop chown: %x", got)
	}
	if got := capEff(t, container.Spec{CapDrop: []string{"ALL"}, CapAdd: []string{"CAP_CHOWN"}}); got != chown {
		t.Errorf("drop ALL, add CHOWN: %x, want only CHOWN", got)
	}
	if got := capEff(t, container.Spec{Privileged: true}); got&sysAdmin == 0 || got&netAdmin == 0 {
		t.Errorf("privileged capabilities %x lack SYS_ADMIN or NET_ADMIN", got)
	}

	// A server bound to loopback in one container is reachable from a
	// second container only when it joins the first one's namespace.
	server := container.Spec{Image: img.Ref, Command: []string{"/bin/httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/srv"}}
	sid := tr.create(t, &server)
	defer tr.Remove(t.Context(), sid)
	if _, err := tr.Start(t.Context(), sid); err != nil {
		t.Fatal(err)
	}
	list, err := tr.Containers(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var pid uint32
	for _, c := range list {
		if c.ID == sid {
			pid = c.Pid
		}
	}
	if pid == 0 {
		t.Fatalf("no pid for the server container in %+v", list)
	}
	client := `for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://127.0.0.1:8080/ && exit 0; sleep 0.3; done; exit 1`
	st, out := tr.run(t, container.Spec{Image: img.Ref, Command: []string{"/bin/sh", "-c", client}, NetNSPath: fmt.Sprintf("/proc/%d/ns/net", pid)})
	if st.ExitCode != 0 || out.stdout != "netns-ok" {
		t.Errorf("client in the joined namespace: exit %d, output %q, stderr %q", st.ExitCode, out.stdout, out.stderr)
	}
	st, _ = tr.run(t, container.Spec{Image: img.Ref, Command: []string{"/bin/sh", "-c", strings.Replace(client, "1 2 3 4 5 6 7 8 9 10", "1", 1)}})
	if st.ExitCode == 0 {
		t.Error("a container with its own namespace reached the other container's loopback server")
	}
}

// TestExitWhileAgentDownAndRestart covers an exit nobody was watching: the
// Runtime that started the container is closed (agent gone) and the
// container exits. A new Runtime either attaches and gets the exit, or
// starts the container again straight away over the stale stopped task.
func TestExitWhileAgentDownAndRestart(t *testing.T) {
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/restart", testenv.ImageSpec{Cmd: []string{"/bin/sh", "-c", "sleep 1; echo run; exit 4"}})
	tr.pull(t, img.Ref)
	for _, attachFirst := range []bool{true, false} {
		gone, err := New(t.Context(), tr.opts)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("restart-%t", attachFirst)
		spec := container.Spec{ID: id, Image: img.Ref, LogPath: LogPath(tr.logDir, id)}
		if err := gone.Create(t.Context(), spec); err != nil {
			t.Fatal(err)
		}
		defer tr.Remove(t.Context(), spec.ID)
		ch, _, err := gone.startWatch(t.Context(), spec.ID)
		if err != nil {
			t.Fatal(err)
		}
		gone.Close()
		if _, ok := <-ch; ok {
			t.Fatal("the closed Runtime delivered an exit it could not have seen")
		}
		for i := 0; ; i++ {
			list, err := tr.Containers(t.Context(), map[string]string{})
			if err != nil {
				t.Fatal(err)
			}
			stopped := false
			for _, c := range list {
				stopped = stopped || (c.ID == spec.ID && c.State == TaskStopped)
			}
			if stopped {
				break
			}
			if i > 300 {
				t.Fatalf("container never stopped: %+v", list)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if attachFirst {
			ch, err = tr.Attach(t.Context(), spec.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st := waitExit(t, ch, 10*time.Second); st.ExitCode != 4 {
				t.Errorf("exit found on attach = %+v, want code 4", st)
			}
		}
		ch, _, err = tr.startWatch(t.Context(), spec.ID)
		if err != nil {
			t.Fatalf("start again (attach first: %t): %v", attachFirst, err)
		}
		if st := waitExit(t, ch, time.Minute); st.ExitCode != 4 {
			t.Errorf("second run exit = %+v, want code 4", st)
		}
		if out := tr.logsOf(t, spec.ID).stdout; out != "run\nrun\n" {
			t.Errorf("log of two runs = %q", out)
		}
	}
}

func TestMountsShmAndSysctls(t *testing.T) {
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/mounts", testenv.ImageSpec{Cmd: []string{"/bin/true"}})
	tr.pull(t, img.Ref)
	ro, rw := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(ro, "seen"), []byte("from-host"), 0o644)
	script := `cat /ro/seen; echo
touch /ro/new 2>/dev/null && echo ro-writable || echo ro-refused
echo from-container > /rw/out && echo rw-ok
df -k /dev/shm | tail -1 | awk '{print "shm", $2}'
df -k /scratch | tail -1 | awk '{print "scratch", $2}'
cat /proc/sys/net/ipv4/ip_local_port_range`
	st, out := tr.run(t, container.Spec{Image: img.Ref, Command: []string{"/bin/sh", "-c", script},
		Mounts:  []container.Mount{{Source: ro, Destination: "/ro", ReadOnly: true}, {Source: rw, Destination: "/rw"}},
		ShmSize: 8 << 20,
		Tmpfs:   []container.Tmpfs{{Path: "/scratch", Options: "size=4m"}},
		Sysctls: map[string]string{"net.ipv4.ip_local_port_range": "40000 41000"}})
	if st.ExitCode != 0 {
		t.Fatalf("exit %+v, stderr %q", st, out.stderr)
	}
	want := "from-host\nro-refused\nrw-ok\nshm 8192\nscratch 4096\n40000\t41000\n"
	if out.stdout != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.stdout, want)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "out")); err != nil || string(b) != "from-container\n" {
		t.Errorf("file written through the rw bind mount: %q, %v", b, err)
	}
}
