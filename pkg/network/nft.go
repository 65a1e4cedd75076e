package network

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// This file is the only user of nftables. The built-in datapath keeps its
// rules in one table per Sandboxer (per agent: the table is named after the
// ID prefix, "berth-<owner>"), so two agents on one host never touch each
// other's rules, and nothing of another program's tables is ever read or
// changed:
//
//	table ip berth-<owner> {
//	  chain prerouting  { type nat hook prerouting priority dstnat;  fib daddr type local jump hostports }
//	  chain output      { type nat hook output priority -100;        fib daddr type local jump hostports }
//	  chain hostports   { [ip daddr <hostIP>] <proto> dport <hostPort> dnat to <ip>:<port> comment "<sandbox id>" ... }
//	  chain postrouting { type nat hook postrouting priority srcnat;
//	                      ct status dnat oifname <bridge> ip saddr <subnet> masquerade  (hairpin)
//	                      ct status dnat oifname <bridge> ip saddr 127.0.0.0/8 masquerade  (localhost)
//	                      oifname != <bridge> ip saddr <subnet> masquerade  (outbound) }
//	}
//
// Only the hostports rules belong to a sandbox; each carries the sandbox
// ID as its comment, which is how teardown and the sweep find exactly them.

const (
	nftHostPorts   = "hostports"
	nftPrerouting  = "prerouting"
	nftOutput      = "output"
	nftPostrouting = "postrouting"
)

// nftRules manages a Sandboxer's table.
type nftRules struct {
	table  *nftables.Table
	bridge string
	subnet netip.Prefix
}

func newNftRules(table, bridge, subnet string) (*nftRules, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return nil, fmt.Errorf("bridge subnet %q: %w", subnet, err)
	}
	return &nftRules{table: &nftables.Table{Name: table, Family: nftables.TableFamilyIPv4}, bridge: bridge, subnet: p.Masked()}, nil
}

func (r *nftRules) chain(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: r.table}
}

// ensure creates the table and its chains, and sets the base chains'
// rules afresh (in one transaction, so a restart never doubles them). The
// hostports chain keeps the rules of live sandboxes.
func (r *nftRules) ensure() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	c.AddTable(r.table)
	hp := c.AddChain(r.chain(nftHostPorts))
	base := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		ch := c.AddChain(&nftables.Chain{Name: name, Table: r.table, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio})
		c.FlushChain(ch)
		return ch
	}
	local := []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: hp.Name},
	}
	for _, ch := range []*nftables.Chain{
		base(nftPrerouting, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest),
		base(nftOutput, nftables.ChainHookOutput, nftables.ChainPriorityNATDest),
	} {
		c.AddRule(&nftables.Rule{Table: r.table, Chain: ch, Exprs: local})
	}
	post := base(nftPostrouting, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	for _, exprs := range [][]expr.Any{
		cat(ctDNAT(), oifname(expr.CmpOpEq, r.bridge), saddrIn(r.subnet), masq()),
		cat(ctDNAT(), oifname(expr.CmpOpEq, r.bridge), saddrIn(loopback), masq()),
		cat(oifname(expr.CmpOpNeq, r.bridge), saddrIn(r.subnet), masq()),
	} {
		c.AddRule(&nftables.Rule{Table: r.table, Chain: post, Exprs: exprs})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: set up table ip %s: %w", r.table.Name, err)
	}
	return nil
}

// add adds the DNAT rules of one sandbox's port mappings, all or none.
func (r *nftRules) add(id string, ip netip.Addr, pms []PortMapping) error {
	if len(pms) == 0 {
		return nil
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	ch := r.chain(nftHostPorts)
	for _, pm := range pms {
		var exprs []expr.Any
		if pm.HostIP != "" {
			hip, err := netip.ParseAddr(pm.HostIP)
			if err != nil || !hip.Is4() {
				return fmt.Errorf("port mapping %d: host IP %q: want an IPv4 address", pm.HostPort, pm.HostIP)
			}
			exprs = append(exprs,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: hip.AsSlice()})
		}
		proto := byte(unix.IPPROTO_TCP)
		if pm.Protocol == UDP {
			proto = unix.IPPROTO_UDP
		}
		exprs = append(exprs,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(pm.HostPort)},
			&expr.Immediate{Register: 1, Data: ip.AsSlice()},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(pm.ContainerPort)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		)
		c.AddRule(&nftables.Rule{Table: r.table, Chain: ch, Exprs: exprs,
			UserData: userdata.AppendString(nil, userdata.TypeComment, id)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: add port mappings of %s: %w", id, err)
	}
	return nil
}

// remove deletes the hostports rules whose comment is an ID for which
// match is true, and returns those IDs' rules as "<id> <handle>". A
// missing table or chain holds no rules.
func (r *nftRules) remove(match func(id string) bool) ([]string, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	rules, err := c.GetRules(r.table, r.chain(nftHostPorts))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nftables: list table ip %s chain %s: %w", r.table.Name, nftHostPorts, err)
	}
	var removed []string
	for _, rule := range rules {
		id, ok := userdata.GetString(rule.UserData, userdata.TypeComment)
		if !ok || !match(id) {
			continue
		}
		if err := c.DelRule(rule); err != nil {
			return nil, fmt.Errorf("nftables: delete rule of %s: %w", id, err)
		}
		removed = append(removed, fmt.Sprintf("%s %d", id, rule.Handle))
	}
	if len(removed) == 0 {
		return nil, nil
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("nftables: delete rules of %s: %w", strings.Join(removed, ", "), err)
	}
	return removed, nil
}

// deleteTable removes the whole table; a missing table is not an error.
func (r *nftRules) deleteTable() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	c.DelTable(r.table)
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("nftables: delete table ip %s: %w", r.table.Name, err)
	}
	return nil
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ctDNAT matches connections whose destination was translated.
func ctDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(0x20), // IPS_DST_NAT
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func oifname(op expr.CmpOp, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: b}}
}

func saddrIn(p netip.Prefix) []expr.Any {
	mask := binaryutil.BigEndian.PutUint32(^uint32(0) << (32 - p.Bits()))
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()},
	}
}

func masq() []expr.Any { return []expr.Any{&expr.Masq{}} }
