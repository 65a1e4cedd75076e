package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/logstore"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/logship"
)

const (
	lsRegion = "us-east-1"
	lsKeyID  = "BKAGENTTEST"
	lsSecret = "agent-test-secret"
)

// agentKey is the log store's one key: the agent's.
type agentKey struct{}

func (agentKey) Lookup(id string) (auth.Key, string, error) {
	if id != lsKeyID {
		return auth.Key{}, "", auth.ErrUnknownKey
	}
	return auth.Key{AccessKeyID: id, Role: auth.RoleAgent}, lsSecret, nil
}

// testLogStore is the cluster endpoint's CloudWatch Logs store, served on
// loopback for one test.
type testLogStore struct {
	store *logstore.Store
	addr  string
}

func startLogStore(t *testing.T) *testLogStore {
	t.Helper()
	st, err := logstore.Open(logstore.Options{Path: filepath.Join(t.TempDir(), logstore.File), Region: lsRegion, AccountID: "000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: st.Handler(&auth.Verifier{Keys: agentKey{}, Region: lsRegion, Services: []string{logstore.Service}})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
		_ = st.Close()
	})
	return &testLogStore{store: st, addr: ln.Addr().String()}
}

func (s *testLogStore) url() string { return "http://" + s.addr }

// readStream reads a whole log stream back with the AWS SDK; a stream that
// does not exist yet reads as empty.
func readStream(ctx context.Context, endpoint, group, stream string) []string {
	c := logship.NewAWSLogsClient(lsRegion, endpoint, credentials.NewStaticCredentialsProvider(lsKeyID, lsSecret, ""))
	p := cloudwatchlogs.NewGetLogEventsPaginator(c, &cloudwatchlogs.GetLogEventsInput{
		LogGroupName: aws.String(group), LogStreamName: aws.String(stream), StartFromHead: aws.Bool(true)},
		func(o *cloudwatchlogs.GetLogEventsPaginatorOptions) { o.StopOnDuplicateToken = true })
	var out []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return out
		}
		for _, e := range page.Events {
			out = append(out, aws.ToString(e.Message))
		}
	}
	return out
}

// udpReceiver collects syslog datagrams sent to a loopback port.
type udpReceiver struct {
	conn net.PacketConn
	mu   sync.Mutex
	msgs []string
}

func startUDPReceiver(t *testing.T) *udpReceiver {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &udpReceiver{conn: conn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.msgs = append(r.msgs, string(buf[:n]))
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return r
}

func (r *udpReceiver) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

func logHostConfig(t *testing.T, driver string, opts map[string]string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"LogConfig": map[string]any{"Type": driver, "Config": opts}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eventually polls cond until it holds or the timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}

// TestLogDrivers proves that the agent ships a container's output to the
// driver of its logConfiguration from the json-file: syslog to a UDP
// receiver and awslogs to the endpoint's log store (read back with the AWS
// SDK), with the shippers' counters on /metrics; and that a bad option or
// a driver missing from ECS_AVAILABLE_LOGGING_DRIVERS stops the task with
// a reason naming it.
func TestLogDrivers(t *testing.T) {
	h := newHostEnv(t)
	cfg := h.config(t)
	a, stopAgent := h.startAgent(t, cfg)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "tools/busybox:latest", testenv.ImageSpec{Cmd: []string{"/bin/sh"}})
	udp := startUDPReceiver(t)

	task := oneContainerTask("logs-"+randomHex(3), img.Ref,
		[]string{"/bin/sh", "-c", "echo sys-one; echo sys-two; echo sys-err >&2; exec sleep 600"},
		logHostConfig(t, "syslog", map[string]string{
			"syslog-address":  "udp://" + udp.conn.LocalAddr().String(),
			"syslog-format":   "rfc5424",
			"syslog-facility": "local0",
			"tag":             "berth-{{.Name}}",
		}))
	task.Containers = append(task.Containers, &api.Container{
		Name: "aws", Image: img.Ref, Essential: false, Memory: 32,
		Command: []string{"/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo aws-$i; sleep 0.05; done"},
		DockerConfig: api.RawDockerConfig{Version: "1.17", Config: "{}", HostConfig: logHostConfig(t, "awslogs", map[string]string{
			"awslogs-group":                        "/berth/agent-test",
			"awslogs-create-group":                 "true",
			"awslogs-stream-prefix":                "p",
			"awslogs-force-flush-interval-seconds": "1",
		})},
	})
	handle(t, a, payload(task))
	waitTask(t, a, task.Arn, "RUNNING", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskRunning })

	// local0 (16): info for stdout = <134>, err for stderr = <131>.
	want := []string{"<134>1 ", "berth-main", "sys-one", "sys-two"}
	if !eventually(20*time.Second, func() bool {
		got := strings.Join(udp.received(), "\n")
		return strings.Contains(got, "sys-two") && strings.Contains(got, "sys-err")
	}) {
		t.Fatalf("syslog receiver got %q, want sys-one, sys-two and sys-err", udp.received())
	}
	msgs := udp.received()
	for _, w := range want {
		if !strings.Contains(strings.Join(msgs, "\n"), w) {
			t.Fatalf("syslog messages %q lack %q", msgs, w)
		}
	}
	for _, m := range msgs {
		if strings.HasSuffix(m, "sys-err") && !strings.HasPrefix(m, "<131>1 ") {
			t.Fatalf("stderr line %q: want priority <131> (local0.err)", m)
		}
	}

	stream := "p/aws/" + engine.TaskID(task.Arn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// awaitAWS waits until the stream holds at least n lines and checks
	// they are aws-1, aws-2, ... with nothing lost or repeated.
	awaitAWS := func(n int) int {
		t.Helper()
		var events []string
		if !eventually(20*time.Second, func() bool {
			events = readStream(ctx, h.AWSLogsEndpoint, "/berth/agent-test", stream)
			return len(events) >= n
		}) {
			t.Fatalf("log store stream %s holds %d lines, want at least %d", stream, len(events), n)
		}
		for i, e := range events {
			if e != fmt.Sprintf("aws-%d", i+1) {
				t.Fatalf("log store stream %s line %d is %q, want aws-%d (lost or duplicated lines)", stream, i, e, i+1)
			}
		}
		return len(events)
	}
	awaitAWS(3)

	// The shipper counts a batch once the store has answered, which is a
	// moment after the lines can be read from the stream.
	var body []byte
	wantMetrics := []string{`berth_log_lines_shipped_total{driver="syslog"} 3`, `berth_log_lines_shipped_total{driver="awslogs"} `}
	if !eventually(20*time.Second, func() bool {
		resp, err := http.Get("http://" + a.IntrospectionAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return !slices.ContainsFunc(wantMetrics, func(w string) bool { return !strings.Contains(string(body), w) })
	}) {
		t.Fatalf("/metrics lacks one of %q:\n%s", wantMetrics, body)
	}

	// An agent restart resumes both shippers from their positions: the
	// awslogs stream goes on without a gap or a repeat, and syslog does
	// not send its three lines again.
	stopAgent()
	shipped := awaitAWS(1)
	time.Sleep(time.Second) // the container writes on while no agent runs
	a, _ = h.startAgent(t, cfg)
	awaitAWS(shipped + 40)
	if n := len(udp.received()); n != 3 {
		t.Fatalf("syslog receiver got %d messages after the restart, want 3: %q", n, udp.received())
	}

	stopped := *task
	stopped.DesiredStatus = api.StatusStopped
	handle(t, a, payload(&stopped))
	st := waitTask(t, a, task.Arn, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
	// The exited container's last lines are drained: the stream ends with
	// the json-file's last line.
	b, err := os.ReadFile(container(st, "aws").LogPath)
	if err != nil {
		t.Fatal(err)
	}
	awaitAWS(bytes.Count(b, []byte("\n")))

	refused := []struct {
		name, driver string
		opts         map[string]string
		wantReason   []string
	}{
		{"unknown option", "syslog", map[string]string{"syslog-adress": "udp://127.0.0.1:9"},
			[]string{"CannotCreateContainerError: ", `"syslog-adress"`}},
		{"bad value", "awslogs", map[string]string{"awslogs-group": "g", "awslogs-create-group": "maybe"},
			[]string{"CannotCreateContainerError: ", `"awslogs-create-group"`}},
		{"driver not available", "journald", nil,
			[]string{"CannotCreateContainerError: ", `"journald"`, "ECS_AVAILABLE_LOGGING_DRIVERS"}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			bad := oneContainerTask("badlog-"+randomHex(3), img.Ref, []string{"/bin/sh", "-c", "sleep 600"}, logHostConfig(t, tc.driver, tc.opts))
			handle(t, a, payload(bad))
			st := waitTask(t, a, bad.Arn, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
			for _, w := range tc.wantReason {
				if !strings.Contains(st.StoppedReason, w) {
					t.Fatalf("stopped reason %q, want it to contain %q", st.StoppedReason, w)
				}
			}
			if c := container(st, "main"); !c.StartedAt.IsZero() {
				t.Fatalf("container started (%v) although its log configuration was refused", c.StartedAt)
			}
		})
	}
}
