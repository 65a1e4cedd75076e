// Package sdnotify tells systemd how a Type=notify service is doing: READY=1
// once it serves, STATUS= lines while it starts, STOPPING=1 on shutdown, and
// WATCHDOG=1 pings while its own health check passes. It wraps
// github.com/coreos/go-systemd/v22/daemon so that pkg/agent and cmd/cluster
// need one call per event and no knowledge of the protocol. Without
// NOTIFY_SOCKET (not started by systemd) every call is a no-op.
package sdnotify

import (
	"context"
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends notifications to the socket named by NOTIFY_SOCKET. The
// zero value is not usable; call New.
type Notifier struct {
	// interval is how often Run pings the watchdog: half of WATCHDOG_USEC,
	// as sd_watchdog_enabled(3) recommends, or 0 when the watchdog is off.
	interval time.Duration
}

// New reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the process
// environment. A malformed WATCHDOG_USEC is an error; the environment is
// left as it is, because the agent starts no children that should notify.
func New() (*Notifier, error) {
	full, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return nil, fmt.Errorf("read systemd watchdog settings: %w", err)
	}
	return &Notifier{interval: full / 2}, nil
}

// WatchdogInterval is the time between WATCHDOG=1 pings, or 0 when systemd
// set no watchdog for this process.
func (n *Notifier) WatchdogInterval() time.Duration { return n.interval }

// Ready tells systemd that start-up is complete; status, when not empty, is
// shown by `systemctl status` (for the agent, e.g. "registered as <ARN>").
func (n *Notifier) Ready(status string) error {
	return n.send("ready", withStatus(daemon.SdNotifyReady, status))
}

// Status sets the free-form status line shown by `systemctl status`.
func (n *Notifier) Status(status string) error {
	return n.send("status", "STATUS="+oneLine(status))
}

// Stopping tells systemd that shutdown has begun, so that the stop is not
// mistaken for a crash while the outbox is flushed.
func (n *Notifier) Stopping(status string) error {
	return n.send("stopping", withStatus(daemon.SdNotifyStopping, status))
}

// Run pings the watchdog every WatchdogInterval until ctx ends, but only
// while healthy (which may be nil) returns nil: a process whose health loop
// is stuck or failing stops pinging and systemd restarts it. A failed check
// is shown as the status line instead. Run returns nil at once when the
// watchdog is off, and otherwise ctx's error when ctx ends; the caller owns
// the goroutine that runs it and waits for it.
func (n *Notifier) Run(ctx context.Context, healthy func(context.Context) error) error {
	if n.interval <= 0 {
		return nil
	}
	ticker := time.NewTicker(n.interval)
	defer ticker.Stop()
	wasUnhealthy := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
		if healthy != nil {
			if err := healthy(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// A send failure here would only repeat on the next tick;
				// the missing ping is what matters to systemd.
				_ = n.Status("unhealthy: " + err.Error())
				wasUnhealthy = true
				continue
			}
		}
		state := daemon.SdNotifyWatchdog
		if wasUnhealthy {
			state += "\nSTATUS=healthy"
			wasUnhealthy = false
		}
		// A failed send cannot be reported to anyone who would act on it:
		// systemd either sees the next ping or restarts the process.
		_ = n.send("watchdog", state)
	}
}

func (n *Notifier) send(what, state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("notify systemd (%s): %w", what, err)
	}
	return nil
}

func withStatus(state, status string) string {
	if status == "" {
		return state
	}
	return state + "\nSTATUS=" + oneLine(status)
}

// oneLine keeps a status from adding assignments of its own: the protocol
// is newline-separated KEY=VALUE.
func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}
