package ecsapi

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
)

var updateDoc = flag.Bool("update", false, "rewrite docs/ecs-compatibility.md's ECS API section from Members() and NotRouted()")

const (
	compatDocPath = "../../../docs/ecs-compatibility.md"
	docBegin      = "<!-- ecs-api:begin (generated from pkg/cluster/ecsapi; go test ./pkg/cluster/ecsapi -run TestDocMatchesMembers -update) -->"
	docEnd        = "<!-- ecs-api:end -->"
	ecsModule     = "github.com/aws/aws-sdk-go-v2/service/ecs"
)

func docCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// ecsModuleVersion is the version of the SDK's ECS module the repository
// requires (go.mod; test binaries carry no module versions).
func ecsModuleVersion(t *testing.T) string {
	raw, err := os.ReadFile("../../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == ecsModule {
			return f[1]
		}
	}
	t.Fatalf("go.mod does not require %s", ecsModule)
	return ""
}

// renderMembersDoc renders the generated part of the ECS API section.
func renderMembersDoc(t *testing.T, routed map[string]bool) string {
	ops := sdkOperations()
	names := make([]string, 0, len(ops))
	for n := range ops {
		names = append(names, n)
	}
	sort.Strings(names)
	table, notRouted := Members(), NotRouted()
	counts := map[MemberStatus]int{}
	members := 0
	var opRows, memberRows []string
	for _, n := range names {
		if !routed[n] {
			opRows = append(opRows, fmt.Sprintf("| `%s` | not routed: UnknownOperationException |  |  |  | %s |", n, docCell(notRouted[n])))
			continue
		}
		per := map[MemberStatus]int{}
		for _, m := range table[n] {
			per[m.Status]++
			counts[m.Status]++
			members++
			memberRows = append(memberRows, fmt.Sprintf("| `%s` | `%s` | %s | %s |", n, m.Name, m.Status, docCell(m.Note)))
		}
		opRows = append(opRows, fmt.Sprintf("| `%s` | routed | %d | %d | %d |  |", n, per[Honoured], per[HonouredWithDifference], per[Refused]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d operations in %s %s: %d routed, %d not routed. %d members of the routed operations (nested ones dotted): %d honoured, %d honoured with difference, %d refused.\n\n",
		len(names), ecsModule, ecsModuleVersion(t), len(routed), len(names)-len(routed), members,
		counts[Honoured], counts[HonouredWithDifference], counts[Refused])
	b.WriteString("| Operation | Status | Honoured | With difference | Refused | Why not routed |\n| --- | --- | --- | --- | --- | --- |\n")
	b.WriteString(strings.Join(opRows, "\n") + "\n\n")
	b.WriteString("| Operation | Member | Status | How, or why not |\n| --- | --- | --- | --- |\n")
	b.WriteString(strings.Join(memberRows, "\n") + "\n")
	return b.String()
}

// TestDocMatchesMembers fails when docs/ecs-compatibility.md's "ECS API
// operations and members" tables disagree with Members() and NotRouted();
// -update rewrites them.
func TestDocMatchesMembers(t *testing.T) {
	s := newTestServer(t)
	routed := map[string]bool{}
	for n := range s.ops {
		routed[n] = true
	}
	want := renderMembersDoc(t, routed)
	raw, err := os.ReadFile(compatDocPath)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(raw), docBegin)
	got, after, ok2 := strings.Cut(rest, docEnd)
	if !ok1 || !ok2 {
		t.Fatalf("%s lacks the markers %q and %q around the generated tables", compatDocPath, docBegin, docEnd)
	}
	if *updateDoc {
		if err := os.WriteFile(compatDocPath, []byte(before+docBegin+want+docEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got == want {
		return
	}
	gotLines, wantLines := strings.Split(got, "\n"), strings.Split(want, "\n")
	have := map[string]bool{}
	for _, l := range gotLines {
		have[l] = true
	}
	for _, l := range wantLines {
		if !have[l] {
			t.Errorf("%s lacks (or has another version of) the line:\n%s", compatDocPath, l)
		}
	}
	need := map[string]bool{}
	for _, l := range wantLines {
		need[l] = true
	}
	for _, l := range gotLines {
		if !need[l] {
			t.Errorf("%s has a line the code does not generate:\n%s", compatDocPath, l)
		}
	}
	t.Errorf("regenerate with: go test ./pkg/cluster/ecsapi -run TestDocMatchesMembers -update")
}
