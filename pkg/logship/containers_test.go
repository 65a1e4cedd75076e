package logship

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/runtime"
)

// 200,000 lines from two real containers (containerd, runc, the shim
// starting this binary as the json-file logger) reach the endpoint's log
// store through awslogs, complete and in order, in streams named
// <prefix>/<container>/<task-id>, read back with the AWS SDK; the shippers
// follow the files while the containers write.
func TestAWSLogsFromRealContainers(t *testing.T) {
	testenv.RequireRoot(t)
	cd := testenv.Containerd(t)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "logship/gen", testenv.ImageSpec{
		Cmd: []string{"/bin/sh", "-c", `i=0; while [ $i -lt 100000 ]; do printf "line %07d\n" $i; i=$((i+1)); done`},
	})
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	resolv := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 127.0.0.53\n"), 0o644)
	rt, err := runtime.New(t.Context(), runtime.Options{
		Address: cd.Address, Namespace: cd.Namespace(t), Snapshotter: cd.Snapshotter, ConnectTimeout: 30 * time.Second,
		StateDir: filepath.Join(dir, "state"), HostResolvConf: resolv, SystemdResolvConf: filepath.Join(dir, "absent"),
		LoggerBinary: self, Registry: runtime.RegistryOptions{HostsDir: filepath.Join(dir, "certs.d")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if _, err := rt.Pull(t.Context(), img.Ref); err != nil {
		t.Fatal(err)
	}
	ls := startLogStore(t, filepath.Join(dir, "logs.db"))
	logDir := filepath.Join(dir, "logs")
	os.MkdirAll(logDir, 0o755)
	var wg sync.WaitGroup
	for _, name := range []string{"web", "worker"} {
		id := "logship-" + name
		if err := rt.Create(t.Context(), container.Spec{ID: id, Image: img.Ref, LogPath: runtime.LogPath(logDir, id),
			Log: container.LogConfig{Options: map[string]string{"max-size": "2m", "max-file": "4"}}}); err != nil {
			t.Fatal(err)
		}
		d := awslogsDriver(t, ls, awsOpts, ContainerInfo{ID: id, Name: name, TaskID: "0f1e2d3c"})
		posDir := filepath.Join(dir, "pos-"+name)
		os.MkdirAll(posDir, 0o755)
		s := startShipper(t, posDir, runtime.LogPath(logDir, id), d, nil)
		if _, err := rt.Start(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			wctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			if st, err := rt.Wait(wctx, id); err != nil {
				t.Errorf("%s did not exit: %v", name, err)
			} else if st.Code != 0 {
				t.Errorf("%s exited %d", name, st.Code)
			}
			drain(t, s)
			if err := rt.Remove(t.Context(), id); err != nil {
				t.Errorf("remove %s: %v", id, err)
			}
		}()
	}
	wg.Wait()
	for _, name := range []string{"web", "worker"} {
		checkExactly(t, ls.readStream(t, "/ecs/lab", "app/"+name+"/0f1e2d3c"), 0, 100000)
	}
}
