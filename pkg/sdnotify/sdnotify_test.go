package sdnotify

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen owns a NOTIFY_SOCKET for the test, as systemd would, and points the
// process environment at it. The directory is short because unix socket
// paths are limited to 108 bytes.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on %s: %v", path, err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

// next reads one datagram, failing after a generous deadline so that a
// missing message fails the test instead of hanging it.
func next(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read notification: %v", err)
	}
	return string(buf[:n])
}

// pending returns every datagram already queued. Go's reads fail at once
// on a deadline already past, so the deadline is slightly in the future;
// queued datagrams are returned without waiting for it.
func pending(t *testing.T, conn *net.UnixConn) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 4096)
	for {
		if err := conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		n, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return out
			}
			t.Fatalf("read notification: %v", err)
		}
		out = append(out, string(buf[:n]))
	}
}

func TestReadyStatusStopping(t *testing.T) {
	conn := listen(t)
	t.Setenv("WATCHDOG_USEC", "")
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		send func() error
		want string
	}{
		{func() error { return n.Status("connecting to containerd") }, "STATUS=connecting to containerd"},
		{func() error { return n.Ready("registered as arn:x\ninjected=1") }, "READY=1\nSTATUS=registered as arn:x injected=1"},
		{func() error { return n.Ready("") }, "READY=1"},
		{func() error { return n.Stopping("flushing outbox") }, "STOPPING=1\nSTATUS=flushing outbox"},
	}
	for _, s := range steps {
		if err := s.send(); err != nil {
			t.Fatalf("send %q: %v", s.want, err)
		}
		if got := next(t, conn); got != s.want {
			t.Errorf("got notification %q, want %q", got, s.want)
		}
	}
}

func TestNoSocketIsNoOp(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready("x"); err != nil {
		t.Errorf("Ready without NOTIFY_SOCKET: %v, want nil", err)
	}
	if got := n.WatchdogInterval(); got != 0 {
		t.Errorf("WatchdogInterval without WATCHDOG_USEC = %v, want 0", got)
	}
	// With the watchdog off Run has nothing to do and must not block.
	if err := n.Run(t.Context(), nil); err != nil {
		t.Errorf("Run with the watchdog off = %v, want nil", err)
	}
}

func TestSocketGoneIsAnError(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent"))
	t.Setenv("WATCHDOG_USEC", "")
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(""); err == nil || !strings.Contains(err.Error(), "notify systemd (ready)") {
		t.Errorf("Ready to a missing socket = %v, want a wrapped error", err)
	}
}

func TestBadWatchdogUsec(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "soon")
	if _, err := New(); err == nil {
		t.Error("New with WATCHDOG_USEC=soon succeeded, want an error")
	}
}

func TestWatchdogForAnotherPID(t *testing.T) {
	// systemd sets WATCHDOG_PID to the main process; a child that inherits
	// the environment must not ping on its behalf.
	t.Setenv("WATCHDOG_USEC", "1000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if got := n.WatchdogInterval(); got != 0 {
		t.Errorf("WatchdogInterval for another PID = %v, want 0", got)
	}
}

func TestWatchdogPings(t *testing.T) {
	conn := listen(t)
	t.Setenv("WATCHDOG_USEC", "40000") // 40ms: pings every 20ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n.WatchdogInterval(), 20*time.Millisecond; got != want {
		t.Fatalf("WatchdogInterval = %v, want half of WATCHDOG_USEC (%v)", got, want)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, nil) }()
	for i := 0; i < 3; i++ {
		if got := next(t, conn); got != "WATCHDOG=1" {
			t.Errorf("ping %d = %q, want WATCHDOG=1", i, got)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel = %v, want context.Canceled", err)
	}
}

func TestWatchdogFollowsHealth(t *testing.T) {
	conn := listen(t)
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", "")
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	// The check reports each call and is told how to answer, so the test
	// knows exactly which ticks have finished sending.
	calls := make(chan struct{})
	answers := make(chan error)
	check := func(ctx context.Context) error {
		select {
		case calls <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case err := <-answers:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, check) }()
	defer func() {
		cancel()
		<-done
	}()

	answer := func(err error) {
		t.Helper()
		<-calls
		answers <- err
	}
	answer(nil)
	if got := next(t, conn); got != "WATCHDOG=1" {
		t.Fatalf("healthy tick sent %q, want WATCHDOG=1", got)
	}
	answer(errors.New("containerd unreachable"))
	answer(errors.New("containerd unreachable"))
	<-calls // both failing ticks have finished sending
	got := pending(t, conn)
	want := []string{"STATUS=unhealthy: containerd unreachable", "STATUS=unhealthy: containerd unreachable"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("while unhealthy got %q, want %q (no WATCHDOG=1)", got, want)
	}
	answers <- nil
	if got := next(t, conn); got != "WATCHDOG=1\nSTATUS=healthy" {
		t.Errorf("recovered tick sent %q, want WATCHDOG=1 with STATUS=healthy", got)
	}
}
