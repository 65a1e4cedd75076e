package cluster_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/metrics"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

const (
	testRegion  = "us-test-1"
	testAccount = "123456789012"
)

// runningEndpoint is a real berth-cluster endpoint serving plain HTTP on a
// loopback port, with an admin key.
type runningEndpoint struct {
	ep          *cluster.Endpoint
	url         string
	adminID     string
	adminSecret string
	stop        func()
}

// startEndpoint opens the endpoint on dir and serves it on 127.0.0.1:0 until
// the test ends (or stop is called).
func startEndpoint(t *testing.T, dir string) *runningEndpoint {
	t.Helper()
	return startEndpointWith(t, dir, nil)
}

// startEndpointWith lets a test adjust the options (edit may be nil).
func startEndpointWith(t *testing.T, dir string, edit func(*cluster.Options)) *runningEndpoint {
	t.Helper()
	opts := cluster.Options{
		Listen: "127.0.0.1:0", InsecureHTTP: true,
		Region: testRegion, AccountID: testAccount, DataDir: dir,
		// Most tests register instances without running agents.
		NoAgentSessions: true,
	}
	if edit != nil {
		edit(&opts)
	}
	ep, err := cluster.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open endpoint: %v", err)
	}
	ln, err := ep.Listen()
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ep.Serve(ctx, ln) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := ep.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	t.Cleanup(stop)
	re := &runningEndpoint{ep: ep, url: "http://" + ln.Addr().(*net.TCPAddr).String(), stop: stop}
	keys, err := ep.Keys().List()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		re.adminID, re.adminSecret = newKey(t, ep, auth.RoleAdmin)
	}
	return re
}

func newKey(t *testing.T, ep *cluster.Endpoint, role auth.Role) (string, string) {
	t.Helper()
	id, secret, err := ep.Keys().Create(role, time.Now())
	if err != nil {
		t.Fatalf("create %s key: %v", role, err)
	}
	return id, secret
}

// client is the real AWS SDK ECS client for the endpoint, without retries
// so that each error is seen as it was answered.
func (re *runningEndpoint) client(id, secret string) *ecs.Client {
	return ecs.New(ecs.Options{
		Region:       testRegion,
		BaseEndpoint: aws.String(re.url),
		Credentials:  credentials.NewStaticCredentialsProvider(id, secret, ""),
		HTTPClient:   awshttp.NewBuildableClient(),
		Retryer:      aws.NopRetryer{},
	})
}

func (re *runningEndpoint) admin() *ecs.Client { return re.client(re.adminID, re.adminSecret) }

// errorCode returns the AWS error type of an SDK error, or "" for nil.
func errorCode(err error) string {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return "not an API error: " + err.Error()
}

// rawRequest is an ECS request built by hand, for what the SDK will not send
// (hostile_test.go builds those of every API).
type rawRequest struct {
	target string // operation name; prefixed with the ECS target prefix
	body   string
	id     string
	secret string
	// service is the SigV4 service signed for; empty means ecs.
	service string
}

// do sends the request and returns the HTTP status and the error type.
func (re *runningEndpoint) do(t *testing.T, r rawRequest) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, re.url+"/", bytes.NewReader([]byte(r.body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if strings.Contains(r.target, ".") {
		req.Header.Set("X-Amz-Target", r.target)
	} else {
		req.Header.Set("X-Amz-Target", "AmazonEC2ContainerServiceV20141113."+r.target)
	}
	service := r.service
	if service == "" {
		service = "ecs"
	}
	sum := sha256.Sum256([]byte(r.body))
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: r.id, SecretAccessKey: r.secret},
		req, hex.EncodeToString(sum[:]), service, testRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", r.target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, ""
	}
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%s: error body %q is not an AWS error shape: %v", r.target, b, err)
	}
	if e.Message == "" {
		t.Errorf("%s: error %s has no message", r.target, e.Type)
	}
	return resp.StatusCode, e.Type
}

func snapshot(t *testing.T, re *runningEndpoint) map[store.Bucket]map[string]string {
	t.Helper()
	s, err := store.Snapshot(re.ep.Store(), cluster.Buckets())
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	withoutSampled(s)
	return s
}

// withoutSampled leaves out of a snapshot the series the endpoint writes
// by itself every minute (each cluster's CPUReservation and
// MemoryReservation, metrics.Store.RunSampler) and their points, so that
// a test comparing snapshots around requests does not see the clock.
func withoutSampled(s map[store.Bucket]map[string]string) {
	for key := range s[metrics.SeriesBucket] {
		for _, name := range []string{metrics.CPUReservation, metrics.MemoryReservation} {
			prefix := metrics.SeriesKey(metrics.MetricID{Namespace: metrics.ECSNamespace, MetricName: name})
			prefix = prefix[:strings.LastIndex(prefix, "/")+1]
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			delete(s[metrics.SeriesBucket], key)
			hash := key[len(prefix):]
			for pk := range s[metrics.PointsBucket] {
				if strings.HasPrefix(pk, hash+"/") {
					delete(s[metrics.PointsBucket], pk)
				}
			}
		}
	}
}

// TestWithoutSampled: the snapshot filter drops the sampler's series and
// points and nothing else.
func TestWithoutSampled(t *testing.T) {
	sampled := metrics.SeriesKey(metrics.MetricID{Namespace: metrics.ECSNamespace, MetricName: metrics.CPUReservation,
		Dimensions: []metrics.Dimension{{Name: "ClusterName", Value: "c"}}})
	user := metrics.SeriesKey(metrics.MetricID{Namespace: "Mine", MetricName: metrics.CPUReservation})
	hash := func(k string) string { return k[strings.LastIndex(k, "/")+1:] }
	s := map[store.Bucket]map[string]string{
		metrics.SeriesBucket: {sampled: "{}", user: "{}"},
		metrics.PointsBucket: {hash(sampled) + "/m/0000000060": "{}", hash(user) + "/m/0000000060": "{}"},
	}
	withoutSampled(s)
	if len(s[metrics.SeriesBucket]) != 1 || s[metrics.SeriesBucket][user] == "" ||
		len(s[metrics.PointsBucket]) != 1 || s[metrics.PointsBucket][hash(user)+"/m/0000000060"] == "" {
		t.Errorf("after withoutSampled: %v", s)
	}
}
