package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/logstore"
	"github.com/berth-dev/berth/pkg/logs"
	"github.com/berth-dev/berth/pkg/logship"
)

const (
	logshipLines  = 100000
	logshipRegion = "us-east-1"
	logshipKey    = "BKBENCHLOGS"
	logshipSecret = "bench-secret"
)

type logshipKeys struct{}

func (logshipKeys) Lookup(id string) (auth.Key, string, error) {
	if id != logshipKey {
		return auth.Key{}, "", auth.ErrUnknownKey
	}
	return auth.Key{AccessKeyID: id, Role: auth.RoleAgent}, logshipSecret, nil
}

// logshipPayload is the container output: lines of about 100 bytes.
func logshipPayload() []byte {
	var b bytes.Buffer
	for i := 0; i < logshipLines; i++ {
		fmt.Fprintf(&b, "%07d GET /api/v1/items?page=%d 200 1532B 3ms ua=bench/1.0 trace=%016x\n", i, i%97, uint64(i)*2654435761)
	}
	return b.Bytes()
}

// captureFile writes the payload through pkg/logs' capture (the shim
// logger's code) into a fresh json-file.
func captureFile(b *testing.B, dir string, payload []byte) string {
	b.Helper()
	path := filepath.Join(dir, fmt.Sprintf("c-%d.log", time.Now().UnixNano()))
	if _, err := logs.Capture(logs.CaptureOptions{Config: logs.Config{Path: path}, Stdout: bytes.NewReader(payload)}); err != nil {
		b.Fatal(err)
	}
	return path
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func shipFile(b *testing.B, path, endpoint, stream string) {
	b.Helper()
	opts := map[string]string{"awslogs-group": "bench", "awslogs-create-group": "true", "awslogs-stream": stream}
	d, err := logship.NewDriver(logship.DriverAWSLogs, opts, logship.ContainerInfo{ID: stream}, logship.Deps{
		AWSCredentials: credentials.NewStaticCredentialsProvider(logshipKey, logshipSecret, ""), AWSRegion: logshipRegion, AWSLogsEndpoint: endpoint})
	if err != nil {
		b.Fatal(err)
	}
	s, err := logship.Start(context.Background(), logship.Options{Path: path, Positions: &logship.FilePositions{Path: path + ".pos"}, Driver: d, DriverName: "awslogs"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := s.Drain(ctx); err != nil {
		b.Fatal(err)
	}
	if st := s.Stats(); st.Shipped != logshipLines {
		b.Fatalf("shipped %d of %d lines", st.Shipped, logshipLines)
	}
}

// BenchmarkLogshipAWSLogs ships 100,000 lines (about 8 MB) from a json-file
// to the endpoint's log store through the awslogs driver: tailing,
// batching, position persistence, SigV4 and the store. The raw baseline in
// the same run puts the same lines with the SDK directly (PutLogEvents in
// 10,000-event batches), without any json-file or shipper.
func BenchmarkLogshipAWSLogs(b *testing.B) {
	dir := b.TempDir()
	st, err := logstore.Open(logstore.Options{Path: filepath.Join(dir, "logs.db"), Region: logshipRegion, AccountID: "123456789012"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	url := serveBench(b, st.Handler(&auth.Verifier{Keys: logshipKeys{}, Region: logshipRegion, Services: []string{logstore.Service}}))
	payload := logshipPayload()
	lines := strings.Split(strings.TrimSuffix(string(payload), "\n"), "\n")
	client := logship.NewAWSLogsClient(logshipRegion, url, credentials.NewStaticCredentialsProvider(logshipKey, logshipSecret, ""))
	ctx := context.Background()
	client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("bench")})
	var rawDur, shipDur time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		path := captureFile(b, dir, payload)
		rawStream := fmt.Sprintf("raw-%d", i)
		client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("bench"), LogStreamName: aws.String(rawStream)})
		b.StartTimer()

		start := time.Now()
		now := time.Now().UnixMilli()
		for j := 0; j < len(lines); {
			// As many events as fit in one request (1 MiB counting 26 bytes each).
			evs := make([]types.InputLogEvent, 0, 10000)
			size := 0
			for ; j < len(lines) && len(evs) < 10000 && size+len(lines[j])+26 <= 1048576; j++ {
				size += len(lines[j]) + 26
				evs = append(evs, types.InputLogEvent{Timestamp: aws.Int64(now), Message: aws.String(lines[j])})
			}
			if _, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("bench"), LogStreamName: aws.String(rawStream), LogEvents: evs}); err != nil {
				b.Fatal(err)
			}
		}
		rawDur += time.Since(start)

		start = time.Now()
		shipFile(b, path, url, fmt.Sprintf("ship-%d", i))
		shipDur += time.Since(start)
	}
	n := float64(b.N)
	mb := float64(len(payload)) / 1e6
	b.ReportMetric(logshipLines*n/shipDur.Seconds(), "lines/s")
	b.ReportMetric(mb*n/shipDur.Seconds(), "MB/s")
	b.ReportMetric(logshipLines*n/rawDur.Seconds(), "raw-lines/s")
	b.ReportMetric(rawDur.Seconds()/shipDur.Seconds(), "ship/raw-throughput")
}

// BenchmarkLogshipCaptureAndShipCPU measures the CPU (user+system, whole
// process) per MB of container output to capture it to the json-file and
// ship it with awslogs to a stub endpoint that answers PutLogEvents with
// an empty result (so the log store's own work is not counted). The raw
// baseline is capture alone.
func BenchmarkLogshipCaptureAndShipCPU(b *testing.B) {
	dir := b.TempDir()
	url := serveBench(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Write([]byte(`{}`))
	}))
	payload := logshipPayload()
	mb := float64(len(payload)) / 1e6
	var captureCPU, shipCPU time.Duration
	for i := 0; i < b.N; i++ {
		c0 := cpuTime()
		path := captureFile(b, dir, payload)
		c1 := cpuTime()
		shipFile(b, path, url, fmt.Sprintf("s-%d", i))
		c2 := cpuTime()
		captureCPU += c1 - c0
		shipCPU += c2 - c1
	}
	n := float64(b.N)
	b.ReportMetric(float64(captureCPU.Milliseconds())/n/mb, "capture-cpu-ms/MB")
	b.ReportMetric(float64((captureCPU+shipCPU).Milliseconds())/n/mb, "capture+ship-cpu-ms/MB")
	b.ReportMetric(float64(captureCPU+shipCPU)/float64(captureCPU), "total/capture-cpu")
}
