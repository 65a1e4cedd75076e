// Package layout holds only tests: layout_test.go runs `go list` over the
// module and fails when an import breaks the package layout of DESIGN.md
// (for example pkg/runtime importing pkg/config, or pkg/cluster importing
// pkg/engine); idents_test.go checks the seams an import rule cannot
// express, where a package may import another but not use some of its
// names (pkg/agent and pkg/engine never use pkg/api's TCS health types);
// size_test.go keeps every file of the endpoint (pkg/cluster) at 600 lines
// or fewer.
// Nothing imports it.
package layout
