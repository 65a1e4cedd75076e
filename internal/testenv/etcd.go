package testenv

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EtcdMaxTxnOps is the --max-txn-ops Etcd starts members with: what
// docs/cluster.md tells operators to run berth-cluster's etcd with (etcd's
// default, 128, is too small for a service scaling by a hundred tasks in
// one pass). Tests set the store's max_txn_ops to the same.
const EtcdMaxTxnOps = 1024

// EtcdCluster is a private etcd cluster on loopback (Debian's etcd-server),
// started by Etcd and stopped when the test ends.
type EtcdCluster struct {
	// Endpoints are the members' client URLs (http://127.0.0.1:PORT), in
	// member order.
	Endpoints []string
	dir       string
	members   []*etcdMember
}

type etcdMember struct {
	name    string
	client  string // client URL
	args    []string
	proc    *daemon
	logPath string
}

// Etcd starts an etcd cluster of n members (1 or more) on free loopback
// ports, with data on tmpfs (/dev/shm when present: the tests need no
// durability, and fsync on a shared disk makes every commit slow), and
// waits until every member reports healthy. When the test ends the members
// are stopped, their data removed, and a process still referring to the
// cluster's directory fails the test. Under CI=true a missing etcd fails
// the test; elsewhere it skips.
func Etcd(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	RequireBinaries(t, "etcd")
	if n < 1 {
		t.Fatalf("testenv: etcd with %d members", n)
	}
	parent := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		parent = "/dev/shm"
	}
	dir, err := os.MkdirTemp(parent, "berth-etcd-")
	if err != nil {
		t.Fatalf("testenv: etcd: %v", err)
	}
	c := &EtcdCluster{dir: dir}
	t.Cleanup(func() { c.close(t) })
	// A port found free can be taken by another process before etcd binds
	// it (seen in CI: "bind: address already in use"); such a start is
	// stopped and tried again on fresh ports, in a fresh data directory.
	for try := 0; ; try++ {
		err := c.launch(n, try)
		if err == nil {
			break
		}
		c.stopMembers(t)
		if try == 2 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("testenv: %v", err)
		}
		t.Logf("testenv: etcd start %d: %v; trying other ports", try+1, err)
	}
	return c
}

// launch starts n members on free loopback ports (try > 0: in a directory
// of its own) and waits until they are healthy.
func (c *EtcdCluster) launch(n, try int) error {
	data := c.dir
	if try > 0 {
		data = filepath.Join(c.dir, fmt.Sprintf("try%d", try))
	}
	c.members, c.Endpoints = nil, nil
	var peers []string
	for i := 0; i < n; i++ {
		cp, err1 := freeLoopbackPort()
		pp, err2 := freeLoopbackPort()
		if err1 != nil || err2 != nil {
			return fmt.Errorf("etcd ports: %v %v", err1, err2)
		}
		m := &etcdMember{name: fmt.Sprintf("m%d", i), client: fmt.Sprintf("http://127.0.0.1:%d", cp),
			logPath: filepath.Join(data, fmt.Sprintf("m%d.log", i))}
		peer := fmt.Sprintf("http://127.0.0.1:%d", pp)
		peers = append(peers, m.name+"="+peer)
		m.args = []string{"etcd", "--name", m.name, "--data-dir", filepath.Join(data, m.name),
			"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster-token", fmt.Sprintf("%s-%d", filepath.Base(c.dir), try), "--initial-cluster-state", "new",
			"--max-txn-ops", fmt.Sprint(EtcdMaxTxnOps),
			// Loopback round trips are short: elect within half a second.
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--logger", "zap", "--log-outputs", "stderr"}
		c.members = append(c.members, m)
		c.Endpoints = append(c.Endpoints, m.client)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return fmt.Errorf("etcd data: %w", err)
	}
	for _, m := range c.members {
		m.args = append(m.args, "--initial-cluster", strings.Join(peers, ","))
		if err := c.start(m); err != nil {
			return err
		}
	}
	for _, m := range c.members {
		if err := m.waitHealthy(30 * time.Second); err != nil {
			return err
		}
	}
	return nil
}

// stopMembers stops the members a failed launch started.
func (c *EtcdCluster) stopMembers(t testing.TB) {
	for _, m := range c.members {
		if m.proc == nil {
			continue
		}
		if err := m.proc.stop(5 * time.Second); err != nil {
			t.Errorf("testenv: %v", err)
		}
	}
}

func (c *EtcdCluster) start(m *etcdMember) error {
	d, err := startDaemon("etcd "+m.name, m.logPath, m.args...)
	if err != nil {
		return err
	}
	m.proc = d
	return nil
}

// waitHealthy polls the member's /health until it answers true.
func (m *etcdMember) waitHealthy(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	var last string
	for time.Now().Before(deadline) {
		if m.proc.exited() {
			return fmt.Errorf("etcd %s exited at start: %s", m.name, m.proc.logTail())
		}
		resp, err := client.Get(m.client + "/health")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			if resp.StatusCode == http.StatusOK && strings.Contains(last, `"true"`) {
				return nil
			}
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("etcd %s not healthy after %v (last: %s): %s", m.name, limit, last, m.proc.logTail())
}

// Kill ends member i with SIGKILL, as a crash does.
func (c *EtcdCluster) Kill(t testing.TB, i int) {
	t.Helper()
	m := c.members[i]
	if err := m.proc.cmd.Process.Kill(); err != nil && !m.proc.exited() {
		t.Fatalf("testenv: kill etcd %s: %v", m.name, err)
	}
	<-m.proc.done
}

// Restart starts member i again on its data directory (after Kill) and
// waits until it is healthy.
func (c *EtcdCluster) Restart(t testing.TB, i int) {
	t.Helper()
	m := c.members[i]
	if !m.proc.exited() {
		t.Fatalf("testenv: etcd %s is still running", m.name)
	}
	if err := c.start(m); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := m.waitHealthy(30 * time.Second); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// close stops every member, removes the data and fails the test if a
// process still refers to the cluster's directory.
func (c *EtcdCluster) close(t testing.TB) {
	for _, m := range c.members {
		if m.proc == nil {
			continue
		}
		if err := m.proc.stop(5 * time.Second); err != nil {
			t.Errorf("testenv: %v", err)
		}
		if t.Failed() {
			t.Logf("etcd %s log tail:\n%s", m.name, m.proc.logTail())
		}
	}
	if left, err := procsReferencing(c.dir); err != nil {
		t.Errorf("testenv: etcd leftovers: %v", err)
	} else if len(left) > 0 {
		t.Errorf("testenv: processes still refer to the etcd directory %s after teardown: %v", c.dir, left)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		t.Errorf("testenv: remove etcd data: %v", err)
	}
}
