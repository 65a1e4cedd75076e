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
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/internal/version"
	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/config"
	agentconfig "github.com/berth-dev/berth/pkg/config"
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
  serve [--config FILE] [--log-format logfmt|json]
                                              run the cluster endpoint
  keys create --role admin|agent|lb|viewer [--config FILE | --data-dir DIR]
                                              create an access key; the secret is printed once
  keys list [--config FILE | --data-dir DIR]  list access keys (never secrets)
  keys revoke [--config FILE | --data-dir DIR] ACCESS_KEY_ID
  backup [--config FILE | --data-dir DIR] [--kek FILE] --out FILE
                                              write every record and the sealed keys to a file
  restore [--config FILE | --data-dir DIR] [--kek FILE] [--force] --in FILE
                                              write a backup into an empty store (offline)
  migrate --from bbolt:DATA_DIR|etcd:CONFIG --to bbolt:DATA_DIR|etcd:CONFIG [--force]
                                              copy a cluster's state between stores (offline)
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
	case "backup", "restore":
		err = backupRestore(ctx, rest[0], rest[1:], stdout, stderr)
	case "migrate":
		err = migrate(ctx, rest[1:], stdout, stderr)
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
	var logFormat string
	fs.Func("log-format", "logfmt or json (default: log_format of the configuration file, else logfmt)", func(v string) error {
		if v != "logfmt" && v != "json" {
			return fmt.Errorf("%q: allowed are logfmt, json", v)
		}
		logFormat = v
		return nil
	})
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
	if logFormat != "" {
		cfg.LogFormat = logFormat
	}
	// The endpoint logs as the agent does, through the same logger
	// (pkg/config's): logrus with the same levels, formats and field
	// names; its packages log through log/slog bridged to it.
	log := agentconfig.NewLogger(agentconfig.LogConfig{Level: cfg.LogLevel, Format: cfg.LogFormat}, stderr)
	logger := agentconfig.NewSlog(log)
	var certs []cluster.Certificate
	for _, c := range cfg.Certificates {
		certs = append(certs, cluster.Certificate{ARN: c.ARN(cfg.Region, cfg.AccountID), CertFile: c.Cert, KeyFile: c.Key})
	}
	ep, err := cluster.Open(ctx, cluster.Options{
		Listen: cfg.Listen, TLSCertFile: cfg.TLSCert, TLSKeyFile: cfg.TLSKey, InsecureHTTP: cfg.InsecureHTTP,
		Region: cfg.Region, AccountID: cfg.AccountID, DataDir: cfg.DataDir, PollEndpoint: cfg.PollEndpoint,
		Roles: cfg.Roles, Certificates: certs, Logger: logger, Etcd: etcdOptions(cfg),
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
		ln.Close()
		return fmt.Errorf("systemd notify: %w", err)
	}
	if err := notifier.Ready("serving " + url); err != nil {
		logger.Warn("systemd notify READY failed", "err", err)
	}
	if err := ep.Serve(ctx, ln); err != nil {
		return err
	}
	_ = notifier.Stopping("stopped")
	logger.Info("berth-cluster stopped")
	return nil
}

// etcdOptions are the endpoint's etcd settings when cfg says store = "etcd".
func etcdOptions(cfg config.Config) *cluster.EtcdOptions {
	if cfg.Store != "etcd" {
		return nil
	}
	e := cfg.Etcd
	return &cluster.EtcdOptions{Endpoints: e.Endpoints, CertFile: e.CertFile, KeyFile: e.KeyFile, CAFile: e.CAFile,
		Prefix: e.Prefix, MaxTxnOps: e.MaxTxnOps, KEKFile: e.KEKFile, Replica: e.Replica,
		LeaseTTL: time.Duration(e.LeaseTTL) * time.Second, RequestTimeout: time.Duration(e.RequestTimeout) * time.Second}
}

// keysFlags parses --config/--data-dir and returns the data directory, and
// the etcd settings when the configuration keeps the keys in etcd.
func keysFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*flag.FlagSet, string, *cluster.EtcdOptions, error) {
	fs := flag.NewFlagSet("keys "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "configuration file (for data_dir)")
	dataDir := fs.String("data-dir", "", "data directory (instead of reading --config)")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, "", nil, usageError{err.Error()}
	}
	if *dataDir != "" {
		return fs, *dataDir, nil, nil
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return nil, "", nil, err
	}
	return fs, cfg.DataDir, etcdOptions(cfg), nil
}

func keys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"keys needs a subcommand: create, list or revoke"}
	}
	var role string
	var extra func(*flag.FlagSet)
	if args[0] == "create" {
		extra = func(fs *flag.FlagSet) { fs.StringVar(&role, "role", "", "admin, agent, lb or viewer") }
	}
	fs, dataDir, etcd, err := keysFlags(args[0], args[1:], stderr, extra)
	if err != nil {
		return err
	}
	var keyring cluster.KeyAdmin
	if etcd != nil {
		keyring, err = cluster.OpenKeyringEtcd(context.Background(), etcd)
	} else {
		keyring, err = cluster.OpenKeyring(dataDir)
	}
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
