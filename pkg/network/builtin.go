package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Datapath is how a Sandboxer wires sandboxes.
type Datapath string

// The datapaths.
const (
	// DatapathBuiltin does the work in process: netlink for the veth pair,
	// bridge, addresses and routes, the Sandboxer's own address leases, and
	// nftables (one table per Sandboxer) for port mappings, hairpin,
	// localhost access and masquerading. It is the default.
	DatapathBuiltin Datapath = "builtin"
	// DatapathCNI runs the CNI plugins of the Sandboxer's conflist (bridge,
	// host-local, portmap, firewall, loopback) through go-cni.
	DatapathCNI Datapath = "cni"
)

// Steps of the built-in setup, named to the Sandboxer's step hook (tests
// kill the process there).
const (
	stepLease = "lease"
	stepVeth  = "veth"
	stepNft   = "nft"
)

// forwardComment tags the two filter FORWARD rules the built-in datapath
// adds for its bridge.
func forwardComment(bridge string) string { return "berth:fwd:" + bridge }

// bridgeForwardRules are the bridge-wide filter FORWARD rules: sandboxes may
// send anything, and receive replies and DNATed connections. They are in
// iptables, not in the Sandboxer's nftables table, because an accept in one
// nftables base chain does not overrule the drop of another (a host whose
// FORWARD policy is DROP, as Docker sets it). Appended, so that a DROP the
// credentials route inserts (BlockIMDS) still comes first.
func bridgeForwardRules(bridge string) [][]string {
	c := []string{"-m", "comment", "--comment", forwardComment(bridge)}
	return [][]string{
		append(append([]string{"-i", bridge}, c...), "-j", "ACCEPT"),
		append(append([]string{"-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED,DNAT"}, c...), "-j", "ACCEPT"),
	}
}

// RemoveBridgeForwardRules deletes the filter FORWARD rules the built-in
// datapath added for bridge. The rules, like the bridge, outlive the
// sandboxes (other agents on the bridge use them); tests and an operator
// removing the bridge call it.
func RemoveBridgeForwardRules(ctx context.Context, bridge string) error {
	var errs []error
	for _, r := range bridgeForwardRules(bridge) {
		errs = append(errs, deleteRule(ctx, "filter", "FORWARD", r))
	}
	return errors.Join(errs...)
}

// hostVethName is the host end of a sandbox's veth pair: derived from the
// ID, so that a teardown without the record finds it.
func hostVethName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "bv" + hex.EncodeToString(sum[:])[:13]
}

// ensureHost prepares what the built-in datapath's sandboxes share, once
// per Sandboxer (again after a failure): the bridge with the gateway
// address, forwarding, route_localnet on the bridge (connections to
// 127.0.0.1:<host port> leave through it with a loopback source until they
// are masqueraded), the forward rules and the nftables table.
func (m *Sandboxer) ensureHost(ctx context.Context) error {
	m.hostMu.Lock()
	defer m.hostMu.Unlock()
	if m.hostReady {
		return nil
	}
	br, err := netlink.LinkByName(m.opts.Bridge)
	if _, ok := err.(netlink.LinkNotFoundError); ok {
		err = netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: m.opts.Bridge}})
		if err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create bridge %s: %w", m.opts.Bridge, err)
		}
		br, err = netlink.LinkByName(m.opts.Bridge)
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", m.opts.Bridge, err)
	}
	gw := &net.IPNet{IP: m.addrs.gateway.AsSlice(), Mask: net.CIDRMask(m.addrs.bits, 32)}
	if err := netlink.AddrReplace(br, &netlink.Addr{IPNet: gw}); err != nil {
		return fmt.Errorf("bridge %s: address %s: %w", m.opts.Bridge, gw, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("bridge %s: set up: %w", m.opts.Bridge, err)
	}
	for path, v := range map[string]string{
		"/proc/sys/net/ipv4/ip_forward":                                           "1",
		filepath.Join("/proc/sys/net/ipv4/conf", m.opts.Bridge, "route_localnet"): "1",
	} {
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
			return fmt.Errorf("set %s: %w", path, err)
		}
	}
	for _, r := range bridgeForwardRules(m.opts.Bridge) {
		if err := ensureRule(ctx, "filter", "FORWARD", r, false); err != nil {
			return fmt.Errorf("forward rules of bridge %s: %w", m.opts.Bridge, err)
		}
	}
	if err := m.nft.ensure(); err != nil {
		return err
	}
	m.hostReady = true
	return nil
}

// wireBuiltin gives the sandbox at sb.NetnsPath its interfaces: lo up; for
// bridge and awsvpc also an address leased from the subnet, a veth pair
// with eth0 inside (address, default route via the bridge) and the host
// end on the bridge in hairpin mode, and the port mappings' DNAT rules.
// sb gets its IP and Gateway, and is recorded again once it has an
// address. It returns the step that failed.
func (m *Sandboxer) wireBuiltin(ctx context.Context, sb *Sandbox) (string, error) {
	nsh, err := netns.GetFromPath(sb.NetnsPath)
	if err != nil {
		return "open netns", err
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return "netlink in netns", err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return "loopback", err
	}
	if sb.Mode == ModeNone {
		return "", nil
	}
	if err := m.ensureHost(ctx); err != nil {
		return "host", err
	}
	ip, err := m.addrs.acquire(sb.ID, IfName)
	if err != nil {
		return "address", err
	}
	sb.IP, sb.Gateway = ip.String(), m.addrs.gateway.String()
	// Recorded at once: a teardown needs no lease scan to find it.
	if err := m.writeRecord(*sb); err != nil {
		return "record", err
	}
	if err := m.step(stepLease); err != nil {
		return stepLease, err
	}

	br, err := netlink.LinkByName(m.opts.Bridge)
	if err != nil {
		return "bridge", err
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostVethName(sb.ID), MasterIndex: br.Attrs().Index, Flags: net.FlagUp, MTU: br.Attrs().MTU},
		PeerName:      IfName,
		PeerNamespace: netlink.NsFd(int(nsh)),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return "veth", err
	}
	if err := netlink.LinkSetHairpin(veth, true); err != nil {
		return "veth hairpin", err
	}
	eth, err := h.LinkByName(IfName)
	if err != nil {
		return "veth", err
	}
	addr := &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(m.addrs.bits, 32)}
	if err := h.AddrAdd(eth, &netlink.Addr{IPNet: addr}); err != nil {
		return "address", err
	}
	if err := h.LinkSetUp(eth); err != nil {
		return "veth up", err
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: m.addrs.gateway.AsSlice()}); err != nil {
		return "default route", err
	}
	if err := m.step(stepVeth); err != nil {
		return stepVeth, err
	}
	if err := m.nft.add(sb.ID, ip, sb.PortMappings); err != nil {
		return "port mappings", err
	}
	if err := m.step(stepNft); err != nil {
		return stepNft, err
	}
	return "", nil
}

// unwireBuiltin removes what wireBuiltin made outside the namespace, in
// the order that keeps everything named while it exists: the DNAT rules,
// the host end of the veth pair (the namespace's end goes with it), the
// connections tracked to the address, then the address lease. A sandbox recorded before it had its address finds
// its lease by ID; it may also be a CNI sandbox whose record was lost (an
// orphan namespace), so the firewall plugin's CNI-FORWARD rules for that
// address go before the lease does.
func (m *Sandboxer) unwireBuiltin(ctx context.Context, sb Sandbox) error {
	if _, err := m.nft.remove(func(id string) bool { return id == sb.ID }); err != nil {
		return err
	}
	if l, err := netlink.LinkByName(hostVethName(sb.ID)); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			return fmt.Errorf("delete veth %s: %w", l.Attrs().Name, err)
		}
	} else if _, ok := err.(netlink.LinkNotFoundError); !ok {
		return fmt.Errorf("veth %s: %w", hostVethName(sb.ID), err)
	}
	ips := []string{}
	if sb.IP != "" {
		ips = append(ips, sb.IP)
	} else {
		leases, err := m.leases()
		if err != nil {
			return err
		}
		for ip, id := range leases {
			if id == sb.ID {
				ips = append(ips, ip)
				if _, err := deleteForwardRules(ctx, map[string]string{ip: id}); err != nil {
					return err
				}
			}
		}
	}
	for _, ip := range ips {
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			return fmt.Errorf("sandbox address %q: %w", ip, err)
		}
		if err := forgetFlows(addr); err != nil {
			return err
		}
		if err := m.addrs.release(ip, sb.ID); err != nil {
			return err
		}
	}
	return nil
}

// forgetFlows deletes the conntrack entries of connections to addr. The
// DNAT of a connection lives in its entry, not in the rule: without this a
// UDP client that keeps sending to a host port (DNS, syslog) would keep
// reaching addr after the sandbox is gone, until the entry times out, and
// so would reach the next sandbox given addr. (portmap deletes the UDP
// entries of its host ports for the same reason.)
func forgetFlows(addr netip.Addr) error {
	f := &netlink.ConntrackFilter{}
	if err := f.AddIP(netlink.ConntrackReplySrcIP, addr.AsSlice()); err != nil {
		return fmt.Errorf("forget connections to %s: %w", addr, err)
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, f); err != nil {
		return fmt.Errorf("forget connections to %s: %w", addr, err)
	}
	return nil
}

// step calls the test hook after a step of the built-in setup; its error
// fails the setup there.
func (m *Sandboxer) step(name string) error {
	if m.stepHook != nil {
		return m.stepHook(name)
	}
	return nil
}

// Uninstall removes what the built-in datapath's sandboxes share on the
// host: the Sandboxer's nftables table and its bridge's forward rules. The
// bridge stays (like the CNI bridge plugin's). A system agent never calls
// it, since its sandboxes outlive it; dev mode does on a clean stop when
// InUse finds nothing, and tests and the test runner's sweep do once the
// sandboxes are gone.
func (m *Sandboxer) Uninstall(ctx context.Context) error {
	m.hostMu.Lock()
	m.hostReady = false
	m.hostMu.Unlock()
	return errors.Join(m.nft.deleteTable(), RemoveBridgeForwardRules(ctx, m.opts.Bridge))
}

// InUse lists what still needs the host-wide parts that Uninstall removes,
// one line each, empty when nothing does: the Sandboxer's sandboxes (records
// in StateDir and namespaces of its IDs), what it retries removing, and
// interfaces attached to its bridge (another agent's sandboxes on a shared
// bridge pass its forward rules). Call it once no Setup or Teardown runs.
func (m *Sandboxer) InUse() ([]string, error) {
	var out []string
	recs, err := m.records()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, sb := range recs {
		seen[sb.ID] = true
		out = append(out, "sandbox "+sb.ID)
	}
	entries, err := os.ReadDir(m.opts.NetnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list netns dir: %w", err)
	}
	for _, e := range entries {
		if id := e.Name(); m.ours(id) && !seen[id] {
			out = append(out, "namespace "+filepath.Join(m.opts.NetnsDir, id))
		}
	}
	for _, l := range m.Pending() {
		out = append(out, "pending removal of "+l.Resource)
	}
	br, err := netlink.LinkByName(m.opts.Bridge)
	if _, ok := err.(netlink.LinkNotFoundError); ok {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", m.opts.Bridge, err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		if a := l.Attrs(); a.MasterIndex == br.Attrs().Index {
			out = append(out, "interface "+a.Name+" on bridge "+m.opts.Bridge)
		}
	}
	return out, nil
}

// TableName is the built-in datapath's nftables table of the Sandboxer (ip
// family): its name prefix and owner.
func (m *Sandboxer) TableName() string { return m.nft.table.Name }
