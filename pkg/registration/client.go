package registration

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
)

// ClientOptions say how to reach the ECS API.
type ClientOptions struct {
	// Endpoint is ECS_BACKEND_HOST (an http(s) URL); empty means the SDK's
	// endpoint for Region. Several URLs separated by commas name replicas
	// of one cluster endpoint: requests go to one of them and move on to
	// the next when it cannot be reached (see failover).
	Endpoint string
	// Region is the SigV4 signing region.
	Region string
	// Credentials overrides the standard AWS credential chain (environment,
	// shared files, container and instance roles) when set.
	Credentials aws.CredentialsProvider
	// Timeout bounds one HTTP request; zero means 30 seconds.
	Timeout time.Duration
	// Logger reports moves between the replicas of Endpoint (nil:
	// slog.Default()).
	Logger *slog.Logger
}

// Client is an ECS API client together with what the ACS handshake needs to
// sign its request.
type Client struct {
	// ECS is the API client (RegisterContainerInstance, DiscoverPollEndpoint,
	// Submit*StateChange).
	ECS *ecs.Client
	// Credentials sign the ACS websocket handshake.
	Credentials aws.CredentialsProvider
	// Region is the signing region.
	Region string
	// HTTPClient is the client the SDK uses; the websocket dialer reuses
	// its TLS settings (AWS_CA_BUNDLE).
	HTTPClient *awshttp.BuildableClient
}

// NewClient builds the ECS client. The HTTP client is always an
// awshttp.BuildableClient: with AWS_CA_BUNDLE set the SDK refuses any other.
func NewClient(ctx context.Context, o ClientOptions) (*Client, error) {
	if o.Region == "" {
		return nil, &TerminalError{Op: "configure ECS client", Err: errors.New("no region"),
			Hint: "set AWS_REGION (or AWS_DEFAULT_REGION) to the cluster's region"}
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	hc := awshttp.NewBuildableClient().WithTimeout(timeout)
	loadOpts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(o.Region),
		awsconfig.WithHTTPClient(hc),
	}
	if o.Credentials != nil {
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, &TerminalError{Op: "load AWS configuration", Err: err,
			Hint: "check AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE and AWS_CA_BUNDLE"}
	}
	if b, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		hc = b
	}
	var fo *failover
	if list := SplitEndpoints(o.Endpoint); len(list) > 1 {
		if o.Logger == nil {
			o.Logger = slog.Default()
		}
		if fo, err = newFailover(list, o.Logger); err != nil {
			return nil, &TerminalError{Op: "configure ECS client", Err: err, Hint: "ECS_BACKEND_HOST names http(s) URLs separated by commas"}
		}
	}
	client := ecs.NewFromConfig(cfg, func(eo *ecs.Options) {
		if o.Endpoint != "" {
			eo.BaseEndpoint = aws.String(strings.TrimRight(o.Endpoint, "/"))
		}
		if fo != nil {
			eo.BaseEndpoint = aws.String(fo.Current())
			eo.APIOptions = append(eo.APIOptions, fo.add)
		}
	})
	return &Client{ECS: client, Credentials: cfg.Credentials, Region: o.Region, HTTPClient: hc}, nil
}

// credentialsHint is the hint for a credential chain that found nothing.
func credentialsHint() string {
	return "give the agent credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (in the environment or ECS config file), or AWS_PROFILE with AWS_SHARED_CREDENTIALS_FILE; for a Berth endpoint create an agent key with `berth-cluster keys create --role agent`"
}
