// Package layout holds only a test: it runs `go list` over the module and
// fails when an import breaks the package layout of DESIGN.md (for example
// pkg/runtime importing pkg/config, or pkg/cluster importing pkg/engine).
// Nothing imports it.
package layout
