// Command berth-testenv starts the shared test environment (one private
// containerd, a plain registry and an htpasswd registry), runs a command
// with their addresses in environment variables, and tears everything down
// afterwards, also on SIGINT, SIGTERM and SIGHUP, which it forwards to the
// command and then waits for the command to exit before it tears down:
//
//	go run ./internal/testenv/cmd/berth-testenv [--no-sweep] -- go test ./...
//
// Ctrl-C in a terminal signals the runner and the command at once, so the
// command gets SIGINT twice; commands must take that as one request.
// Before it starts, the runner removes what interrupted test runs left on
// the host under the tests' names; --no-sweep (make demo, which may run
// while tests do) skips that.
//
// It exits with the command's exit status, or 1 when teardown left a
// process, mount or file of the environment behind. See docs/testing.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// usage is printed for a missing command.
const usage = "usage: berth-testenv [--no-sweep] -- command [args...]"

// run starts the environment, runs the command and returns the exit code.
func run(args []string) int {
	flags := flag.NewFlagSet("berth-testenv", flag.ContinueOnError)
	noSweep := flags.Bool("no-sweep", false, "leave interrupted test runs' leftovers alone (for programs that may run beside tests)")
	flags.Usage = func() {
		fmt.Fprintln(os.Stderr, usage)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	args = flags.Args()
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}

	// Signals arriving during start or the run are held here; the command
	// gets them forwarded, and teardown always runs afterwards. SIGHUP is a
	// closed terminal: without a handler it would end the runner at once
	// and leave containerd running.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	startCtx, cancelStart := context.WithTimeout(context.Background(), 2*time.Minute)
	env, vars, code := start(startCtx, !*noSweep)
	cancelStart()
	if code != 0 {
		return code
	}

	select {
	case sig := <-sigs:
		// Interrupted while starting: do not run the command at all.
		fmt.Fprintf(os.Stderr, "berth-testenv: %v during start: tearing down\n", sig)
		code = 128 + int(sig.(syscall.Signal))
	default:
		code = runCommand(args, vars, sigs)
	}

	if env != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		err := env.Close(ctx)
		if swept := env.Swept(); len(swept) > 0 {
			fmt.Fprintf(os.Stderr, "berth-testenv: teardown removed %d container(s) that tests left behind: %s\n", len(swept), strings.Join(swept, " "))
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "berth-testenv: teardown failed: %v\n", err)
			if code == 0 {
				code = 1
			}
		} else {
			fmt.Fprintf(os.Stderr, "berth-testenv: teardown clean: no containerd, shim, registry, mount or file of %s left\n", env.Dir())
		}
	}
	return code
}

// start brings the environment up. Without root or the programs it needs,
// and outside CI, it runs the command without an environment so that the
// tests skip with their how-to message; under CI=true that is a failure.
func start(ctx context.Context, sweep bool) (*testenv.Env, []string, int) {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root privileges")
	}
	for _, b := range []string{"containerd", "containerd-shim-runc-v2", "runc", "docker-registry"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		msg := "missing " + strings.Join(missing, ", ") + "; run `sudo make test-deps` and run the tests as root"
		if testenv.InCI() {
			fmt.Fprintf(os.Stderr, "berth-testenv: CI=true: %s\n", msg)
			return nil, nil, 1
		}
		fmt.Fprintf(os.Stderr, "berth-testenv: %s; integration tests will skip\n", msg)
		return nil, nil, 0
	}
	if sweep {
		if swept, err := sweepTestLeftovers(ctx); len(swept) > 0 || err != nil {
			fmt.Fprintf(os.Stderr, "berth-testenv: removed %d leftover(s) of interrupted test runs (err: %v):\n  %s\n", len(swept), err, strings.Join(swept, "\n  "))
		}
	}
	began := time.Now()
	env, err := testenv.Start(ctx, testenv.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-testenv: start: %v\n", err)
		return nil, nil, 1
	}
	vars := env.Vars()
	fmt.Fprintf(os.Stderr, "berth-testenv: started in %v: %s\n", time.Since(began).Round(time.Millisecond), strings.Join(redact(vars), " "))
	return env, vars, 0
}

// redact hides the registry password in what is printed.
func redact(vars []string) []string {
	out := make([]string, len(vars))
	for i, v := range vars {
		if strings.HasPrefix(v, testenv.EnvAuthPassword+"=") {
			v = testenv.EnvAuthPassword + "=<redacted>"
		}
		out[i] = v
	}
	return out
}

// runCommand runs args with vars added to the environment, forwards the
// signals that arrive, and returns the command's exit code (128+signal when
// a signal ended it).
func runCommand(args, vars []string, sigs <-chan os.Signal) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), vars...)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "berth-testenv: run %s: %v\n", args[0], err)
		return 127
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			fmt.Fprintf(os.Stderr, "berth-testenv: %v: stopping %s, then tearing down\n", sig, args[0])
			_ = cmd.Process.Signal(sig)
		case err := <-done:
			return exitCode(err)
		}
	}
}

// exitCode maps a Wait error to a shell-style exit code.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "berth-testenv: %v\n", err)
	return 1
}
