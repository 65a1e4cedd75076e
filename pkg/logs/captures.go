package logs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned for calls on a closed Captures.
var ErrClosed = errors.New("log captures closed")

// CapturesOptions configure NewCaptures.
type CapturesOptions struct {
	// Dir is the log daemon's directory; one daemon serves each.
	Dir string
	// Binary is the program run as "<Binary> log-daemon start <Dir>" to
	// start the daemon (the agent binary; see ServeMode).
	Binary string
	// Log receives warnings (a daemon that died and was started again);
	// nil means logrus' standard logger.
	Log *logrus.Entry
}

// Captures is a client of the log daemon: it registers each task's output
// FIFOs, starts the daemon when none runs and starts it again when it dies
// while the Captures is open. pkg/runtime holds one.
//
// A container's output goes from the shim into FIFOs that the daemon reads;
// it never passes through this process, so the process (the agent) may be
// killed at any time. The Captures also holds a read end of each FIFO it
// registered (never reading from it): a FIFO's buffered data lives only as
// long as some reader has it open, and these keep it across a restart of
// the daemon while the shim may already have closed its ends.
type Captures struct {
	opts CapturesOptions
	log  *logrus.Entry

	// ctx ends on Close; wg tracks the watch goroutine.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// ensureMu makes one caller at a time find, start or replace the daemon.
	ensureMu sync.Mutex

	// mu guards the fields below.
	mu       sync.Mutex
	keepers  map[string]map[string]*os.File // container → FIFO path → held read end
	watch    *daemonConn                    // hello connection to the running daemon, nil if none
	watching bool                           // the watch goroutine runs
	closed   bool
}

// NewCaptures returns a client for the daemon of opts.Dir. It does no I/O:
// the daemon is started with the first capture.
func NewCaptures(opts CapturesOptions) *Captures {
	log := opts.Log
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Captures{opts: opts, log: log.WithField("logDaemon", opts.Dir), ctx: ctx, cancel: cancel,
		keepers: map[string]map[string]*os.File{}}
}

// Prepare registers a capture of a new task of container id into cfg's
// json-file and returns the FIFOs to give the task as its stdout and
// stderr. Call Arm once the task exists, or Drop if creating it failed.
func (c *Captures) Prepare(id string, cfg Config) (stdout, stderr string, err error) {
	if err := cfg.Validate(); err != nil {
		return "", "", err
	}
	if err := checkContainer("prepare", id); err != nil {
		return "", "", err
	}
	dir := containerDir(c.opts.Dir, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("prepare log capture of %s: %w", id, err)
	}
	seq := time.Now().UnixNano()
	ref := captureRef{container: id}
	for {
		ref.seq = fmt.Sprintf("%020d", seq)
		if _, err := os.Lstat(filesOf(c.opts.Dir, ref).config); errors.Is(err, os.ErrNotExist) {
			break
		}
		seq++
	}
	files := filesOf(c.opts.Dir, ref)
	if err := c.prepare(id, files, cfg); err != nil {
		c.release(id, files.fifos[:]...)
		_ = removeCapture(files)
		return "", "", fmt.Errorf("prepare log capture of %s: %w", id, err)
	}
	return files.fifos[0], files.fifos[1], nil
}

func (c *Captures) prepare(id string, files captureFiles, cfg Config) error {
	for _, p := range files.fifos {
		if err := unix.Mkfifo(p, 0o600); err != nil {
			return fmt.Errorf("mkfifo %s: %w", p, err)
		}
		if err := c.hold(id, p); err != nil {
			return err
		}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	tmp := files.config + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, files.config)
}

// hold opens a read end of the FIFO at path (without blocking, and never
// reading from it) unless one is held already.
func (c *Captures) hold(id, path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.keepers[id][path] != nil {
		return nil
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if c.keepers[id] == nil {
		c.keepers[id] = map[string]*os.File{}
	}
	c.keepers[id][path] = os.NewFile(uintptr(fd), path)
	return nil
}

// release closes the held read ends of id's FIFOs at paths, or all of
// id's when no path is given.
func (c *Captures) release(id string, paths ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	held := c.keepers[id]
	if len(paths) == 0 {
		for p := range held {
			paths = append(paths, p)
		}
	}
	for _, p := range paths {
		if f := held[p]; f != nil {
			f.Close()
			delete(held, p)
		}
	}
	if len(held) == 0 {
		delete(c.keepers, id)
	}
}

// Arm records that the task of id's newest capture exists (so a stream
// with no writer has ended) and has the daemon read it, starting the
// daemon if none runs. After an agent restart it also takes up the
// captures of a running container again. A container without captures
// (no log, or started by an agent before the log daemon) needs nothing.
func (c *Captures) Arm(ctx context.Context, id string) error {
	refs, err := listCaptures(c.opts.Dir, id)
	if err != nil || len(refs) == 0 {
		return err
	}
	var errs []error
	for _, ref := range refs {
		files := filesOf(c.opts.Dir, ref)
		for _, p := range files.fifos {
			if err := c.hold(id, p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		f, err := os.OpenFile(files.armed, os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("arm log capture %s: %w", ref.key(), err))
			}
			continue
		}
		f.Close()
	}
	if err := c.request(ctx, daemonRequest{Op: opSync, Container: id}, true); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Finish arms id's captures and waits until the daemon has written all
// their output and closed them: the task is gone, so this is the moment its
// log is complete. ctx bounds the wait (a daemon that dies meanwhile is
// started again and waited for).
func (c *Captures) Finish(ctx context.Context, id string) error {
	refs, err := listCaptures(c.opts.Dir, id)
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		c.release(id)
		return nil
	}
	if err := c.Arm(ctx, id); err != nil {
		c.log.WithError(err).WithField("container", id).Warn("arm log capture")
	}
	delay := 50 * time.Millisecond
	for {
		err := c.request(ctx, daemonRequest{Op: opWait, Container: id}, true)
		if err == nil {
			c.release(id)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("finish log capture of %s: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("finish log capture of %s: %w", id, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// Drop ends id's captures: the daemon writes what is readable now and
// deletes them. It never starts a daemon; without one the files are just
// removed (the container is being removed; what it wrote last is lost).
func (c *Captures) Drop(ctx context.Context, id string) error {
	dir := containerDir(c.opts.Dir, id)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		c.release(id)
		return nil
	}
	err := c.request(ctx, daemonRequest{Op: opDrop, Container: id}, false)
	if errors.Is(err, errNoDaemon) {
		err = nil
	}
	c.release(id)
	if rerr := os.RemoveAll(dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("remove log captures of %s: %w", id, rerr))
	}
	return err
}

// Close stops watching the daemon and lets go of the held FIFO ends. The
// daemon keeps capturing.
func (c *Captures) Close() error {
	c.mu.Lock()
	c.closed = true
	w := c.watch
	c.watch = nil
	c.mu.Unlock()
	c.cancel()
	if w != nil {
		w.Close()
	}
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, held := range c.keepers {
		for _, f := range held {
			f.Close()
		}
		delete(c.keepers, id)
	}
	return nil
}

var errNoDaemon = errors.New("no log daemon running")

// request sends one request on a connection of its own; with start, a
// daemon is started first if none answers.
func (c *Captures) request(ctx context.Context, req daemonRequest, start bool) error {
	if start {
		if err := c.ensure(ctx); err != nil {
			return err
		}
	}
	conn, err := dialDaemon(ctx, c.opts.Dir)
	if err != nil {
		if !start {
			return errNoDaemon
		}
		return err
	}
	defer conn.Close()
	_, err = conn.call(ctx, req)
	return err
}

// ensure makes sure a daemon runs the current build and is watched.
func (c *Captures) ensure(ctx context.Context) error {
	c.ensureMu.Lock()
	defer c.ensureMu.Unlock()
	c.mu.Lock()
	closed, watched := c.closed, c.watch != nil
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if watched {
		return nil
	}
	conn, rep, err := c.hello(ctx)
	if err != nil {
		if err := c.startDaemon(ctx); err != nil {
			return err
		}
		if conn, rep, err = c.hello(ctx); err != nil {
			return err
		}
	}
	if want, err := exeIdentity(c.opts.Binary); err == nil && rep.Exe != want {
		// Another build (the agent was upgraded): hand over to this one.
		if conn, err = c.replace(ctx, conn, rep); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.Close()
		return ErrClosed
	}
	c.watch = conn
	if !c.watching {
		c.watching = true
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.watchDaemon()
		}()
	}
	return nil
}

// DaemonPID returns the process ID of the running log daemon (starting one
// if none runs), for tooling and tests.
func (c *Captures) DaemonPID(ctx context.Context) (int, error) {
	if err := c.ensure(ctx); err != nil {
		return 0, err
	}
	conn, rep, err := c.hello(ctx)
	if err != nil {
		return 0, err
	}
	conn.Close()
	return rep.PID, nil
}

func (c *Captures) hello(ctx context.Context) (*daemonConn, daemonReply, error) {
	conn, err := dialDaemon(ctx, c.opts.Dir)
	if err != nil {
		return nil, daemonReply{}, err
	}
	rep, err := conn.call(ctx, daemonRequest{Op: opHello})
	if err != nil {
		conn.Close()
		return nil, daemonReply{}, err
	}
	return conn, rep, nil
}

// replace stops a daemon of another build and starts this one. Every
// capture's FIFOs are held first, so that nothing buffered is lost while no
// daemon reads; the old daemon writes unfinished lines as partial entries.
func (c *Captures) replace(ctx context.Context, old *daemonConn, rep daemonReply) (*daemonConn, error) {
	c.log.WithField("pid", rep.PID).Info("log daemon runs another build; replacing it")
	containers, err := listContainers(c.opts.Dir)
	if err != nil {
		old.Close()
		return nil, err
	}
	for _, id := range containers {
		refs, _ := listCaptures(c.opts.Dir, id)
		for _, ref := range refs {
			for _, p := range filesOf(c.opts.Dir, ref).fifos {
				_ = c.hold(id, p)
			}
		}
	}
	stop, err := dialDaemon(ctx, c.opts.Dir)
	if err == nil {
		_, err = stop.call(ctx, daemonRequest{Op: opStop})
		stop.Close()
	}
	if err != nil {
		old.Close()
		return nil, fmt.Errorf("stop the old log daemon: %w", err)
	}
	// The old daemon closes every connection as it exits; its name is free then.
	_, _ = old.r.ReadByte()
	old.Close()
	if err := c.startDaemon(ctx); err != nil {
		return nil, err
	}
	conn, _, err := c.hello(ctx)
	return conn, err
}

// startDaemon runs "<Binary> log-daemon start <Dir>", which starts a
// detached daemon (not this process's child, so nothing here has to reap
// it) and returns once it answers.
func (c *Captures) startDaemon(ctx context.Context) error {
	if c.opts.Binary == "" {
		return errors.New("start the log daemon: no program configured")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.opts.Binary, DaemonMode, "start", c.opts.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("start the log daemon (%s %s start %s): %w: %s", c.opts.Binary, DaemonMode, c.opts.Dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// watchDaemon holds the hello connection; when the daemon dies it starts it
// again and has it take up every capture this client holds.
func (c *Captures) watchDaemon() {
	delay := 100 * time.Millisecond
	for {
		c.mu.Lock()
		conn := c.watch
		c.mu.Unlock()
		if conn != nil {
			_, _ = conn.r.ReadByte() // the daemon sends nothing: this returns when it is gone
			conn.Close()
			c.mu.Lock()
			if c.watch == conn {
				c.watch = nil
			}
			c.mu.Unlock()
		}
		if c.ctx.Err() != nil {
			return
		}
		err := c.ensure(c.ctx)
		if err == nil {
			delay = 100 * time.Millisecond
			c.log.Warn("log daemon was gone; started it again")
			c.resync()
			continue
		}
		if c.ctx.Err() != nil {
			return
		}
		c.log.WithError(err).Error("log daemon is gone and does not start; container output waits in its FIFOs")
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// resync asks a new daemon to read every container this client holds.
func (c *Captures) resync() {
	c.mu.Lock()
	ids := make([]string, 0, len(c.keepers))
	for id := range c.keepers {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		if err := c.request(ctx, daemonRequest{Op: opSync, Container: id}, false); err != nil {
			c.log.WithError(err).WithField("container", id).Warn("log daemon: take up capture")
		}
		cancel()
	}
}

// startDetached is the "start" half of DaemonMode: it runs "<self>
// log-daemon run <dir>" in a new session with its output appended to
// <dir>/daemon.log, and returns once it answers (or has exited).
func startDetached(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := filepath.Join(dir, daemonLog)
	out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(self, DaemonMode, "run", dir)
	cmd.Stdout, cmd.Stderr, cmd.Dir = out, out, "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", self, err)
	}
	pid := cmd.Process.Pid
	deadline := time.Now().Add(20 * time.Second)
	for {
		if conn, err := dialDaemon(ctx, dir); err == nil {
			conn.Close()
			return nil // the daemon outlives this process; init adopts it
		}
		var ws unix.WaitStatus
		if p, _ := unix.Wait4(pid, &ws, unix.WNOHANG, nil); p == pid {
			if ws.ExitStatus() == 0 {
				continue // another daemon won the name; it answers on the next dial
			}
			return fmt.Errorf("log daemon exited with %s (see %s)", exitText(ws), logPath)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("log daemon (pid %d) does not answer (see %s)", pid, logPath)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func exitText(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return "status " + strconv.Itoa(ws.ExitStatus())
}
