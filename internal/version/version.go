// Package version holds the build version stamped in by the linker.
// Any berth package may import it.
package version

// Version is set with -ldflags "-X github.com/berth-dev/berth/internal/version.Version=...".
// It is a var only because the linker can stamp nothing else.
var Version = "dev"
