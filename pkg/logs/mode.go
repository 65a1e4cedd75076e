package logs

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/sirupsen/logrus"
)

// ServeMode runs the hidden mode that args (the program's arguments after
// its name) select, if any, and reports whether it did; code is then the
// process's exit code and program prefixes its messages. Every program that pkg/runtime may name as its
// LoggerBinary (the agent, the benchmark programs, test binaries through
// agentproc) calls it first thing in main, before parsing flags:
//
//   - "log-daemon run <dir>": the log daemon of dir (RunDaemon), until
//     SIGTERM, a stop request or idleness;
//   - "log-daemon start <dir>": start that daemon detached and return once
//     it answers (how Captures starts it);
//   - "logger <config>": the per-container logger that containerd's shim
//     starts for containers created by agents before the log daemon
//     (RunShimLogger).
func ServeMode(ctx context.Context, program string, args []string, stderr io.Writer) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case LoggerMode:
		if len(args) != 2 {
			fmt.Fprintf(stderr, "%s: logger mode takes one argument and is started by the containerd shim\n", program)
			return 1, true
		}
		if err := RunShimLogger(ctx, args[1]); err != nil {
			fmt.Fprintf(stderr, "%s logger: %v\n", program, err)
			return 1, true
		}
		return 0, true
	case DaemonMode:
		if len(args) != 3 || (args[1] != "run" && args[1] != "start") {
			fmt.Fprintf(stderr, "usage: %s %s run|start <dir>\n", program, DaemonMode)
			return 2, true
		}
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
		defer stop()
		var err error
		if args[1] == "start" {
			err = startDetached(ctx, args[2])
		} else {
			log := logrus.New()
			log.SetOutput(stderr)
			releaseStartupMemory(log) // this process is the daemon and nothing else
			err = RunDaemon(ctx, DaemonOptions{Dir: args[2], Log: log})
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s %s %s: %v\n", program, DaemonMode, args[1], err)
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// DaemonProgram is the name of the log daemon's own program (cmd/logd),
// installed next to berth-agent.
const DaemonProgram = "berth-logd"

// DaemonBinary returns the program that the agent at exe runs its log daemon
// with (CapturesOptions.Binary): DaemonProgram in exe's directory when there
// is one, else exe itself, which serves the same daemon through ServeMode.
// The small program saves the memory that the agent's binary costs a
// process (docs/benchmarks.md, "peers"); both speak the same protocol as
// long as they come from one build, which the packages and `make build`
// ensure.
func DaemonBinary(exe string) string {
	p := filepath.Join(filepath.Dir(exe), DaemonProgram)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
		return p
	}
	return exe
}
