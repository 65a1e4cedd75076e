package logs

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The log daemon and its clients share a directory (DaemonOptions.Dir):
//
//	<dir>/daemon.log                          the daemon's own log
//	<dir>/captures/<container>/<seq>.json     a capture: its Config
//	<dir>/captures/<container>/<seq>.stdout   FIFO the shim writes stdout to
//	<dir>/captures/<container>/<seq>.stderr   FIFO for stderr
//	<dir>/captures/<container>/<seq>.armed    the task exists: a stream with
//	                                          no writer has ended
//
// A client writes a capture (FIFOs first, then the .json) before it creates
// the task and marks it armed once the task exists. The daemon deletes a
// capture's files when both streams ended and everything is written. Files
// on disk, not the daemon's memory, are the truth: a restarted daemon finds
// every capture again, and a client can add one while no daemon runs.
const (
	capturesDir  = "captures"
	daemonLog    = "daemon.log"
	suffixConfig = ".json"
	suffixArmed  = ".armed"
)

// streamName names a capture's stream i (the order of its FIFOs).
func streamName(i int) string {
	if i == 0 {
		return "stdout"
	}
	return "stderr"
}

// captureRef names one capture: one task of one container.
type captureRef struct {
	container, seq string
}

func (c captureRef) key() string { return c.container + "/" + c.seq }

// captureFiles are the paths of one capture's files.
type captureFiles struct {
	config, armed string
	fifos         [2]string
}

func filesOf(dir string, ref captureRef) captureFiles {
	base := filepath.Join(dir, capturesDir, ref.container, ref.seq)
	return captureFiles{
		config: base + suffixConfig,
		armed:  base + suffixArmed,
		fifos:  [2]string{base + "." + streamName(0), base + "." + streamName(1)},
	}
}

func containerDir(dir, container string) string {
	return filepath.Join(dir, capturesDir, container)
}

// listCaptures returns the captures of one container found on disk, oldest
// first; a container without any has none (not an error).
func listCaptures(dir, container string) ([]captureRef, error) {
	names, err := filepath.Glob(filepath.Join(containerDir(dir, container), "*"+suffixConfig))
	if err != nil {
		return nil, fmt.Errorf("list captures of %s: %w", container, err)
	}
	refs := make([]captureRef, 0, len(names))
	for _, n := range names {
		refs = append(refs, captureRef{container: container, seq: strings.TrimSuffix(filepath.Base(n), suffixConfig)})
	}
	slices.SortFunc(refs, func(a, b captureRef) int { return strings.Compare(a.seq, b.seq) })
	return refs, nil
}

// listContainers returns every container with a capture directory.
func listContainers(dir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, capturesDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list captures: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func readCaptureConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read capture %s: %w", path, err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("read capture %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("read capture %s: %w", path, err)
	}
	return c, nil
}

// removeCapture deletes a capture's files; missing ones count as removed.
func removeCapture(files captureFiles) error {
	var errs []error
	// The config goes first: without it nobody treats the rest as a capture.
	for _, p := range []string{files.config, files.fifos[0], files.fifos[1], files.armed} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// socketName is the daemon's abstract unix socket for dir. Abstract names
// have no length limit worth the name (107 bytes) and leave no file behind;
// only one daemon can hold one, so it is also the daemon's lock.
func socketName(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	sum := sha256.Sum256([]byte(abs))
	return "@berth-logd-" + hex.EncodeToString(sum[:12])
}

// Requests a client sends, one JSON line each, answered by one daemonReply.
const (
	opHello = "hello" // answered, then the connection marks a live client until it closes
	opSync  = "sync"  // (re)read the container's captures from disk
	opWait  = "wait"  // answer once the container has no open capture
	opDrop  = "drop"  // write what is readable now, then close and delete the container's captures
	opStop  = "stop"  // stop reading (files stay for the next daemon) and exit
)

type daemonRequest struct {
	Op        string `json:"op"`
	Container string `json:"container,omitempty"`
}

type daemonReply struct {
	Error string `json:"error,omitempty"`
	// Hello: who answers. Exe identifies the daemon's program file (device
	// and inode of /proc/self/exe) so that a client can tell whether it
	// runs the same build.
	PID int    `json:"pid,omitempty"`
	Exe string `json:"exe,omitempty"`
}

// exeIdentity is "<dev>:<ino>" of a program file.
func exeIdentity(path string) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return "", fmt.Errorf("stat %s: %w", path, err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino), nil
}

// daemonConn is one client connection to a daemon.
type daemonConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialDaemon(ctx context.Context, dir string) (*daemonConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketName(dir))
	if err != nil {
		return nil, fmt.Errorf("connect to the log daemon of %s: %w", dir, err)
	}
	return &daemonConn{conn: conn, r: bufio.NewReader(conn)}, nil
}

// call sends one request and reads its reply; ctx bounds the wait.
func (c *daemonConn) call(ctx context.Context, req daemonRequest) (daemonReply, error) {
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	b, _ := json.Marshal(req)
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return daemonReply{}, c.callErr(ctx, req, err)
	}
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return daemonReply{}, c.callErr(ctx, req, err)
	}
	var rep daemonReply
	if err := json.Unmarshal(line, &rep); err != nil {
		return daemonReply{}, fmt.Errorf("log daemon %s: bad reply %q: %w", req.Op, line, err)
	}
	if rep.Error != "" {
		return rep, fmt.Errorf("log daemon %s %s: %s", req.Op, req.Container, rep.Error)
	}
	return rep, nil
}

func (c *daemonConn) callErr(ctx context.Context, req daemonRequest, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return fmt.Errorf("log daemon %s %s: %w", req.Op, req.Container, err)
}

func (c *daemonConn) Close() error { return c.conn.Close() }
