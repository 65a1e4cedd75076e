package config

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var updateDoc = flag.Bool("update", false, "rewrite the generated tables in docs/configuration.md and docs/ecs-compatibility.md from the code")

const (
	docPath       = "../../docs/configuration.md"
	compatDocPath = "../../docs/ecs-compatibility.md"
	unsetMarker   = "(unset)"
	// packagePath is the file the berth-agent package installs with
	// ecs-init's defaults (PackageDefault).
	packagePath = "/etc/berth/agent.toml"
)

// docTable is one generated table: the lines between its markers in a
// document, one row per key, keyed by the first cell.
type docTable struct {
	path, begin, end string
	header           []string
	rows             func() (names []string, rows map[string]string)
}

func cellRow(cells ...string) string {
	for i, c := range cells {
		cells[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	return "| " + strings.Join(cells, " | ") + " |"
}

func code(s string) string { return "`" + s + "`" }

// defaultCell renders the built-in default and the package's, if any.
func defaultCell(k Key) string {
	def := unsetMarker
	if k.Default != "" {
		def = code(k.Default)
	}
	if k.PackageDefault != "" {
		def += "; package: " + code(k.PackageDefault)
	}
	return def
}

// docRow renders the row docs/configuration.md must have for k.
func docRow(k Key) string {
	return cellRow(code(k.Name), code(k.TOMLName), k.Type, defaultCell(k), k.Doc)
}

// compatRow renders the row docs/ecs-compatibility.md must have for k.
func compatRow(k Key) string {
	from := "unset"
	switch {
	case k.Status == StatusRefused:
		from = "—"
	case k.PackageDefault != "":
		from = code(k.PackageDefault) + " from the package's " + code(packagePath) + " (as ecs-init sets it); built in: " + code(k.Default)
	case k.Default != "":
		from = code(k.Default) + " built in"
	}
	return cellRow(code(k.Name), k.Status.String(), from, k.Note)
}

func configurationTable() docTable {
	return docTable{path: docPath,
		begin:  "<!-- keys:begin (generated from pkg/config/keys.go; go test ./pkg/config -run TestDocMatchesKeys -update) -->",
		end:    "<!-- keys:end -->",
		header: []string{"| Environment / ecs.config | TOML | Type | Default | Meaning |", "| --- | --- | --- | --- | --- |"},
		rows: func() ([]string, map[string]string) {
			var names []string
			rows := map[string]string{}
			for _, k := range Keys() {
				names = append(names, k.Name)
				rows[k.Name] = docRow(k)
			}
			return names, rows
		}}
}

func compatibilityTable() docTable {
	return docTable{path: compatDocPath,
		begin:  "<!-- ecs-keys:begin (generated from pkg/config; go test ./pkg/config -run TestDocMatchesKeys -update) -->",
		end:    "<!-- ecs-keys:end -->",
		header: []string{"| Key | Status | Default in Berth | Difference, reason or what is missing |", "| --- | --- | --- | --- |"},
		rows: func() ([]string, map[string]string) {
			var names []string
			rows := map[string]string{}
			for _, k := range Keys() {
				if k.Upstream {
					names = append(names, k.Name)
					rows[k.Name] = compatRow(k)
				}
			}
			return names, rows
		}}
}

// compatSummary is the generated line that counts upstream keys per status.
func compatSummary() string {
	counts := map[Status]int{}
	total := 0
	for _, k := range Keys() {
		if k.Upstream {
			counts[k.Status]++
			total++
		}
	}
	var parts []string
	for _, s := range []Status{StatusHonoured, StatusDifferent, StatusNotEnforced, StatusRefused} {
		parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
	}
	return fmt.Sprintf("%d upstream keys: %s.", total, strings.Join(parts, ", "))
}

// check compares the table in its document with the code, or rewrites it
// with -update.
func (d docTable) check(t *testing.T, extra ...string) {
	t.Helper()
	raw, err := os.ReadFile(d.path)
	if err != nil {
		t.Fatalf("read %s: %v", d.path, err)
	}
	before, rest, ok1 := strings.Cut(string(raw), d.begin)
	table, after, ok2 := strings.Cut(rest, d.end)
	if !ok1 || !ok2 {
		t.Fatalf("%s lacks the markers %q and %q around the generated table", d.path, d.begin, d.end)
	}
	names, want := d.rows()
	lines := append([]string{""}, extra...)
	lines = append(lines, d.header...)
	for _, n := range names {
		lines = append(lines, want[n])
	}
	generated := strings.Join(append(lines, ""), "\n")
	if *updateDoc {
		if err := os.WriteFile(d.path, []byte(before+d.begin+generated+d.end+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, line := range extra {
		if !strings.Contains(table, line) {
			t.Errorf("%s lacks the generated line %q", d.path, line)
		}
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(strings.SplitN(line, "|", 3)[1]), "`")
		w, ok := want[name]
		switch {
		case !ok:
			t.Errorf("%s documents %s, which the code does not list there", d.path, name)
		case seen[name]:
			t.Errorf("%s documents %s twice", d.path, name)
		case line != w:
			t.Errorf("%s row for %s disagrees with the code:\n doc:  %s\n code: %s", d.path, name, line, w)
		}
		seen[name] = true
	}
	for _, n := range names {
		if !seen[n] {
			t.Errorf("%s has no row for %s; add:\n%s", d.path, n, want[n])
		}
	}
}

// TestDocMatchesKeys fails when docs/configuration.md's key table or
// docs/ecs-compatibility.md's "ecs.config keys" table disagrees with the
// code: every key must have exactly its row and the tables no other rows.
func TestDocMatchesKeys(t *testing.T) {
	configurationTable().check(t)
	compatibilityTable().check(t, compatSummary(), "")
}
