package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/berth-dev/berth/pkg/network"
)

// A test run that was killed (a timeout, ^C) leaves what its agents and
// networks held on the host: namespaces, CNI iptables rules (a stale
// host-port DNAT rule sends a later test's connections to nowhere),
// bridges, credentials routes. Before the tests start, the runner removes
// what carries the tests' own names, which never collide with the agent's
// defaults ("berth-" sandboxes, the "berth0" bridge) or anything else.
// devTestBridges are the bridges of tests that run dev mode as a user does
// (with dev mode's name prefix): packaging's installed agent (bpk),
// make demo's test (bd), cmd/agent's (bf, bx) and the walk-throughs
// (test/walkthrough, bw).
const devTestBridges = `bpk[0-9a-f]{6}|bd[0-9a-f]{6}|bf[0-9a-f]{4}|bx[0-9a-f]{4}[0-9]+|bw[0-9a-f]{6}`

var (
	// testSandboxID is a sandbox id of a test's network: its name prefix
	// (pkg/agent "bt<hex>-", devmode "be<hex>-", simfleet "bs<hex>-",
	// pkg/network "bt<n>-", pkg/iam "btiam-"), the agent's owner tag and a
	// dash when an agent made it (network.Options.Owner), and 16 hex
	// digits. The first group is everything before the 16 digits.
	testSandboxID = regexp.MustCompile(`^((?:b[ets][0-9a-f]{1,8}-|btiam-)(?:[0-9a-f]{8}-)?)[0-9a-f]{16}$`)
	// testLink is a bridge or veth a test created by name.
	testLink = regexp.MustCompile(`^(b[ets][0-9a-f]{1,8}|btbr[0-9]+|btpf[0-9]+|btiam0|bi[0-9a-f]{6}[hn]|` + devTestBridges + `)$`)
	// testComment is the comment of a rule a test installed itself:
	// credentials routes and forward rules of test bridges, pkg/iam's and
	// pkg/network's routes, the host-network test's guard.
	testComment = regexp.MustCompile(`^berth:((creds|fwd):(b[ets][0-9a-f]{1,8}|btbr[0-9]+|btiam0|` + devTestBridges + `)|test-creds:.*|iam-e2e:.*|test-guard:.*)$`)
	// testDevBridge is a bridge of a test that runs dev mode with its
	// default name prefix (berthdev-<owner>-, whose owner tag says nothing
	// of a test): its nftables table is known to be a test's only by the
	// bridge it names.
	testDevBridge = regexp.MustCompile(`^(b[ets][0-9a-f]{1,8}|` + devTestBridges + `)$`)
	// devTable is the built-in datapath's table of dev mode's agent
	// (devmode.DevNamePrefix and an owner tag), devTableBridge the bridge
	// its rules name.
	devTable        = regexp.MustCompile(`^berthdev-[0-9a-f]{8}$`)
	devTableBridge  = regexp.MustCompile(`oifname (?:!= )?"([^"]+)"`)
	testSandboxIDIn = regexp.MustCompile(`(?:b[ets][0-9a-f]{1,8}-|btiam-)(?:[0-9a-f]{8}-)?[0-9a-f]{16}`)
	// testNetns is the IMDS test's stand-in namespace.
	testNetns   = regexp.MustCompile(`^bi[0-9a-f]{6}$`)
	commentArg  = regexp.MustCompile(`--comment "((?:[^"\\]|\\.)*)"`)
	idInComment = regexp.MustCompile(`id: \\"([^"\\]+)\\"`)
)

// sweepTestLeftovers removes earlier runs' leftovers and returns what it
// removed, one line each.
func sweepTestLeftovers(ctx context.Context) ([]string, error) {
	var done []string
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}

	// Sandboxes: every test prefix (with the owner tag, if any) seen in a
	// namespace name, a CNI rule comment or a CNI result cache is cleaned
	// up as that test's agent would at start (pkg/network Cleanup: CNI DEL,
	// rules, chains, caches). This runs before the tests start, never
	// during them, so no test can pass because of it.
	// prefixes maps each prefix to its bridge ("" for the test's own name).
	prefixes := map[string]string{}
	addID := func(id string) {
		if m := testSandboxID.FindStringSubmatch(id); m != nil {
			prefixes[m[1]] = ""
		}
	}
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			addID(e.Name())
		}
	}
	for _, table := range []string{"nat", "filter"} {
		out, err := exec.CommandContext(ctx, "iptables-save", "-t", table).Output()
		if err != nil {
			continue // no iptables: nothing of ours can be there either
		}
		for _, m := range idInComment.FindAllStringSubmatch(string(out), -1) {
			addID(m[1])
		}
	}
	// The built-in datapath's nftables tables are named after the prefix
	// without its last dash; a table outlives its sandboxes, so it may be
	// all that is left.
	if out, err := exec.CommandContext(ctx, "nft", "list", "tables", "ip").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			name, ok := strings.CutPrefix(strings.TrimSpace(line), "table ip ")
			if !ok {
				continue
			}
			addID(tableSandboxID(name))
			if !devTable.MatchString(name) {
				continue
			}
			listing, err := exec.CommandContext(ctx, "nft", "list", "table", "ip", name).Output()
			if err != nil {
				continue // gone meanwhile
			}
			if bridge, ok := devTableOfTest(string(listing)); ok {
				prefixes[name+"-"] = bridge
			}
		}
	}
	// Cache files are "<network>-<container id>-<interface>".
	if entries, err := os.ReadDir("/var/lib/cni/results"); err == nil {
		for _, e := range entries {
			for _, id := range testSandboxIDIn.FindAllString(e.Name(), -1) {
				addID(id)
			}
		}
	}
	tmp, err := os.MkdirTemp("", "berth-testenv-sweep-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for _, prefix := range sortedKeys(prefixes) {
		dir := filepath.Join(tmp, strings.TrimSuffix(prefix, "-"))
		bridge := prefixes[prefix]
		if bridge == "" {
			bridge, _, _ = strings.Cut(prefix, "-") // the test's own name
		}
		if len(bridge) > 15 {
			bridge = "bsweep0"
		}
		m, err := network.New(network.Options{
			ConfDir: filepath.Join(dir, "conf"), NetworkName: "berth", Bridge: bridge, Subnet: "10.255.254.0/24",
			IPAMDir: filepath.Join(dir, "ipam"), StateDir: filepath.Join(dir, "state"), NamePrefix: prefix,
		})
		if err != nil {
			note(fmt.Errorf("sweep %s: %w", prefix, err))
			continue
		}
		rep, err := m.Cleanup(ctx, nil, nil)
		note(err)
		for _, l := range rep.Pending {
			note(fmt.Errorf("sweep %s: %s: %s", prefix, l.Resource, l.Err))
		}
		if len(rep.Pending) == 0 {
			err := m.Uninstall(ctx) // the built-in datapath's table of the prefix
			note(err)
			if err == nil && prefixes[prefix] != "" {
				done = append(done, "nftables table ip "+m.TableName()+" and the forward rules of "+bridge)
			}
		}
		for _, what := range [][]string{rep.TornDown, rep.Netns, rep.Rules, rep.Chains} {
			done = append(done, what...)
		}
	}

	// Rules the tests installed under their own comments.
	for _, table := range []string{"nat", "filter"} {
		out, err := exec.CommandContext(ctx, "iptables-save", "-t", table).Output()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			m := commentArg.FindStringSubmatch(line)
			if !strings.HasPrefix(line, "-A ") || m == nil || !testComment.MatchString(m[1]) {
				continue
			}
			args := network.SplitSaveLine(line)[1:] // without "-A"
			if out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w", "-t", table, "-D"}, args...)...).CombinedOutput(); err != nil {
				note(fmt.Errorf("delete %s rule %q: %v: %s", table, line, err, strings.TrimSpace(string(out))))
				continue
			}
			done = append(done, table+": "+line)
		}
	}

	// Links the tests created by name (deleting one end of a veth pair
	// removes both), and the IMDS test's policy routes.
	if out, err := exec.CommandContext(ctx, "ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if !testLink.MatchString(name) {
				continue
			}
			if out, err := exec.CommandContext(ctx, "ip", "link", "del", name).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find device") {
				note(fmt.Errorf("delete link %s: %v: %s", name, err, strings.TrimSpace(string(out))))
				continue
			}
			done = append(done, "link "+name)
		}
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
			if testNetns.MatchString(name) {
				if exec.CommandContext(ctx, "ip", "netns", "del", name).Run() == nil {
					done = append(done, "netns "+name)
				}
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "ip", "rule", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			pref, rule, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok || !strings.Contains(rule, "to "+network.IMDSAddress+" lookup ") {
				continue
			}
			if exec.CommandContext(ctx, "ip", "rule", "del", "pref", pref).Run() == nil {
				done = append(done, "ip rule "+strings.TrimSpace(line))
			}
		}
	}
	if len(errs) > 0 {
		return done, fmt.Errorf("sweep test leftovers: %s", strings.Join(errs, "; "))
	}
	return done, nil
}

// devTableOfTest reports whether a dev mode table (devTable), listed by
// `nft list table`, is a test's: every bridge its rules name is a test's
// (testDevBridge), never an operator's such as dev mode's default
// berthdev0 or the demo's berthdemo0. It returns that bridge.
func devTableOfTest(listing string) (string, bool) {
	var bridge string
	for _, m := range devTableBridge.FindAllStringSubmatch(listing, -1) {
		if !testDevBridge.MatchString(m[1]) || (bridge != "" && m[1] != bridge) {
			return "", false
		}
		bridge = m[1]
	}
	return bridge, bridge != ""
}

// tableSandboxID is an ID of the prefix a built-in datapath's nftables
// table is named after (network.Sandboxer: the prefix without its last dash).
func tableSandboxID(table string) string { return table + "-" + strings.Repeat("0", 16) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
