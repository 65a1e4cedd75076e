package lb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/berth-dev/berth/pkg/cluster/elbv2/lbwire"
)

// signingService is the SigV4 service of the ELBv2 and data-plane APIs.
const signingService = "elasticloadbalancing"

// endpointClient calls the data-plane API: AWS JSON 1.1 on POST /,
// signed with SigV4 for elasticloadbalancing.
type endpointClient struct {
	url    string
	region string
	creds  aws.Credentials
	http   *http.Client
	signer *v4.Signer
	now    func() time.Time
}

// APIError is an error the endpoint answered with (AWS JSON error shape).
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %s (HTTP %d)", e.Code, e.Message, e.Status)
}

func newEndpointClient(cfg Config) (*endpointClient, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &endpointClient{url: strings.TrimSuffix(cfg.Endpoint, "/") + "/", region: cfg.Region,
		creds:  aws.Credentials{AccessKeyID: cfg.AccessKeyID, SecretAccessKey: cfg.SecretAccessKey, Source: "lb.toml"},
		http:   &http.Client{Transport: tr, Timeout: 30 * time.Second},
		signer: v4.NewSigner(), now: time.Now}, nil
}

// State reads a load balancer's state by name or ARN.
func (c *endpointClient) State(ctx context.Context, lb string) (*lbwire.State, error) {
	in := lbwire.GetStateInput{LoadBalancerName: lb}
	if strings.HasPrefix(lb, "arn:") {
		in = lbwire.GetStateInput{LoadBalancerArn: lb}
	}
	var out lbwire.State
	if err := c.call(ctx, lbwire.OpGetLoadBalancerState, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Report sends the health of one target group's targets.
func (c *endpointClient) Report(ctx context.Context, in lbwire.ReportInput) (*lbwire.ReportOutput, error) {
	var out lbwire.ReportOutput
	if err := c.call(ctx, lbwire.OpReportTargetHealth, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Metrics sends a load balancer's metrics.
func (c *endpointClient) Metrics(ctx context.Context, in lbwire.MetricsInput) (*lbwire.MetricsOutput, error) {
	var out lbwire.MetricsOutput
	if err := c.call(ctx, lbwire.OpReportMetrics, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *endpointClient) call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", lbwire.TargetPrefix+op)
	sum := sha256.Sum256(body)
	if err := c.signer.SignHTTP(ctx, c.creds, req, hex.EncodeToString(sum[:]), signingService, c.region, c.now()); err != nil {
		return fmt.Errorf("%s: sign: %w", op, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		if e.Type == "" {
			e.Type, e.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(data))
		}
		return fmt.Errorf("%s: %w", op, &APIError{Status: resp.StatusCode, Code: e.Type, Message: e.Message})
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", op, err)
	}
	return nil
}
