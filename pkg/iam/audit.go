package iam

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AuditLog writes one line per credentials or metadata request:
//
//	<time RFC3339> <status> <source addr:port> "<path>" "<user agent>" <role ARN|-> <task ARN|-> <event>
//
// The path has the credentials or metadata id replaced by "<id>" and no
// secret is ever written. A nil *AuditLog discards.
//
// A file opened by OpenAuditLog is written through a buffer, in request
// order: a write syscall per request was about 40% of the credentials
// handler's CPU. The buffer goes to the file when it is full, at most
// auditFlushInterval after the first line it holds, and on Flush and
// Close, so a clean stop loses nothing; a kill -9 loses the lines of at
// most the last auditFlushInterval (docs/iam.md).
type AuditLog struct {
	mu sync.Mutex
	// guarded by mu
	w       io.Writer     // the file, or the writer NewAuditLog was given
	buf     *bufio.Writer // nil: each line goes to w at once
	c       io.Closer
	flusher *time.Timer // armed while buf holds lines not yet written
	closed  bool

	// flushes counts armed flush timers whose function has not ended, so
	// that Close waits for the one it could not stop.
	flushes sync.WaitGroup
}

// auditFlushInterval bounds how long a line stays in the buffer.
const auditFlushInterval = 100 * time.Millisecond

// auditBufferSize is the buffer of a file audit log: about 250 lines.
const auditBufferSize = 64 << 10

// NewAuditLog writes each line to w as it is logged.
func NewAuditLog(w io.Writer) *AuditLog { return &AuditLog{w: w} }

// OpenAuditLog appends to the file at path (ECS_AUDIT_LOGFILE), creating
// it and its directory with owner-only permissions. Close it to write
// what is buffered.
func OpenAuditLog(path string) (*AuditLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create audit log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return &AuditLog{w: f, buf: bufio.NewWriterSize(f, auditBufferSize), c: f}, nil
}

// Flush writes the buffered lines to the file.
func (a *AuditLog) Flush() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.flushLocked()
}

func (a *AuditLog) flushLocked() error {
	if a.buf == nil || a.closed {
		return nil
	}
	if err := a.buf.Flush(); err != nil {
		// bufio keeps a write error for good: drop the lines that could
		// not be written so that the next ones are tried again.
		a.buf.Reset(a.w)
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

// Close writes what is buffered and closes the file opened by
// OpenAuditLog; lines logged after it are dropped. A second Close does
// nothing.
func (a *AuditLog) Close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	err := a.flushLocked()
	a.closed = true
	if a.flusher != nil && a.flusher.Stop() {
		a.flushes.Done()
	}
	a.flusher = nil
	a.mu.Unlock()
	// A flush that Stop was too late for sees closed and returns.
	a.flushes.Wait()
	if a.c != nil {
		if cerr := a.c.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close audit log: %w", cerr)
		}
	}
	return err
}

// timedFlush is the flush timer's function.
func (a *AuditLog) timedFlush() {
	defer a.flushes.Done()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flusher = nil
	// An audit write failure must not fail requests; the next line
	// tries again.
	_ = a.flushLocked()
}

// auditRecord is one request as it is logged.
type auditRecord struct {
	at        time.Time
	status    int
	source    string
	path      string
	userAgent string
	roleArn   string
	taskArn   string
	event     string
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *AuditLog) log(r auditRecord) {
	if a == nil {
		return
	}
	var b strings.Builder
	b.Grow(256)
	b.WriteString(r.at.UTC().Format(time.RFC3339))
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(r.status))
	b.WriteByte(' ')
	b.WriteString(orDash(r.source))
	b.WriteByte(' ')
	b.WriteString(strconv.Quote(r.path))
	b.WriteByte(' ')
	b.WriteString(strconv.Quote(r.userAgent))
	b.WriteByte(' ')
	b.WriteString(orDash(r.roleArn))
	b.WriteByte(' ')
	b.WriteString(orDash(r.taskArn))
	b.WriteByte(' ')
	b.WriteString(r.event)
	b.WriteByte('\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	// An audit write failure must not fail the request; the agent's
	// log shows the file's problem when it is opened.
	if a.buf == nil {
		_, _ = io.WriteString(a.w, b.String())
		return
	}
	if _, err := a.buf.WriteString(b.String()); err != nil {
		a.buf.Reset(a.w)
	}
	if a.buf.Buffered() > 0 && a.flusher == nil {
		a.flushes.Add(1)
		a.flusher = time.AfterFunc(auditFlushInterval, a.timedFlush)
	}
}
