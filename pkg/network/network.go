package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	gocni "github.com/containerd/go-cni"
)

// Mode is a sandbox's network mode.
type Mode string

// The network modes.
const (
	// ModeBridge gives the sandbox its own netns on the agent's bridge, with
	// host port mappings through portmap. It is the default.
	ModeBridge Mode = "bridge"
	// ModeHost shares the host's network: no netns; each mapping's host port
	// must equal its container port.
	ModeHost Mode = "host"
	// ModeNone gives the sandbox its own netns with only a loopback interface.
	ModeNone Mode = "none"
	// ModeAWSVPC gives the sandbox its own netns and bridge IP, reported in
	// the Sandbox, and no host port mappings.
	ModeAWSVPC Mode = "awsvpc"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultNetworkName = "berth"
	DefaultBridge      = "berth0"
	DefaultSubnet      = "10.203.0.0/16"
	DefaultConfDir     = "/run/berth/cni"
	DefaultIPAMDir     = "/run/berth/ipam"
	DefaultNetnsDir    = "/run/netns"
	DefaultStateDir    = "/run/berth/network"
	DefaultNamePrefix  = "berth-"
	// IfName is the sandbox's interface on the bridge.
	IfName = "eth0"
)

// DefaultPluginDirs are searched for CNI plugins when Options.PluginDirs is empty.
var DefaultPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// Options configures a Sandboxer. Zero fields take the defaults above.
type Options struct {
	// PluginDirs are searched in order for CNI plugin binaries.
	PluginDirs []string
	// ConfDir is where the agent writes its conflist (<NetworkName>.conflist).
	ConfDir string
	// NetworkName names the CNI network; it appears in iptables comments
	// and names the IPAM state directory.
	NetworkName string
	// Bridge is the Linux bridge name (at most 15 bytes).
	Bridge string
	// Subnet is the IPv4 subnet host-local hands addresses from.
	Subnet string
	// IPAMDir is host-local's dataDir; leases live in IPAMDir/NetworkName.
	// It belongs under /run so that a reboot cannot leave stale leases.
	IPAMDir string
	// NetnsDir holds the bind-mounted namespaces.
	NetnsDir string
	// StateDir holds one JSON record per sandbox, written before anything
	// is created and removed after teardown, so Cleanup finds sandboxes
	// whose owner crashed before persisting them.
	StateDir string
	// NamePrefix starts every sandbox ID and netns name.
	NamePrefix string
	// Owner identifies the agent that owns the sandboxes (see OwnerForDir):
	// with it, sandbox IDs are <NamePrefix><Owner>-<16 hex digits>, so that
	// two agents on one host with the same NamePrefix never take each
	// other's sandboxes for their own. Without it IDs are
	// <NamePrefix><16 hex digits> and the prefix alone must be unique to
	// the Sandboxer (tests). Cleanup touches only IDs of exactly this form.
	// At most 16 characters of [0-9a-z].
	Owner string
	// Logger receives what the Sandboxer could not remove and retries
	// (default slog.Default()).
	Logger *slog.Logger
	// Ports allocates host ports; nil means an in-memory allocator over the
	// default range (fine for tests, wrong for an agent that restarts).
	Ports *PortAllocator
	// Datapath selects how new sandboxes are wired (default
	// DatapathBuiltin). Sandboxes keep the datapath they were set up with:
	// Teardown and Cleanup remove those of either.
	Datapath Datapath
}

// InRunDir returns o with ConfDir, IPAMDir and StateDir under dir (cni,
// ipam, sandboxes): one directory per agent, as the agent's
// WithNetworkRunDir and the tests that sweep an agent's network use it.
func (o Options) InRunDir(dir string) Options {
	o.ConfDir, o.IPAMDir, o.StateDir = filepath.Join(dir, "cni"), filepath.Join(dir, "ipam"), filepath.Join(dir, "sandboxes")
	return o
}

func (o *Options) setDefaults() {
	if len(o.PluginDirs) == 0 {
		o.PluginDirs = DefaultPluginDirs
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.ConfDir, DefaultConfDir)
	def(&o.NetworkName, DefaultNetworkName)
	def(&o.Bridge, DefaultBridge)
	def(&o.Subnet, DefaultSubnet)
	def(&o.IPAMDir, DefaultIPAMDir)
	def(&o.NetnsDir, DefaultNetnsDir)
	def(&o.StateDir, DefaultStateDir)
	def(&o.NamePrefix, DefaultNamePrefix)
	if o.Datapath == "" {
		o.Datapath = DatapathBuiltin
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// idPrefix is what every sandbox ID of a Sandboxer with o starts with.
func (o Options) idPrefix() string {
	if o.Owner == "" {
		return o.NamePrefix
	}
	return o.NamePrefix + o.Owner + "-"
}

// OwnerForDir returns the owner tag (Options.Owner) of an agent whose data
// lives in dir: 8 hex digits of the SHA-256 of dir's absolute path with
// symlinks resolved. An agent restarted on the same directory keeps its
// tag; two agents that run at the same time on one host never share a
// data directory (its database is locked), so they never share a tag.
func OwnerForDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("network owner of %s: %w", dir, err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("network owner of %s: %w", dir, err)
	}
	sum := sha256.Sum256([]byte(resolved))
	return hex.EncodeToString(sum[:4]), nil
}

// PortMapping is one entry handed to the portmap plugin. Teardown must pass
// exactly the list Setup passed, or portmap leaves its rules behind.
type PortMapping struct {
	HostPort      uint16   `json:"hostPort"`
	ContainerPort uint16   `json:"containerPort"`
	Protocol      Protocol `json:"protocol"`
	HostIP        string   `json:"hostIP,omitempty"`
}

// Sandbox records a set-up sandbox: everything Teardown needs, and what the
// caller reports. The caller persists it (it marshals to JSON) and passes
// it back to Teardown or Cleanup, possibly after a restart.
type Sandbox struct {
	// ID is the CNI container ID, the netns name and the port allocation owner.
	ID string `json:"id"`
	// Owner is the caller's key for the sandbox (informational).
	Owner string `json:"owner,omitempty"`
	Mode  Mode   `json:"mode"`
	// NetnsPath is empty in host mode.
	NetnsPath string `json:"netnsPath,omitempty"`
	// Network is the CNI network name used at setup.
	Network string `json:"network,omitempty"`
	IfName  string `json:"ifName,omitempty"`
	// Datapath is how the sandbox was wired; empty in records of versions
	// that knew only CNI.
	Datapath Datapath `json:"datapath,omitempty"`
	// IP and Gateway are the sandbox's bridge addresses (bridge and awsvpc).
	IP           string        `json:"ip,omitempty"`
	Gateway      string        `json:"gateway,omitempty"`
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	Bindings     []Binding     `json:"bindings,omitempty"`
}

// SetupRequest describes a sandbox to create.
type SetupRequest struct {
	// Owner is the caller's key (e.g. a task id); recorded, not interpreted.
	Owner string
	// Mode defaults to ModeBridge.
	Mode  Mode
	Ports []PortRequest
}

// Sandboxer creates and removes the sandboxes of one agent on its host
// (the network namespaces, their wiring, port mappings and records). It is
// safe for concurrent use. What it fails to remove it keeps and retries in
// Run.
type Sandboxer struct {
	opts     Options
	prefix   string // Options.idPrefix
	confPath string
	bridge   gocni.CNI // the agent's conflist plus loopback
	loopback gocni.CNI // loopback only, for ModeNone
	// cniMu serializes calls into go-cni when serializeCNI is set.
	cniMu sync.Mutex
	// retry holds the removals that failed; Run retries them.
	retry *retrier
	// sandboxes serializes the removal of one sandbox between its caller
	// and the retries.
	sandboxes keyedMutex
	// setupsMu guards setups, the IDs whose Setup is in progress (a sweep
	// after start-up leaves their ports alone before their record exists).
	setupsMu sync.Mutex
	setups   map[string]bool

	// addrs and nft are the built-in datapath's address leases and
	// nftables table (see builtin.go).
	addrs *addressLeases
	nft   *nftRules
	// hostMu guards hostReady: the bridge, forward rules and table the
	// built-in datapath's sandboxes share are in place.
	hostMu    sync.Mutex
	hostReady bool
	// stepHook, when set (tests), is called after each step of a built-in
	// setup; an error fails the setup there.
	stepHook func(step string) error
}

// lockCNI serializes go-cni calls in race builds (see cnilock_race.go) and
// returns the matching unlock.
func (m *Sandboxer) lockCNI() func() {
	if !serializeCNI {
		return func() {}
	}
	m.cniMu.Lock()
	return m.cniMu.Unlock
}

// New writes the agent's conflist into ConfDir and loads it.
func New(o Options) (*Sandboxer, error) {
	o.setDefaults()
	if len(o.Bridge) > 15 {
		return nil, fmt.Errorf("bridge name %q: longer than 15 bytes", o.Bridge)
	}
	if _, _, err := net.ParseCIDR(o.Subnet); err != nil {
		return nil, fmt.Errorf("bridge subnet %q: %w", o.Subnet, err)
	}
	if len(o.Owner) > 16 || strings.Trim(o.Owner, "0123456789abcdefghijklmnopqrstuvwxyz") != "" {
		return nil, fmt.Errorf("network owner %q: want at most 16 characters of [0-9a-z]", o.Owner)
	}
	if o.Datapath != DatapathBuiltin && o.Datapath != DatapathCNI {
		return nil, fmt.Errorf("network datapath %q: want %q or %q", o.Datapath, DatapathBuiltin, DatapathCNI)
	}
	addrs, err := newAddressLeases(filepath.Join(o.IPAMDir, o.NetworkName), o.Subnet)
	if err != nil {
		return nil, err
	}
	nft, err := newNftRules(strings.TrimSuffix(o.idPrefix(), "-"), o.Bridge, o.Subnet)
	if err != nil {
		return nil, err
	}
	if o.Ports == nil {
		p, err := NewPortAllocator(AllocatorOptions{})
		if err != nil {
			return nil, err
		}
		o.Ports = p
	}
	conf, err := Conflist(o)
	if err != nil {
		return nil, err
	}
	// One file per owner: agents sharing ConfDir do not rewrite each
	// other's configuration.
	name := o.NetworkName
	if o.Owner != "" {
		name += "-" + o.Owner
	}
	confPath := filepath.Join(o.ConfDir, name+".conflist")
	if err := writeFileAtomic(confPath, conf, false); err != nil {
		return nil, fmt.Errorf("write CNI config: %w", err)
	}
	// The conflist goes first so it gets interface index 0 (eth0);
	// loopback is named "lo" whatever its position.
	br, err := gocni.New(gocni.WithPluginDir(o.PluginDirs), gocni.WithInterfacePrefix("eth"),
		gocni.WithMinNetworkCount(2), gocni.WithConfListFile(confPath), gocni.WithLoNetwork)
	if err != nil {
		return nil, fmt.Errorf("load CNI config %s: %w", confPath, err)
	}
	lo, err := gocni.New(gocni.WithPluginDir(o.PluginDirs), gocni.WithLoNetwork)
	if err != nil {
		return nil, fmt.Errorf("load CNI loopback config: %w", err)
	}
	return &Sandboxer{opts: o, prefix: o.idPrefix(), confPath: confPath, bridge: br, loopback: lo,
		retry: newRetrier(o.Logger), setups: map[string]bool{}, addrs: addrs, nft: nft}, nil
}

// ConfPath returns the path of the conflist the Sandboxer wrote.
func (m *Sandboxer) ConfPath() string { return m.confPath }

// Ports returns the Sandboxer's host port allocator.
func (m *Sandboxer) Ports() *PortAllocator { return m.opts.Ports }

// Conflist returns the CNI network configuration list for o (defaults
// applied to zero fields): bridge with host-local IPAM, portmap and firewall.
func Conflist(o Options) ([]byte, error) {
	o.setDefaults()
	type obj = map[string]any
	conf := obj{
		"cniVersion": "1.0.0",
		"name":       o.NetworkName,
		"plugins": []obj{
			{
				"type":        "bridge",
				"bridge":      o.Bridge,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam": obj{
					"type":    "host-local",
					"ranges":  [][]obj{{{"subnet": o.Subnet}}},
					"routes":  []obj{{"dst": "0.0.0.0/0"}},
					"dataDir": o.IPAMDir,
				},
			},
			{"type": "portmap", "capabilities": obj{"portMappings": true}, "snat": true},
			{"type": "firewall"},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode CNI config: %w", err)
	}
	return b, nil
}

// Setup creates a sandbox. On failure everything it created is removed
// again (CNI DEL runs even when ADD failed halfway) and the error says which
// step failed.
func (m *Sandboxer) Setup(ctx context.Context, req SetupRequest) (*Sandbox, error) {
	mode := req.Mode
	if mode == "" {
		mode = ModeBridge
	}
	id, err := newSandboxID(m.prefix)
	if err != nil {
		return nil, err
	}
	m.setupsMu.Lock()
	m.setups[id] = true
	m.setupsMu.Unlock()
	defer func() {
		m.setupsMu.Lock()
		delete(m.setups, id)
		m.setupsMu.Unlock()
	}()
	sb := &Sandbox{ID: id, Owner: req.Owner, Mode: mode, Datapath: m.opts.Datapath}
	switch mode {
	case ModeHost:
		return m.setupHost(sb, req.Ports)
	case ModeNone:
		if len(req.Ports) > 0 {
			return nil, errors.New("set up sandbox: network mode none takes no port mappings")
		}
	case ModeBridge:
		bindings, err := m.opts.Ports.Allocate(id, req.Ports)
		if err != nil {
			return nil, fmt.Errorf("set up sandbox: %w", err)
		}
		sb.Bindings = bindings
		sb.PortMappings = portMappings(bindings)
	case ModeAWSVPC:
		for _, p := range req.Ports {
			if p.HostPort != 0 && p.HostPort != p.ContainerPort {
				return nil, fmt.Errorf("set up sandbox: awsvpc mode: host port %d must be 0 or equal container port %d", p.HostPort, p.ContainerPort)
			}
		}
	default:
		return nil, fmt.Errorf("set up sandbox: unknown network mode %q", mode)
	}
	sb.NetnsPath = filepath.Join(m.opts.NetnsDir, id)
	sb.Network = m.opts.NetworkName
	sb.IfName = IfName
	if mode == ModeNone {
		sb.Network, sb.IfName = "", ""
	}

	fail := func(step string, err error) (*Sandbox, error) {
		// The undo must run even when ctx was what cut Setup short.
		if terr := m.Teardown(context.WithoutCancel(ctx), *sb); terr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", terr))
		}
		return nil, fmt.Errorf("set up sandbox %s: %s: %w", id, step, err)
	}
	// The record comes first: whatever happens after, Cleanup can find it.
	if err := m.writeRecord(*sb); err != nil {
		return fail("record", err)
	}
	if _, err := CreateNetns(m.opts.NetnsDir, id); err != nil {
		return fail("create netns", err)
	}
	wire := m.wireCNI
	if sb.Datapath == DatapathBuiltin {
		wire = m.wireBuiltin
	}
	if step, err := wire(ctx, sb); err != nil {
		return fail(step, err)
	}
	if mode == ModeNone {
		return sb, nil
	}
	if mode == ModeAWSVPC {
		for _, p := range req.Ports {
			sb.Bindings = append(sb.Bindings, awsvpcBinding(sb.IP, p))
		}
	}
	if err := m.writeRecord(*sb); err != nil {
		return fail("record", err)
	}
	return sb, nil
}

// wireCNI runs the CNI plugins for the sandbox at sb.NetnsPath (loopback
// only in ModeNone) and gives sb the address and gateway of the result. It
// returns the step that failed.
func (m *Sandboxer) wireCNI(ctx context.Context, sb *Sandbox) (string, error) {
	if sb.Mode == ModeNone {
		unlock := m.lockCNI()
		_, err := m.loopback.Setup(ctx, sb.ID, sb.NetnsPath)
		unlock()
		if err != nil {
			return "CNI loopback", err
		}
		return "", nil
	}
	unlock := m.lockCNI()
	res, err := m.bridge.Setup(ctx, sb.ID, sb.NetnsPath, m.nsOpts(*sb)...)
	unlock()
	if err != nil {
		return "CNI add", err
	}
	if ifc := res.Interfaces[IfName]; ifc != nil {
		for _, c := range ifc.IPConfigs {
			if c.IP.To4() != nil {
				sb.IP = c.IP.String()
				if c.Gateway != nil {
					sb.Gateway = c.Gateway.String()
				}
				break
			}
		}
	}
	if sb.IP == "" {
		return "CNI add", errors.New("no IPv4 address in the result")
	}
	return "", nil
}

func awsvpcBinding(ip string, p PortRequest) Binding {
	b := Binding{BindIP: ip, Protocol: normProto(p.Protocol)}
	if p.isRange() {
		b.ContainerPortRange = fmt.Sprintf("%d-%d", p.ContainerPort, p.ContainerPortEnd)
		b.HostPortRange = b.ContainerPortRange
	} else {
		b.ContainerPort, b.HostPort = p.ContainerPort, p.ContainerPort
	}
	return b
}

// setupHost reserves the host ports of a host-mode sandbox so no bridge
// sandbox is handed the same ports.
func (m *Sandboxer) setupHost(sb *Sandbox, reqs []PortRequest) (*Sandbox, error) {
	var static []PortRequest
	for _, r := range reqs {
		if r.HostPort != 0 && r.HostPort != r.ContainerPort {
			return nil, fmt.Errorf("set up sandbox: host mode: host port %d must be 0 or equal container port %d", r.HostPort, r.ContainerPort)
		}
		last := r.ContainerPort
		if r.isRange() {
			last = r.ContainerPortEnd
		}
		for p := int(r.ContainerPort); p <= int(last); p++ {
			static = append(static, PortRequest{ContainerPort: uint16(p), HostPort: uint16(p), Protocol: r.Protocol, BindIP: r.BindIP})
		}
	}
	if _, err := m.opts.Ports.Allocate(sb.ID, static); err != nil {
		return nil, fmt.Errorf("set up sandbox: %w", err)
	}
	for _, r := range reqs {
		b := Binding{BindIP: r.BindIP, Protocol: normProto(r.Protocol)}
		if b.BindIP == "" {
			b.BindIP = "0.0.0.0"
		}
		if r.isRange() {
			b.ContainerPortRange = fmt.Sprintf("%d-%d", r.ContainerPort, r.ContainerPortEnd)
			b.HostPortRange = b.ContainerPortRange
		} else {
			b.ContainerPort, b.HostPort = r.ContainerPort, r.ContainerPort
		}
		sb.Bindings = append(sb.Bindings, b)
	}
	if err := m.writeRecord(*sb); err != nil {
		_ = m.opts.Ports.Release(sb.ID)
		return nil, fmt.Errorf("set up sandbox %s: record: %w", sb.ID, err)
	}
	return sb, nil
}

// portMappings expands bindings (ranges included) into portmap entries.
func portMappings(bs []Binding) []PortMapping {
	var out []PortMapping
	for _, b := range bs {
		hostIP := b.BindIP
		if hostIP == "0.0.0.0" {
			hostIP = ""
		}
		if b.HostPortRange == "" {
			out = append(out, PortMapping{HostPort: b.HostPort, ContainerPort: b.ContainerPort, Protocol: b.Protocol, HostIP: hostIP})
			continue
		}
		var c0, c1, h0, h1 int
		_, _ = fmt.Sscanf(b.ContainerPortRange, "%d-%d", &c0, &c1)
		_, _ = fmt.Sscanf(b.HostPortRange, "%d-%d", &h0, &h1)
		for i := 0; i <= c1-c0; i++ {
			out = append(out, PortMapping{HostPort: uint16(h0 + i), ContainerPort: uint16(c0 + i), Protocol: b.Protocol, HostIP: hostIP})
		}
	}
	return out
}

func (m *Sandboxer) nsOpts(sb Sandbox) []gocni.NamespaceOpts {
	if len(sb.PortMappings) == 0 {
		return nil
	}
	pm := make([]gocni.PortMapping, 0, len(sb.PortMappings))
	for _, p := range sb.PortMappings {
		pm = append(pm, gocni.PortMapping{HostPort: int32(p.HostPort), ContainerPort: int32(p.ContainerPort),
			Protocol: string(p.Protocol), HostIP: p.HostIP})
	}
	return []gocni.NamespaceOpts{gocni.WithCapabilityPortMap(pm)}
}

// Teardown removes a sandbox with its recorded parameters: CNI DEL with the
// same ID, interface and port mappings as Setup, then the host ports, the
// netns and the record. It is idempotent. When a step fails, what is left
// is kept (the record always; the ports until CNI DEL succeeded) and the
// sandbox is handed to Run, which retries it with backoff until it is
// gone; the error is returned as well.
func (m *Sandboxer) Teardown(ctx context.Context, sb Sandbox) error {
	if sb.ID == "" {
		return errors.New("tear down sandbox: empty id")
	}
	if sb.Network != "" && sb.Network != m.opts.NetworkName {
		return fmt.Errorf("tear down sandbox %s: set up on CNI network %q, this manager runs %q", sb.ID, sb.Network, m.opts.NetworkName)
	}
	key := sandboxResource(sb.ID)
	if err := m.removeSandbox(ctx, sb); err != nil {
		m.retry.failed(key, sb.Owner, func(ctx context.Context) error { return m.removeSandbox(ctx, sb) }, err)
		return err
	}
	m.retry.succeeded(key)
	return nil
}

// sandboxResource names a sandbox in what the retries report.
func sandboxResource(id string) string { return "sandbox " + id }

// removeSandbox does Teardown's work, one caller at a time per sandbox.
func (m *Sandboxer) removeSandbox(ctx context.Context, sb Sandbox) error {
	unlock := m.sandboxes.lock(sb.ID)
	defer unlock()
	switch {
	case sb.Datapath == DatapathBuiltin && (sb.Mode == ModeBridge || sb.Mode == ModeAWSVPC):
		if err := m.unwireBuiltin(ctx, sb); err != nil {
			return fmt.Errorf("tear down sandbox %s: %w", sb.ID, err)
		}
	case sb.Datapath == DatapathBuiltin && sb.Mode == ModeNone:
		// Only lo, which goes with the namespace.
	case sb.Mode == ModeBridge || sb.Mode == ModeAWSVPC:
		if err := m.removeForwardRules(ctx, &sb); err != nil {
			return fmt.Errorf("tear down sandbox %s: %w", sb.ID, err)
		}
		path := sb.NetnsPath
		if !isNetns(path) {
			// Without the netns (after a reboot, or a crash before it was
			// mounted) plugins still release IPAM leases and iptables
			// rules when given no path; given a dead path they would fail.
			path = ""
		}
		unlock := m.lockCNI()
		err := m.bridge.Remove(ctx, sb.ID, path, m.nsOpts(sb)...)
		unlock()
		if err != nil {
			return fmt.Errorf("tear down sandbox %s: CNI del: %w", sb.ID, err)
		}
	case sb.Mode == ModeNone:
		// loopback's DEL does nothing to the namespace, but it drops
		// libcni's cached result for the ID.
		unlock := m.lockCNI()
		err := m.loopback.Remove(ctx, sb.ID, "")
		unlock()
		if err != nil {
			return fmt.Errorf("tear down sandbox %s: CNI del loopback: %w", sb.ID, err)
		}
	case sb.Mode == ModeHost || sb.Mode == "":
	default:
		return fmt.Errorf("tear down sandbox %s: unknown network mode %q", sb.ID, sb.Mode)
	}
	// No rule maps the host ports any more.
	if err := m.opts.Ports.Release(sb.ID); err != nil {
		return fmt.Errorf("tear down sandbox %s: %w", sb.ID, err)
	}
	if sb.NetnsPath != "" {
		if err := RemoveNetns(sb.NetnsPath); err != nil {
			return fmt.Errorf("tear down sandbox %s: %w", sb.ID, err)
		}
	}
	if err := os.Remove(m.recordPath(sb.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("tear down sandbox %s: remove record: %w", sb.ID, err)
	}
	return nil
}

// removeForwardRules deletes the firewall plugin's CNI-FORWARD rules for
// the sandbox's address before CNI DEL releases the address. The plugin
// removes them itself only when libcni hands it the cached ADD result,
// which a crash in the middle of ADD (or an ADD cut short by a cancelled
// context) never wrote; the rules carry no comment, and once the lease is
// gone nothing would name them again. A record without the address (the
// crash came before Setup stored it) gets it from the lease, and is
// rewritten with it so that a crash now does not lose it again.
func (m *Sandboxer) removeForwardRules(ctx context.Context, sb *Sandbox) error {
	if sb.IP == "" {
		leases, err := m.leases()
		if err != nil {
			return err
		}
		for ip, id := range leases {
			if id == sb.ID {
				sb.IP = ip
			}
		}
		if sb.IP == "" {
			return nil // never got an address, so no rules either
		}
		if err := m.writeRecord(*sb); err != nil {
			return err
		}
	}
	if holder := m.leaseHolder(sb.IP); holder != "" && holder != sb.ID {
		// Released earlier and leased again since: the rules are the new
		// holder's now.
		return nil
	}
	_, err := deleteForwardRules(ctx, map[string]string{sb.IP: sb.ID})
	return err
}

func (m *Sandboxer) recordPath(id string) string {
	return filepath.Join(m.opts.StateDir, id+".json")
}

func (m *Sandboxer) writeRecord(sb Sandbox) error {
	b, err := json.Marshal(sb)
	if err != nil {
		return fmt.Errorf("encode sandbox record: %w", err)
	}
	// No fsync: the record describes kernel state (netns, veths, iptables)
	// that a reboot discards too, so it only has to survive a crash of the
	// agent, which the page cache does.
	return writeFileAtomic(m.recordPath(sb.ID), b, false)
}

// records reads every sandbox record in StateDir that is ours (see ours);
// agents sharing StateDir keep theirs there too.
func (m *Sandboxer) records() ([]Sandbox, error) {
	entries, err := os.ReadDir(m.opts.StateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list sandbox records: %w", err)
	}
	var out []Sandbox
	for _, e := range entries {
		name := e.Name()
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || !m.ours(id) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(m.opts.StateDir, name))
		if err != nil {
			return nil, fmt.Errorf("read sandbox record: %w", err)
		}
		var sb Sandbox
		if err := json.Unmarshal(b, &sb); err != nil || sb.ID != id {
			// A torn or foreign file: fall back to what the name tells.
			sb = Sandbox{ID: id}
		}
		out = append(out, sb)
	}
	return out, nil
}
