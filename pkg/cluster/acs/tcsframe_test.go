package acs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
)

// UpstreamTCSFrame is upstreamTCSFrame for the package's external tests.
var UpstreamTCSFrame = upstreamTCSFrame

// upstreamTCSFrame builds a TCS frame as the upstream agent sends it
// (testdata/README.md): the headers of a GET of rawURL whose body is
// payload, SigV4-signed for ecs at at, then a blank line and payload.
func upstreamTCSFrame(t testing.TB, creds aws.Credentials, region, rawURL string, at time.Time, payload []byte) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "ecs", region, at); err != nil {
		t.Fatal(err)
	}
	req.Header.Add("Host", req.Host)
	var b bytes.Buffer
	if err := req.Header.Write(&b); err != nil {
		t.Fatal(err)
	}
	b.WriteString("\r\n")
	b.Write(payload)
	return b.Bytes()
}

type fixtureKeys map[string]auth.Key

func (k fixtureKeys) Lookup(id string) (auth.Key, string, error) {
	key, ok := k[id]
	if !ok {
		return auth.Key{}, "", auth.ErrUnknownKey
	}
	return key, "fixture/secret/for/the/upstream/tcs/frame", nil
}

// TestUpstreamTCSFrames: the signed frames of testdata (the upstream
// agent's shape) verify and yield their JSON; a frame whose body was
// changed after signing, one signed by a key the instance is not bound to,
// and one signed for another URL are refused; a bare JSON frame (Berth's
// agent) passes unchanged. The tests' frame builder reproduces the
// fixtures byte for byte.
func TestUpstreamTCSFrames(t *testing.T) {
	const (
		fixtureKey = "AKIDUPSTREAMTCSFIXTURE"
		instArn    = "arn:aws:ecs:us-test-1:123456789012:container-instance/c/0123456789abcdef0123456789abcdef"
	)
	at := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	query, err := os.ReadFile(filepath.Join("testdata", "upstream-tcs-handshake.query"))
	if err != nil {
		t.Fatal(err)
	}
	rawURL := "http://127.0.0.1:8443/tcs/ws?" + string(query)
	handshake, _ := url.ParseRequestURI("/tcs/ws?" + string(query))

	st, err := boltstore.Open(filepath.Join(t.TempDir(), "c.db"), boltstore.Options{Buckets: records.Buckets()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys := fixtureKeys{fixtureKey: {AccessKeyID: fixtureKey, Role: auth.RoleAgent}, "AKIDOTHERAGENT": {AccessKeyID: "AKIDOTHERAGENT", Role: auth.RoleAgent}}
	s, err := New(Options{Store: st, Verifier: &auth.Verifier{Keys: keys, Region: "us-test-1", Services: []string{"ecs"}, Now: func() time.Time { return at }}})
	if err != nil {
		t.Fatal(err)
	}
	inst := &records.Instance{AgentKeyID: fixtureKey}
	inst.Instance.ContainerInstanceArn = aws.String(instArn)

	for _, name := range []string{"upstream-tcs-PublishHealthRequest.frame", "upstream-tcs-PublishHealthRequest-session-token.frame"} {
		t.Run(name, func(t *testing.T) {
			frame, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			body, err := s.telemetryFrame(handshake, inst, frame)
			if err != nil {
				t.Fatalf("the upstream agent's frame is refused: %v", err)
			}
			f, err := api.DecodeFrame(body)
			ph, ok := f.(*api.PublishHealthRequest)
			if err != nil || !ok || len(ph.Tasks) != 1 || ph.Tasks[0].Containers[0].HealthStatus != api.HealthStatusHealthy ||
				ph.Tasks[0].Containers[0].StatusSince == nil || ph.Metadata.ContainerInstance != instArn {
				t.Fatalf("decoded %T %+v (%v), want the fixture's PublishHealthRequest", f, f, err)
			}
			creds := aws.Credentials{AccessKeyID: fixtureKey, SecretAccessKey: "fixture/secret/for/the/upstream/tcs/frame"}
			if bytes.Contains(frame, []byte("X-Amz-Security-Token")) {
				creds.SessionToken = "FwoGZXIvYXdzEXAMPLEsessiontoken"
			}
			if got := upstreamTCSFrame(t, creds, "us-test-1", rawURL, at, body); !bytes.Equal(got, frame) {
				t.Errorf("the tests' frame builder differs from the fixture:\n got %q\nwant %q", got, frame)
			}

			tampered := bytes.Replace(frame, []byte(`"HEALTHY"`), []byte(`"UNHEALTHY"`), 1)
			other := *inst
			other.AgentKeyID = "AKIDOTHERAGENT"
			elsewhere, _ := url.ParseRequestURI("/tcs/ws?cluster=c")
			for _, tc := range []struct {
				name      string
				handshake *url.URL
				inst      *records.Instance
				frame     []byte
			}{
				{"body changed after signing", handshake, inst, tampered},
				{"key not bound to the instance", handshake, &other, frame},
				{"signed for another URL", elsewhere, inst, frame},
				{"header block without a blank line", handshake, inst, bytes.Replace(frame, []byte("\r\n\r\n"), []byte("\r\n"), 1)},
			} {
				if _, err := s.telemetryFrame(tc.handshake, tc.inst, tc.frame); !errors.Is(err, errUnsignedFrame) {
					t.Errorf("%s: want errUnsignedFrame, got %v", tc.name, err)
				}
			}
		})
	}
	plain := []byte(`{"type":"PublishMetricsRequest","message":{}}`)
	if got, err := s.telemetryFrame(handshake, inst, plain); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("a bare JSON frame: got %q, %v; want it unchanged", got, err)
	}
}
