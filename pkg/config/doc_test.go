package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var updateDoc = flag.Bool("update", false, "rewrite the key table in docs/configuration.md from the code")

const (
	docPath     = "../../docs/configuration.md"
	docBegin    = "<!-- keys:begin (generated from pkg/config/keys.go; go test ./pkg/config -run TestDocMatchesKeys -update) -->"
	docEnd      = "<!-- keys:end -->"
	docHeader   = "| Environment / ecs.config | TOML | Type | Default | Meaning |"
	docDivider  = "| --- | --- | --- | --- | --- |"
	unsetMarker = "(unset)"
)

// docRow renders the row docs/configuration.md must have for k.
func docRow(k Key) string {
	def := unsetMarker
	if k.Default != "" {
		def = "`" + k.Default + "`"
	}
	cells := []string{"`" + k.Name + "`", "`" + k.TOMLName + "`", k.Type, def, k.Doc}
	for i, c := range cells {
		cells[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	return "| " + strings.Join(cells, " | ") + " |"
}

// TestDocMatchesKeys fails when docs/configuration.md and the key table
// disagree: every key must have exactly its row (env name, TOML name, type,
// default, meaning) and the table must have no other rows.
func TestDocMatchesKeys(t *testing.T) {
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("read %s: %v", docPath, err)
	}
	doc := string(raw)
	before, rest, ok1 := strings.Cut(doc, docBegin)
	table, after, ok2 := strings.Cut(rest, docEnd)
	if !ok1 || !ok2 {
		t.Fatalf("%s lacks the markers %q and %q around the key table", docPath, docBegin, docEnd)
	}
	want := map[string]string{}
	lines := []string{"", docHeader, docDivider}
	for _, k := range Keys() {
		want[k.Name] = docRow(k)
		lines = append(lines, docRow(k))
	}
	generated := strings.Join(append(lines, ""), "\n")

	if *updateDoc {
		if err := os.WriteFile(docPath, []byte(before+docBegin+generated+docEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
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
			t.Errorf("%s documents %s, which is not in the key table", docPath, name)
		case seen[name]:
			t.Errorf("%s documents %s twice", docPath, name)
		case line != w:
			t.Errorf("%s row for %s disagrees with the code:\n doc:  %s\n code: %s", docPath, name, line, w)
		}
		seen[name] = true
	}
	for _, k := range Keys() {
		if !seen[k.Name] {
			t.Errorf("%s has no row for %s; add:\n%s", docPath, k.Name, want[k.Name])
		}
	}
}
