package network

import (
	"context"
	"crypto/sha512"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// CleanupReport says what Cleanup removed, and what it could not.
type CleanupReport struct {
	// TornDown are the sandboxes torn down from the caller's list or from
	// the Sandboxer's own records.
	TornDown []string
	// Netns are namespace files removed that no record accounted for.
	Netns []string
	// Rules are iptables rules deleted by the sweep ("table: rule").
	Rules []string
	// Chains are CNI chains deleted by the sweep ("table/chain").
	Chains []string
	// Leases are host-local leases released ("ip id").
	Leases []string
	// PortOwners are allocator owners whose ports were released.
	PortOwners []string
	// Pending is what could not be removed (yet): Run retries it.
	Pending []Leftover
}

// sweepResource names the sweep in what the retries report.
const sweepResource = "network sweep"

// Cleanup removes what this Sandboxer's sandboxes that are no longer live
// left behind, as the agent does at start after a crash. live are the
// sandboxes the caller still uses; stale are the ones it recorded whose
// owner is gone. Cleanup tears down every stale sandbox and every sandbox
// the Sandboxer recorded itself that is not live (a crash between CNI setup
// and the caller persisting the result), then sweeps what carries one of
// its own IDs and no live one: netns files, CNI iptables rules and chains,
// the firewall plugin's CNI-FORWARD rules for their addresses, host-local
// leases, CNI result caches and port allocations.
//
// Only what is provably this Sandboxer's is touched: IDs of the form
// <NamePrefix><Owner>-<16 hex digits> (see ours), records of such IDs, and
// rules naming them or their addresses. Other agents on the host, sharing
// NamePrefix, StateDir or /run/netns, keep their sandboxes.
//
// What cannot be removed does not fail Cleanup: it is in the report's
// Pending, logged, and retried by Run with backoff. The error is non-nil
// only when ctx ended. Call it before any Setup of this run: a sandbox
// whose Setup is still in progress is not live yet and would be torn down.
func (m *Sandboxer) Cleanup(ctx context.Context, live, stale []Sandbox) (CleanupReport, error) {
	var rep CleanupReport
	liveIDs := map[string]bool{}
	for _, sb := range live {
		liveIDs[sb.ID] = true
	}
	gone := map[string]bool{}
	teardown := func(sb Sandbox) {
		if liveIDs[sb.ID] || gone[sb.ID] {
			return
		}
		gone[sb.ID] = true
		if m.Teardown(ctx, sb) == nil {
			rep.TornDown = append(rep.TornDown, sb.ID)
		}
	}
	for _, sb := range stale {
		teardown(sb)
	}
	recs, recErr := m.records()
	for _, sb := range recs {
		if sb.Mode == "" { // unreadable record: assume the widest mode
			sb = m.orphan(sb.ID)
		}
		teardown(sb)
	}
	err := errors.Join(recErr, m.sweep(ctx, liveIDs, gone, &rep))
	if err != nil && ctx.Err() == nil {
		m.retry.failed(sweepResource, "", func(ctx context.Context) error {
			return m.sweep(ctx, liveIDs, map[string]bool{}, &CleanupReport{})
		}, err)
	} else if err == nil {
		m.retry.succeeded(sweepResource)
	}
	rep.Pending = m.Pending()
	return rep, ctx.Err()
}

// kept reports whether the sweep must leave id alone: it is in keep (live
// at start-up), its teardown failed and is retried (the retried CNI DEL
// needs its rules and chains: the bridge plugin fails to delete a
// masquerade rule whose chain is gone), it is recorded (a record is
// written before anything of a sandbox exists and removed after
// everything is gone, so sandboxes set up since start-up, and set-ups and
// teardowns in progress, are covered), or its Setup has not written the
// record yet (its ports are allocated first). It is asked right before
// each removal, because a retried sweep runs while the agent sets up
// sandboxes.
func (m *Sandboxer) kept(keep map[string]bool, id string) bool {
	if keep[id] || m.retry.has(sandboxResource(id)) {
		return true
	}
	m.setupsMu.Lock()
	inSetup := m.setups[id]
	m.setupsMu.Unlock()
	if inSetup {
		return true
	}
	_, err := os.Stat(m.recordPath(id))
	return err == nil
}

// sweep removes what carries one of our IDs that is not kept (see kept):
// namespaces without a record (torn down as orphans), leases, iptables
// rules and chains, the CNI-FORWARD rules of those leases' addresses, CNI
// caches and port allocations. gone are IDs torn down already, whose
// per-ID chains are swept too; sweep adds the orphans it tears down.
func (m *Sandboxer) sweep(ctx context.Context, keep, gone map[string]bool, rep *CleanupReport) error {
	var errs []error
	kept := func(id string) bool { return m.kept(keep, id) }

	// Namespaces without any record: CNI DEL with what can be inferred,
	// then the rest of the sweep catches what needed the lost parameters.
	entries, err := os.ReadDir(m.opts.NetnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("list netns dir: %w", err))
	}
	for _, e := range entries {
		id := e.Name()
		if !m.ours(id) || kept(id) || gone[id] {
			continue
		}
		gone[id] = true
		if m.Teardown(ctx, m.orphan(id)) == nil {
			rep.Netns = append(rep.Netns, filepath.Join(m.opts.NetnsDir, id))
		}
	}

	// Leases of IDs that are gone, whose addresses name the firewall
	// plugin's rules; they are released after the rules are deleted, so
	// that no other sandbox can hold the address meanwhile.
	leases, err := m.leases()
	if err != nil {
		errs = append(errs, err)
	}
	staleIPs := map[string]string{}
	var staleIDs []string
	for id := range gone {
		if !kept(id) { // not those whose teardown failed
			staleIDs = append(staleIDs, id)
		}
	}
	for ip, id := range leases {
		if m.ours(id) && !kept(id) {
			staleIPs[ip] = id
			staleIDs = append(staleIDs, id)
		}
	}
	if err := m.sweepIPTables(ctx, kept, staleIDs, staleIPs, rep); err != nil {
		errs = append(errs, err)
	}
	// The built-in datapath's DNAT rules, whichever datapath is selected
	// now: sandboxes keep the one they were set up with.
	removed, err := m.nft.remove(func(id string) bool { return m.ours(id) && !kept(id) })
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range removed {
		rep.Rules = append(rep.Rules, "nft "+m.nft.table.Name+": "+r)
	}
	for ip, id := range staleIPs {
		if err := os.Remove(filepath.Join(m.leaseDir(), ip)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("release IPAM lease %s: %w", ip, err))
			continue
		}
		rep.Leases = append(rep.Leases, ip+" "+id)
	}
	m.sweepCNICache(kept)
	for _, owner := range m.opts.Ports.Owners() {
		if m.ours(owner) && !kept(owner) {
			if err := m.opts.Ports.Release(owner); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.PortOwners = append(rep.PortOwners, owner)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sweep leftovers: %w", err)
	}
	return nil
}

// ours reports whether an ID was made by this Sandboxer (or an earlier run of
// it): its prefix and owner followed by exactly 16 hex digits. IDs of a
// Sandboxer with another owner, or of one without an owner, never match.
func (m *Sandboxer) ours(id string) bool {
	rest, ok := strings.CutPrefix(id, m.prefix)
	return ok && len(rest) == 16 && strings.Trim(rest, "0123456789abcdef") == ""
}

// orphan is the best guess at a sandbox known only by its ID: a bridge
// sandbox of this Sandboxer's network and datapath without port mappings.
// Guessing the datapath wrong leaves nothing: the namespace's removal takes
// the veth pair along, and the sweep removes both datapaths' rules and
// leases by ID.
func (m *Sandboxer) orphan(id string) Sandbox {
	return Sandbox{ID: id, Mode: ModeBridge, NetnsPath: filepath.Join(m.opts.NetnsDir, id),
		Network: m.opts.NetworkName, IfName: IfName, Datapath: m.opts.Datapath}
}

// leaseDir is host-local's lease directory for our network.
func (m *Sandboxer) leaseDir() string { return filepath.Join(m.opts.IPAMDir, m.opts.NetworkName) }

// leases returns the container ID holding each leased address; agents that
// share the IPAM directory have theirs there too.
func (m *Sandboxer) leases() (map[string]string, error) {
	entries, err := os.ReadDir(m.leaseDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list IPAM leases: %w", err)
	}
	out := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == "lock" || strings.HasPrefix(name, "last_reserved_ip.") {
			continue
		}
		if id := m.leaseHolder(name); id != "" {
			out[name] = id
		}
	}
	return out, nil
}

// leaseHolder returns the container ID holding ip, or "" when it is not
// leased. A lease file is named by the IP and holds
// "<container id>\r\n<ifname>".
func (m *Sandboxer) leaseHolder(ip string) string {
	b, err := os.ReadFile(filepath.Join(m.leaseDir(), ip))
	if err != nil {
		return "" // not leased, or released meanwhile
	}
	id, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(id)
}

// chainNames returns the per-container chains the bridge (ipMasq) and
// portmap plugins name after a hash of network name and container ID.
func chainNames(network, id string) []string {
	sum := fmt.Sprintf("%x", sha512.Sum512([]byte(network+id)))
	const maxChainLength = 28
	var out []string
	for _, p := range []string{"CNI-", "CNI-DN-", "CNI-SN-"} {
		out = append(out, (p + sum)[:maxChainLength])
	}
	return out
}

var commentID = regexp.MustCompile(`id: "([^"]+)"`)

// sweepIPTables deletes the CNI rules that name one of our IDs that is not
// kept in their comment (bridge masquerade and portmap DNAT rules), the
// CNI-* chains those rules jump to or that are named after a stale ID, and
// the firewall plugin's CNI-FORWARD rules for stale addresses (which carry
// no comment).
func (m *Sandboxer) sweepIPTables(ctx context.Context, kept func(string) bool, staleIDs []string, staleIPs map[string]string, rep *CleanupReport) error {
	var errs []error
	staleChains := map[string]bool{}
	for _, id := range staleIDs {
		for _, c := range chainNames(m.opts.NetworkName, id) {
			staleChains[c] = true
		}
	}
	for _, table := range []string{"nat", "filter"} {
		out, err := iptablesSave(ctx, table)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		chains := map[string]bool{}
		for _, line := range strings.Split(out, "\n") {
			if name, ok := strings.CutPrefix(line, ":"); ok {
				if f := strings.Fields(name); len(f) > 0 && staleChains[f[0]] {
					chains[f[0]] = true
				}
			}
		}
		for _, r := range parseSave(out) {
			stale := staleChains[r.target()] || (table == "filter" && r.forwardsFor(staleIPs))
			if mm := commentID.FindStringSubmatch(strings.Join(r.args, " ")); mm != nil && m.ours(mm[1]) && !kept(mm[1]) {
				stale = true
				for _, c := range chainNames(m.opts.NetworkName, mm[1]) {
					staleChains[c] = true
				}
			}
			if !stale {
				continue
			}
			if err := deleteRule(ctx, table, r.chain, r.args); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.Rules = append(rep.Rules, table+": "+r.line)
			if tgt := r.target(); strings.HasPrefix(tgt, "CNI-") && !sharedCNIChain(tgt) {
				chains[tgt] = true
			}
		}
		for c := range chains {
			if err := deleteChain(ctx, table, c); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.Chains = append(rep.Chains, table+"/"+c)
		}
	}
	return errors.Join(errs...)
}

// forwardsFor reports whether r is one of the firewall plugin's
// CNI-FORWARD rules for an address in ips (-s or -d <ip>/32).
func (r savedRule) forwardsFor(ips map[string]string) bool {
	if r.chain != "CNI-FORWARD" {
		return false
	}
	for i := 0; i+1 < len(r.args); i++ {
		if r.args[i] != "-s" && r.args[i] != "-d" {
			continue
		}
		if ip, ok := strings.CutSuffix(r.args[i+1], "/32"); ok {
			if _, stale := ips[ip]; stale {
				return true
			}
		}
	}
	return false
}

// deleteForwardRules deletes the firewall plugin's CNI-FORWARD rules for
// ips and returns them.
func deleteForwardRules(ctx context.Context, ips map[string]string) ([]string, error) {
	out, err := iptablesSave(ctx, "filter")
	if err != nil {
		return nil, err
	}
	var deleted []string
	for _, r := range parseSave(out) {
		if !r.forwardsFor(ips) {
			continue
		}
		if err := deleteRule(ctx, "filter", r.chain, r.args); err != nil {
			return deleted, fmt.Errorf("delete CNI-FORWARD rule %q: %w", r.line, err)
		}
		deleted = append(deleted, r.line)
	}
	return deleted, nil
}

// sharedCNIChain reports chains the plugins share between all containers;
// they are never deleted by the sweep.
func sharedCNIChain(c string) bool {
	switch c {
	case "CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK", "CNI-FORWARD", "CNI-ADMIN":
		return true
	}
	return false
}

// sweepCNICache removes libcni's cached results for our IDs that are not
// kept, so a later DEL of a reused name cannot pick up a stale result. Best
// effort.
func (m *Sandboxer) sweepCNICache(kept func(string) bool) {
	const cacheDir = "/var/lib/cni/results"
	entries, err := os.ReadDir(cacheDir)
	if err != nil {
		return
	}
	idRE := regexp.MustCompile(regexp.QuoteMeta(m.prefix) + "[0-9a-f]{16}")
	for _, e := range entries {
		for _, id := range idRE.FindAllString(e.Name(), -1) {
			if m.ours(id) && !kept(id) {
				_ = os.Remove(filepath.Join(cacheDir, e.Name()))
				break
			}
		}
	}
}
