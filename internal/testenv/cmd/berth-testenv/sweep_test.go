package main

import "testing"

// TestSweepNames: the sweep's patterns take the tests' names and never the
// agent's defaults or other software's.
func TestSweepNames(t *testing.T) {
	for _, c := range []struct {
		re   string
		name string
		want bool
	}{
		{"id", "be68de0a-62f7d7670c28c729", true},
		{"id", "bt3-0123456789abcdef", true},
		{"id", "bs0a1b2c-0123456789abcdef", true},
		{"id", "btiam-0123456789abcdef", true},
		{"id", "berth-0123456789abcdef", false},
		{"id", "bt1ef675-c9f13f51-067089e50123abcd", true},
		{"id", "be68de0a-1a2b3c4d-62f7d7670c28c729", true},
		{"id", "berth-1a2b3c4d-0123456789abcdef", false},
		{"id", "bt1ef675-c9f13f5-067089e50123abcd", false},
		{"id", "be68de0a-62f7d7670c28c72", false},
		{"link", "be68de0a", true},
		{"link", "btbr17", true},
		{"link", "btiam0", true},
		{"link", "bi0a1b2ch", true},
		{"link", "berth0", false},
		{"link", "eth0", false},
		{"link", "br-0a1b2c", false},
		{"comment", "berth:creds:bt7be850", true},
		{"comment", "berth:test-guard:bt7be850", true},
		{"comment", "berth:fwd:bpk98176c", true},
		{"comment", "berth:fwd:bda169a6", true},
		{"comment", "berth:creds:bf12ab", true},
		{"link", "bpk98176c", true},
		{"link", "bx12ab3", true},
		{"link", "bw0a1b2c", true},
		{"comment", "berth:fwd:bw0a1b2c", true},
		{"comment", "berth:fwd:berthdev0", false},
		{"comment", "berth:fwd:berthdemo0", false},
		{"comment", "berth:fwd:berth0", false},
		{"link", "berthdev0", false},
		{"link", "berthdemo0", false},
		{"comment", "berth:creds:berth0", false},
		{"comment", "berth:creds:docker0", false},
	} {
		re := map[string]interface{ MatchString(string) bool }{"id": testSandboxID, "link": testLink, "comment": testComment}[c.re]
		if got := re.MatchString(c.name); got != c.want {
			t.Errorf("%s pattern on %q: %v, want %v", c.re, c.name, got, c.want)
		}
	}
}

// TestSweepPrefix: the sweep cleans up under the whole prefix of an ID,
// with the agent's owner tag when it has one, so that it takes the IDs of
// exactly that agent (network.Sandboxer.ours).
func TestSweepPrefix(t *testing.T) {
	for id, want := range map[string]string{
		"bt1ef675-c9f13f51-067089e50123abcd": "bt1ef675-c9f13f51-",
		"bt3-0123456789abcdef":               "bt3-",
		"btiam-0123456789abcdef":             "btiam-",
		// nftables tables of the built-in datapath
		tableSandboxID("bt11"):              "bt11-",
		tableSandboxID("bt1ef675-c9f13f51"): "bt1ef675-c9f13f51-",
	} {
		if m := testSandboxID.FindStringSubmatch(id); m == nil || m[1] != want {
			t.Errorf("prefix of %s: %v, want %q", id, m, want)
		}
	}
	// The agent's own tables, and other software's, are never taken.
	for _, table := range []string{"berth-1a2b3c4d", "berth", "nat", "filter", "docker"} {
		if m := testSandboxID.FindStringSubmatch(tableSandboxID(table)); m != nil {
			t.Errorf("table %s taken for a test's, prefix %q", table, m[1])
		}
	}
}

// TestSweepDevTables: a dev mode table (berthdev-<owner>, an owner tag that
// says nothing of a test) is a test's only when the bridge its rules name
// is a test's; an operator's dev mode, on its default bridge, the demo's
// or any other, keeps its table.
func TestSweepDevTables(t *testing.T) {
	listing := func(bridge string) string {
		return "table ip berthdev-d0f02501 {\n\tchain postrouting {\n" +
			"\t\tct status dnat oifname \"" + bridge + "\" ip saddr 10.181.158.0/24 masquerade\n" +
			"\t\toifname != \"" + bridge + "\" ip saddr 10.181.158.0/24 masquerade\n\t}\n}\n"
	}
	for _, c := range []struct {
		listing string
		want    string // the bridge; "" when the table is not a test's
	}{
		{listing("bpk98176c"), "bpk98176c"},               // packaging's installed agent
		{listing("bda169a6"), "bda169a6"},                 // make demo's test
		{listing("bf12ab"), "bf12ab"},                     // cmd/agent's --dev test
		{listing("bw0a1b2c"), "bw0a1b2c"},                 // the walk-throughs'
		{listing("be68de0a"), "be68de0a"},                 // pkg/agent/devmode's
		{listing("berthdev0"), ""},                        // dev mode's default
		{listing("berthdemo0"), ""},                       // make demo
		{listing("berth0"), ""},                           // the system agent's
		{listing("bpeersberth0"), ""},                     // the peers benchmark, not a test
		{listing("bpk98176c") + listing("berthdev0"), ""}, // names an operator's bridge too
		{"table ip berthdev-d0f02501 {\n}\n", ""},         // empty: nothing says whose
	} {
		got, ok := devTableOfTest(c.listing)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("devTableOfTest(%q) = %q, %v; want %q", c.listing, got, ok, c.want)
		}
	}
	for name, want := range map[string]bool{"berthdev-d0f02501": true, "berthdev-d0f0250": false, "berth-d0f02501": false, "berthdev-D0F02501": false} {
		if got := devTable.MatchString(name); got != want {
			t.Errorf("devTable on %q: %v, want %v", name, got, want)
		}
	}
}
