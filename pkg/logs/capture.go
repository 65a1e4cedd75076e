package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// MaxLineSize is the longest piece written as one json-file entry. Longer
// lines are split into pieces whose "log" field has no trailing newline, as
// Docker's json-file driver does; readers join them back.
const MaxLineSize = 16 << 10

// DrainGrace is how long the logger keeps draining after the shim asks it to
// stop (SIGTERM). The shim kills the logger 12 s after SIGTERM.
const DrainGrace = 10 * time.Second

// CaptureOptions configures Capture.
type CaptureOptions struct {
	Config
	// Stdout and Stderr are the container's output streams; either may be nil.
	Stdout, Stderr io.Reader
	// Ready is called once the log file is open; the shim starts the
	// container only after it. May be nil.
	Ready func() error
	// Now is the clock stamped on lines; nil means time.Now.
	Now func() time.Time
}

// CaptureStats counts what a capture wrote and what it had to drop.
type CaptureStats struct {
	// Lines is the number of entries written (pieces of split lines count).
	Lines uint64
	// Dropped is the number of entries lost to write errors.
	Dropped uint64
	// LastError is the most recent write or rotation error, if any.
	LastError error
}

// Capture copies both streams into the json-file log until both reach EOF.
// It returns an error only for an invalid Config or when Ready fails. A log
// that cannot be opened or written (directory gone, disk full) costs lines,
// counted in the stats, while draining continues: the container never blocks
// or fails on its output.
func Capture(opts CaptureOptions) (CaptureStats, error) {
	if err := opts.Config.Validate(); err != nil {
		return CaptureStats{}, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	w := openJSONFile(opts.Config, now)
	if opts.Ready != nil {
		if err := opts.Ready(); err != nil {
			w.close()
			return CaptureStats{}, fmt.Errorf("signal logger ready: %w", err)
		}
	}
	var wg sync.WaitGroup
	for _, s := range []struct {
		name string
		r    io.Reader
	}{{"stdout", opts.Stdout}, {"stderr", opts.Stderr}} {
		if s.r == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			copyStream(w, s.name, s.r)
		}()
	}
	wg.Wait()
	closeErr := w.close()
	st := w.stats()
	if closeErr != nil && st.LastError == nil {
		st.LastError = closeErr
	}
	return st, nil
}

// captureReadSize is the most one read takes from a stream.
const captureReadSize = 64 << 10

// copyStream reads lines of any length and writes them as entries, one
// write per read, so followers see output promptly while busy containers
// get batched writes.
//
// Every line is stamped with the time it was read. Lines that arrived in the
// same read share that time, so the clock is read (and formatted) once per
// read rather than once per line.
func copyStream(w *jsonFile, stream string, r io.Reader) {
	buf := make([]byte, captureReadSize)
	var sp lineSplitter
	var ts []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			ts = w.now().UTC().AppendFormat(ts[:0], time.RFC3339Nano)
			w.addChunk(stream, &sp, buf[:n], ts)
		}
		if err != nil {
			// EOF, or the pipe was closed under us: either way this stream is done.
			w.endStream(stream, &sp, ts)
			return
		}
	}
}

// lineSplitter cuts one stream into json-file messages: every line with its
// "\n", and lines longer than MaxLineSize as pieces of exactly MaxLineSize
// bytes without one (as Docker's json-file driver and a bufio.Reader of that
// size do). pending holds the start of a line that has not ended yet.
type lineSplitter struct {
	pending []byte
}

// feed hands every message that data completes to emit. The slices passed
// are only valid during the call.
func (sp *lineSplitter) feed(data []byte, emit func(msg []byte)) {
	for len(data) > 0 {
		room := MaxLineSize - len(sp.pending)
		end := bytes.IndexByte(data[:min(room, len(data))], '\n') + 1
		switch {
		case end == 0 && len(data) < room:
			// The line goes on in a later read.
			sp.pending = append(sp.pending, data...)
			return
		case end == 0:
			end = room // a piece of a long line
		}
		if len(sp.pending) == 0 {
			emit(data[:end])
		} else {
			sp.pending = append(sp.pending, data[:end]...)
			emit(sp.pending)
			sp.pending = sp.pending[:0]
			if cap(sp.pending) > 4<<10 {
				sp.pending = nil // a log daemon keeps one per stream: do not hold 16 KiB
			}
		}
		data = data[end:]
	}
}

// RunShimLogger is the body of the agent's hidden "logger" mode, started by
// the containerd shim for a container whose IO is cio.BinaryIO(agent,
// ShimArgs(cfg)). arg is the encoded Config. The shim passes stdout on fd 3,
// stderr on fd 4 and a ready pipe on fd 5 (containerd runtime/v2/logging).
//
// It installs its own SIGTERM handler: on SIGTERM or ctx cancellation it
// keeps draining for up to DrainGrace, then closes the pipes and returns.
// Without either it returns when both streams end.
func RunShimLogger(ctx context.Context, arg string) error {
	cfg, err := DecodeConfig(arg)
	if err != nil {
		return err
	}
	stdout := os.NewFile(3, "CONTAINER_STDOUT")
	stderr := os.NewFile(4, "CONTAINER_STDERR")
	ready := os.NewFile(5, "CONTAINER_WAIT")
	if stdout == nil || stderr == nil || ready == nil {
		return errors.New("logger: fds 3-5 are not open; this mode is started by the containerd shim")
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	defer signal.Stop(sigs)

	type result struct {
		st  CaptureStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := Capture(CaptureOptions{Config: cfg, Stdout: stdout, Stderr: stderr, Ready: ready.Close})
		done <- result{st, err}
	}()

	var grace <-chan time.Time
	ctxDone := ctx.Done()
	for {
		select {
		case r := <-done:
			return finish(cfg, r.st, r.err)
		case <-sigs:
			sigs = nil
			if grace == nil {
				grace = time.After(DrainGrace)
			}
		case <-ctxDone:
			ctxDone = nil // the grace timer rules from now on
			if grace == nil {
				grace = time.After(DrainGrace)
			}
		case <-grace:
			// Closing the pipes ends the blocked reads; wait for Capture to flush.
			stdout.Close()
			stderr.Close()
			r := <-done
			return finish(cfg, r.st, r.err)
		}
	}
}

func finish(cfg Config, st CaptureStats, err error) error {
	if err != nil {
		return fmt.Errorf("logger for %s: %w", cfg.Path, err)
	}
	if st.Dropped > 0 {
		return fmt.Errorf("logger for %s: dropped %d lines: %w", cfg.Path, st.Dropped, st.LastError)
	}
	return nil
}
