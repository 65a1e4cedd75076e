package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/lb"
)

// BenchmarkLBHAProxy measures requests/s through berth-lb's HAProxy to two
// targets (plain Go HTTP servers on loopback, registered as ip targets of
// a real endpoint in this process) against wrk talking to one of the
// targets directly, in interleaved rounds of the same run. Each b.N
// iteration is one round per side; run with -benchtime 3x.
func BenchmarkLBHAProxy(b *testing.B) {
	wrk := requireWrk(b)
	testenv.RequireBinaries(b, "haproxy")
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		b.Fatal(err)
	}
	dur := 5 * time.Second
	if s := os.Getenv("BERTH_BENCH_WRK_DURATION"); s != "" {
		if dur, err = time.ParseDuration(s); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	dir := b.TempDir()
	ep, err := cluster.Open(ctx, cluster.Options{Region: "us-east-1", AccountID: "123456789012", DataDir: filepath.Join(dir, "data"), NoAgentSessions: true})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(ep.Handler())
	b.Cleanup(func() {
		srv.Close()
		ep.Close()
	})
	adminID, adminSecret, err := ep.Keys().Create(auth.RoleAdmin, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	lbID, lbSecret, err := ep.Keys().Create(auth.RoleLB, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	c := elb.New(elb.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(adminID, adminSecret, ""), Retryer: aws.NopRetryer{}})

	body := []byte(strings.Repeat("x", 512))
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	targets := []string{serveLoopback(b, handler), serveLoopback(b, handler)}

	lbOut, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("bench"), Subnets: []string{"subnet-berth"}})
	if err != nil {
		b.Fatal(err)
	}
	tg, err := c.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("bench"), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), VpcId: aws.String("vpc-berth"), TargetType: elbtypes.TargetTypeEnumIp,
		HealthCheckIntervalSeconds: aws.Int32(5), HealthCheckTimeoutSeconds: aws.Int32(2), HealthyThresholdCount: aws.Int32(2)})
	if err != nil {
		b.Fatal(err)
	}
	tgArn := tg.TargetGroups[0].TargetGroupArn
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if _, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: lbOut.LoadBalancers[0].LoadBalancerArn,
		Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(int32(port)),
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tgArn}}}); err != nil {
		b.Fatal(err)
	}
	var descs []elbtypes.TargetDescription
	for _, u := range targets {
		_, p, _ := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
		pn, _ := strconv.Atoi(p)
		descs = append(descs, elbtypes.TargetDescription{Id: aws.String("127.0.0.1"), Port: aws.Int32(int32(pn))})
	}
	if _, err := c.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: tgArn, Targets: descs}); err != nil {
		b.Fatal(err)
	}

	startBerthLB(b, srv.URL, "us-east-1", lbID, lbSecret, haproxy, "500ms")
	// Both targets healthy (DescribeTargetHealth, reported by berth-lb).
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := c.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: tgArn})
		healthy := 0
		if err == nil {
			for _, d := range out.TargetHealthDescriptions {
				if d.TargetHealth.State == elbtypes.TargetHealthStateEnumHealthy {
					healthy++
				}
			}
		}
		if healthy == 2 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("targets not healthy after 2 minutes: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	lbURL := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if resp, err := http.Get(lbURL); err != nil || resp.StatusCode != 200 {
		b.Fatalf("through haproxy: %v %v", resp, err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	var lbRPS, directRPS, lbP99, directP99 []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, p := runWrk(b, wrk, lbURL, dur)
		lbRPS, lbP99 = append(lbRPS, r), append(lbP99, p)
		r, p = runWrk(b, wrk, targets[0]+"/", dur)
		directRPS, directP99 = append(directRPS, r), append(directP99, p)
	}
	b.StopTimer()
	ml, md := median(lbRPS), median(directRPS)
	b.ReportMetric(ml, "haproxy-2-targets-req/s")
	b.ReportMetric(md, "direct-1-target-req/s")
	b.ReportMetric(ml/md, "haproxy/direct-throughput")
	b.ReportMetric(median(lbP99), "haproxy-p99-ms")
	b.ReportMetric(median(directP99), "direct-p99-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("rounds haproxy req/s %v p99 ms %v; direct req/s %v p99 ms %v", lbRPS, lbP99, directRPS, directP99)
}

func readOr(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// startBerthLB runs berth-lb (serving the load balancer "bench" from the
// endpoint at url with an lb key) in this process until the benchmark ends,
// then stops the HAProxy it started.
func startBerthLB(b *testing.B, url, region, id, secret, haproxy, poll string) {
	runDir, err := os.MkdirTemp("", "blbbench")
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := lb.ParseConfig("bench", fmt.Appendf(nil, "endpoint = %q\nregion = %q\naccess_key_id = %q\nsecret_access_key = %q\n"+
		"load_balancers = [\"bench\"]\nbind_address = \"127.0.0.1\"\nhaproxy = %q\nrun_dir = %q\npoll_interval = %q\n",
		url, region, id, secret, haproxy, runDir, poll))
	if err != nil {
		b.Fatal(err)
	}
	lbCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- lb.Run(lbCtx, lb.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	b.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			b.Errorf("berth-lb: %v", err)
		}
		if pid, _ := strconv.Atoi(strings.TrimSpace(readOr(filepath.Join(runDir, "bench", "haproxy.pid")))); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(50 * time.Millisecond)
			}
		}
		os.RemoveAll(runDir)
	})
}
