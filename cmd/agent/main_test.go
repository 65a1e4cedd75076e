package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/sirupsen/logrus"
)

const authSecret = "hunter2-do-not-print"

// badLine3 is an ecs.config whose third line has an invalid port list.
const badLine3 = "# lab instance\nECS_CLUSTER=lab\nECS_RESERVED_PORTS=22,abc\n"

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runIn runs the command in-process. Callers name both files, so the host's
// /etc files never leak into a test.
func runIn(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, env, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestRun(t *testing.T) {
	bad := writeFile(t, "ecs.config", badLine3)
	good := writeFile(t, "ecs.config", "ECS_CLUSTER=lab\nECS_CLUSTR=typo\n")
	noTOML := writeFile(t, "agent.toml", "") // empty, so the host's /etc/berth/agent.toml is never read
	tests := []struct {
		name       string
		env        []string
		args       []string
		code       int
		stdoutHas  []string
		stderrHas  []string
		stdoutLine string // a line stdout must start with
	}{
		{name: "version", args: []string{"--version"}, code: exitOK, stdoutHas: []string{"berth-agent dev"}},
		{name: "help", args: []string{"-h"}, code: exitOK, stderrHas: []string{"usage: berth-agent"}},
		{name: "unknown flag", args: []string{"--nope"}, code: exitUsage},
		{name: "unknown command", args: []string{"frobnicate", "--x"}, code: exitUsage, stderrHas: []string{`unknown command "frobnicate"`}},
		{name: "extra argument", args: []string{"check", "x"}, code: exitUsage},
		{name: "logger mode is for the shim", args: []string{"logger", "--some-arg", "x"}, code: exitFailure,
			stderrHas: []string{"started by the containerd shim"}},
		{name: "logger mode refuses a bad config", args: []string{"logger", "not-a-config"}, code: exitFailure,
			stderrHas: []string{"berth-agent logger: "}},
		{name: "check bad line 3", args: []string{"check", "--config", bad, "--toml", noTOML}, code: exitFailure,
			stdoutLine: bad + ":3: ECS_RESERVED_PORTS: ",
			stdoutHas:  []string{`"22,abc" is not a JSON array of ports (1-65535)`, "1 error(s)"}},
		{name: "check flags before the command", args: []string{"--config", bad, "--toml", noTOML, "check"}, code: exitFailure,
			stdoutLine: bad + ":3: ECS_RESERVED_PORTS: "},
		{name: "check warnings only", args: []string{"check", "--config", good, "--toml", noTOML}, code: exitOK,
			stdoutHas: []string{"ECS_CLUSTR: warning: unknown key, ignored; did you mean ECS_CLUSTER?", "configuration OK (1 warning(s))"}},
		{name: "check env error", env: []string{"ECS_LOGLEVEL=loud"}, args: []string{"check", "--config", good, "--toml", noTOML},
			code: exitFailure, stdoutLine: "environment: ECS_LOGLEVEL: "},
		{name: "check missing named file", args: []string{"check", "--config", filepath.Join(t.TempDir(), "missing"), "--toml", noTOML}, code: exitFailure,
			stdoutHas: []string{"cannot read configuration file"}},
		{name: "print-config", env: []string{"ECS_CLUSTER=from-env"}, args: []string{"print-config", "--config", good, "--toml", noTOML}, code: exitOK,
			stdoutHas: []string{"ECS_CLUSTER", "from-env", "environment", "ECS_DATADIR", "/var/lib/berth", "default"}},
		{name: "run with bad config is terminal", args: []string{"--config", bad, "--toml", noTOML}, code: exitTerminal,
			stderrHas: []string{bad + ":3: ECS_RESERVED_PORTS: ", "not starting"}},
		{name: "run without a region is terminal and says what to set", args: []string{"--config", good, "--toml", noTOML}, code: exitTerminal,
			stderrHas: []string{"set AWS_REGION"}},
		{name: "run logs json", env: []string{"ECS_LOG_OUTPUT_FORMAT=json"}, args: []string{"--config", good, "--toml", noTOML}, code: exitTerminal,
			stderrHas: []string{`"level":"error"`, `"msg":"berth-agent stopped by a terminal error"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runIn(t, tt.env, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.stdoutHas {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.stderrHas {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if tt.stdoutLine != "" && !hasLinePrefix(stdout, tt.stdoutLine) {
				t.Errorf("no stdout line starts with %q:\n%s", tt.stdoutLine, stdout)
			}
		})
	}
}

func hasLinePrefix(out, prefix string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

type terminal struct{}

func (terminal) Error() string  { return "cluster refused registration" }
func (terminal) Terminal() bool { return true }

func TestExitCode(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	log := logrus.New()
	log.SetOutput(io.Discard)
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want int
	}{
		{"nil", context.Background(), nil, exitOK},
		{"cancelled by a signal", cancelled, fmt.Errorf("run: %w", context.Canceled), exitOK},
		{"terminal", context.Background(), fmt.Errorf("register: %w", terminal{}), exitTerminal},
		{"other", context.Background(), errors.New("containerd went away"), exitFailure},
	}
	for _, tt := range tests {
		if got := exitCode(tt.ctx, tt.err, log); got != tt.want {
			t.Errorf("%s: exit code %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestBinary builds berth-agent and checks the "must show" cases
// against the real executable: the bad line 3 and redaction in print-config.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	bin := buildAgent(t, t.TempDir())
	noTOML := writeFile(t, "agent.toml", "") // empty, so the host's /etc/berth/agent.toml is never read

	bad := writeFile(t, "ecs.config", badLine3)
	cmd := exec.Command(bin, "check", "--config", bad, "--toml", noTOML)
	cmd.Env = []string{}
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Errorf("check exit: %v, want exit status 1", err)
	}
	if !strings.HasPrefix(string(out), bad+":3: ECS_RESERVED_PORTS:") {
		t.Errorf("check output does not start with %q:\n%s", bad+":3: ECS_RESERVED_PORTS:", out)
	}

	auth := `{"registry.lab":{"username":"u","password":"` + authSecret + `"}}`
	cfgFile := writeFile(t, "ecs.config", "ECS_ENGINE_AUTH_TYPE=docker\nECS_ENGINE_AUTH_DATA='"+auth+"'\n")
	cmd = exec.Command(bin, "print-config", "--config", cfgFile, "--toml", noTOML)
	cmd.Env = []string{"AWS_SECRET_ACCESS_KEY=" + authSecret}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("print-config: %v\n%s", err, stderr.String())
	}
	if strings.Contains(string(out)+stderr.String(), authSecret) {
		t.Fatalf("print-config printed a secret:\n%s", out)
	}
	for _, key := range []string{"ECS_ENGINE_AUTH_DATA", "AWS_SECRET_ACCESS_KEY"} {
		line := lineFor(string(out), key)
		if !strings.Contains(line, "<redacted>") {
			t.Errorf("%s line is %q, want the value <redacted>", key, line)
		}
	}
}

// TestBinaryEveryUpstreamKey runs the real binary's `check` on an
// ecs.config that sets every ECS agent and ecs-init key to a typical value
// (pkg/config's testdata): it passes, with warnings only (none about an
// unknown key); and `print-config` under the package's agent.toml with an
// ecs.config holding only ECS_CLUSTER shows an ECS-optimised host's defaults.
func TestBinaryEveryUpstreamKey(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	bin := buildAgent(t, t.TempDir())
	noTOML := writeFile(t, "agent.toml", "")
	every, err := filepath.Abs("../../pkg/config/testdata/every-upstream-key.ecs.config")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "check", "--config", every, "--toml", noTOML)
	cmd.Env = []string{}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("check of every upstream key: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "configuration OK (") {
		t.Errorf("last line %q, want configuration OK", last)
	}
	for _, line := range lines[:len(lines)-1] {
		if !strings.HasPrefix(line, every+":") || !strings.Contains(line, ": warning: ") || strings.Contains(line, "unknown key") {
			t.Errorf("not a warning with file:line about a known key: %s", line)
		}
	}

	cfgFile := writeFile(t, "ecs.config", "ECS_CLUSTER=prod\n")
	packaged, err := filepath.Abs("../../packaging/agent/agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(bin, "print-config", "--config", cfgFile, "--toml", packaged)
	cmd.Env = []string{}
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("print-config: %v\n%s", err, out)
	}
	for key, want := range map[string]string{
		"ECS_CLUSTER":                               "prod",
		"ECS_ENABLE_TASK_IAM_ROLE":                  "true",
		"ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST":     "true",
		"ECS_AVAILABLE_LOGGING_DRIVERS":             `["json-file","syslog","awslogs","fluentd","journald","none"]`,
		"ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE": "true",
	} {
		if f := strings.Fields(lineFor(string(out), key)); len(f) < 3 || f[1] != want {
			t.Errorf("print-config %s: %q, want value %s", key, lineFor(string(out), key), want)
		} else if key != "ECS_CLUSTER" && !strings.HasPrefix(f[2], packaged+":") {
			t.Errorf("print-config %s comes from %s, want %s", key, f[2], packaged)
		}
	}
}

func lineFor(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, key+" ") {
			return line
		}
	}
	return ""
}

func TestLogFile(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "agent.log")
	good := writeFile(t, "ecs.config", "ECS_LOGFILE="+logFile+"\n")
	toml := writeFile(t, "agent.toml", "")
	code, _, stderr := runIn(t, nil, "--config", good, "--toml", toml)
	if code != exitTerminal || stderr != "" {
		t.Errorf("exit %d, stderr %q; want 5 and nothing on stderr", code, stderr)
	}
	data, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(data), "set AWS_REGION") {
		t.Errorf("ECS_LOGFILE content %q (%v)", data, err)
	}
}

// TestDevModeFlags runs `berth-agent --dev --dev-dir DIR --dev-role app`
// until it has written DIR/env (once its agent is connected) and printed
// the exports and the role, then stops it: exit 0, DIR/env removed.
func TestDevModeFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (-short)")
	}
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "iptables", "ip")
	cd := testenv.Containerd(t)
	dir := t.TempDir()
	bridge := fmt.Sprintf("bf%04x", os.Getpid()&0xffff)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	cfg := writeFile(t, "ecs.config", "BERTH_CONTAINERD_ADDRESS="+cd.Address+"\nBERTH_CONTAINERD_NAMESPACE="+cd.Namespace(t)+
		"\nBERTH_BRIDGE_NAME="+bridge+"\nBERTH_BRIDGE_SUBNET=10.249.60.0/24\nECS_DYNAMIC_HOST_PORT_RANGE=21500-21549\n")
	noTOML := writeFile(t, "agent.toml", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncWriter{w: &strings.Builder{}}, &syncWriter{w: &strings.Builder{}}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--dev", "--dev-dir", dir, "--dev-role", "app", "--config", cfg, "--toml", noTOML,
			"--containerd-snapshotter", cd.Snapshotter}, nil, stdout, stderr)
	}()
	envFile := filepath.Join(dir, "env")
	var env []byte
	deadline := time.Now().Add(hangDetector)
	for {
		var err error
		if env, err = os.ReadFile(envFile); err == nil {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("dev mode exited with %d before writing %s; stderr:\n%s", code, envFile, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("no %s after %s; stderr:\n%s", envFile, hangDetector, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for !strings.Contains(stdout.String(), "export AWS_DEFAULT_REGION=") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // printed right after the file is written
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("exit code %d after cancel, want 0; stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"export AWS_ENDPOINT_URL_ECS=http://127.0.0.1:", "export AWS_PROFILE=berth-dev", "export AWS_DEFAULT_REGION=",
		"export AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials")} {
		if !strings.Contains(string(env), want) || !strings.Contains(stdout.String(), want) {
			t.Errorf("%q missing from DIR/env or stdout:\nenv:\n%s\nstdout:\n%s", want, env, stdout.String())
		}
	}
	if !strings.Contains(stdout.String(), "task role for taskRoleArn/executionRoleArn: arn:aws:iam::000000000000:role/app") {
		t.Errorf("stdout does not name the dev role:\n%s", stdout.String())
	}
	if !regexp.MustCompile(`web console: http://127\.0\.0\.1:\d+/console/signin\?token=\S+ `).MatchString(stdout.String()) {
		t.Errorf("stdout does not give the web console's sign-in link:\n%s", stdout.String())
	}
	if fi, err := os.Stat(filepath.Join(dir, "credentials")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file: %v, %v; want mode 0600", fi, err)
	}
	if _, err := os.Stat(envFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after dev mode stopped (%v)", envFile, err)
	}
}

// syncWriter lets the test read what run writes from another goroutine.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// String returns what was written so far (w must be a fmt.Stringer, such
// as a strings.Builder).
func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.(fmt.Stringer).String()
}
