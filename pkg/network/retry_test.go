package network

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRetryDelaysDoubleUpToTheCap(t *testing.T) {
	r := newRetrier(slog.New(slog.NewTextHandler(io.Discard, nil)))
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, 64 * time.Second, 2 * time.Minute, 2 * time.Minute}
	for i, w := range want {
		if got := r.delay(i + 1); got != w {
			t.Errorf("delay after %d failed attempts: %v, want %v", i+1, got, w)
		}
	}
}

// TestRetrierRetriesUntilRemovedAndReports: a removal that fails three
// times is listed with its attempts and last error while it waits, and is
// gone from the list, counted as recovered, once a retry succeeds.
func TestRetrierRetriesUntilRemovedAndReports(t *testing.T) {
	r := newRetrier(slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.min, r.max = time.Millisecond, 4*time.Millisecond
	var mu sync.Mutex
	calls := 0
	stuck := errors.New("device or resource busy")
	remove := func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls < 3 {
			return stuck
		}
		return nil
	}
	r.failed("sandbox x", "task-1", remove, stuck) // the caller's own attempt
	p := r.pending()
	if len(p) != 1 || p[0].Resource != "sandbox x" || p[0].Owner != "task-1" || p[0].Attempts != 1 || p[0].Err != stuck.Error() || !p[0].NextAttempt.After(p[0].Since) {
		t.Fatalf("pending after one failure: %+v", p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(ctx)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.pending()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not removed: %+v", r.pending())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	var b strings.Builder
	if err := r.writePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"berth_network_cleanup_pending 0\n", "berth_network_cleanup_failures_total 3\n", "berth_network_cleanup_recovered_total 1\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
	if calls != 3 {
		t.Errorf("remove called %d times, want 3 (two failed retries, one success)", calls)
	}
}

// TestRetrierForgetsWhatItsOwnerRemoved: when the owner's own call succeeds
// (a later Teardown of the same sandbox), the entry goes.
func TestRetrierForgetsWhatItsOwnerRemoved(t *testing.T) {
	r := newRetrier(slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.failed("sandbox y", "", func(context.Context) error { return nil }, errors.New("x"))
	r.succeeded("sandbox y")
	r.succeeded("sandbox never-failed")
	if p := r.pending(); len(p) != 0 || r.recovered != 1 {
		t.Fatalf("pending %+v, recovered %d; want none and 1", p, r.recovered)
	}
}

func TestOwnerForDir(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(a, link); err != nil {
		t.Fatal(err)
	}
	oa, err := OwnerForDir(a)
	if err != nil {
		t.Fatal(err)
	}
	ob, _ := OwnerForDir(b)
	ol, _ := OwnerForDir(link + "/")
	if len(oa) != 8 || strings.Trim(oa, "0123456789abcdef") != "" {
		t.Errorf("owner %q: want 8 hex digits", oa)
	}
	if oa == ob {
		t.Errorf("two directories share the owner %s", oa)
	}
	if ol != oa {
		t.Errorf("the same directory through a symlink: owner %s, want %s", ol, oa)
	}
	if _, err := OwnerForDir(filepath.Join(a, "missing")); err == nil {
		t.Error("owner of a missing directory: no error")
	}
}

// TestOwnershipByName: a Sandboxer takes for its own exactly the IDs of its
// prefix and owner; another owner's, an owner-less Sandboxer's and longer or
// shorter names are not.
func TestOwnershipByName(t *testing.T) {
	mine := &Sandboxer{prefix: Options{NamePrefix: "berth-", Owner: "1a2b3c4d"}.idPrefix()}
	legacy := &Sandboxer{prefix: Options{NamePrefix: "berth-"}.idPrefix()}
	for _, c := range []struct {
		id           string
		mine, legacy bool
	}{
		{"berth-1a2b3c4d-0123456789abcdef", true, false},
		{"berth-9f8e7d6c-0123456789abcdef", false, false},
		{"berth-0123456789abcdef", false, true},
		{"berth-1a2b3c4d-0123456789abcde", false, false},
		{"berth-1a2b3c4d-0123456789abcdef0", false, false},
		{"berth-1a2b3c4d-0123456789abcdeg", false, false},
	} {
		if got := mine.ours(c.id); got != c.mine {
			t.Errorf("owner 1a2b3c4d: ours(%q) = %v, want %v", c.id, got, c.mine)
		}
		if got := legacy.ours(c.id); got != c.legacy {
			t.Errorf("no owner: ours(%q) = %v, want %v", c.id, got, c.legacy)
		}
	}
}
