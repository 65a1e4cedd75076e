package devmode_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/agent/devmode"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/state"
)

// hangDetector bounds how long a test waits for an agent to stop after a
// part of it failed. It tells a hang from a return; nothing is asserted
// about how long stopping took.
const hangDetector = 2 * time.Minute

// TestAgentFailureClosesSession runs an agent as a cluster member whose
// engine fails during recovery after its ACS session is up (recovery is
// held at its end until the instance shows agentConnected). The agent's
// Run must return that failure, having logged it, and the endpoint must see the
// session closed: agentConnected false, so nothing more is placed on the
// instance. Before the fix the agent never returned and its session stayed
// up, leaving every payload unacknowledged (issue 14, item 1).
func TestAgentFailureClosesSession(t *testing.T) {
	e := newE2E(t, acs.Options{})
	s := e.spec()
	s.TaskRoles = true // as in dev mode: the credentials goroutine is what kept the agent from returning
	release := make(chan struct{})
	failRecovery := agent.WithAfterRecoverHook(func(ctx context.Context) error {
		select {
		case <-release:
			return errors.New("injected recovery failure")
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	var logBuf syncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	ctx, cancel := context.WithCancel(context.Background())
	registered := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.runLogged(ctx, log, func(id state.InstanceIdentity) { registered <- id.ContainerInstanceArn }, nil, failRecovery)
	}()
	t.Cleanup(func() {
		cancel() // ends an agent that hung, so that the test process does not leak it
		select {
		case <-done:
		case <-time.After(hangDetector):
			t.Error("the agent did not stop even after its context was cancelled")
		}
	})
	var arn string
	select {
	case arn = <-registered:
	case err := <-done:
		t.Fatalf("agent stopped before registering: %v", err)
	case <-time.After(hangDetector):
		t.Fatal("agent did not register")
	}
	e.waitConnected(arn)

	close(release)
	var err error
	select {
	case err = <-done:
		done <- err // for the cleanup
	case <-time.After(hangDetector):
		t.Fatalf("the agent's Run has not returned %s after the engine failed (it hangs); connected: %v; log:\n%s",
			hangDetector, e.agentConnected(arn), logBuf.String())
	}
	const want = "agent: engine: recover tasks: after recovery: injected recovery failure"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("the agent's Run returned %v, want an error containing %q", err, want)
	}
	if logged := logBuf.String(); !strings.Contains(logged, "level=ERROR") || !strings.Contains(logged, "injected recovery failure") {
		t.Errorf("the failure was not logged as an error:\n%s", logged)
	}
	// The session ended when the agent stopped; the endpoint notices it at
	// once, the wait only absorbs the store write.
	deadline := time.Now().Add(hangDetector)
	for e.agentConnected(arn) {
		if time.Now().After(deadline) {
			t.Fatal("the endpoint still shows the stopped agent connected")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDevModeStopsWhenAgentFails: dev mode whose agent fails during
// recovery returns the failure (cmd/agent then exits 1) instead of
// serving an endpoint for an agent that is gone.
func TestDevModeStopsWhenAgentFails(t *testing.T) {
	e := newE2E(t, acs.Options{}) // containerd and registry; its endpoint is unused here
	s := e.spec()
	cfg, err := s.config()
	if err != nil {
		t.Fatal(err)
	}
	var logBuf syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- devmode.Run(ctx, devmode.Options{
			Dir: t.TempDir(), Config: cfg, Logger: slog.New(slog.NewTextHandler(&logBuf, nil)),
			AgentOptions: append(s.options(), agent.WithAfterRecoverHook(func(context.Context) error {
				return errors.New("injected recovery failure")
			})),
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(hangDetector):
			t.Error("dev mode did not stop even after its context was cancelled")
		}
	})
	select {
	case err = <-done:
		done <- err
	case <-time.After(hangDetector):
		t.Fatalf("dev mode has not returned %s after its agent failed (it hangs); log:\n%s", hangDetector, logBuf.String())
	}
	if err == nil || !strings.Contains(err.Error(), "injected recovery failure") {
		t.Fatalf("dev mode returned %v, want the agent's failure", err)
	}
	if logged := logBuf.String(); !strings.Contains(logged, "level=ERROR") || !strings.Contains(logged, "injected recovery failure") {
		t.Errorf("the failure was not logged as an error:\n%s", logged)
	}
}

// agentConnected is what DescribeContainerInstances says about arn.
func (e *e2e) agentConnected(arn string) bool {
	out, err := e.admin.DescribeContainerInstances(context.Background(), &ecs.DescribeContainerInstancesInput{
		Cluster: aws.String("default"), ContainerInstances: []string{arn}})
	if err != nil || len(out.ContainerInstances) != 1 {
		e.t.Fatalf("DescribeContainerInstances %s: %v", arn, err)
	}
	return out.ContainerInstances[0].AgentConnected
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
