package logship

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/logs"
)

// recorder is a Driver that records what it receives and can be made to
// fail, standing in for a destination in the shipper's unit tests.
type recorder struct {
	mu     sync.Mutex
	lines  []string
	down   bool
	closed bool
}

var _ Driver = (*recorder)(nil)

func (r *recorder) Ship(ctx context.Context, msgs []Message) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return 0, errors.New("destination down")
	}
	for _, m := range msgs {
		r.lines = append(r.lines, string(m.Line))
	}
	return len(msgs), nil
}

func (r *recorder) Close() error { r.mu.Lock(); r.closed = true; r.mu.Unlock(); return nil }

func (r *recorder) setDown(d bool) { r.mu.Lock(); r.down = d; r.mu.Unlock() }

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// logWriter runs pkg/logs' real capture (the json-file writer with
// rotation) on a pipe, as the shim logger would.
type logWriter struct {
	pw   *io.PipeWriter
	done chan logs.CaptureStats
}

func startLog(t *testing.T, cfg logs.Config) *logWriter {
	t.Helper()
	pr, pw := io.Pipe()
	w := &logWriter{pw: pw, done: make(chan logs.CaptureStats, 1)}
	ready := make(chan struct{})
	go func() {
		st, err := logs.Capture(logs.CaptureOptions{Config: cfg, Stdout: pr, Ready: func() error { close(ready); return nil }})
		if err != nil {
			t.Errorf("capture: %v", err)
		}
		w.done <- st
	}()
	<-ready
	t.Cleanup(func() { w.close() })
	return w
}

func (w *logWriter) write(t *testing.T, from, to int) {
	t.Helper()
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "line %07d\n", i)
		if b.Len() > 32<<10 {
			if _, err := io.WriteString(w.pw, b.String()); err != nil {
				t.Fatalf("write log: %v", err)
			}
			b.Reset()
		}
	}
	if _, err := io.WriteString(w.pw, b.String()); err != nil {
		t.Fatalf("write log: %v", err)
	}
}

func (w *logWriter) close() {
	if w.pw == nil {
		return
	}
	w.pw.Close()
	<-w.done
	w.pw = nil
}

func wantLines(from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("line %07d", i))
	}
	return out
}

func checkExactly(t *testing.T, got []string, from, to int) {
	t.Helper()
	want := wantLines(from, to)
	if len(got) != len(want) {
		seen := map[string]int{}
		for i, g := range got {
			if j, ok := seen[g]; ok {
				t.Errorf("duplicate %q at %d and %d", g, j, i)
				break
			}
			seen[g] = i
		}
		t.Fatalf("got %d lines, want %d (first %q, last %q)", len(got), len(want), first(got), last(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("line %d: got %q, want %q", i, got[i], want[i])
		}
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

func startShipper(t *testing.T, dir, path string, d Driver, mod func(*Options)) *Shipper {
	t.Helper()
	o := Options{Path: path, Positions: &FilePositions{Path: filepath.Join(dir, "pos.json")}, Driver: d,
		DriverName: "test", PollInterval: 20 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	if mod != nil {
		mod(&o)
	}
	s, err := Start(context.Background(), o)
	if err != nil {
		t.Fatalf("start shipper: %v", err)
	}
	return s
}

func drain(t *testing.T, s *Shipper) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Lines written while the shipper follows, across many rotations, arrive
// complete and in order.
func TestShipsEveryLineInOrderAcrossRotations(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	w := startLog(t, logs.Config{Path: path, MaxSize: 256 << 10, MaxFile: 3})
	rec := &recorder{}
	s := startShipper(t, dir, path, rec, nil)
	for i := 0; i < 20; i++ {
		w.write(t, i*1000, (i+1)*1000)
		time.Sleep(5 * time.Millisecond)
	}
	w.close()
	drain(t, s)
	t.Logf("stats %+v", s.Stats())
	checkExactly(t, rec.got(), 0, 20000)
	if st := s.Stats(); st.Shipped != 20000 || st.Dropped != 0 {
		t.Fatalf("stats %+v, want 20000 shipped and none dropped", st)
	}
	if !rec.closed {
		t.Fatal("driver not closed by Drain")
	}
}

// With the destination down lines wait in the file; once it returns they
// all arrive, in order, and the retries are counted.
func TestDestinationDownLinesWaitAndArriveInOrder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	w := startLog(t, logs.Config{Path: path, MaxSize: 1 << 20, MaxFile: 3})
	rec := &recorder{down: true}
	m := NewMetrics()
	s := startShipper(t, dir, path, rec, func(o *Options) { o.Metrics = m })
	w.write(t, 0, 3000)
	waitFor(t, "a failed attempt", func() bool { return s.Stats().Retries > 0 })
	w.write(t, 3000, 6000)
	rec.setDown(false)
	w.close()
	drain(t, s)
	checkExactly(t, rec.got(), 0, 6000)
	snap := m.Snapshot()["test"]
	if snap.Shipped != 6000 || snap.Retries == 0 {
		t.Fatalf("metrics %+v, want 6000 shipped and some retries", snap)
	}
}

// Lines rotated away while the destination is down are counted as dropped
// (never silently lost): what arrives is an in-order tail, and shipped plus
// dropped is everything written.
func TestRotatedAwayLinesAreCounted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	w := startLog(t, logs.Config{Path: path, MaxSize: 64 << 10, MaxFile: 2})
	rec := &recorder{down: true}
	m := NewMetrics()
	var logBuf strings.Builder
	s := startShipper(t, dir, path, rec, func(o *Options) {
		o.Metrics = m
		o.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	})
	w.write(t, 0, 100)
	waitFor(t, "a failed attempt", func() bool { return s.Stats().Retries > 0 })
	// ~1.4 MB through a 128 KiB window, at a pace (about 10 MB/s) the
	// file watcher follows.
	for i := 100; i < 20000; i += 100 {
		w.write(t, i, i+100)
		time.Sleep(time.Millisecond)
	}
	w.close()
	waitFor(t, "drops to be counted", func() bool { return s.Stats().Dropped > 0 })
	rec.setDown(false)
	drain(t, s)
	got := rec.got()
	st := s.Stats()
	if st.Shipped+st.Dropped != 20000 {
		t.Fatalf("shipped %d + dropped %d != 20000 written", st.Shipped, st.Dropped)
	}
	if uint64(len(got)) != st.Shipped {
		t.Fatalf("driver saw %d lines, stats say %d shipped", len(got), st.Shipped)
	}
	// What arrived is in order: the held batch, then a contiguous tail.
	prev := -1
	for _, l := range got {
		var n int
		fmt.Sscanf(l, "line %d", &n)
		if n <= prev {
			t.Fatalf("line %q after line %d: out of order or duplicated", l, prev)
		}
		prev = n
	}
	if prev != 19999 {
		t.Fatalf("last shipped line is %d, want 19999", prev)
	}
	// One summary line for the outage, written when the destination returned.
	if n := strings.Count(logBuf.String(), "dropped before they could be shipped"); n != 1 {
		t.Fatalf("%d drop summary lines, want 1:\n%s", n, logBuf.String())
	}
	if want := fmt.Sprintf("rotatedAway=%d", st.Dropped); !strings.Contains(logBuf.String(), want) {
		t.Fatalf("summary lacks %s:\n%s", want, logBuf.String())
	}
	var b strings.Builder
	m.WritePrometheus(&b)
	if want := fmt.Sprintf(`berth_log_lines_dropped_total{driver="test"} %d`, st.Dropped); !strings.Contains(b.String(), want) {
		t.Fatalf("metrics lack %q:\n%s", want, b.String())
	}
}

// A shipper closed halfway (agent stop) and started again resumes from the
// persisted position: no line lost, none repeated.
func TestRestartResumesWithoutLossOrDuplicates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	w := startLog(t, logs.Config{Path: path, MaxSize: 64 << 10, MaxFile: 30})
	rec := &recorder{}
	s := startShipper(t, dir, path, rec, nil)
	w.write(t, 0, 5000)
	waitFor(t, "first lines", func() bool { return len(rec.got()) >= 5000 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	w.write(t, 5000, 12000) // written while no shipper runs, across rotations
	s = startShipper(t, dir, path, rec, nil)
	w.write(t, 12000, 15000)
	w.close()
	drain(t, s)
	t.Logf("second shipper: %+v", s.Stats())
	checkExactly(t, rec.got(), 0, 15000)
}

// mode=non-blocking bounds the backlog: with the destination down, lines
// past max-buffer-size are dropped and counted; the rest arrive in order.
func TestNonBlockingBoundsBacklog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	w := startLog(t, logs.Config{Path: path, MaxSize: 10 << 20, MaxFile: 2})
	rec := &recorder{down: true}
	s := startShipper(t, dir, path, rec, func(o *Options) { o.NonBlocking, o.MaxBufferSize = true, 64<<10 })
	w.write(t, 0, 20000)
	w.close()
	waitFor(t, "overflow", func() bool { return s.Stats().Overflow > 0 })
	rec.setDown(false)
	drain(t, s)
	st := s.Stats()
	if st.Shipped+st.Overflow != 20000 || st.Overflow == 0 {
		t.Fatalf("stats %+v: want overflow > 0 and shipped+overflow = 20000", st)
	}
	got := rec.got()
	if last(got) != "line 0019999" {
		t.Fatalf("last line %q, want the newest", last(got))
	}
}

// Split lines (over pkg/logs' 16 KiB piece size) are joined back.
func TestLongLinesAreJoined(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	w := startLog(t, logs.Config{Path: path})
	rec := &recorder{}
	s := startShipper(t, dir, path, rec, nil)
	long := strings.Repeat("x", 100<<10)
	io.WriteString(w.pw, "a\n"+long+"\nb\nunterminated")
	w.close()
	drain(t, s)
	got := rec.got()
	if len(got) != 4 || got[0] != "a" || got[1] != long || got[2] != "b" || got[3] != "unterminated" {
		t.Fatalf("got %d messages (lengths %v), want a, the 100 KiB line, b, unterminated", len(got), lens(got))
	}
}

func lens(s []string) []int {
	out := make([]int, len(s))
	for i, x := range s {
		out[i] = len(x)
	}
	return out
}
