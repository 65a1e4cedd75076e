package logship

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/pkg/logs"
)

// maxJoined bounds a line joined from json-file pieces (the logger splits
// lines longer than 16 KiB); longer lines are delivered in several messages.
const maxJoined = 1 << 20

// heldFile is one file of the json-file chain, held open so that a rotation
// cannot make it vanish while it is read.
type heldFile struct {
	f   *os.File
	ino uint64
	// stale marks a file found older than one already known: a listing
	// taken mid-rotation missed it before. newer is the inode of the
	// known file that follows it in the chain.
	stale bool
	newer uint64
}

// openNew opens the listed files not in seen, recording them. Files older
// than a known one are marked stale. When a file is no longer under its
// listed name (the logger rotated in between), nothing is opened: the
// caller lists again later.
func openNew(list []chainEntry, seen *inodeSet) []heldFile {
	lastSeen := -1
	for i, e := range list {
		if seen.has(e.ino) {
			lastSeen = i
		}
	}
	var out []heldFile
	for i, e := range list {
		if seen.has(e.ino) {
			continue
		}
		f, err := os.Open(e.name)
		if err != nil {
			closeAll(out)
			return nil
		}
		if ino, _ := fileIno(f); ino != e.ino {
			f.Close()
			closeAll(out)
			return nil
		}
		var newer uint64
		for _, n := range list[i+1:] {
			if seen.has(n.ino) {
				newer = n.ino
				break
			}
		}
		out = append(out, heldFile{f: f, ino: e.ino, stale: i < lastSeen, newer: newer})
	}
	for _, h := range out {
		seen.add(h.ino)
	}
	return out
}

func closeAll(files []heldFile) {
	for _, h := range files {
		h.f.Close()
	}
}

// tailer reads json-file entries across rotations, tracking positions. It
// is owned by one Shipper goroutine and is not safe for concurrent use.
type tailer struct {
	path string
	// queue holds the files not yet fully read, oldest first; queue[0] is
	// being read at off.
	queue []heldFile
	// finished are files read to their end but still in the chain; they
	// stay open (and their inodes known) until rotation deletes them.
	finished []heldFile
	seen     *inodeSet
	off      int64
	br       *bufio.Reader
	// raw is an incomplete last line of queue[0] (the writer flushes
	// whole lines, but a reader can still see a torn write).
	raw []byte
	// join assembles pieces of a split line.
	join       []byte
	joinStream string
	joinTime   time.Time
	// watcher, when set, hands over files opened at creation.
	watcher *createWatch
	// out holds complete messages not yet returned.
	out []Message
	// dropped counts entries in files that were rotated away unread;
	// droppedTaken is how much of it the Shipper has accounted.
	dropped, droppedTaken uint64
	// lostFiles counts chain files that vanished before they were opened.
	lostFiles uint64
}

func newTailer(path string) *tailer {
	return &tailer{path: path, seen: newInodeSet()}
}

// watch starts opening new files as they are created; the tailer must then
// be closed to stop it.
func (t *tailer) watch() {
	t.watcher = startCreateWatch(t.path, t.seen)
}

func (t *tailer) close() {
	if t.watcher != nil {
		t.watcher.stop()
		t.watcher = nil
	}
	for _, h := range append(t.queue, t.finished...) {
		h.f.Close()
	}
	t.queue, t.finished = nil, nil
}

// release closes a file, first forgetting its inode when it is deleted
// (its number cannot be reused before the close); a file still in the
// chain stays open among the finished ones.
func (t *tailer) release(h heldFile) {
	if _, nlink := fileIno(h.f); nlink > 0 {
		t.finished = append(t.finished, h)
		return
	}
	t.seen.forget(h.ino)
	h.f.Close()
}

// reap releases finished files that rotation has deleted.
func (t *tailer) reap() {
	kept := t.finished[:0]
	for _, h := range t.finished {
		if _, nlink := fileIno(h.f); nlink > 0 {
			kept = append(kept, h)
			continue
		}
		t.seen.forget(h.ino)
		h.f.Close()
	}
	t.finished = kept
}

// chain lists the files of the log, oldest first, ending with path.
func chain(path string) []string { return append(logs.RotatedFiles(path), path) }

// chainEntry is one file of a listing.
type chainEntry struct {
	name string
	ino  uint64
}

// stableChain lists the chain with inodes, oldest first. A listing taken
// while the logger renames files can miss one or see one twice, so it is
// repeated until two listings agree and the numbered files have no gap.
// During a burst of rotations it may find no stable listing and returns
// nil; callers list again on the next event or resync.
func stableChain(path string) []chainEntry {
	var prev []chainEntry
	for try := 0; try < 20; try++ {
		cur := listChain(path)
		if try > 0 && slices.Equal(cur, prev) && contiguous(path, cur) {
			return cur
		}
		prev = cur
		if try > 0 {
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

func listChain(path string) []chainEntry {
	var out []chainEntry
	for _, name := range chain(path) {
		st, err := os.Stat(name)
		if err != nil {
			continue
		}
		if s, ok := st.Sys().(*syscall.Stat_t); ok {
			out = append(out, chainEntry{name, s.Ino})
		}
	}
	return out
}

// contiguous reports whether the rotated files are path.1 … path.k.
func contiguous(path string, c []chainEntry) bool {
	n := 0
	for i := len(c) - 1; i >= 0; i-- {
		if c[i].name == path {
			continue
		}
		n++
		if c[i].name != path+"."+strconv.Itoa(n) {
			return false
		}
	}
	return true
}

func fileIno(f *os.File) (ino uint64, nlink uint64) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Ino, uint64(s.Nlink)
	}
	return 0, 0
}

// scan opens chain files not seen yet and queues them. Files appear only
// as the newest (rotation renames, never reorders), so unseen files are
// newer than every queued one.
func (t *tailer) scan() {
	t.reap()
	if t.watcher != nil {
		for _, h := range t.watcher.pending() {
			t.add(h)
		}
		// The watcher is the only source of files: a listing here
		// could see a newer file before the watcher delivers an older one.
		return
	}
	for _, h := range openNew(stableChain(t.path), t.seen) {
		t.add(h)
	}
}

// add queues a file (openNew has recorded it as seen). A stale file goes
// before the known file that follows it, unless reading has passed that
// point: then its lines are counted as dropped.
func (t *tailer) add(h heldFile) {
	if h.stale {
		for j, q := range t.queue {
			if q.ino != h.newer {
				continue
			}
			if j == 0 && (t.off > 0 || len(t.raw) > 0) {
				break
			}
			t.queue = slices.Insert(t.queue, j, h)
			if j == 0 {
				t.resetReader(0)
			}
			return
		}
		t.dropped += countLines(h.f)
		t.finished = append(t.finished, h)
		return
	}
	t.queue = append(t.queue, h)
	if len(t.queue) == 1 {
		t.resetReader(0)
	}
}

// resume positions the tailer at pos. It reports false when pos's file is
// no longer in the chain (rotated away while nobody was reading): then the
// tailer starts at the oldest file still there.
func (t *tailer) resume(pos Position) bool {
	t.scan()
	if pos.Inode == 0 {
		return true
	}
	// A listing taken while the logger rotates can miss the file for a
	// moment (the watcher lists again), so look for a while before
	// deciding it was rotated away.
	for try := 0; try < 20; try++ {
		if try > 0 {
			time.Sleep(100 * time.Millisecond)
			t.scan()
		}
		// Files found late are held as stale; the position may be
		// among them, followed by the rest of the chain.
		all := append(append([]heldFile(nil), t.finished...), t.queue...)
		for i, h := range all {
			if h.ino != pos.Inode {
				continue
			}
			t.finished = nil
			for _, old := range all[:i] {
				t.release(old)
			}
			t.queue = all[i:]
			t.resetReader(pos.Offset)
			return true
		}
	}
	t.lostFiles++
	return false
}

func (t *tailer) resetReader(off int64) {
	t.off = off
	t.raw = t.raw[:0]
	if len(t.queue) == 0 {
		t.br = nil
		return
	}
	t.queue[0].f.Seek(off, io.SeekStart)
	if t.br == nil {
		t.br = bufio.NewReaderSize(t.queue[0].f, 64<<10)
	} else {
		t.br.Reset(t.queue[0].f)
	}
}

// pos is the position of the next unread entry.
func (t *tailer) pos() Position {
	if len(t.queue) == 0 {
		return Position{}
	}
	return Position{Inode: t.queue[0].ino, Offset: t.off}
}

// errNoData means no complete entry is available now.
var errNoData = errors.New("no log data")

type entry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// next returns the next message. It returns errNoData when nothing more is
// available for now; a split line whose end has not arrived is held back.
func (t *tailer) next() (Message, error) {
	if len(t.out) > 0 {
		m := t.out[0]
		t.out = t.out[1:]
		return m, nil
	}
	for {
		if len(t.queue) == 0 {
			t.scan()
			if len(t.queue) == 0 {
				return Message{}, errNoData
			}
		}
		before := t.pos()
		chunk, err := t.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			t.raw = append(t.raw, chunk...)
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return Message{}, fmt.Errorf("read log %s: %w", t.path, err)
			}
			t.raw = append(t.raw, chunk...)
			if !t.advanceFile() {
				return Message{}, errNoData
			}
			continue
		}
		line := chunk
		if len(t.raw) > 0 {
			t.raw = append(t.raw, chunk...)
			line = t.raw
		}
		t.off += int64(len(line))
		e, jerr := decodeEntry(line)
		t.raw = t.raw[:0]
		if jerr != nil {
			continue // a torn write after a disk-full error
		}
		t.assemble(e, before)
		if len(t.out) > 0 {
			m := t.out[0]
			t.out = t.out[1:]
			return m, nil
		}
	}
}

// assemble joins the pieces of split lines and queues complete messages on
// t.out. An entry of the other stream ends a pending join: the pending part
// is delivered alone, positioned before the interrupting entry (before), so
// that positions stay monotonic and exact.
func (t *tailer) assemble(e entry, before Position) {
	partial := !strings.HasSuffix(e.Log, "\n")
	body := strings.TrimSuffix(e.Log, "\n")
	if len(t.join) > 0 && e.Stream != t.joinStream {
		t.out = append(t.out, Message{Line: append([]byte(nil), t.join...), Stream: t.joinStream, Time: t.joinTime, Pos: before})
		t.join = t.join[:0]
	}
	if len(t.join) == 0 {
		t.joinTime, t.joinStream = e.Time, e.Stream
	}
	t.join = append(t.join, body...)
	if partial && len(t.join) < maxJoined {
		return
	}
	t.out = append(t.out, Message{Line: append([]byte(nil), t.join...), Stream: t.joinStream, Time: t.joinTime, Pos: t.pos()})
	t.join = t.join[:0]
}

// flushJoin delivers a pending split line whose end will never come (the
// container exited with unterminated output).
func (t *tailer) flushJoin() (Message, bool) {
	if len(t.join) == 0 {
		return Message{}, false
	}
	m := Message{Line: append([]byte(nil), t.join...), Stream: t.joinStream, Time: t.joinTime, Pos: t.pos()}
	t.join = t.join[:0]
	return m, true
}

// advanceFile is called at EOF of queue[0]. A newer file queued by an
// earlier scan means queue[0] was rotated before this read reached its
// end, so it is complete: move on. Otherwise look for newer files; the
// caller reads queue[0] once more before moving on. It reports whether
// reading should continue.
func (t *tailer) advanceFile() bool {
	if len(t.queue) > 1 {
		t.raw = t.raw[:0] // a torn last line of a finished file
		t.release(t.queue[0])
		t.queue = t.queue[1:]
		t.resetReader(0)
		return true
	}
	n := len(t.queue)
	t.scan()
	if len(t.queue) > n {
		return true
	}
	if n == 1 && t.watcher != nil && !t.isCurrent(t.queue[0].ino) {
		// The file was rotated: the watcher has (or is about to have)
		// its successor.
		for i := 0; i < 100 && len(t.queue) == 1; i++ {
			time.Sleep(2 * time.Millisecond)
			t.scan()
		}
		return len(t.queue) > 1
	}
	return false
}

// isCurrent reports whether path is the file with inode ino (or is
// missing for a moment during a rotation).
func (t *tailer) isCurrent(ino uint64) bool {
	st, err := os.Stat(t.path)
	if err != nil {
		return true
	}
	s, ok := st.Sys().(*syscall.Stat_t)
	return !ok || s.Ino == ino
}

// maxQueued bounds how many rotated-away files a healthy but slow shipper
// keeps open (and so keeps on disk).
const maxQueued = 16

// dropRotated closes files that were deleted by rotation before they were
// read, counting their entries as dropped. With failing set (the
// destination is down, so they would only pin disk space) every deleted
// file goes, the one being read included; otherwise deleted files are
// still read, unless more than maxQueued files are held.
func (t *tailer) dropRotated(failing bool) {
	t.scan()
	if !failing && len(t.queue) <= maxQueued {
		return
	}
	current := failing
	var n uint64
	var firstIno uint64
	if len(t.queue) > 0 {
		firstIno = t.queue[0].ino
	}
	kept := t.queue[:0]
	for i, h := range t.queue {
		_, nlink := fileIno(h.f)
		if nlink > 0 || (i == 0 && !current) {
			kept = append(kept, h)
			continue
		}
		if i == 0 {
			n += countLines(io.MultiReader(bytes.NewReader(t.raw), t.br))
			t.raw = t.raw[:0]
			if len(t.join) > 0 {
				n++
				t.join = t.join[:0]
			}
		} else {
			h.f.Seek(0, io.SeekStart)
			n += countLines(h.f)
		}
		t.release(h)
	}
	dropped0 := firstIno != 0 && (len(kept) == 0 || kept[0].ino != firstIno)
	t.queue = kept
	if dropped0 {
		t.resetReader(0)
	}
	t.dropped += n
}

// takeDropped returns the entries counted as dropped since the last call.
func (t *tailer) takeDropped() uint64 {
	n := t.dropped - t.droppedTaken
	t.droppedTaken = t.dropped
	return n
}

// backlog is how many bytes of the chain are not read yet.
func (t *tailer) backlog() int64 {
	var n int64
	for i, h := range t.queue {
		st, err := h.f.Stat()
		if err != nil {
			continue
		}
		if i == 0 {
			n += st.Size() - t.off
		} else {
			n += st.Size()
		}
	}
	return n
}

func countLines(r io.Reader) uint64 {
	var n uint64
	buf := make([]byte, 64<<10)
	for {
		k, err := r.Read(buf)
		n += uint64(bytes.Count(buf[:k], []byte{'\n'}))
		if err != nil {
			return n
		}
	}
}
