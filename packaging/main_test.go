package packaging

import (
	"os"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestMain tears down the containerd and registry the dev-mode step starts.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
