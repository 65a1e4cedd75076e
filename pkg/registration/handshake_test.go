package registration_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-dev/berth/pkg/registration"
)

type fixedEndpoint string

func (f fixedEndpoint) DiscoverPollEndpoint(context.Context, *ecs.DiscoverPollEndpointInput, ...func(*ecs.Options)) (*ecs.DiscoverPollEndpointOutput, error) {
	return &ecs.DiscoverPollEndpointOutput{Endpoint: aws.String(string(f))}, nil
}

// TestHandshakeRequest checks the websocket URL and the SigV4 header of the
// handshake against the protocol README.
func TestHandshakeRequest(t *testing.T) {
	var mu sync.Mutex
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if got == nil {
			got = r.Clone(context.Background())
		}
		mu.Unlock()
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	sess, err := registration.NewSession(registration.SessionOptions{
		API: fixedEndpoint(srv.URL + "/"), Region: "r-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		ClusterArn:  "arn:aws:ecs:r-1:1:cluster/c", ContainerInstanceArn: "arn:aws:ecs:r-1:1:container-instance/c/abc",
		Handler: newRecorder(), AgentVersion: "1.2.3", AgentHash: "h",
		Backoff: registration.Backoff{Min: time.Hour}, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sess.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, "handshake request", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return got != nil })
	mu.Lock()
	defer mu.Unlock()
	if got.URL.Path != "/ws" || got.Header.Get("Upgrade") != "websocket" {
		t.Errorf("handshake %s %s (Upgrade %q), want a websocket GET /ws", got.Method, got.URL.Path, got.Header.Get("Upgrade"))
	}
	want := url.Values{
		"clusterArn": {"arn:aws:ecs:r-1:1:cluster/c"}, "containerInstanceArn": {"arn:aws:ecs:r-1:1:container-instance/c/abc"},
		"agentHash": {"h"}, "agentVersion": {"1.2.3"}, "seqNum": {"1"}, "protocolVersion": {"2"},
		"dockerVersion": {"containerd"}, "sendCredentials": {"true"},
	}
	q := got.URL.Query()
	for k, v := range want {
		if q.Get(k) != v[0] {
			t.Errorf("query %s = %q, want %q", k, q.Get(k), v[0])
		}
	}
	if len(q) != len(want) {
		t.Errorf("query has %d parameters (%v), want %d", len(q), q, len(want))
	}
	auth := got.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDTEST/") || !strings.Contains(auth, "/r-1/ecs/aws4_request") ||
		!strings.Contains(auth, "SignedHeaders=host;x-amz-date") || got.Header.Get("X-Amz-Date") == "" {
		t.Errorf("Authorization %q (X-Amz-Date %q), want SigV4 for service ecs in r-1 over host and x-amz-date", auth, got.Header.Get("X-Amz-Date"))
	}
}
