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
// exactly that agent (network.Manager.ours).
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
