package logs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// flushThreshold bounds how much encoded output is held before it is
// written, so a chatty container gets batched writes without large buffers.
const flushThreshold = 64 << 10

// jsonFile writes Docker json-file lines for both streams of one container
// into one size-rotated file. Both stream readers share it.
type jsonFile struct {
	cfg Config
	now func() time.Time
	// bufs, when set, takes the encoding buffer back after every write.
	bufs *buffers

	// mu guards everything below.
	mu       sync.Mutex
	f        *os.File
	lastOpen time.Time // last failed open attempt, while f is nil
	size     int64     // bytes in the current file, buffered ones included
	buf      []byte    // encoded lines not yet written
	bufLines uint64
	lines    uint64 // lines written successfully
	dropped  uint64 // lines lost to write errors
	lastErr  error
}

// buffers lends byte buffers to the jsonFiles of one process, so that a log
// daemon holding a jsonFile per container (mostly idle) does not hold a
// 64 KiB encoding buffer for each between writes.
type buffers struct{ pool sync.Pool }

func (b *buffers) get(size int) []byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, size)
}

func (b *buffers) put(buf []byte) {
	if cap(buf) > 4*flushThreshold {
		return // grown for one huge line; let the GC have it
	}
	b.pool.Put(&buf)
}

// reopenInterval is how often a logger without an open file retries.
const reopenInterval = time.Second

// openJSONFile opens the log. When that fails (directory removed, disk
// full) it still returns a usable jsonFile that drops lines, counting them,
// and retries the open every reopenInterval: the container must not notice.
func openJSONFile(cfg Config, now func() time.Time) *jsonFile {
	w := &jsonFile{cfg: cfg, now: now}
	if err := w.openLocked(); err != nil {
		w.lastErr, w.lastOpen = err, now()
	}
	return w
}

func (w *jsonFile) openLocked() error {
	f, err := os.OpenFile(w.cfg.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log %s: %w", w.cfg.Path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat log %s: %w", w.cfg.Path, err)
	}
	w.f, w.size = f, st.Size()
	return nil
}

// add encodes one message (a full line with its "\n", or a partial piece
// without it) and writes it out when the buffer is large or flush is set.
// ts is the read time, already formatted as RFC 3339 with nanoseconds.
func (w *jsonFile) add(stream string, msg, ts []byte, flush bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.addLocked(stream, msg, ts)
	if flush {
		w.flushLocked()
	}
}

// addChunk splits data, read from one stream at the time ts, into entries
// (sp keeps the stream's unfinished line between chunks) and writes them
// out: one lock and one write for the whole read.
func (w *jsonFile) addChunk(stream string, sp *lineSplitter, data, ts []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sp.feed(data, func(msg []byte) { w.addLocked(stream, msg, ts) })
	w.flushLocked()
}

// endStream writes the stream's unterminated last line, if any, as a
// partial entry (stamped ts) and flushes.
func (w *jsonFile) endStream(stream string, sp *lineSplitter, ts []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(sp.pending) > 0 {
		w.addLocked(stream, sp.pending, ts)
		sp.pending = sp.pending[:0]
	}
	w.flushLocked()
}

func (w *jsonFile) addLocked(stream string, msg, ts []byte) {
	if w.buf == nil && w.bufs != nil {
		w.buf = w.bufs.get(2 * flushThreshold)
	}
	start := len(w.buf)
	w.buf = appendEntryTS(w.buf, stream, msg, ts)
	w.bufLines++
	w.size += int64(len(w.buf) - start)
	if len(w.buf) >= flushThreshold {
		w.flushLocked()
	}
	if w.cfg.MaxSize > 0 && w.size >= w.cfg.MaxSize {
		w.flushLocked()
		w.rotateLocked()
	}
}

// flushLocked writes the buffer. A failed write (disk full, file gone) drops
// the buffered lines and counts them: the logger must keep draining the
// container's pipes rather than stall the container.
func (w *jsonFile) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	var err error
	if w.f == nil && w.now().Sub(w.lastOpen) >= reopenInterval {
		if oerr := w.openLocked(); oerr != nil {
			w.lastOpen = w.now()
		}
	}
	if w.f == nil {
		err = errors.New("log file is not open")
	} else {
		_, err = w.f.Write(w.buf)
	}
	if err != nil {
		w.dropped += w.bufLines
		w.lastErr = err
		w.size -= int64(len(w.buf))
		if w.size < 0 {
			w.size = 0
		}
	} else {
		w.lines += w.bufLines
	}
	if w.bufs != nil {
		w.bufs.put(w.buf)
		w.buf = nil
	} else {
		w.buf = w.buf[:0]
	}
	w.bufLines = 0
}

// rotateLocked shifts Path → Path.1 → … and drops the oldest. The current
// file is always replaced by a new inode (never truncated in place) so that
// followers holding the old one can finish reading it.
func (w *jsonFile) rotateLocked() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	n := w.cfg.maxFile()
	if n == 1 {
		os.Remove(w.cfg.Path)
	} else {
		os.Remove(w.cfg.Path + "." + strconv.Itoa(n-1))
		for i := n - 2; i >= 1; i-- {
			os.Rename(w.cfg.Path+"."+strconv.Itoa(i), w.cfg.Path+"."+strconv.Itoa(i+1))
		}
		os.Rename(w.cfg.Path, w.cfg.Path+".1")
	}
	if err := w.openLocked(); err != nil {
		// Lines are counted as dropped until a later open succeeds.
		w.lastErr, w.lastOpen = err, w.now()
		w.size = 0
	}
}

func (w *jsonFile) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

func (w *jsonFile) stats() CaptureStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return CaptureStats{Lines: w.lines, Dropped: w.dropped, LastError: w.lastErr}
}

// appendEntry appends {"log":msg,"stream":stream,"time":t}\n in the exact
// field order and time format Docker's json-file driver writes.
func appendEntry(dst []byte, stream string, msg []byte, t time.Time) []byte {
	return appendEntryTS(dst, stream, msg, t.UTC().AppendFormat(nil, time.RFC3339Nano))
}

// appendEntryTS is appendEntry with the time already formatted.
func appendEntryTS(dst []byte, stream string, msg, ts []byte) []byte {
	dst = append(dst, `{"log":`...)
	dst = appendJSONString(dst, msg)
	dst = append(dst, `,"stream":"`...)
	dst = append(dst, stream...)
	dst = append(dst, `","time":"`...)
	dst = append(dst, ts...)
	dst = append(dst, "\"}\n"...)
	return dst
}

const hexDigits = "0123456789abcdef"

// jsonSafeASCII has '1' at every ASCII byte that encoding/json writes
// unescaped (printable, not '"', '\\', '<', '>' or '&'): one lookup per byte
// on the hot path of the logger.
const jsonSafeASCII = "00000000000000000000000000000000110111011111111111111111111101011111111111111111111111111111011111111111111111111111111111111111"

// appendJSONString quotes s as encoding/json would (HTML-safe escapes,
// invalid UTF-8 replaced by U+FFFD) without its allocation per call. Runs of
// eight bytes that need no escape are copied a word at a time: log text is
// mostly such runs, and this loop is most of the capture's CPU time.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) {
			w := s[i : i+8 : i+8]
			if jsonPlain[w[0]]&jsonPlain[w[1]]&jsonPlain[w[2]]&jsonPlain[w[3]]&
				jsonPlain[w[4]]&jsonPlain[w[5]]&jsonPlain[w[6]]&jsonPlain[w[7]] == '1' {
				i += 8
				continue
			}
		}
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonSafeASCII[b] == '1' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// jsonPlain extends jsonSafeASCII to all 256 byte values: non-ASCII bytes
// are not plain (they need a UTF-8 check). The fast path ANDs eight lookups:
// '1' & '1' is '1', anything with a '0' is not.
const jsonPlain = jsonSafeASCII + "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
