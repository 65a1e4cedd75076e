package logship

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
)

// startJournald runs Debian's systemd-journald on its own sockets and
// storage: in a private mount namespace (unshare -m) temporary directories
// are bind-mounted on /run/systemd/journal, /run/log/journal and, when it
// exists, /var/log/journal, so nothing of the host's journal is touched.
// It returns the native socket path and the journal directory.
func startJournald(t *testing.T) (socket, journalDir string) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "unshare", "journalctl", "/lib/systemd/systemd-journald")
	dir := t.TempDir()
	run, store := filepath.Join(dir, "run"), filepath.Join(dir, "journal")
	os.MkdirAll(run, 0o755)
	os.MkdirAll(store, 0o755)
	script := `set -e
mount --make-rprivate /
mkdir -p /run/systemd/journal /run/log/journal
mount --bind "$1" /run/systemd/journal
mount --bind "$2" /run/log/journal
if [ -d /var/log/journal ]; then mount --bind "$2" /var/log/journal; fi
exec /lib/systemd/systemd-journald`
	cmd := exec.Command("unshare", "-m", "sh", "-c", script, "sh", run, store)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	socket = filepath.Join(run, "socket")
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(socket); err == nil {
			return socket, store
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd-journald did not create its socket: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A real systemd-journald receives every line with the container and task
// fields, read back with journalctl CONTAINER_NAME=<name>.
func TestJournaldToSystemdJournald(t *testing.T) {
	socket, store := startJournald(t)
	info := ContainerInfo{ID: "0123456789abcdef0123", Name: "web", ImageName: "127.0.0.1:5000/app:latest",
		TaskARN: "arn:aws:ecs:us-east-1:123456789012:task/lab/f00", TaskFamily: "webfam", Cluster: "lab",
		Labels: map[string]string{"team": "blue"}, Env: []string{"STAGE=test", "SECRET=x"}}
	opts := map[string]string{"tag": "{{.Name}}-tag", "labels": "team", "env": "STAGE"}
	if err := ValidateOptions(DriverJournald, opts); err != nil {
		t.Fatal(err)
	}
	d, err := NewDriver(DriverJournald, opts, info, Deps{JournalSocket: socket})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	now := time.Now()
	big := strings.Repeat("z", 300<<10) // too large for one datagram: sent as a memfd
	msgs := []Message{
		{Line: []byte("hello journal"), Stream: "stdout", Time: now},
		{Line: []byte("bad thing"), Stream: "stderr", Time: now},
		{Line: []byte(big), Stream: "stdout", Time: now},
	}
	if n, err := d.Ship(context.Background(), msgs); n != 3 || err != nil {
		t.Fatalf("shipped %d: %v", n, err)
	}
	want := map[string]string{"CONTAINER_ID": "0123456789ab", "CONTAINER_ID_FULL": info.ID, "CONTAINER_NAME": "web",
		"CONTAINER_TAG": "web-tag", "SYSLOG_IDENTIFIER": "web-tag", "IMAGE_NAME": info.ImageName, "ECS_TASK_ARN": info.TaskARN,
		"ECS_TASK_DEFINITION_FAMILY": "webfam", "ECS_CLUSTER": "lab", "TEAM": "blue", "STAGE": "test"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := exec.Command("journalctl", "-D", store, "-o", "json", "--all", "CONTAINER_NAME=web").Output()
		var entries []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil {
				entries = append(entries, e)
			}
		}
		if err == nil && len(entries) == 3 {
			for i, e := range entries {
				for k, v := range want {
					if e[k] != v {
						t.Fatalf("entry %d: %s=%v, want %q (entry %v)", i, k, e[k], v, e)
					}
				}
				if _, ok := e["SECRET"]; ok {
					t.Fatalf("entry %d carries an env var not asked for", i)
				}
			}
			if entries[0]["MESSAGE"] != "hello journal" || entries[0]["PRIORITY"] != "6" ||
				entries[1]["MESSAGE"] != "bad thing" || entries[1]["PRIORITY"] != "3" || entries[2]["MESSAGE"] != big {
				t.Fatalf("messages/priorities wrong: %v / %v", entries[0]["PRIORITY"], entries[1]["PRIORITY"])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("journalctl CONTAINER_NAME=web found %d entries (%v):\n%.2000s", len(entries), err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
