package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-dev/berth/internal/testenv"
)

// syncBuffer is written by the serving goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startServe runs `berth-cluster serve` in-process until the returned stop
// is called; stop returns the exit code.
func startServe(t *testing.T, cfgPath, addr string) func() int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", cfgPath}, &bytes.Buffer{}, stderr) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		select {
		case code := <-done:
			cancel()
			t.Fatalf("serve exited with %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not listen on %s: %s", addr, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	code := -1
	stop := func() int {
		once.Do(func() {
			cancel()
			code = <-done
			if code != 0 {
				t.Errorf("serve exit code %d: %s", code, stderr.String())
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return stop
}

func keysCmd(t *testing.T, dataDir string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"keys", args[0], "--data-dir", dataDir}, args[1:]...)
	code := run(context.Background(), full, &out, &errb)
	return out.String(), errb.String(), code
}

var credRE = regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+)\nAWS_SECRET_ACCESS_KEY=(\S+)\n`)

func TestServeKeysAndRestart(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	addr := freePort(t)
	cfg := filepath.Join(dir, "cluster.toml")
	doc := fmt.Sprintf("listen = %q\ninsecure_http = true\nregion = \"us-test-1\"\naccount_id = \"123456789012\"\ndata_dir = %q\n", addr, dataDir)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	stop := startServe(t, cfg, addr)

	// While serve runs, keys go through its admin socket.
	out, errOut, code := keysCmd(t, dataDir, "create", "--role", "admin")
	m := credRE.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("keys create: code %d out %q err %q", code, out, errOut)
	}
	client := ecs.New(ecs.Options{Region: "us-test-1", BaseEndpoint: aws.String("http://" + addr),
		Credentials: credentials.NewStaticCredentialsProvider(m[1], m[2], ""), HTTPClient: awshttp.NewBuildableClient(), Retryer: aws.NopRetryer{}})
	ctx := context.Background()
	if _, err := client.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("prod")}); err != nil {
		t.Fatalf("CreateCluster with the printed key: %v", err)
	}
	// The ACS session server is wired on GET /ws: an unsigned handshake
	// gets an AWS error, not a 404.
	resp, err := http.Get("http://" + addr + "/ws?clusterArn=prod")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.Header.Get("X-Amzn-ErrorType") == "" {
		t.Errorf("GET /ws unsigned: HTTP %d %q, want an AWS auth error from the session server", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
	// The CloudWatch Logs store is served on the same listener (service "logs").
	logsClient := cloudwatchlogs.New(cloudwatchlogs.Options{Region: "us-test-1", BaseEndpoint: aws.String("http://" + addr),
		Credentials: credentials.NewStaticCredentialsProvider(m[1], m[2], ""), HTTPClient: awshttp.NewBuildableClient(), Retryer: aws.NopRetryer{}})
	if _, err := logsClient.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("/ecs/web")}); err != nil {
		t.Fatalf("CreateLogGroup on the served log store: %v", err)
	}
	groups, err := logsClient.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{})
	if err != nil || len(groups.LogGroups) != 1 || aws.ToString(groups.LogGroups[0].LogGroupName) != "/ecs/web" {
		t.Fatalf("DescribeLogGroups = %+v, %v; want the one group /ecs/web", groups, err)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit code after cancel = %d, want 0", code)
	}

	// Restarted, it still knows the key and the cluster.
	stop = startServe(t, cfg, addr)
	lc, err := client.ListClusters(ctx, &ecs.ListClustersInput{})
	if err != nil || len(lc.ClusterArns) != 1 || lc.ClusterArns[0] != "arn:aws:ecs:us-test-1:123456789012:cluster/prod" {
		t.Fatalf("ListClusters after restart = %v, %v", lc, err)
	}
	list, _, code := keysCmd(t, dataDir, "list")
	if code != 0 || !strings.Contains(list, m[1]) || !strings.Contains(list, "admin") || strings.Contains(list, m[2]) {
		t.Fatalf("keys list = %q (code %d): want the id and role and never the secret", list, code)
	}
	if _, errOut, code := keysCmd(t, dataDir, "revoke", m[1]); code != 0 {
		t.Fatalf("keys revoke: %d %s", code, errOut)
	}
	if _, err := client.ListClusters(ctx, &ecs.ListClustersInput{}); err == nil || !strings.Contains(err.Error(), "UnrecognizedClientException") {
		t.Fatalf("revoked key still accepted: %v", err)
	}
	stop()

	// With serve stopped, keys work on the store file directly.
	out, _, code = keysCmd(t, dataDir, "create", "--role", "agent")
	if code != 0 || !credRE.MatchString(out) {
		t.Fatalf("keys create offline: %d %q", code, out)
	}
	if st, err := os.Stat(filepath.Join(dataDir, "master.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("master.key: %v %v, want mode 0600", st, err)
	}
}

func TestUsageAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "cluster.toml")
	os.WriteFile(bad, []byte("insecure_http = true\naccount_id = \"12\"\n"), 0o600)
	cases := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{nil, 2, "usage:"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"serve", "--config", bad}, 1, bad + ":2: account_id:"},
		{[]string{"serve", "--config", filepath.Join(dir, "missing.toml")}, 1, "no such file"},
		{[]string{"keys", "create", "--role", "root", "--data-dir", filepath.Join(dir, "d")}, 2, "--role"},
		{[]string{"keys"}, 2, "subcommand"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(context.Background(), c.args, &out, &errb)
		if code != c.wantCode || !strings.Contains(errb.String(), c.wantErr) {
			t.Errorf("%v: code %d stderr %q; want %d containing %q", c.args, code, errb.String(), c.wantCode, c.wantErr)
		}
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, &out, &bytes.Buffer{}); code != 0 || !strings.HasPrefix(out.String(), "berth-cluster ") {
		t.Errorf("--version: %d %q", code, out.String())
	}
}

// TestServeOnEtcd: two serve processes configured with store = "etcd" on
// one real etcd serve one cluster; `keys` works on etcd with no replica
// running; a replica with another key-encryption key refuses to start.
func TestServeOnEtcd(t *testing.T) {
	etcd := testenv.Etcd(t, 1)
	dir := t.TempDir()
	kek := filepath.Join(dir, "cluster.kek")
	if err := os.WriteFile(kek, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	writeCfg := func(name, addr, kekFile string) string {
		t.Helper()
		cfg := filepath.Join(dir, name+".toml")
		doc := fmt.Sprintf(`listen = %q
insecure_http = true
region = "us-test-1"
account_id = "123456789012"
data_dir = %q
store = "etcd"
[etcd]
endpoints = [%q]
prefix = "/berth/cmd-test/"
kek_file = %q
replica = %q
lease_ttl = 2
`, addr, filepath.Join(dir, name), etcd.Endpoints[0], kekFile, name)
		if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	addrA, addrB := freePort(t), freePort(t)
	cfgA, cfgB := writeCfg("a", addrA, kek), writeCfg("b", addrB, kek)

	// No replica runs: keys are created in etcd directly.
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"keys", "create", "--role", "admin", "--config", cfgA}, &out, &errb); code != 0 {
		t.Fatalf("keys create on etcd: %d %s", code, errb.String())
	}
	m := credRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("keys create printed %q", out.String())
	}
	startServe(t, cfgA, addrA)
	startServe(t, cfgB, addrB)
	client := func(addr string) *ecs.Client {
		return ecs.New(ecs.Options{Region: "us-test-1", BaseEndpoint: aws.String("http://" + addr),
			Credentials: credentials.NewStaticCredentialsProvider(m[1], m[2], ""), HTTPClient: awshttp.NewBuildableClient()})
	}
	ctx := context.Background()
	if _, err := client(addrA).CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("shared")}); err != nil {
		t.Fatal(err)
	}
	lc, err := client(addrB).ListClusters(ctx, &ecs.ListClustersInput{})
	if err != nil || len(lc.ClusterArns) != 1 || lc.ClusterArns[0] != "arn:aws:ecs:us-test-1:123456789012:cluster/shared" {
		t.Fatalf("ListClusters on the other replica = %v, %v", lc, err)
	}
	out.Reset()
	if code := run(ctx, []string{"keys", "list", "--config", cfgB}, &out, &errb); code != 0 || !strings.Contains(out.String(), m[1]) {
		t.Fatalf("keys list on etcd: %d %q %s", code, out.String(), errb.String())
	}

	// Another KEK cannot open the keys sealed in etcd: start fails, naming it.
	other := filepath.Join(dir, "other.kek")
	if err := os.WriteFile(other, bytes.Repeat([]byte{8}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	code := run(ctx, []string{"serve", "--config", writeCfg("c", freePort(t), other)}, &bytes.Buffer{}, &errb)
	if code != 1 || !strings.Contains(errb.String(), "kek_file must be the same file on every replica") {
		t.Fatalf("serve with another KEK: exit %d, %s", code, errb.String())
	}
}
