package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TerraformPluginMirror is where the AWS provider is installed as a
// filesystem mirror on these machines.
const TerraformPluginMirror = "/opt/tf-plugins"

// Terraform writes config as main.tf in a new directory and returns a
// runner of terraform there, with the AWS provider from the filesystem
// mirror (no network) and no AWS_* or TF_* variable of the host
// (AWS_CA_BUNDLE would make the provider refuse a plain-HTTP endpoint);
// BERTH_TF_LOG and BERTH_TF_LOG_PATH become TF_LOG and TF_LOG_PATH. The
// runner fails the test unless terraform exits with wantExit and returns
// its output. A missing terraform or mirror skips the test (fails it
// under CI=true).
func Terraform(t testing.TB, config string) func(wantExit int, args ...string) string {
	t.Helper()
	tf, err := exec.LookPath("terraform")
	if err != nil {
		if tf, err = exec.LookPath("/usr/local/bin/terraform"); err != nil {
			missing(t, "terraform")
		}
	}
	if _, err := os.Stat(TerraformPluginMirror); err != nil {
		missing(t, "the Terraform provider mirror "+TerraformPluginMirror)
	}
	dir := t.TempDir()
	cli := filepath.Join(dir, "terraformrc")
	rc := `provider_installation {
  filesystem_mirror {
    path    = "` + TerraformPluginMirror + `"
    include = ["registry.terraform.io/hashicorp/aws"]
  }
}
`
	if err := os.WriteFile(cli, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "main.tf"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"TF_CLI_CONFIG_FILE=" + cli, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"TF_LOG=" + os.Getenv("BERTH_TF_LOG"), "TF_LOG_PATH=" + os.Getenv("BERTH_TF_LOG_PATH")}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "AWS_") && !strings.HasPrefix(e, "TF_") {
			env = append(env, e)
		}
	}
	return func(wantExit int, args ...string) string {
		t.Helper()
		cmd := exec.Command(tf, args...)
		cmd.Dir = work
		cmd.Env = env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		t.Logf("terraform %s: %s", args[0], time.Since(start).Round(time.Millisecond))
		code := 0
		if err != nil {
			code = -1
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
		}
		if code != wantExit {
			t.Fatalf("terraform %s: exit %d (%v), want %d:\n%s", strings.Join(args, " "), code, err, wantExit, out)
		}
		return string(out)
	}
}
