package iam

import (
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
type AuditLog struct {
	mu sync.Mutex
	// guarded by mu
	w io.Writer
	c io.Closer
}

// NewAuditLog writes to w.
func NewAuditLog(w io.Writer) *AuditLog { return &AuditLog{w: w} }

// OpenAuditLog appends to the file at path (ECS_AUDIT_LOGFILE), creating
// it and its directory with owner-only permissions.
func OpenAuditLog(path string) (*AuditLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create audit log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return &AuditLog{w: f, c: f}, nil
}

// Close closes the file opened by OpenAuditLog.
func (a *AuditLog) Close() error {
	if a == nil || a.c == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.c.Close()
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
	// An audit write failure must not fail the request; the agent's
	// log shows the file's problem when it is opened.
	_, _ = io.WriteString(a.w, b.String())
}
