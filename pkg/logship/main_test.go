package logship

import (
	"os"
	"testing"

	"github.com/berth-dev/berth/internal/testenv/agentproc"
)

// TestMain doubles the test binary as the shim-started logger (as the agent
// binary does in its hidden mode), so real containers write their
// json-files through pkg/logs; otherwise it runs the tests under testenv.
func TestMain(m *testing.M) { os.Exit(agentproc.Main(m, "", nil)) }
