package agent_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/config"
)

// hangDetector bounds how long a test waits for Run to return after a
// component failed. It only tells a hang from a return; nothing is
// asserted about how long stopping took.
const hangDetector = 2 * time.Minute

// TestComponentFailureStopsAgent proves that an agent one of whose parts
// fails stops by itself: Run returns the failure, having logged it, and
// Ready reports ErrStopped. Task roles are on, as in dev mode: before the
// fix, Run returned into a wait for the credentials goroutine, which only
// ended with Run's context, so an agent whose engine failed during
// recovery never returned (issue 14, item 1). Run's context is never
// cancelled here.
func TestComponentFailureStopsAgent(t *testing.T) {
	h := newHostEnv(t)
	tests := []struct {
		name string
		// setup adjusts the config and returns extra agent options.
		setup func(t *testing.T, cfg *config.Config) []agent.Option
		want  string
	}{
		{
			name: "engine recovery fails",
			setup: func(t *testing.T, cfg *config.Config) []agent.Option {
				return []agent.Option{agent.WithAfterRecoverHook(func(context.Context) error {
					return errors.New("injected recovery failure")
				})}
			},
			want: "engine: recover tasks: after recovery: injected recovery failure",
		},
		{
			name: "credentials endpoint cannot listen",
			setup: func(t *testing.T, cfg *config.Config) []agent.Option {
				cfg.Listen.Credentials = netip.MustParseAddrPort(holdPort(t))
				return nil
			},
			want: "credentials endpoint: task roles: credentials endpoint: listen on ",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := h.config(t)
			cfg.DataDir = t.TempDir()
			cfg.IAM.EnableTaskRole = true
			cfg.IAM.AuditLogFile = filepath.Join(t.TempDir(), "audit.log")
			cfg.Listen.Credentials = netip.MustParseAddrPort("127.0.0.1:0")
			opts := tc.setup(t, cfg)
			var logBuf syncBuffer
			logger := slog.New(slog.NewTextHandler(&logBuf, nil))
			a, err := agent.New(cfg, h.options(append(opts, agent.WithLogger(logger))...)...)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			t.Cleanup(func() {
				cancel() // ends a Run that hung, so that the test process does not leak it
				select {
				case <-done:
				case <-time.After(hangDetector):
					t.Error("Run did not return even after its context was cancelled")
				}
			})

			var runErr error
			select {
			case runErr = <-done:
				done <- runErr // for the cleanup
			case <-time.After(hangDetector):
				t.Fatalf("Run has not returned %s after the failure (it hangs); log:\n%s", hangDetector, logBuf.String())
			}
			if runErr == nil || !strings.Contains(runErr.Error(), tc.want) {
				t.Fatalf("Run returned %v, want an error containing %q", runErr, tc.want)
			}
			logged := logBuf.String()
			if !strings.Contains(logged, "level=ERROR") || !strings.Contains(logged, tc.want) {
				t.Errorf("the failure was not logged as an error; want %q in:\n%s", tc.want, logged)
			}
			rctx, rcancel := context.WithTimeout(context.Background(), hangDetector)
			defer rcancel()
			if err := a.Ready(rctx); !errors.Is(err, agent.ErrStopped) {
				t.Errorf("Ready after Run returned: %v, want ErrStopped", err)
			}
		})
	}
}

// holdPort listens on a free loopback port until the test ends and returns
// its address: an address another program holds.
func holdPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// syncBuffer is a bytes.Buffer that a logger writes to while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
