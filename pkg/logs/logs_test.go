package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the shim-started logger and as the
// log daemon, exactly as the agent binary does in its hidden modes.
func TestMain(m *testing.M) {
	if code, ok := ServeMode(context.Background(), "logs.test", os.Args[1:], os.Stderr); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func readAll(t *testing.T, path string, opts ReadOptions) []Entry {
	t.Helper()
	var out []Entry
	if err := Read(context.Background(), path, opts, func(e Entry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("Read(%s): %v", path, err)
	}
	return out
}

// joinStream reassembles one stream's bytes from its (possibly split) entries.
func joinStream(entries []Entry, stream string) string {
	var b strings.Builder
	for _, e := range entries {
		if e.Stream == stream {
			b.WriteString(e.Log)
		}
	}
	return b.String()
}

func TestConfigRoundTrip(t *testing.T) {
	in := Config{Path: "/var/lib/berth/logs/abc-json.log", MaxSize: 10 << 20, MaxFile: 3}
	arg, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(arg, "/+=&? ") {
		t.Errorf("encoded arg %q is not URL/argv safe", arg)
	}
	out, err := DecodeConfig(arg)
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}
	for _, bad := range []Config{{}, {Path: "rel/x.log"}, {Path: "/x", MaxSize: -1}, {Path: "/x", MaxFile: -2}} {
		if _, err := bad.Encode(); err == nil {
			t.Errorf("Encode(%+v) accepted an invalid config", bad)
		}
	}
	if _, err := DecodeConfig("!!!"); err == nil {
		t.Error("DecodeConfig accepted garbage")
	}
}

func TestEntryEncodingMatchesEncodingJSON(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	for _, msg := range []string{"plain\n", "quote \" back \\ tab \t cr \r\n", "<html>&amp;\n", "\x00\x01\x1f", "héllo wörld ✓\n", "bad \xff utf8\n", "sep \u2028 \u2029\n"} {
		got := appendEntry(nil, "stdout", []byte(msg), ts)
		want, _ := json.Marshal(struct {
			Log    string    `json:"log"`
			Stream string    `json:"stream"`
			Time   time.Time `json:"time"`
		}{msg, "stdout", ts})
		want = append(want, '\n')
		if !bytes.Equal(got, want) {
			t.Errorf("entry for %q:\n got %s\nwant %s", msg, got, want)
		}
	}
}

func TestCaptureSplitsLongLinesAndKeepsOrderPerStream(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c-json.log")
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	var want [2]strings.Builder
	long := strings.Repeat("x", 100_000) + "\n"
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer outW.Close()
		for i := range 2000 {
			l := fmt.Sprintf("out %d\n", i)
			want[0].WriteString(l)
			io.WriteString(outW, l)
			if i == 1000 {
				want[0].WriteString(long)
				io.WriteString(outW, long)
			}
		}
		want[0].WriteString("no newline at end")
		io.WriteString(outW, "no newline at end")
	}()
	go func() {
		defer wg.Done()
		defer errW.Close()
		for i := range 2000 {
			l := fmt.Sprintf("err %d\n", i)
			want[1].WriteString(l)
			io.WriteString(errW, l)
		}
	}()
	ready := false
	st, err := Capture(CaptureOptions{Config: Config{Path: path}, Stdout: outR, Stderr: errR, Ready: func() error {
		if _, err := os.Stat(path); err != nil {
			t.Errorf("ready signalled before the log file exists: %v", err)
		}
		ready = true
		return nil
	}})
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !ready {
		t.Error("Ready was never called")
	}
	if st.Dropped != 0 {
		t.Errorf("dropped %d lines: %v", st.Dropped, st.LastError)
	}
	entries := readAll(t, path, ReadOptions{})
	if got := joinStream(entries, "stdout"); got != want[0].String() {
		t.Errorf("stdout differs: got %d bytes, want %d", len(got), want[0].Len())
	}
	if got := joinStream(entries, "stderr"); got != want[1].String() {
		t.Errorf("stderr differs: got %d bytes, want %d", len(got), want[1].Len())
	}
	pieces := 0
	for _, e := range entries {
		if len(e.Log) > MaxLineSize {
			t.Fatalf("entry of %d bytes exceeds MaxLineSize %d", len(e.Log), MaxLineSize)
		}
		if e.Partial() {
			pieces++
		}
	}
	// 100,001 bytes in 16 KiB pieces → 6 partial pieces + the final one; plus the unterminated tail.
	if pieces != 7 {
		t.Errorf("partial entries = %d, want 7", pieces)
	}
	if uint64(len(entries)) != st.Lines {
		t.Errorf("file has %d entries, stats say %d", len(entries), st.Lines)
	}
}

func TestRotationKeepsAtMostMaxFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c-json.log")
	var in bytes.Buffer
	for i := range 5000 {
		fmt.Fprintf(&in, "line %05d\n", i)
	}
	want := in.String()
	if _, err := Capture(CaptureOptions{Config: Config{Path: path, MaxSize: 4096, MaxFile: 3}, Stdout: &in}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + "*")
	if len(files) != 3 {
		t.Errorf("files after rotation = %v, want 3 (max-file)", files)
	}
	for _, f := range files {
		st, _ := os.Stat(f)
		if st.Size() > 4096+200 {
			t.Errorf("%s is %d bytes, max-size is 4096", f, st.Size())
		}
	}
	got := joinStream(readAll(t, path, ReadOptions{}), "stdout")
	if !strings.HasSuffix(want, got) || got == "" {
		t.Errorf("rotated logs are not the newest contiguous suffix of the input (got %d bytes)", len(got))
	}
	// max-file 1: the file is replaced, never more than one exists.
	path1 := filepath.Join(dir, "one-json.log")
	in.Reset()
	for i := range 1000 {
		fmt.Fprintf(&in, "line %05d\n", i)
	}
	if _, err := Capture(CaptureOptions{Config: Config{Path: path1, MaxSize: 1024, MaxFile: 1}, Stdout: &in}); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(path1 + "*"); len(files) != 1 {
		t.Errorf("max-file 1 left %v", files)
	}
}

func TestWriteErrorsAreCountedAndDrainingContinues(t *testing.T) {
	// /dev/full accepts opens and fails every write with ENOSPC: a full disk.
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	var in bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	st, err := Capture(CaptureOptions{Config: Config{Path: "/dev/full"}, Stdout: &in})
	if err != nil {
		t.Fatal(err)
	}
	if in.Len() != 0 {
		t.Errorf("%d bytes left undrained", in.Len())
	}
	if st.Dropped != 1000 || st.Lines != 0 || st.LastError == nil {
		t.Errorf("stats = %+v, want 1000 dropped with an error", st)
	}
}

func TestUnopenableLogStillDrainsAndRecovers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gone", "c-json.log") // the directory does not exist yet

	// Capture drains everything and reports the loss instead of failing.
	var in bytes.Buffer
	for i := range 100 {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	st, err := Capture(CaptureOptions{Config: Config{Path: path}, Stdout: &in})
	if err != nil || in.Len() != 0 || st.Dropped != 100 || st.LastError == nil {
		t.Fatalf("Capture into a missing directory: %+v, %v, %d bytes undrained", st, err, in.Len())
	}

	// Once the directory is back, the next open attempt succeeds.
	clock := time.Now()
	w := openJSONFile(Config{Path: path}, func() time.Time { return clock })
	ts := []byte(clock.Format(time.RFC3339Nano))
	w.add("stdout", []byte("lost 1\n"), ts, true)
	w.add("stdout", []byte("lost 2\n"), ts, true)
	os.MkdirAll(filepath.Dir(path), 0o755)
	w.add("stdout", []byte("lost 3 (retry not due yet)\n"), ts, true)
	clock = clock.Add(reopenInterval)
	w.add("stdout", []byte("kept\n"), ts, true)
	w.close()
	if st := w.stats(); st.Dropped != 3 || st.Lines != 1 {
		t.Errorf("stats = %+v, want 3 dropped and 1 written", st)
	}
	if got := joinStream(readAll(t, path, ReadOptions{}), "stdout"); got != "kept\n" {
		t.Errorf("log after recovery = %q, want %q", got, "kept\n")
	}
}

func writeLog(t *testing.T, path string, entries ...Entry) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, e := range entries {
		f.Write(appendEntry(nil, e.Stream, []byte(e.Log), e.Time))
	}
}

func TestReadTailAndSinceAcrossRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c-json.log")
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := func(i int) Entry {
		return Entry{Stream: "stdout", Time: base.Add(time.Duration(i) * time.Second), Log: fmt.Sprintf("%d\n", i)}
	}
	writeLog(t, path+".2", e(0), e(1), e(2))
	writeLog(t, path+".1", e(3), e(4), e(5))
	writeLog(t, path, e(6), e(7))
	os.WriteFile(path+".bak", []byte("not a rotated file"), 0o644)
	logs := func(es []Entry) string {
		var s []string
		for _, e := range es {
			s = append(s, strings.TrimSpace(e.Log))
		}
		return strings.Join(s, ",")
	}
	cases := []struct {
		name string
		opts ReadOptions
		want string
	}{
		{"all", ReadOptions{}, "0,1,2,3,4,5,6,7"},
		{"tail 3", ReadOptions{Tail: 3}, "5,6,7"},
		{"tail more than exist", ReadOptions{Tail: 100}, "0,1,2,3,4,5,6,7"},
		{"since", ReadOptions{Since: base.Add(4 * time.Second)}, "4,5,6,7"},
		{"since and tail", ReadOptions{Since: base.Add(4 * time.Second), Tail: 2}, "6,7"},
	}
	for _, c := range cases {
		if got := logs(readAll(t, path, c.opts)); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
	if got := readAll(t, filepath.Join(dir, "missing.log"), ReadOptions{}); len(got) != 0 {
		t.Errorf("missing log gave %v", got)
	}
}

func TestFollowSeesNewLinesAcrossRotations(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c-json.log")
	pr, pw := io.Pipe()
	capDone := make(chan error, 1)
	go func() {
		_, err := Capture(CaptureOptions{Config: Config{Path: path, MaxSize: 2048, MaxFile: 2}, Stdout: pr})
		capDone <- err
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 1000)
	readDone := make(chan error, 1)
	go func() {
		readDone <- Read(ctx, path, ReadOptions{Follow: true, PollInterval: 10 * time.Millisecond}, func(e Entry) error {
			got <- e.Log
			return nil
		})
	}()
	// Write lines one by one, waiting for each: the follower must see every
	// line even though the file rotates (2 KiB) many times meanwhile.
	for i := range 300 {
		want := fmt.Sprintf("line %03d %s\n", i, strings.Repeat("y", 40))
		io.WriteString(pw, want)
		select {
		case l := <-got:
			if l != want {
				t.Fatalf("follow got %q, want %q", l, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("follower did not see line %d", i)
		}
	}
	pw.Close()
	if err := <-capDone; err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-readDone; !errors.Is(err, context.Canceled) {
		t.Errorf("Read after cancel = %v, want context.Canceled", err)
	}
}

// TestRunShimLoggerHandshake runs the logger as the shim does: a separate
// process with stdout on fd 3, stderr on fd 4 and the ready pipe on fd 5.
func TestRunShimLoggerHandshake(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Path: filepath.Join(dir, "c-json.log")}
	arg, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	readyR, readyW, _ := os.Pipe()
	cmd := exec.Command(os.Args[0], LoggerMode, arg)
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outR.Close()
	errR.Close()
	readyW.Close()
	// The ready pipe reads EOF once the logger closed it, after opening its file.
	if _, err := io.ReadAll(readyR); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.Path); err != nil {
		t.Errorf("logger signalled ready before creating its file: %v", err)
	}
	fmt.Fprintln(outW, "to stdout")
	fmt.Fprintln(errW, "to stderr")
	outW.Close()
	errW.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("logger exited with %v: %s", err, stderr.String())
	}
	es := readAll(t, cfg.Path, ReadOptions{})
	if joinStream(es, "stdout") != "to stdout\n" || joinStream(es, "stderr") != "to stderr\n" {
		t.Errorf("logged entries = %+v", es)
	}
}

// TestRunShimLoggerDrainsAfterSIGTERM checks the shim's stop sequence: the
// logger receives SIGTERM while the container's writer still has data, and
// must keep draining until EOF instead of exiting.
func TestRunShimLoggerDrainsAfterSIGTERM(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Path: filepath.Join(dir, "c-json.log")}
	arg, _ := cfg.Encode()
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	readyR, readyW, _ := os.Pipe()
	cmd := exec.Command(os.Args[0], LoggerMode, arg)
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outR.Close()
	errR.Close()
	readyW.Close()
	io.ReadAll(readyR)
	errW.Close()
	fmt.Fprintln(outW, "before")
	time.Sleep(100 * time.Millisecond) // let the logger reach its read loop
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	fmt.Fprintln(outW, "after sigterm")
	outW.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("logger: %v", err)
	}
	if got := joinStream(readAll(t, cfg.Path, ReadOptions{}), "stdout"); got != "before\nafter sigterm\n" {
		t.Errorf("stdout = %q", got)
	}
}

// TestTailMatchesFullRead checks the backwards tail scan against the last N
// entries of a full read, over rotated files, block boundaries, lines
// longer than a block and an unterminated last line.
func TestTailMatchesFullRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c-json.log")
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	i := 0
	mk := func(size int) Entry {
		i++
		return Entry{Stream: "stdout", Time: base.Add(time.Duration(i) * time.Millisecond), Log: fmt.Sprintf("%d %s\n", i, strings.Repeat("z", size))}
	}
	var es []Entry
	for _, name := range []string{path + ".2", path + ".1", path} {
		var file []Entry
		for j := range 300 {
			size := (j * 7919) % 900
			if j%97 == 0 {
				size = 70 << 10 // longer than the 64 KiB scan block
			}
			file = append(file, mk(size))
		}
		writeLog(t, name, file...)
		es = append(es, file...)
	}
	// An unterminated line being written right now is not an entry yet.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"log":"partial`)
	f.Close()
	for _, n := range []int{1, 2, 299, 300, 301, 650, 899, 900, 901, 5000} {
		got := readAll(t, path, ReadOptions{Tail: n})
		want := es[max(0, len(es)-n):]
		if len(got) != len(want) {
			t.Errorf("Tail %d: %d entries, want %d", n, len(got), len(want))
			continue
		}
		for k := range got {
			if got[k].Log != want[k].Log {
				t.Errorf("Tail %d: entry %d = %.20q, want %.20q", n, k, got[k].Log, want[k].Log)
				break
			}
		}
	}
}
