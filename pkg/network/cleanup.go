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

// CleanupReport says what Cleanup removed.
type CleanupReport struct {
	// TornDown are the sandboxes torn down from the caller's list or from
	// the Manager's own records.
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
}

// Cleanup removes what sandboxes that are no longer live left behind, as
// the agent does at start after a crash. live are the sandboxes the caller
// still uses; stale are the ones it recorded whose owner is gone. Cleanup
// tears down every stale sandbox and every sandbox the Manager recorded
// itself that is not live (a crash between CNI setup and the caller
// persisting the result), then sweeps what carries our name prefix and no
// live ID: netns files, CNI iptables rules and chains, host-local leases,
// CNI result caches and port allocations. Errors do not stop the sweep; they
// are joined in the result. Call it before any Setup of this run: a
// sandbox whose Setup is still in progress is not live yet and would be
// torn down.
func (m *Manager) Cleanup(ctx context.Context, live, stale []Sandbox) (CleanupReport, error) {
	var rep CleanupReport
	var errs []error
	liveIDs := map[string]bool{}
	for _, sb := range live {
		liveIDs[sb.ID] = true
	}
	done := map[string]bool{}
	teardown := func(sb Sandbox) {
		if liveIDs[sb.ID] || done[sb.ID] {
			return
		}
		done[sb.ID] = true
		if err := m.Teardown(ctx, sb); err != nil {
			errs = append(errs, err)
			return
		}
		rep.TornDown = append(rep.TornDown, sb.ID)
	}
	for _, sb := range stale {
		teardown(sb)
	}
	recs, err := m.records()
	if err != nil {
		errs = append(errs, err)
	}
	for _, sb := range recs {
		if sb.Mode == "" { // unreadable record: assume the widest mode
			sb = m.orphan(sb.ID)
		}
		teardown(sb)
	}

	// Namespaces without any record: CNI DEL with what can be inferred,
	// then the sweep below catches what needed the lost parameters.
	entries, err := os.ReadDir(m.opts.NetnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("list netns dir: %w", err))
	}
	for _, e := range entries {
		id := e.Name()
		if !m.ours(id) || liveIDs[id] || done[id] {
			continue
		}
		done[id] = true
		if err := m.Teardown(ctx, m.orphan(id)); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Netns = append(rep.Netns, filepath.Join(m.opts.NetnsDir, id))
	}

	staleIPs, leaseIDs, err := m.sweepLeases(liveIDs, &rep)
	if err != nil {
		errs = append(errs, err)
	}
	staleIDs := leaseIDs
	for id := range done {
		staleIDs = append(staleIDs, id)
	}
	if err := m.sweepIPTables(ctx, liveIDs, staleIDs, staleIPs, &rep); err != nil {
		errs = append(errs, err)
	}
	m.sweepCNICache(liveIDs)
	for _, owner := range m.opts.Ports.Owners() {
		if m.ours(owner) && !liveIDs[owner] {
			if err := m.opts.Ports.Release(owner); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.PortOwners = append(rep.PortOwners, owner)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("clean up sandboxes: %w", err)
	}
	return rep, nil
}

// ours reports whether an ID was made by a Manager with our prefix.
func (m *Manager) ours(id string) bool {
	rest, ok := strings.CutPrefix(id, m.opts.NamePrefix)
	return ok && len(rest) == 16 && strings.Trim(rest, "0123456789abcdef") == ""
}

// orphan is the best guess at a sandbox known only by its ID: a bridge
// sandbox of this Manager's network without port mappings.
func (m *Manager) orphan(id string) Sandbox {
	return Sandbox{ID: id, Mode: ModeBridge, NetnsPath: filepath.Join(m.opts.NetnsDir, id),
		Network: m.opts.NetworkName, IfName: IfName}
}

// sweepLeases releases host-local leases held by our non-live IDs and
// returns their addresses and IDs. A lease file is named by the IP and holds
// "<container id>\r\n<ifname>".
func (m *Manager) sweepLeases(live map[string]bool, rep *CleanupReport) ([]string, []string, error) {
	dir := filepath.Join(m.opts.IPAMDir, m.opts.NetworkName)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list IPAM leases: %w", err)
	}
	var ips, ids []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == "lock" || strings.HasPrefix(name, "last_reserved_ip.") {
			continue
		}
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			continue // released meanwhile
		}
		id, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		id = strings.TrimSpace(id)
		if !m.ours(id) || live[id] {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("release IPAM lease %s: %w", name, err))
			continue
		}
		ips = append(ips, name)
		ids = append(ids, id)
		rep.Leases = append(rep.Leases, name+" "+id)
	}
	return ips, ids, errors.Join(errs...)
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

// sweepIPTables deletes the CNI rules that name one of our non-live
// container IDs in their comment (bridge masquerade and portmap DNAT rules),
// the CNI-* chains those rules jump to or that are named after a stale ID,
// and the firewall plugin's CNI-FORWARD rules for stale addresses (which
// carry no comment).
func (m *Manager) sweepIPTables(ctx context.Context, live map[string]bool, staleIDs, staleIPs []string, rep *CleanupReport) error {
	var errs []error
	staleChains := map[string]bool{}
	for _, id := range staleIDs {
		for _, c := range chainNames(m.opts.NetworkName, id) {
			staleChains[c] = true
		}
	}
	ipSet := map[string]bool{}
	for _, ip := range staleIPs {
		ipSet[ip+"/32"] = true
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
			stale := staleChains[r.target()]
			if mm := commentID.FindStringSubmatch(strings.Join(r.args, " ")); mm != nil && m.ours(mm[1]) && !live[mm[1]] {
				stale = true
				for _, c := range chainNames(m.opts.NetworkName, mm[1]) {
					staleChains[c] = true
				}
			}
			if table == "filter" && r.chain == "CNI-FORWARD" {
				for i := 0; i+1 < len(r.args); i++ {
					if (r.args[i] == "-s" || r.args[i] == "-d") && ipSet[r.args[i+1]] {
						stale = true
					}
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

// sharedCNIChain reports chains the plugins share between all containers;
// they are never deleted by the sweep.
func sharedCNIChain(c string) bool {
	switch c {
	case "CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK", "CNI-FORWARD", "CNI-ADMIN":
		return true
	}
	return false
}

// sweepCNICache removes libcni's cached results for our non-live IDs, so a
// later DEL of a reused name cannot pick up a stale result. Best effort.
func (m *Manager) sweepCNICache(live map[string]bool) {
	const cacheDir = "/var/lib/cni/results"
	entries, err := os.ReadDir(cacheDir)
	if err != nil {
		return
	}
	idRE := regexp.MustCompile(regexp.QuoteMeta(m.opts.NamePrefix) + "[0-9a-f]{16}")
	for _, e := range entries {
		for _, id := range idRE.FindAllString(e.Name(), -1) {
			if m.ours(id) && !live[id] {
				_ = os.Remove(filepath.Join(cacheDir, e.Name()))
				break
			}
		}
	}
}
