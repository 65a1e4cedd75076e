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

// TestImageUserData checks that the ecs.config the example user data writes
// is one berth-agent accepts, so the documented way to launch the image
// works as shown.
func TestImageUserData(t *testing.T) {
	root := repoRoot(t)
	text := readFile(t, filepath.Join(root, "packaging/image/user-data.example.yaml"))
	// The file is ours and simple: the content block of the write_files
	// entry for /etc/ecs/ecs.config, indented under "content: |".
	_, rest, ok := strings.Cut(text, "path: /etc/ecs/ecs.config")
	if !ok {
		t.Fatal("user-data.example.yaml writes no /etc/ecs/ecs.config")
	}
	_, rest, ok = strings.Cut(rest, "content: |\n")
	if !ok {
		t.Fatal("no content block for /etc/ecs/ecs.config")
	}
	var lines []string
	for _, line := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(line, "      ") {
			break
		}
		lines = append(lines, strings.TrimSpace(line))
	}
	for _, key := range []string{"ECS_CLUSTER=", "ECS_BACKEND_HOST=", "AWS_REGION=", "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, key) }) {
			t.Errorf("the example ecs.config does not set %s...: %q", key, lines)
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ecs.config")
	writeFile(t, cfg, strings.Join(lines, "\n")+"\n", 0o600)
	bin := filepath.Join(dir, "berth-agent")
	mustRun(t, root, []string{"CGO_ENABLED=0"}, "go", "build", "-o", bin, "./cmd/agent")
	out := mustRun(t, "", nil, bin, "check", "--config", cfg)
	if !strings.Contains(out, "configuration OK (0 warning(s))") {
		t.Errorf("berth-agent check of the example user data's ecs.config:\n%s", out)
	}
}
