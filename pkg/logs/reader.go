package logs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Entry is one json-file line.
type Entry struct {
	// Stream is "stdout" or "stderr".
	Stream string `json:"stream"`
	// Time is when the logger read the line.
	Time time.Time `json:"time"`
	// Log is the text, with its trailing "\n" unless Partial.
	Log string `json:"log"`
}

// Partial reports whether the entry is a piece of a longer line (or the
// unterminated last output of a stream); the next entry of the same stream
// continues it.
func (e Entry) Partial() bool { return !strings.HasSuffix(e.Log, "\n") }

// ReadOptions selects what Read delivers.
type ReadOptions struct {
	// Tail delivers only the last Tail entries of the existing logs; 0 means all.
	Tail int
	// Since skips entries older than this; the zero time keeps all.
	Since time.Time
	// Follow keeps delivering new entries, across rotations, until ctx ends.
	Follow bool
	// PollInterval is how often a follower checks for new data; 0 means 100 ms.
	PollInterval time.Duration
}

// Read delivers the log entries of the json-file log at path (and its
// rotated files) to fn in order. It returns fn's first error, ctx's error
// when following ends by cancellation, or nil once the existing entries are
// delivered when not following.
func Read(ctx context.Context, path string, opts ReadOptions, fn func(Entry) error) error {
	poll := opts.PollInterval
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	// Hold the current file first, so a rotation while the older files are
	// read cannot make it vanish; rotated files with its inode are skipped.
	cur, err := os.Open(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("open log %s: %w", path, err)
	}
	if cur != nil {
		defer func() { cur.Close() }()
	}
	var curIno uint64
	if cur != nil {
		curIno = inode(cur)
	}

	keep := func(e Entry) bool { return opts.Since.IsZero() || !e.Time.Before(opts.Since) }
	// ring keeps the last Tail entries; next is where the oldest one sits
	// once it is full.
	var ring []Entry
	next := 0
	collect := func(e Entry) error {
		if !keep(e) {
			return nil
		}
		if opts.Tail <= 0 {
			return fn(e)
		}
		if len(ring) < opts.Tail {
			ring = append(ring, e)
			return nil
		}
		ring[next] = e
		next = (next + 1) % opts.Tail
		return nil
	}

	// The files to read, oldest first, ending with the current one.
	var files []*os.File
	defer func() {
		for _, f := range files {
			if f != cur {
				f.Close()
			}
		}
	}()
	for _, name := range RotatedFiles(path) {
		f, err := os.Open(name)
		if err != nil {
			continue // rotated away while listing
		}
		if cur != nil && inode(f) == curIno {
			f.Close()
			continue
		}
		files = append(files, f)
	}
	if cur != nil {
		files = append(files, cur)
	}
	// For a plain tail, start each file where the last Tail lines begin
	// instead of decoding everything before them.
	starts := make([]int64, len(files))
	first := 0
	if opts.Tail > 0 && opts.Since.IsZero() {
		need := opts.Tail
		for i := len(files) - 1; i >= 0; i-- {
			off, found, err := tailOffset(files[i], need)
			if err != nil {
				return err
			}
			starts[i], need, first = off, need-found, i
			if need <= 0 {
				break
			}
		}
	}
	var pending []byte
	for i := first; i < len(files); i++ {
		if _, err := files[i].Seek(starts[i], io.SeekStart); err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		p, err := readEntries(files[i], nil, collect)
		if err != nil {
			return err
		}
		if files[i] == cur {
			pending = p
		}
	}
	if len(ring) == opts.Tail {
		ring = append(ring[next:], ring[:next]...)
	}
	for _, e := range ring {
		if err := fn(e); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}

	emit := func(e Entry) error {
		if !keep(e) {
			return nil
		}
		return fn(e)
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if cur == nil {
			if f, err := os.Open(path); err == nil {
				cur, curIno, pending = f, inode(f), nil
			}
		}
		if cur != nil {
			if pending, err = readEntries(cur, pending, emit); err != nil {
				return err
			}
			// At EOF: if path is now another file, the old one was rotated
			// and is complete (the writer never appends to a rotated file).
			if st, err := os.Stat(path); err != nil || statInode(st) != curIno {
				if pending, err = readEntries(cur, pending, emit); err != nil {
					return err
				}
				cur.Close()
				cur = nil
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// tailOffset finds where the last n complete lines of f start, scanning
// backwards; found is how many lines that offset covers (fewer than n when
// the file is shorter). An unterminated last line is not counted.
func tailOffset(f *os.File, n int) (off int64, found int, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("stat log: %w", err)
	}
	const block = 64 << 10
	buf := make([]byte, block)
	newlines := 0
	for end := st.Size(); end > 0; {
		start := max(0, end-block)
		chunk := buf[:end-start]
		if _, err := f.ReadAt(chunk, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, fmt.Errorf("read log: %w", err)
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] != '\n' {
				continue
			}
			newlines++
			// The (n+1)th newline from the end closes the line before
			// the last n.
			if newlines == n+1 {
				return start + int64(i) + 1, n, nil
			}
		}
		end = start
	}
	return 0, newlines, nil
}

// RotatedFiles lists the rotated files of the log at path (path.N, N >= 1),
// oldest (highest N) first; the json-file writer rotates that way and
// pkg/logship's tailers follow the same chain.
func RotatedFiles(path string) []string {
	matches, _ := filepath.Glob(path + ".*")
	type numbered struct {
		name string
		n    int
	}
	var files []numbered
	for _, m := range matches {
		n, err := strconv.Atoi(strings.TrimPrefix(m, path+"."))
		if err != nil || n < 1 {
			continue
		}
		files = append(files, numbered{m, n})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].n > files[j].n })
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.name
	}
	return names
}

// readEntries reads complete lines from r to EOF, decoding each. pending is
// an incomplete last line left by a previous call; the new leftover is
// returned. Lines that do not decode (a torn write after a disk-full error)
// are skipped.
func readEntries(r io.Reader, pending []byte, fn func(Entry) error) ([]byte, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			pending = append(pending, chunk...)
			continue
		}
		if err != nil {
			pending = append(pending, chunk...)
			if errors.Is(err, io.EOF) {
				return pending, nil
			}
			return pending, fmt.Errorf("read log: %w", err)
		}
		line := chunk
		if len(pending) > 0 {
			line = append(pending, chunk...)
		}
		var e Entry
		if jerr := json.Unmarshal(bytes.TrimSpace(line), &e); jerr == nil {
			if ferr := fn(e); ferr != nil {
				return nil, ferr
			}
		}
		pending = pending[:0]
	}
}

func inode(f *os.File) uint64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return statInode(st)
}

func statInode(st os.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Ino
	}
	return 0
}
