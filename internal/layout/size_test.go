package layout

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// maxClusterFileLines is issue 15's bound on a file of the endpoint
// (pkg/cluster and below, tests included): a file that grows past it is
// split by what its parts own.
const maxClusterFileLines = 600

// oversized reports the files of lines (path → line count) longer than
// limit, sorted by path.
func oversized(lines map[string]int, limit int) []string {
	var out []string
	for path, n := range lines {
		if n > limit {
			out = append(out, fmt.Sprintf("%s: %d lines, more than %d: split it by what its parts own", path, n, limit))
		}
	}
	sort.Strings(out)
	return out
}

func TestClusterFileSizes(t *testing.T) {
	lines := map[string]int{}
	err := filepath.WalkDir("../../pkg/cluster", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		lines[strings.TrimPrefix(path, "../../")] = bytes.Count(src, []byte("\n"))
		return nil
	})
	if err != nil {
		t.Fatalf("walk pkg/cluster: %v", err)
	}
	if len(lines) < 50 {
		t.Fatalf("found only %d Go files under pkg/cluster: wrong directory?", len(lines))
	}
	for _, v := range oversized(lines, maxClusterFileLines) {
		t.Error(v)
	}
}

// TestFileSizeRuleFires proves the bound catches a file one line over it
// and passes one at it.
func TestFileSizeRuleFires(t *testing.T) {
	got := oversized(map[string]int{"pkg/cluster/a.go": 601, "pkg/cluster/b.go": 600}, 600)
	if len(got) != 1 || !strings.HasPrefix(got[0], "pkg/cluster/a.go: 601 lines") {
		t.Fatalf("oversized = %q, want only a.go", got)
	}
}
