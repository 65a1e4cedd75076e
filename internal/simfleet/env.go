package simfleet

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/servicectl"
)

// EnvOptions configure NewEnv.
type EnvOptions struct {
	// Cluster is created at start; empty means "sim".
	Cluster  string
	Services servicectl.Timing
	// Fleet's Endpoint, Region, Cluster and NewAgentKey are filled in.
	Fleet  Options
	Logger *slog.Logger
}

// Env is a real cluster endpoint (with its ACS session server) serving on
// loopback, an admin ECS client, and an empty simulated fleet; all are
// stopped when the test ends.
type Env struct {
	Endpoint *cluster.Endpoint
	URL      string
	Cluster  string
	Admin    *ecs.Client
	Fleet    *Fleet
}

// Region is the region Env's endpoint signs and names ARNs with.
const Region = "us-sim-1"

// NewEnv starts an endpoint in a temporary directory and an empty fleet.
func NewEnv(tb testing.TB, o EnvOptions) *Env {
	tb.Helper()
	if o.Cluster == "" {
		o.Cluster = "sim"
	}
	ep, err := cluster.Open(context.Background(), cluster.Options{
		Listen: "127.0.0.1:0", InsecureHTTP: true, Region: Region, AccountID: "123456789012",
		DataDir: tb.TempDir(), Services: o.Services, Logger: o.Logger,
		ACS: acs.Options{RedeliverAfter: time.Second},
	})
	if err != nil {
		tb.Fatalf("open endpoint: %v", err)
	}
	ln, err := ep.Listen()
	if err != nil {
		ep.Close()
		tb.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ep.Serve(ctx, ln) }()
	env := &Env{Endpoint: ep, URL: "http://" + ln.Addr().(*net.TCPAddr).String(), Cluster: o.Cluster}
	fo := o.Fleet
	fo.Endpoint, fo.Region, fo.Cluster = env.URL, Region, o.Cluster
	fo.NewAgentKey = func() (string, string, error) { return ep.Keys().Create(auth.RoleAgent, time.Now()) }
	if fo.Logger == nil {
		fo.Logger = o.Logger
	}
	fleet, err := Start(ctx, fo)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	env.Fleet = fleet
	tb.Cleanup(func() {
		fleet.Close()
		cancel()
		if err := <-served; err != nil {
			tb.Errorf("serve: %v", err)
		}
		if err := ep.Close(); err != nil {
			tb.Errorf("close endpoint: %v", err)
		}
	})
	id, secret, err := ep.Keys().Create(auth.RoleAdmin, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	env.Admin = ecs.New(ecs.Options{
		Region: Region, BaseEndpoint: aws.String(env.URL),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""),
		HTTPClient:  awshttp.NewBuildableClient(),
	})
	if _, err := env.Admin.CreateCluster(context.Background(), &ecs.CreateClusterInput{ClusterName: aws.String(o.Cluster)}); err != nil {
		tb.Fatalf("create cluster: %v", err)
	}
	return env
}
