// Package devmode is `berth-agent --dev`: a cluster endpoint on a free
// loopback port and an agent registered to it, in one process, with every
// file under one directory. It creates the cluster "default", an admin key
// for the user and an agent key for the agent, writes them as an AWS
// shared-credentials file and writes DIR/env with the exports that point the
// AWS CLI and SDKs at the endpoint. cmd/agent and the end-to-end tests use it.
package devmode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/agent/member"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/cluster/roles"
	"github.com/berth-dev/berth/pkg/config"
)

// Defaults of dev mode.
const (
	DefaultDir     = "berth-dev"
	DefaultRegion  = "us-east-1"
	DefaultAccount = "000000000000"
	ClusterName    = "default"
	// Profile is the admin profile in the credentials file; AgentProfile
	// holds the agent's key.
	Profile      = "berth-dev"
	AgentProfile = "berth-dev-agent"
)

// Options configure Run.
type Options struct {
	// Dir holds everything: cluster/ (endpoint data), agent/ (ECS_DATADIR
	// unless the config sets one), credentials and env.
	Dir string
	// Config is the agent's loaded configuration; Run overrides the
	// cluster, backend host, region and (unless set) data directory.
	Config *config.Config
	// Listen is the endpoint's address; empty means 127.0.0.1:0 (a free
	// loopback port).
	Listen string
	// AgentOptions are passed to agent.New.
	AgentOptions []agent.Option
	// ACS tunes the endpoint's session server (tests shorten timers).
	ACS acs.Options
	// DevRoles are role names (`--dev-role NAME`): each becomes the role
	// arn:aws:iam::000000000000:role/NAME with generated static keys, whose
	// credentials the endpoint puts in the payloads of tasks that name it.
	DevRoles []string
	// Member tunes the agent's session and submitter; Config, Agent and
	// Credentials are filled in.
	Member member.Options
	// Out receives the lines printed at start (the env exports).
	Out    io.Writer
	Logger *slog.Logger
	// Started, when set, is called once the endpoint serves and the files
	// are written.
	Started func(*Dev)
}

// Dev describes a running dev mode.
type Dev struct {
	Endpoint *Endpoint
	// EnvFile and CredentialsFile are the files written under Dir.
	EnvFile, CredentialsFile string
	// Admin is the user's key (profile berth-dev).
	Admin  aws.Credentials
	Region string
}

// Run starts the endpoint and the agent and runs both until ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.Config == nil {
		return errors.New("dev mode: no agent configuration")
	}
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return fmt.Errorf("dev mode: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("dev mode: create %s: %w", dir, err)
	}
	cfg := *o.Config
	region := cfg.Region()
	if region == "" {
		region = DefaultRegion
	}
	var devRoles []roles.RoleConfig
	for _, name := range o.DevRoles {
		r, err := roles.DevRole(DefaultAccount, name)
		if err != nil {
			return fmt.Errorf("dev mode: %w", err)
		}
		devRoles = append(devRoles, r)
	}
	ep, err := StartEndpoint(ctx, EndpointOptions{
		DataDir: filepath.Join(dir, "cluster"), Listen: o.Listen, Roles: devRoles,
		Region: region, AccountID: DefaultAccount, ACS: o.ACS, Logger: o.Logger.With("component", "endpoint"),
	})
	if err != nil {
		return fmt.Errorf("dev mode: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = ep.Shutdown(sctx)
	}()

	credsFile := filepath.Join(dir, "credentials")
	admin, agentKey, err := ensureKeys(ep, credsFile)
	if err != nil {
		return fmt.Errorf("dev mode: %w", err)
	}
	if err := createCluster(ctx, ep.URL, region, admin); err != nil {
		return fmt.Errorf("dev mode: %w", err)
	}
	envFile := filepath.Join(dir, "env")
	lines := EnvLines(ep.URL, credsFile, region)
	if err := writeFile(envFile, lines); err != nil {
		return fmt.Errorf("dev mode: %w", err)
	}
	fmt.Fprintf(o.Out, "berth dev mode: endpoint %s, cluster %q; to use it:\n. %s\n%s", ep.URL, ClusterName, envFile, lines)
	for _, r := range devRoles {
		fmt.Fprintf(o.Out, "task role for taskRoleArn/executionRoleArn: %s\n", r.Arn)
	}

	cfg.Cluster = ClusterName
	cfg.BackendHost = ep.URL
	cfg.AWS.Region = region
	if cfg.DataDir == "" || cfg.Source("ECS_DATADIR").Kind == config.SourceDefault {
		cfg.DataDir = filepath.Join(dir, "agent")
	}
	if cfg.Containers.AWSLogsEndpoint == "" {
		// awslogs containers ship to the dev endpoint's log store, so the
		// driver is allowed unless the configuration lists drivers itself.
		cfg.Containers.AWSLogsEndpoint = "cluster"
		if cfg.Source("ECS_AVAILABLE_LOGGING_DRIVERS").Kind == config.SourceDefault &&
			!slices.Contains(cfg.Containers.AvailableLoggingDrivers, "awslogs") {
			cfg.Containers.AvailableLoggingDrivers = append(slices.Clone(cfg.Containers.AvailableLoggingDrivers), "awslogs")
		}
	}
	// Task roles are part of what dev mode lets a lab try (--dev-role), so
	// they are on unless the operator set the key. The default credentials
	// address is replaced by a free loopback port chosen when the agent
	// binds it (the 169.254.170.2 route follows that port), so several dev
	// agents, and tests, run side by side.
	if cfg.Source("ECS_ENABLE_TASK_IAM_ROLE").Kind == config.SourceDefault {
		cfg.IAM.EnableTaskRole = true
	}
	if cfg.Source("ECS_AUDIT_LOGFILE").Kind == config.SourceDefault {
		cfg.IAM.AuditLogFile = filepath.Join(dir, "audit.log") // every file under DIR
	}
	if cfg.Source("BERTH_CREDENTIALS_ADDRESS").Kind == config.SourceDefault {
		cfg.Listen.Credentials = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0)
	}
	hook, changed := member.StateChangeSignal()
	agentCreds := credentials.StaticCredentialsProvider{Value: agentKey}
	a, err := agent.New(&cfg, append([]agent.Option{agent.WithLogger(o.Logger.With("component", "agent")),
		agent.WithStateChangeHook(hook), agent.WithAWSCredentials(agentCreds)}, o.AgentOptions...)...)
	if err != nil {
		return fmt.Errorf("dev mode: %w", err)
	}
	if o.Started != nil {
		o.Started(&Dev{Endpoint: ep, EnvFile: envFile, CredentialsFile: credsFile, Admin: admin, Region: region})
	}
	mo := o.Member
	mo.Config, mo.Agent = &cfg, a
	mo.Credentials = agentCreds
	mo.StateChanged = changed
	if mo.Logger == nil {
		mo.Logger = o.Logger.With("component", "agent")
	}
	return runMember(ctx, ep, mo)
}

// runMember runs the agent as a member of the endpoint's cluster until ctx
// ends, the agent fails or the endpoint does: an endpoint that stopped
// serving ends the agent (its ACS session closed first, as on any stop)
// and dev mode returns why.
func runMember(ctx context.Context, ep *Endpoint, mo member.Options) error {
	runCtx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel (defers run last first)
	defer cancel(nil)
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case err := <-ep.Failed():
			o := fmt.Errorf("endpoint: %w", err)
			mo.Logger.Error("dev mode: stopping", "err", o)
			cancel(o)
		case <-runCtx.Done():
		}
	}()
	err := member.Run(runCtx, mo)
	if cause := context.Cause(runCtx); ctx.Err() == nil && cause != nil && (err == nil || errors.Is(err, context.Canceled)) {
		err = cause // the endpoint failed
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("dev mode: %w", err)
	}
	return err
}

// EnvLines are the exports that point the AWS CLI and SDKs at the endpoint
// (ECS, and CloudWatch Logs for the log store). The AWS CLI v1 reads only
// AWS_DEFAULT_REGION, so both region names are set.
func EnvLines(endpointURL, credsFile, region string) string {
	return fmt.Sprintf("export AWS_ENDPOINT_URL_ECS=%s\nexport AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=%s\nexport AWS_SHARED_CREDENTIALS_FILE=%s\nexport AWS_PROFILE=%s\nexport AWS_REGION=%s\nexport AWS_DEFAULT_REGION=%s\n",
		endpointURL, endpointURL, credsFile, Profile, region, region)
}

// createCluster creates the cluster "default"; on a restart it exists
// already, and CreateCluster answers with it, as ECS does.
func createCluster(ctx context.Context, url, region string, admin aws.Credentials) error {
	client := NewECSClient(url, region, admin)
	if _, err := client.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String(ClusterName)}); err != nil {
		return fmt.Errorf("create cluster %s: %w", ClusterName, err)
	}
	return nil
}

// NewECSClient returns an ECS client for the endpoint at url signed with
// creds (tests, the demo and the benchmark use it).
func NewECSClient(url, region string, creds aws.Credentials) *ecs.Client {
	return ecs.New(ecs.Options{
		Region:       region,
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.StaticCredentialsProvider{Value: creds},
		HTTPClient:   awshttp.NewBuildableClient().WithTimeout(30 * time.Second),
	})
}
