package lb

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
)

const (
	testRegion  = "us-test-1"
	testAccount = "123456789012"
	testCertArn = "arn:aws:acm:us-test-1:123456789012:certificate/lab"
	// waitLimit bounds every wait: it tells a hang from slowness and is
	// no timing assertion (health checks run every 5 s, AWS's minimum).
	waitLimit = 90 * time.Second
)

// lab is a real cluster endpoint on loopback with an admin key for the
// ELBv2 API and an lb key for berth-lb.
type lab struct {
	url             string
	elb             *elb.Client
	cw              *cloudwatch.Client
	lbID, lbSecret  string
	caPool          *x509.CertPool
	lbArn, lbName   string
	haproxy         string
	runDir          string
	listenerPort    int
	defaultListener string
}

func requireHAProxy(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test with HAProxy (-short)")
	}
	testenv.RequireBinaries(t, "haproxy")
	path, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func startLab(t *testing.T) *lab {
	t.Helper()
	bin := requireHAProxy(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := writeCert(t, certFile, keyFile)
	ep, err := cluster.Open(context.Background(), cluster.Options{Region: testRegion, AccountID: testAccount,
		DataDir: filepath.Join(dir, "data"), NoAgentSessions: true,
		Certificates: []cluster.Certificate{{ARN: testCertArn, CertFile: certFile, KeyFile: keyFile}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ep.Handler())
	t.Cleanup(func() {
		srv.Close()
		ep.Close()
	})
	adminID, adminSecret, err := ep.Keys().Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	lbID, lbSecret, err := ep.Keys().Create(auth.RoleLB, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The run directory is short: HAProxy's sockets live in it.
	runDir, err := os.MkdirTemp("", "blb")
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{url: srv.URL, lbID: lbID, lbSecret: lbSecret, caPool: pool, haproxy: bin, runDir: runDir,
		elb: elb.New(elb.Options{Region: testRegion, BaseEndpoint: aws.String(srv.URL), HTTPClient: awshttp.NewBuildableClient(),
			Credentials: credentials.NewStaticCredentialsProvider(adminID, adminSecret, ""), Retryer: aws.NopRetryer{}}),
		cw: cloudwatch.New(cloudwatch.Options{Region: testRegion, BaseEndpoint: aws.String(srv.URL), HTTPClient: awshttp.NewBuildableClient(),
			Credentials: credentials.NewStaticCredentialsProvider(adminID, adminSecret, ""), Retryer: aws.NopRetryer{}})}
	t.Cleanup(func() {
		stopHAProxy(t, filepath.Join(runDir, "web", "haproxy.pid"))
		os.RemoveAll(runDir)
	})
	return l
}

// stopHAProxy ends the HAProxy a test started (its master and workers):
// berth-lb never stops it itself.
func stopHAProxy(t *testing.T, pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || syscall.Kill(pid, syscall.SIGTERM) != nil {
		return
	}
	for i := 0; i < 200 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("haproxy master %d still runs after SIGTERM", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func (l *lab) config() Config {
	cfg := Defaults()
	cfg.Endpoint, cfg.Region = l.url, testRegion
	cfg.AccessKeyID, cfg.SecretAccessKey = l.lbID, l.lbSecret
	cfg.LoadBalancers = []string{l.lbName}
	cfg.BindAddress = "127.0.0.1"
	cfg.HAProxy = l.haproxy
	cfg.RunDir = l.runDir
	cfg.PollInterval = duration{200 * time.Millisecond}
	cfg.MetricsInterval = duration{time.Second}
	return cfg
}

// runLB runs berth-lb in this process until the returned stop is called
// (or the test ends).
func (l *lab) runLB(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() { done <- Run(ctx, Options{Config: l.config(), Logger: log}) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("berth-lb: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// haproxyOf is the HAProxy berth-lb runs for the lab's load balancer.
func (l *lab) haproxyOf() *haproxy {
	return &haproxy{bin: l.haproxy, dir: filepath.Join(l.runDir, dirName(l.lbName))}
}

// createLB creates a load balancer and an HTTP listener on a free
// loopback port forwarding to a new target group.
func (l *lab) createLB(ctx context.Context, t *testing.T, name string) (tgArn string) {
	t.Helper()
	out, err := l.elb.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String(name), Subnets: []string{"subnet-berth"}})
	if err != nil {
		t.Fatal(err)
	}
	l.lbArn, l.lbName = aws.ToString(out.LoadBalancers[0].LoadBalancerArn), name
	tgArn = l.createTG(ctx, t, name+"-tg")
	l.listenerPort = freePort(t)
	lo, err := l.elb.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(l.lbArn), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(int32(l.listenerPort)), DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(tgArn)}}})
	if err != nil {
		t.Fatal(err)
	}
	l.defaultListener = aws.ToString(lo.Listeners[0].ListenerArn)
	return tgArn
}

// createTG creates an HTTP target group checked on /health every 5 s,
// healthy after 2 passes and unhealthy after 2 failures, with a
// deregistration delay of 3 s.
func (l *lab) createTG(ctx context.Context, t *testing.T, name string) string {
	t.Helper()
	out, err := l.elb.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String(name), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), VpcId: aws.String("vpc-berth"), TargetType: elbtypes.TargetTypeEnumIp,
		HealthCheckPath: aws.String("/health"), HealthCheckIntervalSeconds: aws.Int32(5), HealthCheckTimeoutSeconds: aws.Int32(2),
		HealthyThresholdCount: aws.Int32(2), UnhealthyThresholdCount: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.TargetGroups[0].TargetGroupArn)
	if _, err := l.elb.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(arn),
		Attributes: []elbtypes.TargetGroupAttribute{{Key: aws.String("deregistration_delay.timeout_seconds"), Value: aws.String("3")}}}); err != nil {
		t.Fatal(err)
	}
	return arn
}

func (l *lab) register(ctx context.Context, t *testing.T, tg string, ts ...*target) {
	t.Helper()
	var descs []elbtypes.TargetDescription
	for _, x := range ts {
		descs = append(descs, elbtypes.TargetDescription{Id: aws.String("127.0.0.1"), Port: aws.Int32(int32(x.port))})
	}
	if _, err := l.elb.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(tg), Targets: descs}); err != nil {
		t.Fatal(err)
	}
}

func (l *lab) deregister(ctx context.Context, t *testing.T, tg string, x *target) {
	t.Helper()
	if _, err := l.elb.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: aws.String(tg),
		Targets: []elbtypes.TargetDescription{{Id: aws.String("127.0.0.1"), Port: aws.Int32(int32(x.port))}}}); err != nil {
		t.Fatal(err)
	}
}

// health is DescribeTargetHealth's state, reason and description of one
// target ("" when it is not listed).
func (l *lab) health(ctx context.Context, t *testing.T, tg string, x *target) (state, reason, desc string) {
	t.Helper()
	out, err := l.elb.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg)})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range out.TargetHealthDescriptions {
		if aws.ToInt32(d.Target.Port) == int32(x.port) && d.TargetHealth != nil {
			return string(d.TargetHealth.State), string(d.TargetHealth.Reason), aws.ToString(d.TargetHealth.Description)
		}
	}
	return "", "", ""
}

// waitHealth waits until DescribeTargetHealth shows the target in state.
func (l *lab) waitHealth(ctx context.Context, t *testing.T, tg string, x *target, state string) (reason, desc string) {
	t.Helper()
	var got string
	waitFor(t, fmt.Sprintf("target %s %s", x.name, state), func() bool {
		got, reason, desc = l.health(ctx, t, tg, x)
		return got == state
	}, func() string { return fmt.Sprintf("last %s %s %q", got, reason, desc) })
	return reason, desc
}

// waitFor polls cond every 100 ms until it holds; past waitLimit the test
// fails with what last was.
func waitFor(t *testing.T, what string, cond func() bool, last func() string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not after %s; %s", what, waitLimit, last())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// target is a plain HTTP server on a loopback port: / answers its name,
// /health answers the status set with setHealth (200 at first).
type target struct {
	name   string
	port   int
	health atomic.Int32
	served atomic.Int64
}

func newTarget(t *testing.T, name string) *target {
	t.Helper()
	x := &target{name: name}
	x.health.Store(200)
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(x.health.Load())) })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		x.served.Add(1)
		io.WriteString(w, name)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	x.port, _ = strconv.Atoi(port)
	return x
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// load is a client sending requests through HAProxy one after another
// (bounded in count and time, loopback only) and counting the answers:
// every request must be answered 200 by a target.
type load struct {
	url      string
	cancel   context.CancelFunc
	done     chan struct{}
	ok, fail atomic.Int64
	mu       sync.Mutex
	errs     []string       // the first failures
	by       map[string]int // answers by target name
}

const (
	loadMaxRequests = 200_000
	loadMaxTime     = 5 * time.Minute
)

func startLoad(t *testing.T, url string) *load {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), loadMaxTime)
	ld := &load{url: url, cancel: cancel, done: make(chan struct{}), by: map[string]int{}}
	client := &http.Client{Timeout: 10 * time.Second}
	go func() {
		defer close(ld.done)
		for i := 0; i < loadMaxRequests && ctx.Err() == nil; i++ {
			status, body, err := get(ctx, client, url)
			if ctx.Err() != nil {
				return
			}
			ld.mu.Lock()
			if err != nil || status != http.StatusOK {
				ld.fail.Add(1)
				if len(ld.errs) < 10 {
					ld.errs = append(ld.errs, fmt.Sprintf("%d %q %v", status, body, err))
				}
			} else {
				ld.ok.Add(1)
				ld.by[body]++
			}
			ld.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { ld.stop() })
	return ld
}

// stop ends the load and returns the answers by target.
func (ld *load) stop() map[string]int {
	ld.cancel()
	<-ld.done
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.by
}

// check fails the test on any failed request and logs the counts.
func (ld *load) check(t *testing.T, what string) {
	t.Helper()
	by := ld.stop()
	t.Logf("%s: %d requests answered 200 (%v), %d failed", what, ld.ok.Load(), by, ld.fail.Load())
	if ld.fail.Load() != 0 || ld.ok.Load() == 0 {
		t.Errorf("%s: %d failed requests of %d; first: %v", what, ld.fail.Load(), ld.ok.Load()+ld.fail.Load(), ld.errs)
	}
}

func get(ctx context.Context, c *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitServedBy waits until a request to url is answered by target name.
func waitServedBy(t *testing.T, url, name string) {
	t.Helper()
	var last string
	waitFor(t, url+" answered by "+name, func() bool {
		for i := 0; i < 10; i++ {
			_, body, err := get(context.Background(), http.DefaultClient, url)
			if last = fmt.Sprint(body, err); body == name {
				return true
			}
		}
		return false
	}, func() string { return "last answer " + last })
}

// writeCert writes a self-signed ECDSA certificate for lab.localhost and
// its key, and returns a pool that trusts it.
func writeCert(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), DNSNames: []string{"lab.localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600),
		os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}
