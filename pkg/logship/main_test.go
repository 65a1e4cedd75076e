package logship

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/logs"
)

// TestMain doubles the test binary as the shim-started logger (as the agent
// binary does in its hidden mode), so real containers write their
// json-files through pkg/logs; otherwise it runs the tests under testenv.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == logs.LoggerMode {
		if err := logs.RunShimLogger(context.Background(), os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(testenv.Main(m))
}
