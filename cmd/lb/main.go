// Command berth-lb is Berth's load balancer data plane: it serves the
// load balancers that /etc/berth/lb.toml names with HAProxy, following
// their listeners, rules and targets on the cluster endpoint and reporting
// target health back. Flags, signals and exit codes live here; everything
// else is in pkg/lb.
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

	"github.com/berth-dev/berth/internal/version"
	agentconfig "github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/lb"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: berth-lb [--version] [--config FILE] [--log-format logfmt|json] [--check]

Serves the load balancers the configuration names with HAProxy; HAProxy
keeps serving when berth-lb stops. --check validates the configuration and
exits.
`

// run returns the exit code: 0 success (or stopped by a signal), 1
// failure, 2 usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("berth-lb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	showVersion := fs.Bool("version", false, "print the version and exit")
	path := fs.String("config", lb.DefaultConfigPath, "configuration file")
	check := fs.Bool("check", false, "validate the configuration and exit")
	var logFormat string
	fs.Func("log-format", "logfmt or json (default: log_format of the configuration file)", func(v string) error {
		if v != "logfmt" && v != "json" {
			return fmt.Errorf("%q: allowed are logfmt, json", v)
		}
		logFormat = v
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "berth-lb %s\n", version.Version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "berth-lb: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return 2
	}
	cfg, err := lb.LoadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "berth-lb: %v\n", err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "%s: OK\n", *path)
		return 0
	}
	if logFormat != "" {
		cfg.LogFormat = logFormat
	}
	logger := agentconfig.NewSlog(agentconfig.NewLogger(agentconfig.LogConfig{Level: cfg.LogLevel, Format: cfg.LogFormat}, stderr))
	logger.Info("berth-lb starting", "version", version.Version, "endpoint", cfg.Endpoint, "load_balancers", cfg.LoadBalancers)
	err = lb.Run(ctx, lb.Options{Config: cfg, Logger: logger})
	switch {
	case err == nil || errors.Is(err, context.Canceled):
		logger.Info("berth-lb stopped; haproxy keeps serving")
		return 0
	default:
		logger.Error("berth-lb failed", "err", err)
		return 1
	}
}
