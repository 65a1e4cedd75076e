package network

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/berth-dev/berth/pkg/container"
)

// Protocol is a transport protocol of a port mapping.
type Protocol string

// The protocols a port mapping can use.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// ErrPortInUse is wrapped by every *PortConflictError.
var ErrPortInUse = errors.New("host port in use")

// ErrNoFreePort means the dynamic range has no free port (or no contiguous
// run of free ports long enough) for a request.
var ErrNoFreePort = errors.New("no free host port in the dynamic range")

// PortConflictError reports a static host port that is already taken.
type PortConflictError struct {
	Port     uint16
	Protocol Protocol
	// Holder is the owner holding the port, or "" when the port is taken
	// by a process listening on the host.
	Holder string
}

// Error names the port and who holds it.
func (e *PortConflictError) Error() string {
	if e.Holder == "" {
		return fmt.Sprintf("host port %d/%s is in use by a process listening on the host", e.Port, e.Protocol)
	}
	return fmt.Sprintf("host port %d/%s is already allocated to %s", e.Port, e.Protocol, e.Holder)
}

// Unwrap lets callers test for ErrPortInUse with errors.Is.
func (e *PortConflictError) Unwrap() error { return ErrPortInUse }

// PortStore persists the allocator's state (container.PortAllocation
// records) so that no port is handed out twice across a restart. SavePorts
// replaces the whole stored set. The agent's state database (*state.DB) is
// one as it is; MemoryPortStore and FilePortStore serve tests and small tools.
type PortStore interface {
	LoadPorts() ([]container.PortAllocation, error)
	SavePorts([]container.PortAllocation) error
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	First uint16 `json:"first"`
	Last  uint16 `json:"last"`
}

// DefaultDynamicRange is the dynamic host port range when none is given.
var DefaultDynamicRange = PortRange{First: 49153, Last: 65535}

// String renders the range as "first-last".
func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// PortRequest asks for one port mapping, or a range of them.
type PortRequest struct {
	// ContainerPort is the (first) port inside the sandbox.
	ContainerPort uint16 `json:"containerPort"`
	// ContainerPortEnd, when above ContainerPort, makes the request a range
	// ContainerPort..ContainerPortEnd; it then gets a contiguous dynamic host range.
	ContainerPortEnd uint16 `json:"containerPortEnd,omitempty"`
	// HostPort is the static host port; 0 asks for a dynamic one.
	HostPort uint16 `json:"hostPort,omitempty"`
	// Protocol defaults to TCP.
	Protocol Protocol `json:"protocol,omitempty"`
	// BindIP defaults to 0.0.0.0.
	BindIP string `json:"bindIP,omitempty"`
}

func (r PortRequest) isRange() bool { return r.ContainerPortEnd > r.ContainerPort }

func (r PortRequest) count() int {
	if r.isRange() {
		return int(r.ContainerPortEnd-r.ContainerPort) + 1
	}
	return 1
}

// Binding is the result of a PortRequest: a single mapping, or for a range
// request the two ranges as "first-last" with the single ports left zero.
type Binding struct {
	BindIP             string   `json:"bindIP"`
	Protocol           Protocol `json:"protocol"`
	ContainerPort      uint16   `json:"containerPort,omitempty"`
	HostPort           uint16   `json:"hostPort,omitempty"`
	ContainerPortRange string   `json:"containerPortRange,omitempty"`
	HostPortRange      string   `json:"hostPortRange,omitempty"`
}

// AllocatorOptions configures a PortAllocator.
type AllocatorOptions struct {
	// Range is the dynamic range; zero means DefaultDynamicRange.
	Range PortRange
	// ReservedTCP and ReservedUDP are never handed out dynamically; static
	// requests for them are allowed (they are reserved for the host's use).
	ReservedTCP []uint16
	ReservedUDP []uint16
	// Store persists allocations; nil means an in-memory store.
	Store PortStore
	// Listeners reports the ports with a live listener on the host for a
	// protocol; nil reads /proc/net/{tcp,tcp6,udp,udp6} of the caller's netns.
	Listeners func(Protocol) (map[uint16]bool, error)
	// ReserveInKernel adds Range to net.ipv4.ip_local_reserved_ports so the
	// kernel does not pick those ports for outbound connections; Close
	// removes it again.
	ReserveInKernel bool
	// ReservedPortsFile is the sysctl file used by ReserveInKernel; empty means
	// /proc/sys/net/ipv4/ip_local_reserved_ports.
	ReservedPortsFile string
}

type portKey struct {
	proto Protocol
	port  uint16
}

// PortAllocator hands out host ports. It is safe for concurrent use; every
// change is persisted through its PortStore before it is returned.
type PortAllocator struct {
	rng        PortRange
	reserved   map[portKey]bool
	store      PortStore
	listeners  func(Protocol) (map[uint16]bool, error)
	kernelFile string // set when the range was added to the kernel's reserved ports

	mu sync.Mutex
	// Fields below are guarded by mu.
	held map[portKey]string  // port -> owner
	next map[Protocol]uint16 // where the next dynamic search starts
}

// NewPortAllocator loads the persisted allocations and returns an allocator.
func NewPortAllocator(o AllocatorOptions) (*PortAllocator, error) {
	if o.Range == (PortRange{}) {
		o.Range = DefaultDynamicRange
	}
	if o.Range.First == 0 || o.Range.First > o.Range.Last {
		return nil, fmt.Errorf("dynamic host port range %s: first must be 1..last", o.Range)
	}
	if o.Store == nil {
		o.Store = &MemoryPortStore{}
	}
	if o.Listeners == nil {
		o.Listeners = hostListeners
	}
	a := &PortAllocator{
		rng:       o.Range,
		reserved:  map[portKey]bool{},
		store:     o.Store,
		listeners: o.Listeners,
		held:      map[portKey]string{},
		next:      map[Protocol]uint16{TCP: o.Range.First, UDP: o.Range.First},
	}
	for _, p := range o.ReservedTCP {
		a.reserved[portKey{TCP, p}] = true
	}
	for _, p := range o.ReservedUDP {
		a.reserved[portKey{UDP, p}] = true
	}
	allocs, err := o.Store.LoadPorts()
	if err != nil {
		return nil, fmt.Errorf("load port allocations: %w", err)
	}
	for _, al := range allocs {
		p := normProto(Protocol(al.Protocol))
		a.held[portKey{p, al.HostPort}] = al.Owner
		// Resume the round-robin after the highest port still held.
		if al.HostPort >= a.next[p] && al.HostPort < a.rng.Last {
			a.next[p] = al.HostPort + 1
		}
	}
	if o.ReserveInKernel {
		file := o.ReservedPortsFile
		if file == "" {
			file = defaultReservedPortsFile
		}
		if err := addReservedPorts(file, o.Range); err != nil {
			return nil, err
		}
		a.kernelFile = file
	}
	return a, nil
}

// Close removes the dynamic range from the kernel's reserved ports if
// ReserveInKernel added it. Allocations stay persisted.
func (a *PortAllocator) Close() error {
	if a.kernelFile == "" {
		return nil
	}
	err := removeReservedPorts(a.kernelFile, a.rng)
	a.kernelFile = ""
	return err
}

// Range returns the dynamic range.
func (a *PortAllocator) Range() PortRange { return a.rng }

func normProto(p Protocol) Protocol {
	if p == "" {
		return TCP
	}
	return p
}

// Allocate reserves host ports for every request on behalf of owner, all or
// nothing, and returns one Binding per request in order. A static HostPort
// already held (by any owner) or with a live listener on the host fails with
// a *PortConflictError naming the port and its holder.
func (a *PortAllocator) Allocate(owner string, reqs []PortRequest) ([]Binding, error) {
	if owner == "" {
		return nil, errors.New("allocate host ports: empty owner")
	}
	// Listener sets are read once per call, outside the lock: reading /proc
	// is slow compared with the bookkeeping.
	listening := map[Protocol]map[uint16]bool{}
	for _, r := range reqs {
		p := normProto(r.Protocol)
		if p != TCP && p != UDP {
			return nil, fmt.Errorf("allocate host ports: unknown protocol %q", r.Protocol)
		}
		if r.ContainerPort == 0 {
			return nil, errors.New("allocate host ports: container port 0")
		}
		if _, ok := listening[p]; ok {
			continue
		}
		set, err := a.listeners(p)
		if err != nil {
			return nil, fmt.Errorf("list %s listeners: %w", p, err)
		}
		listening[p] = set
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	var taken []portKey
	rollback := func() {
		for _, k := range taken {
			delete(a.held, k)
		}
	}
	out := make([]Binding, 0, len(reqs))
	for _, r := range reqs {
		proto := normProto(r.Protocol)
		bindIP := r.BindIP
		if bindIP == "" {
			bindIP = "0.0.0.0"
		}
		b := Binding{BindIP: bindIP, Protocol: proto}
		switch {
		case r.isRange():
			first, err := a.findFreeLocked(proto, r.count(), listening[proto])
			if err != nil {
				rollback()
				return nil, fmt.Errorf("allocate %d contiguous %s host ports for %s: %w", r.count(), proto, owner, err)
			}
			for i := 0; i < r.count(); i++ {
				k := portKey{proto, first + uint16(i)}
				a.held[k] = owner
				taken = append(taken, k)
			}
			b.ContainerPortRange = fmt.Sprintf("%d-%d", r.ContainerPort, r.ContainerPortEnd)
			b.HostPortRange = fmt.Sprintf("%d-%d", first, first+uint16(r.count()-1))
		case r.HostPort != 0:
			k := portKey{proto, r.HostPort}
			if holder, ok := a.held[k]; ok {
				rollback()
				return nil, &PortConflictError{Port: r.HostPort, Protocol: proto, Holder: holder}
			}
			if listening[proto][r.HostPort] {
				rollback()
				return nil, &PortConflictError{Port: r.HostPort, Protocol: proto}
			}
			a.held[k] = owner
			taken = append(taken, k)
			b.ContainerPort, b.HostPort = r.ContainerPort, r.HostPort
		default:
			p, err := a.findFreeLocked(proto, 1, listening[proto])
			if err != nil {
				rollback()
				return nil, fmt.Errorf("allocate %s host port for %s: %w", proto, owner, err)
			}
			k := portKey{proto, p}
			a.held[k] = owner
			taken = append(taken, k)
			b.ContainerPort, b.HostPort = r.ContainerPort, p
		}
		out = append(out, b)
	}
	if err := a.saveLocked(); err != nil {
		rollback()
		return nil, err
	}
	return out, nil
}

// findFreeLocked finds n contiguous free ports in the dynamic range, starting
// the search at the protocol's round-robin cursor, and advances the cursor
// past them.
func (a *PortAllocator) findFreeLocked(proto Protocol, n int, listening map[uint16]bool) (uint16, error) {
	size := int(a.rng.Last) - int(a.rng.First) + 1
	if n > size {
		return 0, ErrNoFreePort
	}
	free := func(p int) bool {
		k := portKey{proto, uint16(p)}
		_, held := a.held[k]
		return !held && !a.reserved[k] && !listening[uint16(p)]
	}
	start := int(a.next[proto]) - int(a.rng.First)
	for i := 0; i < size; i++ {
		first := int(a.rng.First) + (start+i)%size
		if first+n-1 > int(a.rng.Last) {
			continue // a run may not wrap around the end of the range
		}
		ok := true
		for p := first; p < first+n; p++ {
			if !free(p) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		nextPort := first + n
		if nextPort > int(a.rng.Last) {
			nextPort = int(a.rng.First)
		}
		a.next[proto] = uint16(nextPort)
		return uint16(first), nil
	}
	return 0, ErrNoFreePort
}

// Release frees every port held by owner. Releasing an unknown owner is a no-op.
func (a *PortAllocator) Release(owner string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	removed := map[portKey]string{}
	for k, o := range a.held {
		if o == owner {
			removed[k] = o
			delete(a.held, k)
		}
	}
	if len(removed) == 0 {
		return nil
	}
	if err := a.saveLocked(); err != nil {
		for k, o := range removed {
			a.held[k] = o
		}
		return fmt.Errorf("release host ports of %s: %w", owner, err)
	}
	return nil
}

// Allocations returns every held port, sorted by protocol and port.
func (a *PortAllocator) Allocations() []container.PortAllocation {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.allocationsLocked()
}

// Owners returns the distinct owners holding ports, sorted.
func (a *PortAllocator) Owners() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var owners []string
	for _, o := range a.held {
		owners = append(owners, o)
	}
	slices.Sort(owners)
	return slices.Compact(owners)
}

func (a *PortAllocator) allocationsLocked() []container.PortAllocation {
	out := make([]container.PortAllocation, 0, len(a.held))
	for k, o := range a.held {
		out = append(out, container.PortAllocation{Owner: o, Protocol: string(k.proto), HostPort: k.port})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Protocol != out[j].Protocol {
			return out[i].Protocol < out[j].Protocol
		}
		return out[i].HostPort < out[j].HostPort
	})
	return out
}

func (a *PortAllocator) saveLocked() error {
	if err := a.store.SavePorts(a.allocationsLocked()); err != nil {
		return fmt.Errorf("save port allocations: %w", err)
	}
	return nil
}
