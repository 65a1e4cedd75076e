package acs_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/gorilla/websocket"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/cluster/ecsapi"
)

// TestTelemetryHealth: an agent's PublishHealthRequest on the TCS
// websocket (at DiscoverPollEndpoint's telemetryEndpoint) is acknowledged
// and lands on its task (container and task healthStatus); reports about
// another instance's task and unknown tasks change nothing; metrics are
// acknowledged; another agent's key cannot open the instance's session.
func TestTelemetryHealth(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	agentA := client(f.srv.URL, f.keyA)
	dp, err := agentA.DiscoverPollEndpoint(ctx, &ecs.DiscoverPollEndpointInput{Cluster: aws.String("c"), ContainerInstance: aws.String(f.instanceArn)})
	if err != nil {
		t.Fatal(err)
	}
	tcsURL := aws.ToString(dp.TelemetryEndpoint) + "/ws?" + url.Values{"cluster": {f.clusterArn}, "containerInstance": {f.instanceArn}}.Encode()

	if _, resp, err := f.dialURL(t, &f.keyB, tcsURL); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another agent's key: want 403, got %v %v", resp, err)
	}
	if _, err := f.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("app"),
		ContainerDefinitions: []types.ContainerDefinition{
			{Name: aws.String("web"), Image: aws.String("busybox"), Memory: aws.Int32(16)},
			{Name: aws.String("side"), Image: aws.String("busybox"), Memory: aws.Int32(16)}}}); err != nil {
		t.Fatal(err)
	}
	run, err := f.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("app")})
	if err != nil || len(run.Tasks) != 1 {
		t.Fatalf("RunTask: %v %+v", err, run)
	}
	taskArn := aws.ToString(run.Tasks[0].TaskArn)

	conn, _, err := f.dialURL(t, &f.keyA, tcsURL)
	if err != nil {
		t.Fatalf("open the TCS session: %v", err)
	}
	defer conn.Close()
	exchange := func(out api.Frame, want string) {
		t.Helper()
		b, _ := api.EncodeFrame(out)
		if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
			t.Fatal(err)
		}
		for {
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, data, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %s: %v", want, err)
			}
			if fr, err := api.DecodeFrame(data); err == nil && fr.FrameType() == want {
				return
			}
		}
	}
	report := func(status string, tasks ...string) *api.PublishHealthRequest {
		r := &api.PublishHealthRequest{Metadata: &api.HealthMetadata{Cluster: f.clusterArn, ContainerInstance: f.instanceArn, MessageID: "m", Fin: true}}
		for _, arn := range tasks {
			r.Tasks = append(r.Tasks, &api.TaskHealth{TaskArn: arn, Containers: []*api.ContainerHealth{{ContainerName: "web", HealthStatus: status}}})
		}
		return r
	}
	health := func() (task, web, side types.HealthStatus) {
		t.Helper()
		out, err := f.admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("c"), Tasks: []string{taskArn}})
		if err != nil || len(out.Tasks) != 1 {
			t.Fatalf("DescribeTasks: %v", err)
		}
		tk := out.Tasks[0]
		for _, c := range tk.Containers {
			switch aws.ToString(c.Name) {
			case "web":
				web = c.HealthStatus
			case "side":
				side = c.HealthStatus
			}
		}
		return tk.HealthStatus, web, side
	}

	exchange(report(api.HealthStatusHealthy, taskArn), api.TypeAckPublishHealth)
	if task, web, side := health(); task != types.HealthStatusHealthy || web != types.HealthStatusHealthy || side != "" {
		t.Fatalf("after HEALTHY: task %s web %s side %s", task, web, side)
	}
	exchange(report(api.HealthStatusUnhealthy, taskArn, "arn:aws:ecs:us-test-1:123456789012:task/c/0000", "not an arn"), api.TypeAckPublishHealth)
	if task, web, _ := health(); task != types.HealthStatusUnhealthy || web != types.HealthStatusUnhealthy {
		t.Fatalf("after UNHEALTHY: task %s web %s", task, web)
	}
	exchange(&api.UnknownFrame{Type: api.TypePublishMetricsRequest}, api.TypeAckPublishMetric)

	// The same task reported over instance B's session changes nothing.
	outB, err := client(f.srv.URL, f.keyB).RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("c"),
		TotalResources: []types.Resource{{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: 1024},
			{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: 512}}})
	if err != nil {
		t.Fatal(err)
	}
	instB := aws.ToString(outB.ContainerInstance.ContainerInstanceArn)
	connB, _, err := f.dialURL(t, &f.keyB, aws.ToString(dp.TelemetryEndpoint)+"/ws?"+url.Values{"containerInstance": {instB}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer connB.Close()
	b, _ := api.EncodeFrame(report(api.HealthStatusHealthy, taskArn))
	if err := connB.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	_ = connB.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, data, err := connB.ReadMessage(); err != nil || string(data) == "" {
		t.Fatalf("instance B's ack: %v", err)
	}
	if task, web, _ := health(); task != types.HealthStatusUnhealthy || web != types.HealthStatusUnhealthy {
		t.Fatalf("another instance's report changed the task: task %s web %s", task, web)
	}
}

// TestTelemetryUpstreamSignedFrames: the upstream agent's TCS frames, each
// prefixed with SigV4-signed headers (testdata/README.md), are read: its
// PublishHealthRequest lands on the task and is acknowledged, its
// PublishInstanceStatusRequest is acknowledged; a frame whose body was
// changed after signing is ignored, and the session goes on.
func TestTelemetryUpstreamSignedFrames(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dp, err := client(f.srv.URL, f.keyA).DiscoverPollEndpoint(ctx, &ecs.DiscoverPollEndpointInput{Cluster: aws.String("c"), ContainerInstance: aws.String(f.instanceArn)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("app"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("web"), Image: aws.String("busybox"), Memory: aws.Int32(16)}}}); err != nil {
		t.Fatal(err)
	}
	run, err := f.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("app")})
	if err != nil || len(run.Tasks) != 1 {
		t.Fatalf("RunTask: %v %+v", err, run)
	}
	taskArn := aws.ToString(run.Tasks[0].TaskArn)
	tcsURL := aws.ToString(dp.TelemetryEndpoint) + "/ws?" +
		upstreamQuery(t, "upstream-tcs-handshake.query", map[string]string{"cluster": f.clusterArn, "containerInstance": f.instanceArn})
	conn, _, err := f.dialURL(t, &f.keyA, tcsURL)
	if err != nil {
		t.Fatalf("open the TCS session with the upstream agent's handshake: %v", err)
	}
	defer conn.Close()

	// The fixture's JSON, for the live task, signed now with the agent's key.
	frame := upstreamBytes(t, "upstream-tcs-PublishHealthRequest.frame", exampleCluster, f.clusterArn, exampleInstance, f.instanceArn, exampleTask1, taskArn)
	body := frame[strings.Index(string(frame), "\r\n\r\n")+4:]
	send := func(payload []byte, tamper func([]byte) []byte) {
		t.Helper()
		b := acs.UpstreamTCSFrame(t, f.keyA, region, tcsURL, time.Now(), payload)
		if tamper != nil {
			b = tamper(b)
		}
		if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
			t.Fatal(err)
		}
	}
	next := func() string {
		t.Helper()
		for {
			fr := readFrame(t, conn)
			if fr.FrameType() != api.TypeHeartbeatMessage {
				return fr.FrameType()
			}
		}
	}
	health := func() (types.HealthStatus, types.HealthStatus) {
		t.Helper()
		out, err := f.admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("c"), Tasks: []string{taskArn}})
		if err != nil || len(out.Tasks) != 1 {
			t.Fatalf("DescribeTasks: %v", err)
		}
		return out.Tasks[0].HealthStatus, out.Tasks[0].Containers[0].HealthStatus
	}

	send(body, nil)
	if got := next(); got != api.TypeAckPublishHealth {
		t.Fatalf("answer to the signed PublishHealthRequest: %s, want %s", got, api.TypeAckPublishHealth)
	}
	if task, web := health(); task != types.HealthStatusHealthy || web != types.HealthStatusHealthy {
		t.Fatalf("after the upstream agent's HEALTHY report: task %s, web %s", task, web)
	}
	send(body, func(b []byte) []byte { return []byte(strings.Replace(string(b), `"HEALTHY"`, `"UNHEALTHY"`, 1)) })
	send([]byte(`{"type":"PublishInstanceStatusRequest","message":{"metadata":{"cluster":"`+f.clusterArn+`","containerInstance":"`+f.instanceArn+`","requestId":"r1"},"statuses":[{"lastStatusChange":1782907170,"lastUpdated":1782907198,"status":"OK","type":"ContainerRuntime"}],"timestamp":1782907198}}`), nil)
	if got := next(); got != api.TypeAckPublishInstanceStatus {
		t.Fatalf("answer after a tampered frame and a PublishInstanceStatusRequest: %s, want only %s", got, api.TypeAckPublishInstanceStatus)
	}
	if task, web := health(); task != types.HealthStatusHealthy || web != types.HealthStatusHealthy {
		t.Fatalf("a frame changed after signing was applied: task %s, web %s", task, web)
	}
}

// metricsRecorder is a MetricsRecorder that keeps what it is handed.
type metricsRecorder struct {
	mu    sync.Mutex
	got   []string
	fails bool
}

func (r *metricsRecorder) RecordPublish(instanceArn string, p *api.PublishMetricsRequest) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, tm := range p.TaskMetrics {
		for _, c := range tm.ContainerMetrics {
			r.got = append(r.got, fmt.Sprintf("%s %s %s %v", instanceArn, tm.TaskArn, c.ContainerName, *c.CPUStatsSet.Sum))
		}
	}
	if r.fails {
		return 0, errors.New("store down")
	}
	return len(p.TaskMetrics), nil
}

// TestTelemetryMetrics: a PublishMetricsRequest on the TCS websocket goes
// to the metrics recorder with the session's instance and is acknowledged;
// one the recorder cannot keep is answered with a ServerException.
func TestTelemetryMetrics(t *testing.T) {
	rec := &metricsRecorder{}
	f := newFixtureOpts(t, func(o *acs.Options) { o.Metrics = rec })
	conn, _, err := f.dialURL(t, &f.keyA, f.srv.URL+ecsapi.TelemetryPath+"/ws?"+
		url.Values{"cluster": {f.clusterArn}, "containerInstance": {f.instanceArn}}.Encode())
	if err != nil {
		t.Fatalf("open the TCS session: %v", err)
	}
	defer conn.Close()
	sum, n := 42.0, int64(2)
	frame := &api.PublishMetricsRequest{Metadata: &api.MetricsMetadata{Cluster: f.clusterArn, ContainerInstance: f.instanceArn, MessageID: "m", Fin: true},
		TaskMetrics: []*api.TaskMetric{{TaskArn: "arn:aws:ecs:us-test-1:123456789012:task/c/1", ContainerMetrics: []*api.ContainerMetric{
			{ContainerName: "web", CPUStatsSet: &api.CWStatsSet{Sum: &sum, SampleCount: &n}}}}}}
	send := func() string {
		t.Helper()
		b, err := api.EncodeFrame(frame)
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
			t.Fatal(err)
		}
		for {
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, data, err := conn.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if fr, err := api.DecodeFrame(data); err == nil && fr.FrameType() != api.TypeHeartbeatMessage {
				return fr.FrameType()
			}
		}
	}
	if got := send(); got != api.TypeAckPublishMetric {
		t.Fatalf("answer %s, want %s", got, api.TypeAckPublishMetric)
	}
	rec.mu.Lock()
	want := f.instanceArn + " arn:aws:ecs:us-test-1:123456789012:task/c/1 web 42"
	if len(rec.got) != 1 || rec.got[0] != want {
		t.Errorf("recorded %q, want %q", rec.got, want)
	}
	rec.fails = true
	rec.mu.Unlock()
	if got := send(); got != api.TypeServerException {
		t.Errorf("answer when it cannot be kept: %s, want %s", got, api.TypeServerException)
	}
}
