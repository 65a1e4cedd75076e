package logs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// DaemonMode is the hidden mode of the agent binary that runs the log
// daemon: "<binary> log-daemon run <dir>" serves, "<binary> log-daemon
// start <dir>" starts a detached one and returns once it answers.
const DaemonMode = "log-daemon"

// fifoSize is the capacity asked for each capture FIFO (Linux's default
// pipe-max-size): a burst of output or a short daemon restart fills it
// before the container has to wait. Pages are only used while data waits.
const fifoSize = 1 << 20

// DaemonOptions configure RunDaemon.
type DaemonOptions struct {
	// Dir is the daemon's directory (see the layout in daemonfs.go).
	Dir string
	// IdleExit ends the daemon once it has had no capture and no client
	// for this long; 0 means 2 s.
	IdleExit time.Duration
	// Rescan is how often every capture directory is read again, in case a
	// client's sync was lost; 0 means 2 s.
	Rescan time.Duration
	// Log receives the daemon's own messages; nil means logrus' standard logger.
	Log *logrus.Logger
	// Now is the clock stamped on lines; nil means time.Now.
	Now func() time.Time
}

// daemon captures every container whose FIFOs a client registered in its
// directory: one process for all containers instead of one per container.
type daemon struct {
	opts DaemonOptions
	log  *logrus.Logger
	exe  string // identity of this program file, for hello

	// reads lends 64 KiB read buffers, encodes the jsonFiles' buffers.
	reads, encodes buffers

	// ctx ends on stop; wg tracks pumps and connections.
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	// mu guards the fields below.
	mu       sync.Mutex
	captures map[string]*capture // by captureRef.key()
	clients  int                 // connections that said hello and are open
	changed  chan struct{}       // closed (and replaced) whenever captures or clients change
	idleAt   time.Time           // since when there is neither a capture nor a client
}

// capture is one task's output being written to its json-file.
type capture struct {
	ref   captureRef
	files captureFiles
	w     *jsonFile
	fifos [2]*os.File

	armed    atomic.Bool // a stream with no writer has ended (persisted as files.armed)
	dropping atomic.Bool // read what is there, then finish
	pumps    sync.WaitGroup
}

// RunDaemon serves the log daemon of opts.Dir until ctx ends, a client asks
// it to stop, or it has been idle for IdleExit. It returns nil at once when
// another daemon already serves the directory.
func RunDaemon(ctx context.Context, opts DaemonOptions) error {
	if opts.Dir == "" {
		return errors.New("log daemon: no directory")
	}
	if opts.IdleExit <= 0 {
		opts.IdleExit = 2 * time.Second
	}
	if opts.Rescan <= 0 {
		opts.Rescan = 2 * time.Second
	}
	if opts.Log == nil {
		opts.Log = logrus.StandardLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return fmt.Errorf("log daemon: %w", err)
	}
	ln, err := net.Listen("unix", socketName(opts.Dir))
	if errors.Is(err, syscall.EADDRINUSE) {
		opts.Log.WithField("dir", opts.Dir).Info("log daemon already running")
		return nil
	}
	if err != nil {
		return fmt.Errorf("log daemon: listen: %w", err)
	}
	exe, err := exeIdentity("/proc/self/exe")
	if err != nil {
		ln.Close()
		return fmt.Errorf("log daemon: %w", err)
	}
	d := &daemon{opts: opts, log: opts.Log, exe: exe, captures: map[string]*capture{},
		changed: make(chan struct{}), idleAt: opts.Now()}
	d.ctx, d.stop = context.WithCancel(ctx)
	defer d.stop()
	d.log.WithFields(logrus.Fields{"dir": opts.Dir, "pid": os.Getpid()}).Info("log daemon started")

	d.rescan()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.serve(ln)
	}()
	d.housekeep()
	ln.Close()
	d.mu.Lock()
	for _, c := range d.captures {
		c.interrupt() // pumps waiting for data look at d.ctx
	}
	d.mu.Unlock()
	d.wg.Wait()
	d.log.WithField("dir", opts.Dir).Info("log daemon stopped")
	return nil
}

// housekeep rescans the directory periodically and stops the daemon once
// it has been idle for IdleExit; it returns when the daemon stops.
func (d *daemon) housekeep() {
	rescan := time.NewTicker(d.opts.Rescan)
	defer rescan.Stop()
	idle := time.NewTicker(min(d.opts.IdleExit/4, 500*time.Millisecond))
	defer idle.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-rescan.C:
			d.rescan()
		case <-idle.C:
			d.mu.Lock()
			quiet := len(d.captures) == 0 && d.clients == 0 && d.opts.Now().Sub(d.idleAt) >= d.opts.IdleExit
			d.mu.Unlock()
			if quiet {
				d.log.Info("log daemon idle: no capture and no client")
				d.stop()
			}
		}
	}
}

// changedLocked wakes everyone waiting for a change of captures or clients.
func (d *daemon) changedLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
	if len(d.captures) == 0 && d.clients == 0 {
		d.idleAt = d.opts.Now()
	}
}

// rescan syncs every container found on disk.
func (d *daemon) rescan() {
	containers, err := listContainers(d.opts.Dir)
	if err != nil {
		d.log.WithError(err).Warn("log daemon: rescan")
		return
	}
	for _, c := range containers {
		if err := d.sync(c); err != nil {
			d.log.WithError(err).WithField("container", c).Warn("log daemon: capture")
		}
	}
}

// sync opens the captures of container that are on disk but not open here
// and arms those marked armed.
func (d *daemon) sync(container string) error {
	if d.ctx.Err() != nil {
		return errors.New("log daemon is stopping")
	}
	refs, err := listCaptures(d.opts.Dir, container)
	if err != nil {
		return err
	}
	var errs []error
	for _, ref := range refs {
		d.mu.Lock()
		c := d.captures[ref.key()]
		d.mu.Unlock()
		if c == nil {
			if err := d.open(ref); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if _, err := os.Stat(c.files.armed); err == nil {
			c.arm(d)
		}
	}
	return errors.Join(errs...)
}

// open starts capturing ref: its FIFOs are opened for reading (never
// blocking: a reader may come before the writer) and a pump per stream
// starts.
func (d *daemon) open(ref captureRef) error {
	files := filesOf(d.opts.Dir, ref)
	cfg, err := readCaptureConfig(files.config)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // finished or dropped meanwhile
		}
		return err
	}
	c := &capture{ref: ref, files: files}
	for i, p := range files.fifos {
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			for _, g := range c.fifos[:i] {
				g.Close()
			}
			if errors.Is(err, os.ErrNotExist) {
				// A capture without its FIFO can never be written to.
				d.log.WithField("capture", ref.key()).Warn("log daemon: capture has no FIFO; removing it")
				return removeCapture(files)
			}
			return fmt.Errorf("capture %s: %w", ref.key(), err)
		}
		// Best effort: a smaller FIFO only means the container waits sooner.
		if rc, err := f.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, fifoSize) })
		}
		c.fifos[i] = f
	}
	if _, err := os.Stat(files.armed); err == nil {
		c.armed.Store(true)
	}
	c.w = openJSONFile(cfg, d.opts.Now)
	c.w.bufs = &d.encodes

	d.mu.Lock()
	if d.captures[ref.key()] != nil || d.ctx.Err() != nil {
		d.mu.Unlock()
		c.w.close()
		c.fifos[0].Close()
		c.fifos[1].Close()
		return nil // a concurrent sync opened it first, or the daemon stops
	}
	d.captures[ref.key()] = c
	d.changedLocked()
	c.pumps.Add(2)
	d.wg.Add(3)
	d.mu.Unlock()
	for i := range c.fifos {
		go func() {
			defer d.wg.Done()
			defer c.pumps.Done()
			d.pump(c, i)
		}()
	}
	go func() {
		defer d.wg.Done()
		c.pumps.Wait()
		d.finish(c)
	}()
	return nil
}

// arm records that c's task exists, so that a stream without a writer has
// ended, and wakes its pumps to notice.
func (c *capture) arm(d *daemon) {
	if c.armed.Swap(true) {
		return
	}
	if f, err := os.OpenFile(c.files.armed, os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		d.log.WithError(err).WithField("capture", c.ref.key()).Warn("log daemon: mark armed")
	}
	c.interrupt()
}

// interrupt makes pumps blocked in a read look at the capture's state again.
func (c *capture) interrupt() {
	for _, f := range c.fifos {
		_ = f.SetReadDeadline(time.Unix(1, 0))
	}
}

// pump copies one stream into the json-file until it ends (no writer left,
// once armed), the capture is dropped, or the daemon stops.
func (d *daemon) pump(c *capture, i int) {
	f, name := c.fifos[i], streamName(i)
	rc, err := f.SyscallConn()
	if err != nil {
		d.log.WithError(err).WithField("capture", c.ref.key()).Error("log daemon: stream")
		return
	}
	var sp lineSplitter
	var ts []byte
	// Once the capture is dropped, at most one more FIFO's worth is read,
	// even if the writer is still going.
	dropBudget := fifoSize
	for {
		if c.dropping.Load() {
			if dropBudget <= 0 {
				c.w.endStream(name, &sp, ts)
				return
			}
		}
		if d.ctx.Err() != nil {
			// Stopping: what is unread stays in the FIFO for the next
			// daemon; an unfinished line is written as a partial entry,
			// which readers join with its rest.
			c.w.endStream(name, &sp, ts)
			return
		}
		buf, n, end, err := d.read(c, rc)
		if c.dropping.Load() {
			dropBudget -= n
		}
		if n > 0 {
			ts = d.opts.Now().UTC().AppendFormat(ts[:0], time.RFC3339Nano)
			c.w.addChunk(name, &sp, buf[:n], ts)
			d.reads.put(buf)
			continue
		}
		if end {
			c.w.endStream(name, &sp, ts)
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Armed, dropped or stopping: the loop and read look again.
			_ = f.SetReadDeadline(time.Time{})
			continue
		}
		if err != nil {
			d.log.WithError(err).WithField("capture", c.ref.key()).Error("log daemon: read " + name)
			c.w.endStream(name, &sp, ts)
			return
		}
	}
}

// read waits for and reads one chunk of a FIFO. end reports that the
// stream is over: no writer is left and the capture is armed, or it is
// being dropped and nothing more is readable now.
func (d *daemon) read(c *capture, rc syscall.RawConn) (buf []byte, n int, end bool, err error) {
	err = rc.Read(func(fd uintptr) bool {
		b := d.reads.get(captureReadSize)[:captureReadSize]
		var rerr error
		for {
			n, rerr = unix.Read(int(fd), b)
			if rerr != unix.EINTR {
				break
			}
		}
		switch {
		case n > 0:
			buf = b
			return true
		case rerr == unix.EAGAIN:
			// A writer is there: the task exists, so the capture is armed.
			d.reads.put(b)
			n = 0
			if !c.armed.Load() {
				c.arm(d)
			}
			if c.dropping.Load() {
				end = true
				return true
			}
			return false
		case rerr != nil:
			d.reads.put(b)
			n, err = 0, rerr
			return true
		default:
			// No writer. Before the task exists that means "not yet".
			d.reads.put(b)
			if c.armed.Load() || c.dropping.Load() {
				end = true
				return true
			}
			return false
		}
	})
	return buf, n, end, err
}

// finish closes a capture whose pumps ended. Unless the daemon is stopping
// (the next one resumes), the capture is complete: its files are deleted.
func (d *daemon) finish(c *capture) {
	st := c.w.stats()
	closeErr := c.w.close()
	for _, f := range c.fifos {
		f.Close()
	}
	entry := d.log.WithFields(logrus.Fields{"capture": c.ref.key(), "lines": st.Lines})
	if st.Dropped > 0 {
		entry.WithError(st.LastError).WithField("dropped", st.Dropped).Warn("log daemon: lines lost to write errors")
	} else if closeErr != nil {
		entry.WithError(closeErr).Warn("log daemon: close log")
	}
	if d.ctx.Err() == nil || c.dropping.Load() {
		if err := removeCapture(c.files); err != nil {
			entry.WithError(err).Warn("log daemon: remove capture files")
		}
	}
	d.mu.Lock()
	delete(d.captures, c.ref.key())
	d.changedLocked()
	d.mu.Unlock()
}

// capturesOf returns the open captures of a container.
func (d *daemon) capturesOf(container string) ([]*capture, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*capture
	for _, c := range d.captures {
		if c.ref.container == container {
			out = append(out, c)
		}
	}
	return out, d.changed
}

// serve accepts client connections until RunDaemon closes ln (once the
// daemon stops).
func (d *daemon) serve(ln net.Listener) {
	uid := os.Getuid()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if d.ctx.Err() == nil {
				d.log.WithError(err).Error("log daemon: accept")
				d.stop()
			}
			return
		}
		if !peerIs(conn, uid) {
			conn.Close()
			continue
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.handle(conn)
		}()
	}
}

// peerIs reports whether the connection's peer runs as uid: the socket is
// abstract, so file permissions do not guard it.
func peerIs(conn net.Conn, uid int) bool {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return false
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return false
	}
	return int(cred.Uid) == uid
}

// handle answers one connection's requests until it closes. A connection
// that said hello counts as a client until then. Wait and drop end their
// connection: the client sends nothing while it waits, so reading EOF
// means it hung up.
func (d *daemon) handle(conn net.Conn) {
	ctx, cancel := context.WithCancel(d.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	r := bufio.NewReader(conn)
	hello := false
	defer func() {
		if hello {
			d.mu.Lock()
			d.clients--
			d.changedLocked()
			d.mu.Unlock()
		}
	}()
	reply := func(err error, rep daemonReply) bool {
		if err != nil {
			rep.Error = err.Error()
		}
		b, _ := json.Marshal(rep)
		_, werr := conn.Write(append(b, '\n'))
		return werr == nil
	}
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var req daemonRequest
		if err := json.Unmarshal(line, &req); err != nil {
			reply(fmt.Errorf("bad request: %w", err), daemonReply{})
			return
		}
		switch req.Op {
		case opHello:
			if !hello {
				hello = true
				d.mu.Lock()
				d.clients++
				d.changedLocked()
				d.mu.Unlock()
			}
			if !reply(nil, daemonReply{PID: os.Getpid(), Exe: d.exe}) {
				return
			}
		case opStop:
			d.log.Info("log daemon: stop requested")
			reply(nil, daemonReply{})
			d.stop()
			return
		case opWait, opDrop:
			hangup := make(chan struct{})
			go func() {
				defer close(hangup)
				_, _ = io.Copy(io.Discard, r)
			}()
			reply(d.waitFor(ctx, req, hangup), daemonReply{})
			conn.Close()
			<-hangup
			return
		default:
			if !reply(d.do(req), daemonReply{}) {
				return
			}
		}
	}
}

// checkContainer refuses a container name that is not one directory entry.
func checkContainer(op, container string) error {
	if container == "" || container != filepath.Base(container) || container[0] == '.' {
		return fmt.Errorf("%s: bad container %q", op, container)
	}
	return nil
}

// do carries out a sync (the only other quick request).
func (d *daemon) do(req daemonRequest) error {
	if req.Op != opSync {
		return fmt.Errorf("unknown request %q", req.Op)
	}
	if err := checkContainer(req.Op, req.Container); err != nil {
		return err
	}
	return d.sync(req.Container)
}

// waitFor answers wait and drop: it returns once the container has no open
// capture, dropping each first for drop. It gives up when the daemon stops
// or the client hangs up.
func (d *daemon) waitFor(ctx context.Context, req daemonRequest, hangup <-chan struct{}) error {
	if err := checkContainer(req.Op, req.Container); err != nil {
		return err
	}
	if err := d.sync(req.Container); err != nil {
		if req.Op == opWait {
			return err
		}
		d.log.WithError(err).WithField("container", req.Container).Warn("log daemon: drop")
	}
	for {
		open, changed := d.capturesOf(req.Container)
		if len(open) == 0 {
			return nil
		}
		if req.Op == opDrop {
			for _, c := range open {
				if !c.dropping.Swap(true) {
					c.interrupt()
				}
			}
		}
		select {
		case <-changed:
		case <-hangup:
			return errors.New("client hung up")
		case <-ctx.Done():
			return errors.New("log daemon is stopping")
		}
	}
}

// releaseStartupMemory gives back what starting the program cost but the
// daemon does not use: the daemon is a small part of the agent binary, yet
// the start-up of every package it links touched many of its pages and left
// garbage on the heap. The heap is returned to the OS, and the read-only
// pages of the program file (code and constant data, clean) are paged out
// unless another process (the agent) maps them too (MADV_PAGEOUT, Linux
// 5.4+): only what the daemon runs comes back. Alone, the daemon then holds
// about 13 MiB instead of 25-45 (the file part varies with the page cache);
// next to an agent of the same binary, the pages they share count in both
// processes' RSS and half in each one's PSS. Best effort: a failure only
// costs memory.
func releaseStartupMemory(log *logrus.Logger) {
	debug.FreeOSMemory()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(maps), "\n") {
		// "lo-hi perms offset dev inode path"
		f := strings.Fields(line)
		if len(f) < 6 || f[5] != exe || strings.Contains(f[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); errno != 0 {
			log.WithError(errno).Debug("log daemon: page out start-up pages")
			return
		}
	}
}
