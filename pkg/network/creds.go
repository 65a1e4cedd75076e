package network

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Addresses the credentials routing deals with.
const (
	// CredentialsAddress is where tasks reach the agent's credentials and
	// task metadata endpoints.
	CredentialsAddress = "169.254.170.2"
	// CredentialsPort is the port tasks use on CredentialsAddress.
	CredentialsPort = 80
	// IMDSAddress is the instance metadata service, blocked for bridge
	// tasks when CredentialsRoute.BlockIMDS is set.
	IMDSAddress = "169.254.169.254"
)

// CredentialsRoute routes CredentialsAddress:80 from sandboxes to the
// agent's credentials listener on 127.0.0.1:ListenPort. Install and Remove
// are idempotent; every rule carries Comment so it is found exactly.
type CredentialsRoute struct {
	// Bridge is the sandboxes' bridge (Options.Bridge). Install creates it
	// when missing, so the route can be installed before the first sandbox.
	Bridge string
	// ListenPort is the agent's credentials listener port on 127.0.0.1.
	ListenPort uint16
	// HostNetwork also redirects traffic the host itself sends (host-mode
	// tasks) to CredentialsAddress.
	HostNetwork bool
	// BlockIMDS drops traffic from the bridge to IMDSAddress.
	BlockIMDS bool
	// Comment tags every rule; empty means "berth:creds:<Bridge>".
	Comment string
}

type ruleSpec struct {
	table, chain string
	rule         []string
}

func (r CredentialsRoute) comment() string {
	if r.Comment != "" {
		return r.Comment
	}
	return "berth:creds:" + r.Bridge
}

// rules returns the rules Install adds; with all set, every rule that
// either flag could add, so Remove finds rules installed with other flags.
func (r CredentialsRoute) rules(all bool) []ruleSpec {
	c := []string{"-m", "comment", "--comment", r.comment()}
	dnat := []string{"-d", CredentialsAddress + "/32", "-p", "tcp", "-m", "tcp", "--dport", strconv.Itoa(CredentialsPort)}
	to := []string{"-j", "DNAT", "--to-destination", "127.0.0.1:" + strconv.Itoa(int(r.ListenPort))}
	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	rs := []ruleSpec{
		{"nat", "PREROUTING", cat([]string{"-i", r.Bridge}, dnat, c, to)},
		// Only packets that were DNATed to the listener may reach 127/8
		// from the bridge; route_localnet would otherwise expose every
		// loopback service of the host to the tasks.
		{"filter", "INPUT", cat([]string{"-i", r.Bridge, "-d", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT"}, c, []string{"-j", "DROP"})},
	}
	if r.HostNetwork || all {
		rs = append(rs, ruleSpec{"nat", "OUTPUT", cat(dnat, c, to)})
	}
	if r.BlockIMDS || all {
		rs = append(rs, ruleSpec{"filter", "FORWARD", cat([]string{"-i", r.Bridge, "-d", IMDSAddress + "/32"}, c, []string{"-j", "DROP"})})
	}
	return rs
}

func (r CredentialsRoute) validate() error {
	if r.Bridge == "" || len(r.Bridge) > 15 {
		return fmt.Errorf("credentials route: bridge name %q must be 1..15 bytes", r.Bridge)
	}
	if r.ListenPort == 0 {
		return errors.New("credentials route: listen port 0")
	}
	return nil
}

// Install creates the bridge if needed, sets route_localnet on it (so
// packets from it may be routed to 127.0.0.1) and adds the rules that are
// missing. Running it twice leaves one copy of each rule. If it fails
// part-way (ctx cancelled during a start, say), the rules it added are
// removed again: a route is all there or not there.
func (r CredentialsRoute) Install(ctx context.Context) (err error) {
	if err := r.validate(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rerr := r.Remove(context.WithoutCancel(ctx)); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	if err := ensureBridge(r.Bridge); err != nil {
		return fmt.Errorf("install credentials route: %w", err)
	}
	sysctl := filepath.Join("/proc/sys/net/ipv4/conf", r.Bridge, "route_localnet")
	if err := os.WriteFile(sysctl, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("install credentials route: set route_localnet: %w", err)
	}
	// A listener on a port chosen at bind time (dev mode) moves on every
	// start; a rule left by an agent that did not stop cleanly would still
	// send 169.254.170.2 to the old port, ahead of the new rule.
	if err := r.removeDNAT(ctx, "127.0.0.1:"+strconv.Itoa(int(r.ListenPort))); err != nil {
		return fmt.Errorf("install credentials route: %w", err)
	}
	for _, s := range r.rules(false) {
		if err := ensureRule(ctx, s.table, s.chain, s.rule, true); err != nil {
			return fmt.Errorf("install credentials route: %w", err)
		}
	}
	return nil
}

// removeDNAT deletes the nat rules carrying the route's comment whose DNAT
// destination is not keep (every one when keep is empty), whatever port
// they were installed for.
func (r CredentialsRoute) removeDNAT(ctx context.Context, keep string) error {
	out, err := iptablesSave(ctx, "nat")
	if err != nil {
		return err
	}
	for _, sr := range parseSave(out) {
		if sr.target() != "DNAT" || !hasArg(sr.args, "--comment", r.comment()) || (keep != "" && hasArg(sr.args, "--to-destination", keep)) {
			continue
		}
		if err := deleteRule(ctx, "nat", sr.chain, sr.args); err != nil {
			return fmt.Errorf("delete stale rule %q: %w", sr.line, err)
		}
	}
	return nil
}

// hasArg reports whether args holds flag immediately followed by value.
func hasArg(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}

// Remove deletes every rule Install may have added (whatever the flags and
// listener port were then). It leaves route_localnet set: both datapaths'
// port mappings need it on the bridge too, for connections to host ports
// on 127.0.0.1.
func (r CredentialsRoute) Remove(ctx context.Context) error {
	if err := r.validate(); err != nil {
		return err
	}
	var errs []error
	for _, s := range r.rules(true) {
		if err := deleteRule(ctx, s.table, s.chain, s.rule); err != nil {
			errs = append(errs, err)
		}
	}
	// DNAT rules of earlier listener ports (see Install).
	if err := r.removeDNAT(ctx, ""); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove credentials route: %w", err)
	}
	return nil
}

// ensureBridge creates a Linux bridge named name unless a link with that
// name exists. The CNI bridge plugin adopts an existing bridge, so creating
// it early changes nothing for the plugin. It speaks rtnetlink directly: one
// RTM_NEWLINK request does not justify a netlink library.
func ensureBridge(name string) error {
	if _, err := os.Stat(filepath.Join("/sys/class/net", name)); err == nil {
		return nil
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("create bridge %s: netlink socket: %w", name, err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("create bridge %s: bind netlink: %w", name, err)
	}

	attr := func(typ uint16, data []byte) []byte {
		l := unix.SizeofRtAttr + len(data)
		b := make([]byte, (l+3)&^3)
		binary.NativeEndian.PutUint16(b[0:], uint16(l))
		binary.NativeEndian.PutUint16(b[2:], typ)
		copy(b[unix.SizeofRtAttr:], data)
		return b
	}
	body := make([]byte, unix.SizeofIfInfomsg) // AF_UNSPEC, no flags
	body = append(body, attr(unix.IFLA_IFNAME, append([]byte(name), 0))...)
	body = append(body, attr(unix.IFLA_LINKINFO, attr(unix.IFLA_INFO_KIND, []byte("bridge")))...)
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.SizeofNlMsghdr+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], unix.RTM_NEWLINK)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	binary.NativeEndian.PutUint32(msg[8:], 1) // sequence number
	msg = append(msg, body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("create bridge %s: send: %w", name, err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return fmt.Errorf("create bridge %s: receive: %w", name, err)
	}
	// The reply is one NLMSG_ERROR message whose first field is 0 on
	// success or a negated errno.
	if n < unix.SizeofNlMsghdr+4 || binary.NativeEndian.Uint16(buf[4:]) != unix.NLMSG_ERROR {
		return fmt.Errorf("create bridge %s: unexpected netlink reply", name)
	}
	code := -int32(binary.NativeEndian.Uint32(buf[unix.SizeofNlMsghdr:]))
	if code != 0 && unix.Errno(code) != unix.EEXIST {
		return fmt.Errorf("create bridge %s: %w", name, unix.Errno(code))
	}
	return nil
}
