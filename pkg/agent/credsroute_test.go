package agent_test

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/network"
)

// agentCredsRules returns the iptables-save lines of the credentials route
// of the agent whose bridge is bridge (the route's comment names it).
func agentCredsRules(t *testing.T, bridge string) []string {
	t.Helper()
	var out []string
	for _, table := range []string{"nat", "filter"} {
		b, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			t.Fatalf("iptables-save -t %s: %v", table, err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, `"berth:creds:`+bridge+`"`) {
				out = append(out, table+" "+l)
			}
		}
	}
	return out
}

// TestCredentialsRouteAcrossRestarts starts the agent three times (its
// listener binds a free port each time), twice over the rules an agent that
// crashed left for another port: every rule of its route (with the
// host-network redirect and the IMDS block on) exists exactly once,
// pointing at the port bound, and each clean stop leaves none.
func TestCredentialsRouteAcrossRestarts(t *testing.T) {
	// The host-network redirect is a host-wide nat OUTPUT rule.
	testenv.LockHost(t, testenv.LockCredentialsRedirect)
	h := newHostEnv(t)
	cfg := h.config(t)
	cfg.IAM.EnableTaskRole = true
	cfg.IAM.EnableTaskRoleNetworkHost = true
	cfg.IAM.AWSVPCBlockIMDS = true
	cfg.IAM.AuditLogFile = ""
	cfg.Listen.Credentials = netip.MustParseAddrPort("127.0.0.1:0")

	// What an agent that did not stop cleanly leaves behind: its route to
	// a listener port that is gone.
	stale := network.CredentialsRoute{Bridge: cfg.Network.BridgeName, ListenPort: 1, HostNetwork: true, BlockIMDS: true}
	t.Cleanup(func() { _ = stale.Remove(context.Background()) })

	chains := []string{"nat -A PREROUTING ", "nat -A OUTPUT ", "filter -A INPUT ", "filter -A FORWARD "}
	waitOnce := func(round int) {
		t.Helper()
		var rules []string
		for i := 0; i < 200; i++ {
			rules = agentCredsRules(t, cfg.Network.BridgeName)
			ok := len(rules) == len(chains)
			for _, c := range chains {
				n := 0
				for _, r := range rules {
					if strings.HasPrefix(r, c) {
						n++
					}
				}
				ok = ok && n == 1
			}
			for _, r := range rules {
				ok = ok && !strings.HasSuffix(r, " 127.0.0.1:1")
			}
			if ok {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("start %d: want each of %q once, none to the stale port 1; got:\n%s", round, chains, strings.Join(rules, "\n"))
	}
	for round := 1; round <= 3; round++ {
		if round != 2 { // round 2 follows a clean stop only
			if err := stale.Install(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		_, stop := h.startAgent(t, cfg)
		waitOnce(round)
		stop()
		if rules := agentCredsRules(t, cfg.Network.BridgeName); len(rules) != 0 {
			t.Fatalf("after the clean stop of start %d, rules remain:\n%s", round, strings.Join(rules, "\n"))
		}
	}
}
