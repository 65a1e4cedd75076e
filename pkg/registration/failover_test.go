package registration

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
)

// With ECS_BACKEND_HOST naming two replicas and the first down, a request
// goes to the second, signed for it, and later requests stay there.
func TestFailoverToNextReplica(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	var served atomic.Int32
	var up *httptest.Server
	up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		auth := r.Header.Get("Authorization")
		if r.Host != strings.TrimPrefix(up.URL, "http://") || !strings.Contains(auth, "SignedHeaders=") || !strings.Contains(auth, "host") {
			t.Errorf("request to %s with Host %q, Authorization %q", up.URL, r.Host, auth)
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, `{"endpoint":"`+up.URL+`","telemetryEndpoint":"`+up.URL+`"}`)
	}))
	defer up.Close()

	c, err := NewClient(context.Background(), ClientOptions{Endpoint: downURL + "," + up.URL, Region: "us-test-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		out, err := c.ECS.DiscoverPollEndpoint(context.Background(), &ecs.DiscoverPollEndpointInput{ContainerInstance: aws.String("i")})
		if err != nil || aws.ToString(out.Endpoint) != up.URL {
			t.Fatalf("DiscoverPollEndpoint %d: %v %+v", i, err, out)
		}
	}
	if served.Load() != 2 {
		t.Errorf("the live replica served %d requests, want 2", served.Load())
	}

	if _, err := NewClient(context.Background(), ClientOptions{Endpoint: up.URL + ",ftp://x", Region: "us-test-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}); err == nil || !strings.Contains(err.Error(), `"ftp://x"`) {
		t.Errorf("a list with ftp://x: %v", err)
	}
}
