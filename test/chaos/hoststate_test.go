package chaos_test

import (
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// hostState is what the agent changes in its network namespace: rules
// (iptables nat and filter, the nftables ruleset) and veth links, one
// normalised line each (counters and handles dropped), sorted. The
// namespace is the suite's own, so every line is the agent's.
type hostState []string

var (
	countersRE = regexp.MustCompile(`\[\d+:\d+\]|counter packets \d+ bytes \d+|# handle \d+`)
	// ip -o link: "12: veth1234@if3: <...> ... link/ether ..." — the
	// index and addresses change with every task; the name is what counts.
	linkRE = regexp.MustCompile(`^\d+: (\S+?)[@:]`)
)

func readHostState(t *testing.T) hostState {
	t.Helper()
	var s hostState
	run := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).Output()
		if err != nil {
			t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
		}
		return string(out)
	}
	add := func(where, out string) {
		for _, line := range strings.Split(out, "\n") {
			line = strings.TrimSpace(countersRE.ReplaceAllString(line, ""))
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			s = append(s, where+": "+line)
		}
	}
	add("iptables nat", run("iptables-save", "-t", "nat"))
	add("iptables filter", run("iptables-save", "-t", "filter"))
	add("nftables", run("nft", "list", "ruleset"))
	for _, line := range strings.Split(run("ip", "-o", "link", "show", "type", "veth"), "\n") {
		if m := linkRE.FindStringSubmatch(line); m != nil {
			s = append(s, "veth: "+m[1])
		}
	}
	sort.Strings(s)
	return s
}

func (s hostState) equal(o hostState) bool { return strings.Join(s, "\n") == strings.Join(o, "\n") }

// diff lists the lines only one of the states has.
func (s hostState) diff(after hostState) string {
	count := map[string]int{}
	for _, l := range s {
		count[l]++
	}
	for _, l := range after {
		count[l]--
	}
	var out []string
	for l, n := range count {
		switch {
		case n > 0:
			out = append(out, "gone: "+l)
		case n < 0:
			out = append(out, "left: "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}
