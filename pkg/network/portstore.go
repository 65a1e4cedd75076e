package network

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/berth-dev/berth/pkg/container"
)

// MemoryPortStore keeps allocations in memory; the zero value is ready.
type MemoryPortStore struct {
	mu sync.Mutex
	// allocs is guarded by mu.
	allocs []container.PortAllocation
}

var _ PortStore = (*MemoryPortStore)(nil)

// LoadPorts returns a copy of the stored allocations.
func (s *MemoryPortStore) LoadPorts() ([]container.PortAllocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.allocs), nil
}

// SavePorts replaces the stored allocations.
func (s *MemoryPortStore) SavePorts(a []container.PortAllocation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allocs = slices.Clone(a)
	return nil
}

// FilePortStore keeps allocations as a JSON array in one file, replaced
// atomically (write to a temporary file, then rename) on every save.
type FilePortStore struct {
	Path string
}

var _ PortStore = (*FilePortStore)(nil)

// LoadPorts reads the file; a missing file holds no allocations.
func (s *FilePortStore) LoadPorts() ([]container.PortAllocation, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read port store: %w", err)
	}
	var out []container.PortAllocation
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode port store %s: %w", s.Path, err)
	}
	return out, nil
}

// SavePorts replaces the file's content.
func (s *FilePortStore) SavePorts(a []container.PortAllocation) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode port allocations: %w", err)
	}
	return writeFileAtomic(s.Path, b, true)
}

// writeFileAtomic replaces path with data so a crash of this process leaves
// either the old or the new content, never a torn file. sync also flushes
// it to disk, which only matters for files that must survive a reboot.
func writeFileAtomic(path string, data []byte, sync bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create dir of %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil && sync {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}

// hostListeners reads the kernel's socket tables of the caller's network
// namespace. For TCP it returns ports in LISTEN state; for UDP every bound
// port, since a UDP socket has no listening state.
func hostListeners(p Protocol) (map[uint16]bool, error) {
	files := []string{"/proc/net/tcp", "/proc/net/tcp6"}
	if p == UDP {
		files = []string{"/proc/net/udp", "/proc/net/udp6"}
	}
	out := map[uint16]bool{}
	for _, f := range files {
		if err := readSocketTable(f, p == TCP, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

const tcpListenState = "0A"

func readSocketTable(path string, listenOnly bool, out map[uint16]bool) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // IPv6 disabled
	}
	if err != nil {
		return fmt.Errorf("read socket table: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		if listenOnly && fields[3] != tcpListenState {
			continue
		}
		i := strings.LastIndexByte(fields[1], ':')
		if i < 0 {
			continue
		}
		port, err := strconv.ParseUint(fields[1][i+1:], 16, 16)
		if err != nil {
			continue
		}
		out[uint16(port)] = true
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

const defaultReservedPortsFile = "/proc/sys/net/ipv4/ip_local_reserved_ports"

// parsePortList parses the kernel's "a-b,c" list into ranges.
func parsePortList(s string) ([]PortRange, error) {
	var out []PortRange
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("parse port list %q: %w", s, err)
		}
		last := first
		if isRange {
			if last, err = strconv.ParseUint(hi, 10, 16); err != nil {
				return nil, fmt.Errorf("parse port list %q: %w", s, err)
			}
		}
		out = append(out, PortRange{uint16(first), uint16(last)})
	}
	return out, nil
}

func formatPortList(rs []PortRange) string {
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		if r.First == r.Last {
			parts = append(parts, strconv.Itoa(int(r.First)))
		} else {
			parts = append(parts, r.String())
		}
	}
	return strings.Join(parts, ",")
}

// editReservedPorts rewrites the kernel list with rng added or removed. The
// kernel keeps a bitmap, so the list is rebuilt from a set of ports.
func editReservedPorts(file string, rng PortRange, add bool) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	rs, err := parsePortList(string(b))
	if err != nil {
		return err
	}
	var set [65536]bool
	for _, r := range rs {
		for p := int(r.First); p <= int(r.Last); p++ {
			set[p] = true
		}
	}
	for p := int(rng.First); p <= int(rng.Last); p++ {
		set[p] = add
	}
	var out []PortRange
	for p := 1; p < len(set); p++ {
		if !set[p] {
			continue
		}
		if n := len(out); n > 0 && int(out[n-1].Last) == p-1 {
			out[n-1].Last = uint16(p)
		} else {
			out = append(out, PortRange{uint16(p), uint16(p)})
		}
	}
	list := formatPortList(out)
	if list == "" {
		list = "\n" // the kernel accepts an empty line as "none reserved"
	}
	if err := os.WriteFile(file, []byte(list), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

func addReservedPorts(file string, rng PortRange) error {
	if err := editReservedPorts(file, rng, true); err != nil {
		return fmt.Errorf("reserve %s in the kernel: %w", rng, err)
	}
	return nil
}

func removeReservedPorts(file string, rng PortRange) error {
	if err := editReservedPorts(file, rng, false); err != nil {
		return fmt.Errorf("unreserve %s in the kernel: %w", rng, err)
	}
	return nil
}
