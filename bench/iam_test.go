package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/iam"
)

// BenchmarkIAMCredentialsWrk measures GET /v2/credentials/<id> on loopback
// with wrk: pkg/iam's server (store lookup, rate limiter, audit line to a
// file, ECS JSON) against a bare Go handler writing the same bytes, in
// interleaved rounds of the same run. Each b.N iteration is one round per
// side; run with -benchtime 3x. wrk comes from Debian's package; as root
// the benchmark installs it when missing.
func BenchmarkIAMCredentialsWrk(b *testing.B) {
	wrk := requireWrk(b)
	dur := 5 * time.Second
	if s := os.Getenv("BERTH_BENCH_WRK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatal(err)
		}
		dur = d
	}

	store := iam.NewStore()
	creds := iam.Credentials{ID: "0d6f3a52-1c9b-4e7d-8f2a-6b5c4d3e2f10", RoleArn: "arn:aws:iam::123456789012:role/app",
		AccessKeyID: "ASIAEXAMPLEAPPROLE01", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		SessionToken: strings.Repeat("IQoJb3JpZ2luX2VjEXAMPLE", 30), Expiration: "2030-01-01T00:00:00Z",
		RoleType: api.RoleTypeTaskApplication}
	store.Set("arn:aws:ecs:us-east-1:123456789012:task/c/bench", creds)
	audit, err := iam.OpenAuditLog(filepath.Join(b.TempDir(), "audit.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer audit.Close()
	// The limit is far above what wrk reaches, so every request pays for
	// the limiter without being refused.
	srv, err := iam.NewServer(iam.Options{Store: store, Audit: audit, RateLimit: iam.RateLimit{RPS: 1e9, Burst: 1e9}})
	if err != nil {
		b.Fatal(err)
	}
	path := iam.CredentialsRelativeURI(creds.ID)
	body := fetchBody(b, srv, path)
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	iamURL := serveLoopback(b, srv) + path
	bareURL := serveLoopback(b, bare) + path

	var iamRPS, bareRPS, iamP99, bareP99 []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, p := runWrk(b, wrk, iamURL, dur)
		iamRPS, iamP99 = append(iamRPS, r), append(iamP99, p)
		r, p = runWrk(b, wrk, bareURL, dur)
		bareRPS, bareP99 = append(bareRPS, r), append(bareP99, p)
	}
	b.StopTimer()
	mi, mb := median(iamRPS), median(bareRPS)
	pi, pb := median(iamP99), median(bareP99)
	b.ReportMetric(mi, "iam-req/s")
	b.ReportMetric(mb, "bare-req/s")
	b.ReportMetric(mb/mi, "bare/iam-throughput")
	b.ReportMetric(pi, "iam-p99-ms")
	b.ReportMetric(pb, "bare-p99-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("rounds iam req/s %v p99 ms %v; bare req/s %v p99 ms %v", iamRPS, iamP99, bareRPS, bareP99)
}

func requireWrk(b *testing.B) string {
	if p, err := exec.LookPath("wrk"); err == nil {
		return p
	}
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("apt-get"); err == nil {
			if out, err := exec.Command("apt-get", "install", "-y", "wrk").CombinedOutput(); err != nil {
				b.Fatalf("apt-get install wrk: %v\n%s", err, out)
			}
			if p, err := exec.LookPath("wrk"); err == nil {
				return p
			}
		}
	}
	msg := "wrk not found; install it with: apt-get install wrk"
	if testenv.InCI() {
		b.Fatal(msg)
	}
	b.Skip(msg)
	return ""
}

func fetchBody(b *testing.B, h http.Handler, path string) []byte {
	u := serveLoopback(b, h) + path
	resp, err := http.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
	return body
}

func serveLoopback(b *testing.B, h http.Handler) string { return serveAt(b, "127.0.0.1:0", h) }

// serveAt serves h at addr until the benchmark ends.
func serveAt(b *testing.B, addr string, h http.Handler) string {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		<-done
	})
	return "http://" + ln.Addr().String()
}

var (
	wrkRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkP99 = regexp.MustCompile(`(?m)^\s+99%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// runWrk returns requests per second and the p99 latency in milliseconds.
func runWrk(b *testing.B, wrk, url string, d time.Duration) (float64, float64) {
	out, err := exec.Command(wrk, "-t2", "-c32", "-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", url).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk %s: %v\n%s", url, err, out)
	}
	s := string(out)
	if strings.Contains(s, "Non-2xx") {
		b.Fatalf("wrk %s saw errors:\n%s", url, s)
	}
	m := wrkRPS.FindStringSubmatch(s)
	p := wrkP99.FindStringSubmatch(s)
	if m == nil || p == nil {
		b.Fatalf("cannot parse wrk output:\n%s", s)
	}
	rps, _ := strconv.ParseFloat(m[1], 64)
	lat, _ := strconv.ParseFloat(p[1], 64)
	switch p[2] {
	case "us":
		lat /= 1000
	case "s":
		lat *= 1000
	}
	return rps, lat
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
