package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// addressLeases hands out the built-in datapath's sandbox addresses. A
// lease is a file named by the address in the lease directory, created
// with O_EXCL and holding "<sandbox id>\r\n<ifname>": the format of CNI's
// host-local plugin, in the same directory. So the lease exists on disk
// before the address is configured (an agent killed at any point leaves a
// lease that names its sandbox, and Cleanup's sweep releases it), two
// agents or two datapaths sharing the directory never hand out one
// address twice (O_EXCL is the arbiter, as for host-local), and the
// existing sweep and leak checks read both datapaths' leases alike. The
// directory lives under /run: a reboot discards the addresses with the
// leases.
type addressLeases struct {
	dir     string
	gateway netip.Addr
	// first and last bound the addresses handed out (the subnet without
	// its network, gateway and broadcast addresses).
	first, last netip.Addr
	// bits is the subnet's prefix length.
	bits int

	// mu guards next, where the search for a free address starts (round
	// robin, like host-local, so a released address is not reused at once).
	mu   sync.Mutex
	next netip.Addr
}

// newAddressLeases returns the leases of subnet (IPv4) kept in dir.
func newAddressLeases(dir, subnet string) (*addressLeases, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil || !p.Addr().Is4() || p.Bits() > 29 {
		return nil, fmt.Errorf("bridge subnet %q: want an IPv4 prefix of at most /29", subnet)
	}
	p = p.Masked()
	base := binary.BigEndian.Uint32(p.Addr().AsSlice())
	size := uint32(1) << (32 - p.Bits())
	at := func(i uint32) netip.Addr {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], base+i)
		return netip.AddrFrom4(b)
	}
	// The gateway is the subnet's first address, as the bridge plugin
	// chooses it, so both datapaths agree on the bridge's address.
	l := &addressLeases{dir: dir, gateway: at(1), first: at(2), last: at(size - 2), bits: p.Bits()}
	l.next = l.first
	return l, nil
}

// acquire leases a free address to id and returns it.
func (l *addressLeases) acquire(id, ifname string) (netip.Addr, error) {
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return netip.Addr{}, fmt.Errorf("lease address: %w", err)
	}
	l.mu.Lock()
	start := l.next
	l.mu.Unlock()
	ip := start
	for {
		f, err := os.OpenFile(filepath.Join(l.dir, ip.String()), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, werr := f.WriteString(id + "\r\n" + ifname)
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				_ = os.Remove(f.Name())
				return netip.Addr{}, fmt.Errorf("lease address %s: %w", ip, werr)
			}
			l.mu.Lock()
			l.next = l.after(ip)
			l.mu.Unlock()
			return ip, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return netip.Addr{}, fmt.Errorf("lease address %s: %w", ip, err)
		}
		ip = l.after(ip)
		if ip == start {
			return netip.Addr{}, fmt.Errorf("lease address: every address of %s-%s is leased", l.first, l.last)
		}
	}
}

func (l *addressLeases) after(ip netip.Addr) netip.Addr {
	if ip == l.last {
		return l.first
	}
	return ip.Next()
}

// release removes ip's lease if id holds it; a lease of someone else (the
// address was released and leased again) is left alone.
func (l *addressLeases) release(ip, id string) error {
	path := filepath.Join(l.dir, ip)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release address %s: %w", ip, err)
	}
	holder, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if strings.TrimSpace(holder) != id {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("release address %s: %w", ip, err)
	}
	return nil
}
