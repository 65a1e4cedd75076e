package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/pkg/introspection"
	"github.com/berth-dev/berth/pkg/network"
)

// pendingCleanup maps what the network retries onto the introspection
// API's /v1/cleanup.
func pendingCleanup(nw *network.Sandboxer) func() []introspection.PendingCleanup {
	return func() []introspection.PendingCleanup {
		var out []introspection.PendingCleanup
		for _, l := range nw.Pending() {
			out = append(out, introspection.PendingCleanup{Resource: l.Resource, Task: l.Owner, Error: l.Err,
				Attempts: l.Attempts, Since: l.Since, NextAttempt: l.NextAttempt})
		}
		return out
	}
}

// logRemover deletes a container's json-file log and its rotated files.
type logRemover struct{}

func (logRemover) RemoveLogs(ctx context.Context, path string) error {
	// Rotated files are path.1, path.2, ... (see logs.Config).
	rotated, err := filepath.Glob(path + ".*")
	if err != nil {
		return fmt.Errorf("list rotated logs of %s: %w", path, err)
	}
	var errs []error
	for _, p := range append(rotated, path) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
