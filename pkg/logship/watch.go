package logship

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// createWatch opens the files of a log chain as soon as the logger creates
// them (inotify IN_CREATE on the directory triggers a listing of the
// chain), so a file rotated away between two polls is still held, then read
// or counted, never lost unnoticed. It is the tailer's only source of files
// once started, and delivers them oldest first: a listing runs oldest to
// newest and rotation only ever adds a newer file.
type createWatch struct {
	path  string
	f     *os.File
	files chan heldFile
	done  chan struct{}
	wg    sync.WaitGroup
	seen  *inodeSet
}

// inodeSet is the set of inodes of log files held open. An inode is only
// forgotten while its file is still open and already deleted, so a new file
// reusing the number is never mistaken for a known one.
type inodeSet struct {
	// mu guards m.
	mu sync.Mutex
	m  map[uint64]bool
}

func newInodeSet() *inodeSet { return &inodeSet{m: map[uint64]bool{}} }

// add reports whether ino was new, recording it.
func (s *inodeSet) add(ino uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[ino] {
		return false
	}
	s.m[ino] = true
	return true
}

func (s *inodeSet) has(ino uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[ino]
}

func (s *inodeSet) forget(ino uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, ino)
}

// resyncInterval is how often the watch lists the chain without an event.
const resyncInterval = 250 * time.Millisecond

// startCreateWatch returns nil when inotify is unavailable; the tailer
// then relies on polling alone.
func startCreateWatch(path string, seen *inodeSet) *createWatch {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_CREATE); err != nil {
		unix.Close(fd)
		return nil
	}
	w := &createWatch{path: path, f: os.NewFile(uintptr(fd), "inotify"), files: make(chan heldFile, 1024),
		done: make(chan struct{}), seen: seen}
	// The first listing happens now, so the caller sees the chain as it
	// is when Start returns.
	w.sync()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.run()
	}()
	return w
}

// run reads events until the inotify file is closed.
func (w *createWatch) run() {
	base := []byte(filepath.Base(w.path))
	buf := make([]byte, 64<<10)
	for {
		// A listing taken mid-rotation can miss a file; a periodic
		// listing picks it up even when no further file is created.
		w.f.SetReadDeadline(time.Now().Add(resyncInterval))
		n, err := w.f.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if !w.sync() {
				return
			}
			continue
		}
		if err != nil {
			return
		}
		hit := false
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 || bytes.HasPrefix(name, base) {
				hit = true
			}
		}
		if hit && !w.sync() {
			return
		}
	}
}

// sync opens chain files not delivered yet, oldest first. It reports false
// when the watch is stopping.
func (w *createWatch) sync() bool {
	files := openNew(stableChain(w.path), w.seen)
	for i, h := range files {
		select {
		case w.files <- h:
		case <-w.done:
			for _, o := range files[i:] {
				o.f.Close()
			}
			return false
		}
	}
	return true
}

// pending returns the files opened since the last call.
func (w *createWatch) pending() []heldFile {
	var out []heldFile
	for {
		select {
		case h := <-w.files:
			out = append(out, h)
		default:
			return out
		}
	}
}

// stop ends the goroutine and closes files nobody took.
func (w *createWatch) stop() {
	close(w.done)
	w.f.Close()
	w.wg.Wait()
	for _, h := range w.pending() {
		h.f.Close()
	}
}
