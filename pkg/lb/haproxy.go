package lb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// haproxy is one HAProxy instance, master-worker and daemonized, with
// everything of it under dir: the configuration berth-lb writes, the
// master CLI socket (reload, show proc), the worker's admin socket (the
// runtime API), the master's pid file, the server state file that carries
// server states across reloads, and the listeners' certificates.
type haproxy struct {
	bin string
	dir string
}

func (h *haproxy) configPath() string { return filepath.Join(h.dir, "haproxy.cfg") }
func (h *haproxy) masterSock() string { return filepath.Join(h.dir, "master.sock") }
func (h *haproxy) adminSock() string  { return filepath.Join(h.dir, "admin.sock") }
func (h *haproxy) pidPath() string    { return filepath.Join(h.dir, "haproxy.pid") }
func (h *haproxy) statePath() string  { return filepath.Join(h.dir, "server-state") }
func (h *haproxy) certDir() string    { return filepath.Join(h.dir, "certs") }

// cliTimeout bounds one runtime API exchange.
const cliTimeout = 10 * time.Second

// command sends one command on a CLI socket and returns the answer. The
// write side is closed after the command, which both CLIs take as the end
// of the session.
func command(ctx context.Context, sock, cmd string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return "", fmt.Errorf("haproxy %q: %w", cmd, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(cliTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("haproxy %q: %w", cmd, err)
	}
	_ = conn.(*net.UnixConn).CloseWrite()
	out, err := io.ReadAll(conn)
	if err != nil {
		return "", fmt.Errorf("haproxy %q: %w", cmd, err)
	}
	return string(out), nil
}

// run sends a command to the worker's runtime API that answers nothing, or
// one of the given success messages, on success; anything else is its
// error.
func (h *haproxy) run(ctx context.Context, cmd string, success ...string) error {
	out, err := command(ctx, h.adminSock(), cmd)
	if err != nil {
		return err
	}
	out = strings.TrimSpace(out)
	if out == "" {
		return nil
	}
	for _, s := range success {
		if strings.HasPrefix(out, s) {
			return nil
		}
	}
	return fmt.Errorf("haproxy %q: %s", cmd, strings.ReplaceAll(out, "\n", " "))
}

// process is the master process as `show proc` on the master CLI shows
// it.
type process struct {
	reloads, failed int
	worker          int // pid of the current worker
}

var errNotRunning = errors.New("haproxy is not running")

// status asks the master CLI for the master's reload counts and current
// worker; errNotRunning when no master answers.
func (h *haproxy) status(ctx context.Context) (process, error) {
	out, err := command(ctx, h.masterSock(), "show proc")
	if err != nil {
		return process{}, fmt.Errorf("%w: %w", errNotRunning, err)
	}
	return parseShowProc(out)
}

// parseShowProc reads the master's reload counts and the newest worker's
// pid (the first one listed) from `show proc`.
func parseShowProc(out string) (process, error) {
	var p process
	seenMaster := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[1] {
		case "master":
			// 24271 master 1 [failed: 0] 0d00h10m54s 2.6.12
			seenMaster = true
			p.reloads, _ = strconv.Atoi(f[2])
			if len(f) >= 5 && f[3] == "[failed:" {
				p.failed, _ = strconv.Atoi(strings.TrimSuffix(f[4], "]"))
			}
		case "worker":
			if p.worker == 0 {
				p.worker, _ = strconv.Atoi(f[0])
			}
		}
	}
	if !seenMaster {
		return process{}, fmt.Errorf("haproxy show proc: no master in %q", out)
	}
	return p, nil
}

// check validates a configuration file with haproxy -c.
func (h *haproxy) check(ctx context.Context, path string) error {
	out, err := exec.CommandContext(ctx, h.bin, "-c", "-q", "-f", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("haproxy -c %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// start starts the master (daemonized, in its own session, so that it
// outlives berth-lb) on the configuration file and waits until it
// answers. The config is checked before the fork, so a refusal comes back
// here with HAProxy's words.
func (h *haproxy) start(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, h.bin, "-W", "-D", "-S", h.masterSock()+",mode,600",
		"-p", h.pidPath(), "-f", h.configPath())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = h.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("start haproxy: %w: %s", err, strings.TrimSpace(out.String()))
	}
	for i := 0; ; i++ {
		p, err := h.status(ctx)
		if err == nil && p.worker != 0 {
			if _, err := command(ctx, h.adminSock(), "show info"); err == nil {
				return nil
			}
		}
		if i >= 100 {
			return fmt.Errorf("start haproxy: the master does not answer on %s: %v", h.masterSock(), err)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("start haproxy: %w", err)
		}
	}
}

// reload has the master load the configuration file again: a new worker
// takes over the listening sockets (no connection is refused) and the old
// one finishes its connections. It returns once the new worker answers,
// or the master's error when the reload failed.
func (h *haproxy) reload(ctx context.Context) error {
	before, err := h.status(ctx)
	if err != nil {
		return fmt.Errorf("reload haproxy: %w", err)
	}
	if _, err := command(ctx, h.masterSock(), "reload"); err != nil {
		return fmt.Errorf("reload haproxy: %w", err)
	}
	for i := 0; ; i++ {
		p, err := h.status(ctx)
		switch {
		case err == nil && p.failed > before.failed:
			return fmt.Errorf("reload haproxy: the master refused the new configuration (it keeps the old one); see haproxy -c %s", h.configPath())
		case err == nil && p.reloads > before.reloads && p.worker != before.worker:
			if _, err := command(ctx, h.adminSock(), "show info"); err == nil {
				return nil
			}
		}
		if i >= 200 {
			return fmt.Errorf("reload haproxy: no new worker after 10s (last: %v)", err)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("reload haproxy: %w", err)
		}
	}
}

// saveServerState writes the running servers' states to the server state
// file, which the next worker loads (load-server-state-from-file), so that
// a reload keeps every server's health and drain state.
func (h *haproxy) saveServerState(ctx context.Context) error {
	out, err := command(ctx, h.adminSock(), "show servers state")
	if err != nil {
		return fmt.Errorf("save server state: %w", err)
	}
	return writeFileAtomic(h.statePath(), []byte(out), 0o600)
}

// runtimeServer is one server as `show servers state` shows it.
type runtimeServer struct {
	backend, name string
	addr          string
	port          int
	adminState    int // SRV_ADMF_* bits
}

// Admin state bits of `show servers state`.
const (
	admForcedMaint = 0x01
	admForcedDrain = 0x08
)

// servers lists the servers of every backend.
func (h *haproxy) servers(ctx context.Context) ([]runtimeServer, error) {
	out, err := command(ctx, h.adminSock(), "show servers state")
	if err != nil {
		return nil, err
	}
	return parseServersState(out)
}

// parseServersState reads `show servers state` (format version 1).
func parseServersState(out string) ([]runtimeServer, error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	var cols map[string]int
	var srvs []runtimeServer
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# "):
			cols = map[string]int{}
			for i, c := range strings.Fields(line[2:]) {
				cols[c] = i
			}
			continue
		case line == "" || line == "1" || strings.HasPrefix(line, "#"):
			continue
		}
		if cols == nil {
			return nil, fmt.Errorf("show servers state: no header before %q", line)
		}
		f := strings.Fields(line)
		get := func(name string) string {
			if i, ok := cols[name]; ok && i < len(f) {
				return f[i]
			}
			return ""
		}
		port, _ := strconv.Atoi(get("srv_port"))
		adm, _ := strconv.Atoi(get("srv_admin_state"))
		srvs = append(srvs, runtimeServer{backend: get("be_name"), name: get("srv_name"), addr: get("srv_addr"), port: port, adminState: adm})
	}
	return srvs, sc.Err()
}

// serverStat is one server's row of `show stat`.
type serverStat struct {
	backend, name string
	status        string // UP, DOWN, "UP 1/3", DRAIN, MAINT, no check, ...
	checkStatus   string // L7OK, L7STS, L4CON, L4TOUT, INI, ...
	checkCode     string // the HTTP status of an L7 check
	checkFailures int
	current       int // current sessions
	// Counters since the worker started: responses by status class
	// (1xx, 2xx, 3xx, 4xx, 5xx, other) of servers, requests received
	// (req_tot) of frontends; rtime is a server's average response time
	// in ms over its last 1024 responses.
	responses [6]int64
	requests  int64
	rtime     int64
}

// frontendRow is the svname of a frontend's row in `show stat`.
const frontendRow = "FRONTEND"

// stats reads `show stat` for frontends (svname FRONTEND) and servers.
func (h *haproxy) stats(ctx context.Context) ([]serverStat, error) {
	out, err := command(ctx, h.adminSock(), "show stat -1 5 -1")
	if err != nil {
		return nil, err
	}
	return parseStat(out)
}

// parseStat reads `show stat`'s CSV by its header's column names.
func parseStat(out string) ([]serverStat, error) {
	out = strings.TrimPrefix(strings.TrimSpace(out), "# ")
	r := csv.NewReader(strings.NewReader(out))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("show stat: %w", err)
	}
	if len(rows) == 0 {
		return nil, errors.New("show stat: empty answer")
	}
	cols := map[string]int{}
	for i, c := range rows[0] {
		cols[c] = i
	}
	var stats []serverStat
	for _, row := range rows[1:] {
		get := func(name string) string {
			if i, ok := cols[name]; ok && i < len(row) {
				return row[i]
			}
			return ""
		}
		if get("svname") == "BACKEND" {
			continue
		}
		num := func(name string) int64 {
			n, _ := strconv.ParseInt(get(name), 10, 64)
			return n
		}
		st := serverStat{backend: get("pxname"), name: get("svname"), status: get("status"),
			checkStatus: strings.TrimPrefix(get("check_status"), "* "), checkCode: get("check_code"),
			checkFailures: int(num("chkfail")), current: int(num("scur")), requests: num("req_tot"), rtime: num("rtime")}
		for i, c := range []string{"hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other"} {
			st.responses[i] = num(c)
		}
		stats = append(stats, st)
	}
	return stats, nil
}

// masterPID reads the master's pid file; 0 when there is none.
func (h *haproxy) masterPID() int {
	b, err := os.ReadFile(h.pidPath())
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it into place, so HAProxy never reads half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := f.Write(data)
	cerr := f.Chmod(mode)
	if err := errors.Join(werr, cerr, f.Sync(), f.Close()); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
