// Command berth-logd is Berth's log daemon as a program of its own: the one
// process that writes every container's output into its json-file
// (pkg/logs' RunDaemon). berth-agent starts it as "berth-logd log-daemon
// start <dir>" when this program is installed next to it (the packages
// install both; logs.DaemonBinary), and runs the same daemon from its own
// binary when it is not. It links nothing but pkg/logs, so the daemon's
// memory is that of the daemon rather than of the whole agent (every
// package's start-up and program pages; docs/benchmarks.md, "peers").
// Like the agent, it also serves the per-container "logger" mode. This
// package holds only the arguments and the exit code.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth-dev/berth/internal/version"
	"github.com/berth-dev/berth/pkg/logs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "--version" {
		fmt.Fprintf(stdout, "berth-logd %s\n", version.Version)
		return 0
	}
	if code, ok := logs.ServeMode(ctx, "berth-logd", args, stderr); ok {
		return code
	}
	fmt.Fprintf(stderr, "usage: berth-logd %s run|start <dir>\n"+
		"berth-logd is started by berth-agent (docs/logging.md), not by hand.\n", logs.DaemonMode)
	return 2
}
