// Command berth-cluster is Berth's self-contained ECS-compatible cluster
// endpoint: `serve` runs it, `keys` manages its access keys. Flags, signals
// and exit codes live here; everything else is in pkg/cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/berth-dev/berth/internal/version"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	clusterapi "github.com/berth-dev/berth/pkg/cluster/api"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/config"
	"github.com/berth-dev/berth/pkg/cluster/logstore"
	"github.com/berth-dev/berth/pkg/cluster/roles"
	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/sdnotify"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: berth-cluster [--version] <command> [flags]

commands:
  serve [--config FILE]                       run the cluster endpoint
  keys create --role admin|agent [--config FILE | --data-dir DIR]
                                              create an access key; the secret is printed once
  keys list [--config FILE | --data-dir DIR]  list access keys (never secrets)
  keys revoke [--config FILE | --data-dir DIR] ACCESS_KEY_ID
`

// run returns the exit code: 0 success, 1 failure, 2 usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("berth-cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "berth-cluster %s\n", version.Version)
		return 0
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return 2
	}
	var err error
	switch rest[0] {
	case "serve":
		err = serve(ctx, rest[1:], stderr)
	case "keys":
		err = keys(rest[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "berth-cluster: unknown command %q\n", rest[0])
		fs.Usage()
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "berth-cluster: %v\n", err)
		fmt.Fprint(stderr, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "berth-cluster: %v\n", err)
		return 1
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "configuration file")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments, got %q", fs.Args())}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// The CloudWatch Logs-compatible store gives awslogs a destination in a
	// lab; it is served on the same listener by X-Amz-Target prefix.
	logStore, err := logstore.Open(logstore.Options{Path: filepath.Join(cfg.DataDir, logstore.File), Region: cfg.Region, AccountID: cfg.AccountID})
	if err != nil {
		return fmt.Errorf("open log store: %w", err)
	}
	defer logStore.Close()
	// Task IAM roles: the broker issues credentials into payloads and
	// refreshes them through the session server.
	var acsSrv *acs.Server
	var broker *roles.Broker
	var validator clusterapi.RoleValidator
	if len(cfg.Roles) > 0 {
		if broker, err = newRolesBroker(ctx, cfg, func() *acs.Server { return acsSrv }, logger); err != nil {
			return err
		}
		validator = broker
	}
	ep, err := cluster.Open(cluster.Options{
		Roles:   validator,
		Targets: []clusterapi.Target{logStore.Target()},
		Listen:  cfg.Listen, TLSCertFile: cfg.TLSCert, TLSKeyFile: cfg.TLSKey, InsecureHTTP: cfg.InsecureHTTP,
		Region: cfg.Region, AccountID: cfg.AccountID, DataDir: cfg.DataDir, PollEndpoint: cfg.PollEndpoint,
		Logger: logger,
		NewSessionServer: func(st store.Store, v *auth.Verifier) (cluster.SessionServer, error) {
			ao := acs.Options{Store: st, Verifier: v, Logger: logger}
			if broker != nil {
				ao.Credentials = broker
			}
			var err error
			acsSrv, err = acs.New(ao)
			return acsSrv, err
		},
	})
	if err != nil {
		return err
	}
	defer ep.Close()
	ln, err := ep.Listen()
	if err != nil {
		return err
	}
	scheme := "https"
	if cfg.InsecureHTTP {
		scheme = "http"
		logger.Warn("serving plain HTTP (insecure_http = true)")
	}
	url := scheme + "://" + ln.Addr().String()
	logger.Info("berth-cluster serving", "version", version.Version, "url", url, "region", cfg.Region, "data_dir", cfg.DataDir)
	// systemd (Type=notify) learns that the listener is open; without
	// NOTIFY_SOCKET these calls do nothing.
	notifier, err := sdnotify.New()
	if err != nil {
		return fmt.Errorf("systemd notify: %w", err)
	}
	if err := notifier.Ready("serving " + url); err != nil {
		logger.Warn("systemd notify READY failed", "err", err)
	}
	retentionCtx, stopRetention := context.WithCancel(ctx)
	retentionDone := make(chan struct{})
	go func() {
		defer close(retentionDone)
		logStore.RunRetention(retentionCtx, time.Hour, func(err error) { logger.Warn("log retention sweep failed", "err", err) })
	}()
	brokerDone := make(chan struct{})
	go func() {
		defer close(brokerDone)
		if broker != nil {
			_ = broker.Run(retentionCtx)
		}
	}()
	err = ep.Serve(ctx, ln)
	stopRetention()
	<-retentionDone
	<-brokerDone
	if err != nil {
		return err
	}
	_ = notifier.Stopping("stopped")
	logger.Info("berth-cluster stopped")
	return nil
}

// keysDataDir parses --config/--data-dir and returns the data directory.
func keysFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*flag.FlagSet, string, error) {
	fs := flag.NewFlagSet("keys "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "configuration file (for data_dir)")
	dataDir := fs.String("data-dir", "", "data directory (instead of reading --config)")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, "", usageError{err.Error()}
	}
	if *dataDir != "" {
		return fs, *dataDir, nil
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return nil, "", err
	}
	return fs, cfg.DataDir, nil
}

func keys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"keys needs a subcommand: create, list or revoke"}
	}
	var role string
	var extra func(*flag.FlagSet)
	if args[0] == "create" {
		extra = func(fs *flag.FlagSet) { fs.StringVar(&role, "role", "", "admin or agent") }
	}
	fs, dataDir, err := keysFlags(args[0], args[1:], stderr, extra)
	if err != nil {
		return err
	}
	keyring, err := cluster.OpenKeyring(dataDir)
	if err != nil {
		return err
	}
	defer keyring.Close()
	switch args[0] {
	case "create":
		r, err := auth.ParseRole(role)
		if err != nil {
			return usageError{"--role: " + err.Error()}
		}
		id, secret, err := keyring.Create(r, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n", id, secret)
		fmt.Fprintln(stderr, "The secret is shown only now; store it safely.")
	case "list":
		list, err := keyring.List()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCESS KEY ID\tROLE\tCREATED\tSTATUS")
		for _, k := range list {
			status := "active"
			if k.Revoked {
				status = "revoked"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.AccessKeyID, k.Role, k.CreatedAt.Format(time.RFC3339), status)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return usageError{"keys revoke takes one ACCESS_KEY_ID"}
		}
		if err := keyring.Revoke(fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s\n", fs.Arg(0))
	default:
		return usageError{fmt.Sprintf("unknown keys subcommand %q", args[0])}
	}
	return nil
}

// newRolesBroker builds the task role credentials broker for cfg.Roles.
// assume-role roles sign STS calls with the endpoint's own AWS credentials
// (the SDK's default chain); credentials ids are derived under a key kept
// in the data directory, so that they survive a restart.
func newRolesBroker(ctx context.Context, cfg config.Config, acsSrv func() *acs.Server, logger *slog.Logger) (*roles.Broker, error) {
	opts := roles.Options{Roles: cfg.Roles}
	for _, r := range cfg.Roles {
		if r.Source == roles.SourceAssumeRole {
			awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
			if err != nil {
				return nil, fmt.Errorf("roles: the endpoint's AWS credentials: %w", err)
			}
			opts.BaseCredentials = awsCfg.Credentials
			break
		}
	}
	issuer, err := roles.New(opts)
	if err != nil {
		return nil, err
	}
	key, err := roles.LoadIDKey(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	return roles.NewBroker(roles.BrokerOptions{Issuer: issuer, IDKey: key,
		Refresher: roles.RefresherOptions{Logger: logger},
		Sender: roles.SenderFunc(func(ctx context.Context, arn string, m *api.IAMRoleCredentialsMessage) error {
			return acsSrv().SendCredentials(ctx, arn, m)
		})})
}
