package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fixtureFrames returns every ACS frame fixture in testdata, by file name.
func fixtureFrames(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "fixtures", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 11 {
		t.Fatalf("found %d fixtures in testdata/fixtures, want at least 11", len(paths))
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

// normalize decodes JSON and drops members whose value is a zero value
// (null, false, 0, "", [], {}), recursively: the wire types omit those, and
// the receiving side reads absent and zero alike.
func normalize(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return prune(v)
}

func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if p := prune(e); p != nil {
				out[k] = p
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if len(x) == 0 {
			return nil
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = prune(e)
		}
		return out
	case bool:
		if !x {
			return nil
		}
	case float64:
		if x == 0 {
			return nil
		}
	case string:
		if x == "" {
			return nil
		}
	}
	return v
}

func TestFixturesDecodeAndRoundTrip(t *testing.T) {
	for name, data := range fixtureFrames(t) {
		t.Run(name, func(t *testing.T) {
			f, err := DecodeFrame(data)
			if err != nil {
				t.Fatalf("DecodeFrame: %v", err)
			}
			if u, ok := f.(*UnknownFrame); ok {
				t.Fatalf("decoded as unknown frame type %q", u.Type)
			}
			wantType := strings.SplitN(name, "-", 3)
			typ := wantType[0]
			if typ == "upstream" {
				typ = wantType[1]
			}
			if f.FrameType() != typ {
				t.Fatalf("FrameType() = %q, want %q", f.FrameType(), typ)
			}
			out, err := EncodeFrame(f)
			if err != nil {
				t.Fatalf("EncodeFrame: %v", err)
			}
			want, got := normalize(t, data), normalize(t, out)
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("round trip changed the frame\nwant %v\ngot  %v", want, got)
			}
			// The encoding is stable: decoding and encoding again gives
			// the same bytes.
			f2, err := DecodeFrame(out)
			if err != nil {
				t.Fatalf("DecodeFrame(re-encoded): %v", err)
			}
			out2, err := EncodeFrame(f2)
			if err != nil || !bytes.Equal(out, out2) {
				t.Fatalf("second encoding differs (%v):\n%s\n%s", err, out, out2)
			}
		})
	}
}

// TestFixturesMatchShared keeps testdata in step with shared/protocol when
// the shared tree is present beside the repository.
func TestFixturesMatchShared(t *testing.T) {
	shared := filepath.Join("..", "..", "..", "shared", "protocol", "fixtures")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("shared fixtures not found at %s; nothing to compare", shared)
	}
	paths, err := filepath.Glob(filepath.Join(shared, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		base := filepath.Base(p)
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var probe struct{ Type string }
		if json.Unmarshal(want, &probe) != nil || probe.Type == "" {
			continue // not an ACS frame (e.g. the RegisterContainerInstance capture)
		}
		got, err := os.ReadFile(filepath.Join("testdata", "fixtures", base))
		if err != nil {
			t.Errorf("shared fixture %s has no copy in testdata/fixtures: %v", base, err)
			continue
		}
		if !bytes.Equal(want, got) {
			t.Errorf("testdata/fixtures/%s differs from %s; copy it again", base, p)
		}
	}
}

func TestDecodeWebTaskPayload(t *testing.T) {
	data := fixtureFrames(t)["PayloadMessage-berth-web-task.json"]
	f, err := DecodeFrame(data)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := f.(*PayloadMessage)
	if !ok {
		t.Fatalf("got %T, want *PayloadMessage", f)
	}
	if p.MessageID != "5f3c2a1e-0b7d-4e55-9a51-3c7d2f0e9b10" || p.SeqNum != 7 || p.GeneratedAt != 1763766000000 {
		t.Fatalf("envelope members: messageId=%q seqNum=%d generatedAt=%d", p.MessageID, p.SeqNum, p.GeneratedAt)
	}
	if p.ClusterArn != "arn:aws:ecs:us-east-1:000000000000:cluster/lab" || !strings.Contains(p.ContainerInstanceArn, "container-instance/lab/") {
		t.Fatalf("clusterArn=%q containerInstanceArn=%q", p.ClusterArn, p.ContainerInstanceArn)
	}
	if len(p.Tasks) != 1 {
		t.Fatalf("%d tasks, want 1", len(p.Tasks))
	}
	task := p.Tasks[0]
	if err := task.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if task.Cpu != 512 || task.Memory != 256 || task.EffectiveNetworkMode() != NetworkModeBridge {
		t.Fatalf("cpu=%v memory=%d networkMode=%q", task.Cpu, task.Memory, task.NetworkMode)
	}
	if task.RoleCredentials == nil || task.RoleCredentials.CredentialsID != "0d6f3a52-1c9b-4e7d-8f2a-6b5c4d3e2f10" ||
		task.ExecutionRoleCredentials == nil || task.ExecutionRoleCredentials.AccessKeyID != "ASIAEXAMPLEEXECROLE1" {
		t.Fatalf("credentials: %v %v", task.RoleCredentials, task.ExecutionRoleCredentials)
	}
	if s := task.RoleCredentials.String(); strings.Contains(s, task.RoleCredentials.SecretAccessKey) ||
		strings.Contains(s, task.RoleCredentials.SessionToken) {
		t.Fatalf("String() leaks a secret: %s", s)
	}
	if v := task.Volume("scratch"); v == nil || v.DockerVolumeConfiguration == nil ||
		v.DockerVolumeConfiguration.Scope != VolumeScopeTask || !v.DockerVolumeConfiguration.Autoprovision {
		t.Fatalf("scratch volume: %+v", v)
	}
	if v := task.Volume("content"); v == nil || v.Host == nil || v.Host.SourcePath != "/srv/web" {
		t.Fatalf("content volume: %+v", v)
	}
	app := task.Container("app")
	if app == nil || !app.Essential || app.Environment["GREETING"] != "hello world" || app.StopTimeout != 10 {
		t.Fatalf("app container: %+v", app)
	}
	wantPorts := []PortMapping{{ContainerPort: 8080, HostPort: 0, Protocol: "tcp"}, {ContainerPort: 9090, HostPort: 9090, Protocol: "udp"}}
	if !reflect.DeepEqual(app.PortMappings, wantPorts) {
		t.Fatalf("app ports %+v, want %+v", app.PortMappings, wantPorts)
	}
	s, err := app.DockerConfig.Decode()
	if err != nil {
		t.Fatalf("app dockerConfig: %v", err)
	}
	if hc := s.Config.Healthcheck; hc == nil || hc.Test[0] != HealthTestCmdShell || hc.Interval.Seconds() != 5 || hc.Retries != 3 {
		t.Fatalf("app health check %+v", s.Config.Healthcheck)
	}
	shipper := task.Container("shipper")
	if shipper == nil || len(shipper.DependsOn) != 1 || shipper.DependsOn[0] != (ContainerDependency{ContainerName: "app", Condition: ConditionHealthy}) {
		t.Fatalf("shipper dependsOn: %+v", shipper)
	}
	order, err := task.StartOrder()
	if err != nil || !reflect.DeepEqual(order, []string{"app", "shipper"}) {
		t.Fatalf("StartOrder = %v, %v; want [app shipper]", order, err)
	}
}

func TestDecodeFrameUnknownType(t *testing.T) {
	in := []byte(`{"type":"SomethingNewMessage","message":{"x":[1,2,{"y":"z"}]}}`)
	f, err := DecodeFrame(in)
	if err != nil {
		t.Fatalf("unknown type must not be an error, got %v", err)
	}
	u, ok := f.(*UnknownFrame)
	if !ok || u.Type != "SomethingNewMessage" {
		t.Fatalf("got %#v, want *UnknownFrame of SomethingNewMessage", f)
	}
	out, err := EncodeFrame(u)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(t, in), normalize(t, out)) {
		t.Fatalf("unknown frame did not survive a round trip: %s", out)
	}
}

func TestDecodeFrameErrors(t *testing.T) {
	cases := map[string]string{
		"not json":          `{"type":`,
		"no type":           `{"message":{}}`,
		"array":             `[1,2]`,
		"null message":      `{"type":"PayloadMessage","message":null}`,
		"missing message":   `{"type":"HeartbeatMessage"}`,
		"wrong member type": `{"type":"PayloadMessage","message":{"seqNum":"seven"}}`,
		"tasks not a list":  `{"type":"PayloadMessage","message":{"tasks":{}}}`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			f, err := DecodeFrame([]byte(in))
			if !errors.Is(err, ErrMalformedFrame) {
				t.Fatalf("DecodeFrame(%s) = %#v, %v; want an error wrapping ErrMalformedFrame", in, f, err)
			}
		})
	}
}

func TestErrorFrames(t *testing.T) {
	for _, typ := range []string{TypeErrorMessage, TypeServerException, TypeBadRequestException,
		TypeInvalidClusterException, TypeInvalidInstanceException, TypeInactiveInstanceException,
		TypeAccessDeniedException} {
		in := []byte(`{"type":"` + typ + `","message":{"message":"boom"}}`)
		f, err := DecodeFrame(in)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		ef, ok := f.(*ErrorFrame)
		if !ok || ef.Type != typ || ef.Message != "boom" || ef.Error() != typ+": boom" {
			t.Fatalf("%s decoded to %#v", typ, f)
		}
		out, err := EncodeFrame(ef)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("%s re-encoded to %s, %v; want %s", typ, out, err, in)
		}
	}
}

func TestEncodeAgentFrames(t *testing.T) {
	cases := []struct {
		f    Frame
		want string
	}{
		{&AckRequest{Cluster: "c", ContainerInstance: "ci", MessageID: "m"},
			`{"type":"AckRequest","message":{"cluster":"c","containerInstance":"ci","messageId":"m"}}`},
		{&HeartbeatAckRequest{MessageID: "hb"}, `{"type":"HeartbeatAckRequest","message":{"messageId":"hb"}}`},
		{&IAMRoleCredentialsAckRequest{MessageID: "m", Expiration: "e", CredentialsID: "id"},
			`{"type":"IAMRoleCredentialsAckRequest","message":{"messageId":"m","expiration":"e","credentialsId":"id"}}`},
		{&HeartbeatMessage{Healthy: false, MessageID: "x"}, `{"type":"HeartbeatMessage","message":{"healthy":false,"messageId":"x"}}`},
		{&TaskStopVerificationMessage{MessageID: "m", StopCandidates: []*TaskIdentifier{{TaskArn: "a", DesiredStatus: StatusStopped}}},
			`{"type":"TaskStopVerificationMessage","message":{"messageId":"m","stopCandidates":[{"taskArn":"a","desiredStatus":"STOPPED"}]}}`},
		{&NackRequest{MessageID: "m", Reason: "no updates"}, `{"type":"NackRequest","message":{"messageId":"m","reason":"no updates"}}`},
		// TCS, the telemetry websocket (shared/protocol/tcs-api-2.json):
		// timestamps are epoch seconds.
		{&PublishHealthRequest{
			Metadata: &HealthMetadata{Cluster: "c", ContainerInstance: "ci", MessageID: "m", Fin: true},
			Tasks: []*TaskHealth{{TaskArn: "t", ClusterArn: "c", TaskDefinitionFamily: "web", TaskDefinitionVersion: "3",
				Containers: []*ContainerHealth{{ContainerName: "app", HealthStatus: HealthStatusUnhealthy,
					StatusSince: &ECSEpochTime{time.UnixMilli(1700000000250).UTC()}, StatusMessage: "exit 1"}}}},
			Timestamp: &ECSEpochTime{time.UnixMilli(1700000001000).UTC()}},
			`{"type":"PublishHealthRequest","message":{"metadata":{"cluster":"c","containerInstance":"ci","messageId":"m","fin":true},` +
				`"tasks":[{"taskArn":"t","clusterArn":"c","taskDefinitionFamily":"web","taskDefinitionVersion":"3",` +
				`"containers":[{"containerName":"app","healthStatus":"UNHEALTHY","statusSince":1700000000.25,"statusMessage":"exit 1"}]}],"timestamp":1700000001}}`},
		{&AckPublishHealth{Message: "ok"}, `{"type":"AckPublishHealth","message":{"message":"ok"}}`},
		{&AckPublishMetric{Message: "ok"}, `{"type":"AckPublishMetric","message":{"message":"ok"}}`},
	}
	for _, c := range cases {
		got, err := EncodeFrame(c.f)
		if err != nil {
			t.Fatalf("%T: %v", c.f, err)
		}
		if string(got) != c.want {
			t.Fatalf("%T encoded to\n%s\nwant\n%s", c.f, got, c.want)
		}
		back, err := DecodeFrame(got)
		if err != nil || !reflect.DeepEqual(back, c.f) {
			t.Fatalf("%T did not decode back: %#v, %v", c.f, back, err)
		}
	}
	if _, err := EncodeFrame(nil); err == nil {
		t.Fatal("EncodeFrame(nil) succeeded")
	}
	if _, err := EncodeFrame((*PayloadMessage)(nil)); err == nil {
		t.Fatal("EncodeFrame of a nil *PayloadMessage succeeded")
	}
	if _, err := EncodeFrame(&ErrorFrame{}); err == nil {
		t.Fatal("EncodeFrame of an ErrorFrame without type succeeded")
	}
}

func FuzzDecodeFrame(f *testing.F) {
	for _, data := range fixtureFrames(f) {
		f.Add(data)
	}
	f.Add([]byte(`{"type":"Unknown","message":{}}`))
	f.Add([]byte(`{"type":"ServerException","message":{"message":"x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := DecodeFrame(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedFrame) {
				t.Fatalf("error does not wrap ErrMalformedFrame: %v", err)
			}
			return
		}
		out, err := EncodeFrame(fr)
		if err != nil {
			t.Fatalf("decoded frame %T does not encode: %v", fr, err)
		}
		fr2, err := DecodeFrame(out)
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v\n%s", err, out)
		}
		if fr2.FrameType() != fr.FrameType() {
			t.Fatalf("type changed from %q to %q", fr.FrameType(), fr2.FrameType())
		}
		// Validation must never panic, whatever the payload holds.
		if p, ok := fr.(*PayloadMessage); ok {
			for _, task := range p.Tasks {
				if task != nil {
					_ = task.Validate()
					for _, c := range task.Containers {
						if c != nil {
							_, _ = c.DockerConfig.Decode()
						}
					}
				}
			}
		}
	})
}
