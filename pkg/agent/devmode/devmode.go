// Package devmode is `berth-agent --dev`: a cluster endpoint on a loopback
// port and an agent registered to it, in one process, with every file under
// one directory. It creates the cluster "default", an admin key for the user
// and an agent key for the agent, writes them as an AWS shared-credentials
// file, keeps its loopback addresses across restarts in DIR/addresses, and
// once the agent is registered and connected writes DIR/env with the
// exports that point the AWS CLI and SDKs at the endpoint (removed again
// when dev mode stops). Its agent shares nothing with a system agent on the
// same host (settings.go). cmd/agent and the end-to-end tests use it.
package devmode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/cluster/roles"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/state"
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
	// Membership tunes the agent's sessions and submitter; Credentials is
	// filled in (the generated agent key).
	Membership agent.Membership
	// Out receives the lines printed at start (the env exports).
	Out    io.Writer
	Logger *slog.Logger
	// Started, when set, is called once the agent is registered and
	// connected and DIR/env is written.
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

// Run starts the endpoint and the agent and runs both until ctx ends (nil)
// or one of them fails (the error). DIR/env is written once the agent is
// registered and connected, and removed when Run returns.
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
	// DIR/env exists only while dev mode is up and its agent connected: a
	// script waiting for it must not find the one a killed run left.
	envFile := filepath.Join(dir, "env")
	if err := removeEnv(envFile); err != nil {
		return fmt.Errorf("dev mode: %w", err)
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
	addrsFile := filepath.Join(dir, AddressesFile)
	addrs, err := keepAddresses(addrsFile, addressesToKeep(&cfg, o.Listen))
	if err != nil {
		return fmt.Errorf("dev mode: %w", err)
	}
	listen := o.Listen
	if ap, ok := addrs[addrEndpoint]; ok {
		listen = ap.String()
	}
	ep, err := StartEndpoint(ctx, EndpointOptions{
		DataDir: filepath.Join(dir, "cluster"), Listen: listen, Roles: devRoles,
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

	cfg.Cluster = ClusterName
	cfg.BackendHost = ep.URL
	cfg.AWS.Region = region
	applyDevSettings(&cfg, dir, addrs)
	agentCreds := credentials.StaticCredentialsProvider{Value: agentKey}
	r := &devRun{o: o, cfg: &cfg, ep: ep, admin: admin, region: region, roles: devRoles,
		envFile: envFile, credsFile: credsFile, addrsFile: addrsFile}
	m := o.Membership
	m.Credentials = agentCreds
	registered := make(chan string, 1)
	m.Registered = func(id state.InstanceIdentity) {
		if o.Membership.Registered != nil {
			o.Membership.Registered(id)
		}
		select {
		case registered <- id.ContainerInstanceArn:
		default:
		}
	}
	agentOpts := append([]agent.Option{agent.WithLogger(o.Logger.With("component", "agent")),
		agent.WithAWSCredentials(agentCreds), agent.WithMembership(m)}, devAgentOptions(dir)...)
	if r.agent, err = agent.New(&cfg, append(agentOpts, o.AgentOptions...)...); err != nil {
		return fmt.Errorf("dev mode: %w", err)
	}
	err = r.run(ctx, registered)
	if rerr := removeEnv(envFile); rerr != nil {
		o.Logger.Warn("dev mode: remove the env file", "err", rerr)
	}
	return err
}

// devRun is one run of dev mode once its endpoint serves and its agent is
// built.
type devRun struct {
	o         Options
	cfg       *config.Config
	ep        *Endpoint
	agent     *agent.Agent
	admin     aws.Credentials
	region    string
	roles     []roles.RoleConfig
	envFile   string
	credsFile string
	addrsFile string
}

// run runs the agent as a member of the endpoint's cluster until ctx ends
// or a part fails: the agent (its Run returns), the endpoint (it stopped
// serving: the agent is stopped, its ACS session closed first as on any
// stop) or the announcement (DIR/env could not be written). The watchers
// are goroutines owned here, cancelled and waited for before run returns.
// registered receives the container instance ARN once the agent is
// registered.
func (r *devRun) run(ctx context.Context, registered <-chan string) error {
	runCtx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel (defers run last first)
	defer cancel(nil)
	fail := func(err error) {
		r.o.Logger.With("component", "agent").Error("dev mode: stopping", "err", err)
		cancel(err)
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		select {
		case err := <-r.ep.Failed():
			fail(fmt.Errorf("endpoint: %w", err))
		case <-runCtx.Done():
		}
	}()
	go func() {
		defer wg.Done()
		if err := r.announce(runCtx, registered); err != nil && runCtx.Err() == nil {
			fail(err)
		}
	}()
	err := r.agent.Run(runCtx)
	if cause := context.Cause(runCtx); ctx.Err() == nil && cause != nil && (err == nil || errors.Is(err, context.Canceled)) {
		err = cause // the endpoint or the announcement failed
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("dev mode: %w", err)
	}
	return err
}

// announce waits until the agent has registered, is ready and the
// endpoint shows it connected (only then does RunTask place tasks on it),
// then prints how to use dev mode, writes DIR/env (atomically) and calls
// Options.Started.
func (r *devRun) announce(ctx context.Context, registered <-chan string) error {
	var arn string
	select {
	case arn = <-registered:
	case <-ctx.Done():
		return nil
	}
	if err := r.agent.Ready(ctx); err != nil {
		return nil // the agent stopped: its Run reports why
	}
	client := NewECSClient(r.ep.URL, r.region, r.admin)
	for {
		out, err := client.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{
			Cluster: aws.String(ClusterName), ContainerInstances: []string{arn}})
		if err == nil && len(out.ContainerInstances) == 1 && out.ContainerInstances[0].AgentConnected {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	lines := EnvLines(r.ep.URL, r.credsFile, r.region)
	var b strings.Builder
	fmt.Fprintf(&b, "berth dev mode: endpoint %s, cluster %q, agent connected as %s\n", r.ep.URL, ClusterName, arn)
	if ia := r.agent.IntrospectionAddr(); ia != nil {
		fmt.Fprintf(&b, "introspection API: http://%s (e.g. curl http://%s/v1/metadata)\n", ia, ia)
	}
	if r.cfg.IAM.EnableTaskRole {
		fmt.Fprintf(&b, "credentials endpoint: %s (tasks reach it as 169.254.170.2:80)\n", r.cfg.Listen.Credentials)
	}
	for _, role := range r.roles {
		fmt.Fprintf(&b, "task role for taskRoleArn/executionRoleArn: %s\n", role.Arn)
	}
	if link, err := r.ep.ConsoleSignInLink(r.admin.AccessKeyID); err != nil {
		r.o.Logger.Warn("dev mode: console sign-in link", "err", err)
	} else {
		fmt.Fprintf(&b, "web console: %s%s (signs in once as the dev admin key, within 10 minutes)\n", r.ep.URL, link)
	}
	fmt.Fprintf(&b, "addresses are kept across restarts in %s; to use dev mode:\n. %s\n%s", r.addrsFile, r.envFile, lines)
	// Printed first, so that a script that shows the output once DIR/env
	// is there shows all of it.
	fmt.Fprint(r.o.Out, b.String())
	if err := writeFile(r.envFile, lines); err != nil {
		return fmt.Errorf("announce: %w", err)
	}
	if r.o.Started != nil {
		r.o.Started(&Dev{Endpoint: r.ep, EnvFile: r.envFile, CredentialsFile: r.credsFile, Admin: r.admin, Region: r.region})
	}
	return nil
}

// removeEnv removes DIR/env; a missing file is fine.
func removeEnv(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
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
