package packaging

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// zeroSHA512 is a well-formed checksum that matches nothing.
var zeroSHA512 = "sha512:" + strings.Repeat("0", 128)

// TestPackerValidate validates the machine image recipe with Debian's
// packer. `packer validate` downloads a file: checksum list, and tests do
// not reach the internet, so the checksum is given literally; the rest of
// the template is validated as shipped, including that every file it
// uploads exists.
func TestPackerValidate(t *testing.T) {
	packer := requireTool(t, "packer", "packer")
	dir := filepath.Join(repoRoot(t), "packaging", "image")
	deb := filepath.Join(t.TempDir(), "berth-agent_0.0.0_amd64.deb")
	if err := os.WriteFile(deb, []byte("stand-in"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PACKER_CACHE_DIR=" + t.TempDir(), "CHECKPOINT_DISABLE=1"}
	mustRun(t, "", env, packer, "validate", "-var", "agent_deb="+deb, "-var", "image_checksum="+zeroSHA512, dir)
	// The shipped default checksum (a URL) passes the syntax check.
	mustRun(t, "", env, packer, "validate", "-syntax-only", "-var", "agent_deb="+deb, dir)

	// validate must notice a mistake, or passing proves nothing.
	out, err := runCmd(t.Context(), "", env, packer, "validate",
		"-var", "agent_deb="+filepath.Join(t.TempDir(), "absent.deb"), "-var", "image_checksum="+zeroSHA512, dir)
	if err == nil || !strings.Contains(out, "absent.deb") {
		t.Errorf("packer validate accepted a missing package file: err=%v\n%s", err, out)
	}
}

// TestVagrantValidate validates the lab's Vagrantfile with Debian's vagrant,
// for the default and a larger number of agent VMs, and checks that a bad
// BERTH_LAB_AGENTS is refused. --ignore-provider keeps the check independent
// of which provider plugin (libvirt, VirtualBox) the host has, if any.
func TestVagrantValidate(t *testing.T) {
	vagrant := requireTool(t, "vagrant", "vagrant")
	dir := filepath.Join(repoRoot(t), "lab")
	// Vagrant's per-user and per-project state goes to scratch directories.
	base := []string{"VAGRANT_HOME=" + t.TempDir(), "VAGRANT_DOTFILE_PATH=" + t.TempDir(),
		"VAGRANT_CHECKPOINT_DISABLE=1"}
	for _, agents := range []string{"", "5"} {
		env := append(slices.Clone(base), "BERTH_LAB_AGENTS="+agents)
		if agents == "" {
			env = base
		}
		out := mustRun(t, dir, env, vagrant, "validate", "--ignore-provider")
		if !strings.Contains(out, "validated successfully") {
			t.Errorf("vagrant validate (BERTH_LAB_AGENTS=%q) printed:\n%s", agents, out)
		}
	}
	out, err := runCmd(t.Context(), dir, append(slices.Clone(base), "BERTH_LAB_AGENTS=0"), vagrant, "validate", "--ignore-provider")
	if err == nil || !strings.Contains(out, "BERTH_LAB_AGENTS must be between 1 and 50") {
		t.Errorf("vagrant validate accepted BERTH_LAB_AGENTS=0: err=%v\n%s", err, out)
	}
}
