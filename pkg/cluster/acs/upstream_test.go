package acs_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/gorilla/websocket"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/acs"
)

// The example values of testdata/upstream-* (see its README), which the
// tests replace with live ones.
const (
	exampleCluster   = "arn:aws:ecs:us-test-1:123456789012:cluster/c"
	exampleInstance  = "arn:aws:ecs:us-test-1:123456789012:container-instance/c/0123456789abcdef0123456789abcdef"
	exampleTask1     = "arn:aws:ecs:us-test-1:123456789012:task/c/fedcba9876543210fedcba9876543210"
	exampleTask2     = "arn:aws:ecs:us-test-1:123456789012:task/c/00000000000000000000000000000002"
	exampleTask3     = "arn:aws:ecs:us-test-1:123456789012:task/c/00000000000000000000000000000003"
	exampleMessageID = "1d1d1d1d-2e2e-4f4f-8a8a-9b9b9b9b9b9b"
)

// upstreamBytes reads a testdata fixture and replaces its example values
// (old, new pairs); the bytes around them stay as the agent writes them.
func upstreamBytes(t *testing.T, name string, oldnew ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.NewReplacer(oldnew...).Replace(string(b)))
}

// upstreamQuery reads a handshake query fixture with its cluster and
// instance members set to live values, encoded as the agent encodes it.
func upstreamQuery(t *testing.T, name string, set map[string]string) string {
	t.Helper()
	q, err := url.ParseQuery(string(upstreamBytes(t, name)))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		if !q.Has(k) {
			t.Fatalf("%s has no %s", name, k)
		}
		q.Set(k, v)
	}
	return q.Encode()
}

// dialUpstream opens an ACS session with the upstream agent's handshake.
func (f *fixture) dialUpstream(t *testing.T) *websocket.Conn {
	t.Helper()
	q := upstreamQuery(t, "upstream-acs-handshake.query", map[string]string{"clusterArn": f.clusterArn, "containerInstanceArn": f.instanceArn})
	conn, _, err := f.dialURL(t, &f.keyA, f.srv.URL+"/ws?"+q)
	if err != nil {
		t.Fatalf("dial with the upstream agent's handshake: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readFrame reads the next frame within 10 seconds.
func readFrame(t *testing.T, conn *websocket.Conn) api.Frame {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	fr, err := api.DecodeFrame(data)
	if err != nil {
		t.Fatalf("decode frame %s: %v", data, err)
	}
	return fr
}

// upstreamSeq is the upstream agent's rule for sequence numbers
// (ecs-agent/acs/session/task_manifest_responder.go): it keeps the highest
// seqNum of the PayloadMessages it handled and timeline of the manifests it
// took, on disk across restarts, and discards a TaskManifestMessage whose
// timeline is not above it.
type upstreamSeq struct{ latest int64 }

func (a *upstreamSeq) payload(seq int64) { a.latest = max(a.latest, seq) }

func (a *upstreamSeq) takeManifest(t *testing.T, m *api.TaskManifestMessage) {
	t.Helper()
	if m.Timeline <= a.latest {
		t.Fatalf("the upstream agent discards this manifest: ManifestSeqNum=%d AgentLatestSeqNum=%d", m.Timeline, a.latest)
	}
	a.latest = m.Timeline
}

// untilManifest reads frames, acknowledging payloads as the upstream agent
// does (upstream-acs-AckRequest.json), until a TaskManifestMessage.
func (f *fixture) untilManifest(t *testing.T, conn *websocket.Conn, agent *upstreamSeq) *api.TaskManifestMessage {
	t.Helper()
	for {
		switch m := readFrame(t, conn).(type) {
		case *api.PayloadMessage:
			agent.payload(m.SeqNum)
			f.sendUpstream(t, conn, "upstream-acs-AckRequest.json", exampleMessageID, m.MessageID)
		case *api.TaskManifestMessage:
			return m
		}
	}
}

func (f *fixture) sendUpstream(t *testing.T, conn *websocket.Conn, name string, oldnew ...string) {
	t.Helper()
	b := upstreamBytes(t, name, append([]string{exampleCluster, f.clusterArn, exampleInstance, f.instanceArn}, oldnew...)...)
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
}

// TestUpstreamAgentManifestRoundTrip drives a session with the frames the
// upstream ECS agent sends: its handshake's versions become the instance's
// versionInfo; every manifest (the first, a resend after a lost
// acknowledgement, and the next session's) has a timeline the agent takes;
// its TaskStopVerificationMessage is answered with a TaskStopVerificationAck
// with the manifest's messageId that confirms the tasks the endpoint has
// stopped or does not know, and not the one that should run there; an
// acknowledged manifest is not sent again.
func TestUpstreamAgentManifestRoundTrip(t *testing.T) {
	const redeliver = 200 * time.Millisecond
	f := newFixtureOpts(t, func(o *acs.Options) { o.RedeliverAfter = redeliver })
	ctx := context.Background()
	if _, err := f.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("app"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("web"), Image: aws.String("busybox"), Memory: aws.Int32(16)}}}); err != nil {
		t.Fatal(err)
	}
	run := func() string {
		t.Helper()
		out, err := f.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("app")})
		if err != nil || len(out.Tasks) != 1 {
			t.Fatalf("RunTask: %v %+v", err, out)
		}
		return aws.ToString(out.Tasks[0].TaskArn)
	}
	running, stopped := run(), run()
	if _, err := f.admin.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("c"), Task: aws.String(stopped)}); err != nil {
		t.Fatal(err)
	}
	unknown := running[:strings.LastIndex(running, "/")+1] + "00000000000000000000000000000003"

	conn := f.dialUpstream(t)
	agent := &upstreamSeq{}
	m := f.untilManifest(t, conn, agent)
	agent.takeManifest(t, m)
	listed := map[string]string{}
	for _, ti := range m.Tasks {
		if ti.TaskArn == "" || ti.DesiredStatus == "" {
			t.Fatalf("manifest entry %+v: the upstream agent dereferences taskArn and desiredStatus", ti)
		}
		listed[ti.TaskArn] = ti.DesiredStatus
	}
	if listed[running] != api.StatusRunning || listed[stopped] != api.StatusStopped || len(listed) != 2 {
		t.Fatalf("manifest lists %v, want %s RUNNING and %s STOPPED", listed, running, stopped)
	}

	// The agent took it, but its AckRequest was lost: the resend must
	// carry a timeline it takes again, or it is never acknowledged.
	again := f.untilManifest(t, conn, agent)
	if again.MessageID != m.MessageID {
		t.Fatalf("resent manifest has messageId %s, want %s", again.MessageID, m.MessageID)
	}
	agent.takeManifest(t, again)
	f.sendUpstream(t, conn, "upstream-acs-AckRequest.json", exampleMessageID, m.MessageID)
	f.sendUpstream(t, conn, "upstream-acs-HeartbeatAckRequest.json", exampleMessageID, m.MessageID)
	f.sendUpstream(t, conn, "upstream-acs-TaskStopVerificationMessage.json",
		exampleMessageID, m.MessageID, exampleTask1, running, exampleTask2, stopped, exampleTask3, unknown)

	var ack *api.TaskStopVerificationAck
	for ack == nil {
		switch fr := readFrame(t, conn).(type) {
		case *api.TaskStopVerificationAck:
			ack = fr
		case *api.TaskManifestMessage:
			// A resend that crossed the acknowledgement is fine; after
			// it (below) none may come.
		}
	}
	var confirmed []string
	for _, ti := range ack.StopTasks {
		if ti.DesiredStatus != api.StatusStopped || ti.TaskClusterArn != f.clusterArn {
			t.Errorf("stop task %+v: want desiredStatus STOPPED and taskClusterArn %s", ti, f.clusterArn)
		}
		confirmed = append(confirmed, ti.TaskArn)
	}
	slices.Sort(confirmed)
	want := []string{stopped, unknown}
	slices.Sort(want)
	if ack.MessageID != m.MessageID || !slices.Equal(confirmed, want) {
		t.Fatalf("TaskStopVerificationAck %s confirms %v; want messageId %s confirming %v (not the running %s)", ack.MessageID, confirmed, m.MessageID, want, running)
	}

	// Acknowledged: no more resends.
	_ = conn.SetReadDeadline(time.Now().Add(4 * redeliver))
	for {
		_, data, err := conn.ReadMessage()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if fr, _ := api.DecodeFrame(data); fr != nil && fr.FrameType() == api.TypeTaskManifestMessage {
			t.Fatal("the manifest is resent after the agent acknowledged it")
		}
	}
	conn.Close()

	out, err := f.admin.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("c"), ContainerInstances: []string{f.instanceArn}})
	if err != nil || len(out.ContainerInstances) != 1 {
		t.Fatalf("DescribeContainerInstances: %v", err)
	}
	if v := out.ContainerInstances[0].VersionInfo; v == nil || aws.ToString(v.AgentVersion) != "1.105.1" ||
		aws.ToString(v.AgentHash) != "8dfceca6" || aws.ToString(v.DockerVersion) != "DockerVersion: 25.0.8" {
		t.Fatalf("versionInfo = %+v, want the handshake's 1.105.1 / 8dfceca6 / DockerVersion: 25.0.8", v)
	}

	// The agent reconnects (or restarts: it keeps its number on disk).
	conn = f.dialUpstream(t)
	agent.takeManifest(t, f.untilManifest(t, conn, agent))
}
