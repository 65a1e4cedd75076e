// Command berth-agent is the Berth agent: it joins a cluster over the ECS
// control-plane protocol and runs tasks on containerd. This package holds only
// flags, signals and exit codes; configuration lives in pkg/config and the
// agent itself in pkg/agent.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/berth-dev/berth/internal/version"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/agent/devmode"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/logs"
	"github.com/berth-dev/berth/pkg/sdnotify"
	"github.com/berth-dev/berth/pkg/state"
)

// Exit codes, documented in docs/configuration.md ("Exit codes").
const (
	// exitOK is a clean stop: a signal ended the agent, or a command succeeded.
	exitOK = 0
	// exitFailure is a runtime failure, or `check` finding configuration errors.
	exitFailure = 1
	// exitUsage is a bad flag or command.
	exitUsage = 2
	// exitTerminal is a configuration or registration error that a restart
	// cannot fix; systemd units set RestartPreventExitStatus=5.
	exitTerminal = 5
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: berth-agent [--version] [--config FILE] [--toml FILE] [--log-format logfmt|json] [--dev [--dev-dir DIR] [--dev-role NAME]] [command]

With no command, run the agent. With --dev, run a cluster endpoint on a free
loopback port and an agent registered to it, in one process (docs/dev-mode.md).

commands:
  check          validate the configuration, print every problem; exit 1 on errors
  print-config   print every setting's effective value and source (secrets redacted)

flags:
`

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	// Hidden modes, before any flag or config parsing: the log daemon that
	// captures container output ("log-daemon", started by the agent) and
	// the per-container logger that the shim starts for containers from
	// before it ("logger"); see DESIGN.md, Logs.
	if code, ok := logs.ServeMode(ctx, "berth-agent", args, stderr); ok {
		return code
	}
	fs := flag.NewFlagSet("berth-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	paths := addPathFlags(fs)
	dev := fs.Bool("dev", false, "dev mode: run a cluster endpoint and an agent registered to it in one process")
	devDir := fs.String("dev-dir", devmode.DefaultDir, "dev mode: directory for the endpoint's and the agent's data, credentials and env")
	var devRoles []string
	fs.Func("dev-role", "dev mode: declare the task role arn:aws:iam::000000000000:role/NAME with generated keys (repeatable)", func(v string) error {
		devRoles = append(devRoles, v)
		return nil
	})
	snapshotter := fs.String("containerd-snapshotter", "", "containerd snapshotter for task containers (default overlayfs; native where overlay mounts fail)")
	var logFormat string
	fs.Func("log-format", "logfmt or json: overrides ECS_LOG_OUTPUT_FORMAT", func(v string) error {
		if v != "logfmt" && v != "json" {
			return fmt.Errorf("%q: allowed are logfmt, json", v)
		}
		logFormat = v
		return nil
	})
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if *showVersion {
		fmt.Fprintf(stdout, "berth-agent %s\n", version.Version)
		return exitOK
	}
	cmd, rest := "", fs.Args()
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	if cmd != "" && cmd != "check" && cmd != "print-config" {
		fmt.Fprintf(stderr, "berth-agent: unknown command %q\n", cmd)
		fs.Usage()
		return exitUsage
	}
	if cmd != "" {
		// Subcommands accept the path flags after their name too.
		sub := flag.NewFlagSet("berth-agent "+cmd, flag.ContinueOnError)
		sub.SetOutput(stderr)
		paths.addTo(sub)
		if err := sub.Parse(rest); err != nil {
			return parseExit(err)
		}
		if sub.NArg() > 0 {
			fmt.Fprintf(stderr, "berth-agent %s: unexpected argument %q\n", cmd, sub.Arg(0))
			return exitUsage
		}
	}
	opts := paths.loadOptions(env)

	switch cmd {
	case "":
		mode := runMode{dev: *dev, devDir: *devDir, devRoles: devRoles, snapshotter: *snapshotter, logFormat: logFormat, stdout: stdout}
		return runAgent(ctx, opts, mode, stderr)
	case "check":
		return check(opts, stdout)
	default: // "print-config"
		return printConfig(opts, stdout, stderr)
	}
}

func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// pathFlags are --config and --toml, which both the top level and every
// subcommand accept.
type pathFlags struct {
	config, toml       string
	configSet, tomlSet bool
}

func addPathFlags(fs *flag.FlagSet) *pathFlags {
	p := &pathFlags{}
	p.addTo(fs)
	return p
}

func (p *pathFlags) addTo(fs *flag.FlagSet) {
	fs.Func("config", "ecs.config file (default "+config.DefaultConfigPath+")", func(s string) error {
		p.config, p.configSet = s, true
		return nil
	})
	fs.Func("toml", "TOML configuration file (default "+config.DefaultTOMLPath+")", func(s string) error {
		p.toml, p.tomlSet = s, true
		return nil
	})
}

func (p *pathFlags) loadOptions(env []string) config.LoadOptions {
	return config.LoadOptions{Env: env,
		ConfigPath: p.config, ConfigPathSet: p.configSet,
		TOMLPath: p.toml, TOMLPathSet: p.tomlSet}
}

// check prints every problem and fails when any is an error.
func check(opts config.LoadOptions, stdout io.Writer) int {
	_, problems, err := config.Load(opts)
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
	}
	errs := 0
	for _, p := range problems {
		if p.Severity == config.SeverityError {
			errs++
		}
	}
	if err != nil {
		fmt.Fprintf(stdout, "configuration has %d error(s) and %d warning(s)\n", errs, len(problems)-errs)
		return exitFailure
	}
	fmt.Fprintf(stdout, "configuration OK (%d warning(s))\n", len(problems))
	return exitOK
}

// printConfig prints the effective settings; problems go to stderr.
func printConfig(opts config.LoadOptions, stdout, stderr io.Writer) int {
	cfg, problems, err := config.Load(opts)
	for _, p := range problems {
		fmt.Fprintln(stderr, p)
	}
	if werr := cfg.WriteSettings(stdout); werr != nil {
		fmt.Fprintf(stderr, "berth-agent: %v\n", werr)
		return exitFailure
	}
	if err != nil {
		return exitFailure
	}
	return exitOK
}

// runMode says how to run: as a cluster member, or in dev mode.
type runMode struct {
	dev         bool
	devDir      string
	devRoles    []string
	snapshotter string
	// logFormat, when set, overrides ECS_LOG_OUTPUT_FORMAT (--log-format).
	logFormat string
	stdout    io.Writer
}

// runAgent loads the configuration, sets up logging and runs the agent until
// ctx is cancelled.
func runAgent(ctx context.Context, opts config.LoadOptions, mode runMode, stderr io.Writer) int {
	cfg, problems, cfgErr := config.Load(opts)
	if mode.logFormat != "" {
		cfg.Log.Format = mode.logFormat
	}
	out, err := openLogOutput(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "berth-agent: %v\n", err)
		return exitTerminal
	}
	defer out.close()
	log := config.NewLogger(cfg.Log, out)
	for _, p := range problems {
		entry := log.WithField("problem", p.String())
		if p.Severity == config.SeverityError {
			entry.Error("configuration error")
		} else {
			entry.Warn("configuration warning")
		}
	}
	if cfgErr != nil {
		log.Error("invalid configuration; not starting (exit 5)")
		return exitTerminal
	}
	// Proxies set in ecs.config reach Go's HTTP client through the
	// environment, as ecs-init hands ecs.config to the ECS agent's.
	for _, kv := range cfg.ProxyEnv() {
		name, value, _ := strings.Cut(kv, "=")
		if err := os.Setenv(name, value); err != nil {
			log.WithError(err).Errorf("cannot set %s from the configuration", name)
			return exitTerminal
		}
	}
	log.WithField("version", version.Version).Info("berth-agent starting")
	return exitCode(ctx, startAgent(ctx, cfg, mode, log), log)
}

// startAgent runs the agent, registered to its cluster, until ctx ends.
func startAgent(ctx context.Context, cfg *config.Config, mode runMode, log *logrus.Logger) error {
	slogger := config.NewSlog(log)
	var opts []agent.Option
	// The log daemon runs as berth-logd when it is installed next to the
	// agent (its memory is then the daemon's, not the agent binary's).
	if exe, err := os.Executable(); err == nil {
		opts = append(opts, agent.WithLoggerBinary(logs.DaemonBinary(exe)))
	}
	if mode.snapshotter != "" {
		opts = append(opts, agent.WithSnapshotter(mode.snapshotter))
	}
	if mode.dev {
		return devmode.Run(ctx, devmode.Options{Dir: mode.devDir, Config: cfg, Out: mode.stdout, Logger: slogger,
			AgentOptions: opts, DevRoles: mode.devRoles})
	}
	// Under systemd (Type=notify) the unit becomes active once the instance
	// is registered, and the watchdog is fed while the engine answers.
	var notifier *sdnotify.Notifier
	a, err := agent.New(cfg, append(opts, agent.WithLogger(slogger), agent.WithMembership(agent.Membership{
		Registered: func(id state.InstanceIdentity) {
			if err := notifier.Ready("registered as " + id.ContainerInstanceArn); err != nil {
				slogger.Warn("systemd notify READY failed", "err", err)
			}
		},
	}))...)
	if err != nil {
		return err
	}
	notifier, err = sdnotify.New()
	if err != nil {
		return fmt.Errorf("systemd notify: %w", err)
	}
	_ = notifier.Status("starting: recovering tasks and registering")
	watchCtx, stopWatchdog := context.WithCancel(ctx)
	watchdogDone := make(chan struct{})
	go func() {
		defer close(watchdogDone)
		_ = notifier.Run(watchCtx, func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return a.Ready(ctx)
		})
	}()
	// STOPPING=1 as soon as shutdown begins, while the outbox is flushed.
	stopNotify := context.AfterFunc(ctx, func() { _ = notifier.Stopping("stopping: flushing the outbox") })
	defer stopNotify()
	err = a.Run(ctx)
	stopWatchdog()
	<-watchdogDone
	return err
}

// terminalError is implemented by errors that a restart cannot fix (bad
// configuration, the cluster refusing registration); they exit with 5.
type terminalError interface {
	error
	Terminal() bool
}

// exitCode maps the agent's result onto the documented exit codes; a
// cancelled context is a clean stop.
func exitCode(ctx context.Context, err error, log *logrus.Logger) int {
	var term terminalError
	switch {
	case err == nil, errors.Is(err, context.Canceled) && ctx.Err() != nil:
		log.Info("berth-agent stopped")
		return exitOK
	case errors.As(err, &term) && term.Terminal():
		log.WithError(err).Error("berth-agent stopped by a terminal error")
		return exitTerminal
	default:
		log.WithError(err).Error("berth-agent failed")
		return exitFailure
	}
}
