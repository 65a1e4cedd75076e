package logship

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/logstore"
	"github.com/berth-dev/berth/pkg/logs"
)

const (
	lsRegion = "us-east-1"
	lsKeyID  = "BKAGENTKEY"
	lsSecret = "agent-secret"
)

type oneKey struct{}

func (oneKey) Lookup(id string) (auth.Key, string, error) {
	if id != lsKeyID {
		return auth.Key{}, "", auth.ErrUnknownKey
	}
	return auth.Key{AccessKeyID: id, Role: auth.RoleAgent}, lsSecret, nil
}

// logStoreServer is the endpoint's log store served on a loopback port
// that can be stopped and started again (an endpoint outage).
type logStoreServer struct {
	t     *testing.T
	store *logstore.Store
	addr  string
	mu    sync.Mutex
	srv   *http.Server
	done  chan struct{}
}

func startLogStore(t *testing.T, dbPath string) *logStoreServer {
	t.Helper()
	st, err := logstore.Open(logstore.Options{Path: dbPath, Region: lsRegion, AccountID: "123456789012"})
	if err != nil {
		t.Fatal(err)
	}
	s := &logStoreServer{t: t, store: st}
	s.up()
	t.Cleanup(func() { s.down(); st.Close() })
	return s
}

func (s *logStoreServer) up() {
	s.t.Helper()
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly after down
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen: %v", err)
	}
	s.addr = ln.Addr().String()
	srv := &http.Server{Handler: s.store.Handler(&auth.Verifier{Keys: oneKey{}, Region: lsRegion, Services: []string{logstore.Service}})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	s.mu.Lock()
	s.srv, s.done = srv, done
	s.mu.Unlock()
}

func (s *logStoreServer) down() {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
		<-done
	}
}

func (s *logStoreServer) url() string { return "http://" + s.addr }

func (s *logStoreServer) client() *cloudwatchlogs.Client {
	return NewAWSLogsClient(lsRegion, s.url(), credentials.NewStaticCredentialsProvider(lsKeyID, lsSecret, ""))
}

// readStream reads a whole stream with the SDK.
func (s *logStoreServer) readStream(t *testing.T, group, stream string) []string {
	t.Helper()
	p := cloudwatchlogs.NewGetLogEventsPaginator(s.client(), &cloudwatchlogs.GetLogEventsInput{
		LogGroupName: aws.String(group), LogStreamName: aws.String(stream), StartFromHead: aws.Bool(true)},
		func(o *cloudwatchlogs.GetLogEventsPaginatorOptions) { o.StopOnDuplicateToken = true })
	var out []string
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("read %s/%s: %v", group, stream, err)
		}
		for _, e := range page.Events {
			out = append(out, aws.ToString(e.Message))
		}
	}
	return out
}

func awslogsDriver(t *testing.T, ls *logStoreServer, opts map[string]string, info ContainerInfo) Driver {
	t.Helper()
	if err := ValidateOptions(DriverAWSLogs, opts); err != nil {
		t.Fatal(err)
	}
	d, err := NewDriver(DriverAWSLogs, opts, info, Deps{
		AWSCredentials: credentials.NewStaticCredentialsProvider(lsKeyID, lsSecret, ""), AWSRegion: lsRegion, AWSLogsEndpoint: ls.url()})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var awsOpts = map[string]string{"awslogs-group": "/ecs/lab", "awslogs-create-group": "true",
	"awslogs-stream-prefix": "app", "awslogs-force-flush-interval-seconds": "1"}

// 200,000 lines from two containers' json-files (written by pkg/logs'
// capture, as the shim logger does) arrive complete and in order in
// streams named <prefix>/<container>/<task-id>, read back with the SDK.
func TestAWSLogs200kLinesFromTwoContainers(t *testing.T) {
	dir := t.TempDir()
	ls := startLogStore(t, filepath.Join(dir, "logs.db"))
	var wg sync.WaitGroup
	for _, name := range []string{"web", "worker"} {
		cdir := filepath.Join(dir, name)
		os.MkdirAll(cdir, 0o755)
		path := filepath.Join(cdir, "c.log")
		w := startLog(t, logs.Config{Path: path, MaxSize: 4 << 20, MaxFile: 4})
		d := awslogsDriver(t, ls, awsOpts, ContainerInfo{ID: name + "-0123456789abcdef", Name: name, TaskID: "task1"})
		s := startShipper(t, cdir, path, d, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i += 5000 {
				w.write(t, i, i+5000)
				time.Sleep(10 * time.Millisecond)
			}
			w.close()
			drain(t, s)
		}()
	}
	wg.Wait()
	for _, name := range []string{"web", "worker"} {
		checkExactly(t, ls.readStream(t, "/ecs/lab", "app/"+name+"/task1"), 0, 100000)
	}
}

// A multiline pattern joins a stack trace into one event.
func TestAWSLogsMultilineJoinsStackTrace(t *testing.T) {
	dir := t.TempDir()
	ls := startLogStore(t, filepath.Join(dir, "logs.db"))
	path := filepath.Join(dir, "c.log")
	w := startLog(t, logs.Config{Path: path})
	opts := map[string]string{"awslogs-group": "g", "awslogs-create-group": "true", "awslogs-stream": "s",
		"awslogs-multiline-pattern": `^\d{4}-\d{2}-\d{2} `}
	s := startShipper(t, dir, path, awslogsDriver(t, ls, opts, ContainerInfo{ID: "c1", Name: "app"}), nil)
	trace := "2026-11-22 10:00:01 ERROR boom\njava.lang.IllegalStateException: x\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)\n"
	w.pw.Write([]byte("2026-11-22 10:00:00 INFO start\n" + trace + "2026-11-22 10:00:02 INFO after\n"))
	w.close()
	drain(t, s)
	got := ls.readStream(t, "g", "s")
	want := []string{"2026-11-22 10:00:00 INFO start", strings.TrimSuffix(trace, "\n"), "2026-11-22 10:00:02 INFO after"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events:\n%q\nwant:\n%q", got, want)
	}
}

// Events over 256 KiB are split on a character boundary, within
// CloudWatch's limits, and arrive whole when joined.
func TestAWSLogsSplitsHugeEventsOnRuneBoundary(t *testing.T) {
	dir := t.TempDir()
	ls := startLogStore(t, filepath.Join(dir, "logs.db"))
	path := filepath.Join(dir, "c.log")
	w := startLog(t, logs.Config{Path: path})
	s := startShipper(t, dir, path, awslogsDriver(t, ls, map[string]string{"awslogs-group": "g", "awslogs-create-group": "true", "awslogs-stream": "s"}, ContainerInfo{ID: "c1"}), nil)
	// A two-byte rune straddles the 262,118-byte limit (the logger's own
	// 16 KiB pieces do not cut it).
	huge := strings.Repeat("a", 262117) + "é" + strings.Repeat("b", 100000)
	w.pw.Write([]byte(huge + "\nend\n"))
	w.close()
	drain(t, s)
	got := ls.readStream(t, "g", "s")
	if len(got) != 3 || got[0]+got[1] != huge || got[2] != "end" {
		t.Fatalf("got %d events of lengths %v", len(got), lens(got))
	}
	if len(got[0]) != 262117 || !utf8.ValidString(got[0]) || !utf8.ValidString(got[1]) {
		t.Fatalf("split at %d bytes (valid UTF-8: %v %v), want before the rune at 262117", len(got[0]), utf8.ValidString(got[0]), utf8.ValidString(got[1]))
	}
}

// With the endpoint stopped for 30 s the container keeps writing (its
// writes never wait for the shipper) and every line arrives once the
// endpoint returns.
func TestAWSLogsEndpointDown30s(t *testing.T) {
	dir := t.TempDir()
	ls := startLogStore(t, filepath.Join(dir, "logs.db"))
	path := filepath.Join(dir, "c.log")
	w := startLog(t, logs.Config{Path: path, MaxSize: 1 << 20, MaxFile: 10})
	s := startShipper(t, dir, path, awslogsDriver(t, ls, awsOpts, ContainerInfo{ID: "c1", Name: "web", TaskID: "t9"}),
		func(o *Options) { o.MaxBackoff = 2 * time.Second })
	w.write(t, 0, 1000)
	waitFor(t, "first lines", func() bool { return s.Stats().Shipped >= 1000 })
	ls.down()
	outageEnd := time.Now().Add(30 * time.Second)
	n := 1000
	for time.Now().Before(outageEnd) {
		start := time.Now()
		w.write(t, n, n+500)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("a write during the outage took %v", d)
		}
		n += 500
		time.Sleep(500 * time.Millisecond)
	}
	if s.Stats().Retries == 0 {
		t.Fatal("no failed attempt during the outage")
	}
	ls.up()
	w.close()
	drain(t, s)
	checkExactly(t, ls.readStream(t, "/ecs/lab", "app/web/t9"), 0, n)
	t.Logf("%d lines, %d retries during the outage", n, s.Stats().Retries)
}

// TestHelperShipper is the body of the child process that
// TestAWSLogsSIGKILLMidwayNoLossNoDuplicates kills; it does nothing when run
// on its own.
func TestHelperShipper(t *testing.T) {
	if os.Getenv("LOGSHIP_HELPER") != "1" {
		t.Skip("helper process only")
	}
	path, endpoint := os.Getenv("LOGSHIP_PATH"), os.Getenv("LOGSHIP_ENDPOINT")
	opts := map[string]string{"awslogs-group": "g", "awslogs-create-group": "true", "awslogs-stream": "s", "awslogs-max-buffered-events": "500"}
	d, err := NewDriver(DriverAWSLogs, opts, ContainerInfo{ID: "c1"}, Deps{
		AWSCredentials: credentials.NewStaticCredentialsProvider(lsKeyID, lsSecret, ""), AWSRegion: lsRegion, AWSLogsEndpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), Options{Path: path, Positions: &FilePositions{Path: path + ".pos"}, Driver: d, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	drain(t, s)
}

// An agent killed with SIGKILL while shipping loses and duplicates
// nothing: the next shipper resumes from the persisted position and asks
// the log store what of the in-flight batch arrived.
func TestAWSLogsSIGKILLMidwayNoLossNoDuplicates(t *testing.T) {
	dir := t.TempDir()
	ls := startLogStore(t, filepath.Join(dir, "logs.db"))
	path := filepath.Join(dir, "c.log")
	w := startLog(t, logs.Config{Path: path, MaxSize: 8 << 20, MaxFile: 4})
	const total = 100000
	w.write(t, 0, total)
	w.close()
	kills, inFlight := 0, 0
	for round := 0; ; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperShipper$", "-test.count=1")
		cmd.Env = append(os.Environ(), "LOGSHIP_HELPER=1", "LOGSHIP_PATH="+path, "LOGSHIP_ENDPOINT="+ls.url())
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if round >= 3 {
			if err := cmd.Wait(); err != nil {
				t.Fatalf("last helper: %v\n%s", err, out)
			}
			break
		}
		// Kill it once the stream has grown by some thousands of lines.
		target := (round + 1) * total / 5
		deadline := time.Now().Add(60 * time.Second)
		for streamLen(ls) < target && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
			kills++
			if st, _, _ := (&FilePositions{Path: path + ".pos"}).Load(); st.InFlight != nil {
				inFlight++
			}
		}
	}
	if kills == 0 {
		t.Fatal("no helper was killed mid-way")
	}
	checkExactly(t, ls.readStream(t, "g", "s"), 0, total)
	t.Logf("%d SIGKILLs mid-way, %d with a batch in flight", kills, inFlight)
}

// streamLen is how many lines the stream holds: its last event is
// "line <n>" and lines arrive in order.
func streamLen(ls *logStoreServer) int {
	out, err := ls.client().GetLogEvents(context.Background(), &cloudwatchlogs.GetLogEventsInput{
		LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), Limit: aws.Int32(1)})
	if err != nil || len(out.Events) == 0 {
		return 0
	}
	var n int
	fmt.Sscanf(aws.ToString(out.Events[0].Message), "line %d", &n)
	return n + 1
}
