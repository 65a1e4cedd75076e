// Package logship ships container logs to remote destinations (awslogs,
// journald, syslog, fluentd).
//
// Container output is first captured to its json-file by pkg/logs' logger;
// a Shipper tails that file (and its rotated siblings) from a persisted
// position and hands lines, in order, to a Driver. A destination that is
// slow or down never blocks the container: lines wait in the local file
// (bounded by its rotation) and go out once the destination returns; lines
// rotated away before they were shipped are counted as dropped and reported
// in one summary log line. An agent restart resumes from the persisted
// position.
//
// The package also validates driver options (ValidateOptions), checks a
// driver against ECS_AVAILABLE_LOGGING_DRIVERS (CheckAllowed) and names the
// capability attributes an agent advertises (CapabilityAttributes).
// pkg/agent and pkg/engine import it; it imports no ECS or agent package.
package logship

import (
	"context"
	"time"
)

// Message is one log line (or one joined multi-piece line) from the
// json-file.
type Message struct {
	// Line is the text without its trailing newline.
	Line []byte
	// Stream is "stdout" or "stderr".
	Stream string
	// Time is when the logger read the line.
	Time time.Time
	// Pos is the file position just after this message; shipping through
	// it means the position may be persisted as Pos.
	Pos Position
}

// Position is where a Shipper stands in a container's json-file chain: the
// inode of the file being read and the byte offset of the next unread line.
type Position struct {
	Inode  uint64 `json:"inode"`
	Offset int64  `json:"offset"`
}

// Driver delivers batches of messages to one destination for one container.
type Driver interface {
	// Ship delivers msgs in order and returns how many of them (a prefix)
	// were delivered. A non-nil error means the rest must be retried; the
	// Shipper retries with backoff and never skips undelivered messages in
	// blocking mode.
	Ship(ctx context.Context, msgs []Message) (int, error)
	// Close releases connections; it must return promptly even when the
	// destination is unreachable.
	Close() error
}

// Reconciler is an optional Driver interface that lets a Shipper resume
// without duplicates after a crash. When the previous shipper stopped with a
// batch in flight, the new one asks the destination for the last event it
// holds and moves its position past the last message of that batch that
// matches it, so the part that arrived is not shipped again.
type Reconciler interface {
	// LastDelivered returns a predicate that matches the message whose end
	// is the last event the destination holds, or nil when it holds none.
	LastDelivered(ctx context.Context) (func(Message) bool, error)
}

// BatchLimiter is an optional Driver interface bounding one Ship call.
type BatchLimiter interface {
	// BatchLimits returns the most messages and bytes of Line one Ship
	// call should carry, and how long a partial batch may wait for more
	// lines (0: ship whatever is there at once).
	BatchLimits() (maxMessages int, maxBytes int, flushInterval time.Duration)
}
