package packaging

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

// The files each package installs, with type and permission bits.
type wantFile struct {
	path  string
	mode  fs.FileMode // permission bits, plus fs.ModeDir for directories
	owner string      // user name; "" means root
	group string      // group name; "" means root
}

var agentFiles = []wantFile{
	{path: "/usr/bin/berth-agent", mode: 0o755},
	{path: "/usr/bin/berth-logd", mode: 0o755},
	{path: "/lib/systemd/system/berth-agent.service", mode: 0o644},
	{path: "/etc/ecs/ecs.config", mode: 0o600},
	{path: "/etc/berth/agent.toml", mode: 0o644},
	{path: "/var/lib/berth", mode: fs.ModeDir | 0o700},
	{path: "/var/log/ecs", mode: fs.ModeDir | 0o750},
	{path: "/usr/share/doc/berth-agent/copyright", mode: 0o644},
}

var clusterFiles = []wantFile{
	{path: "/usr/bin/berth-cluster", mode: 0o755},
	{path: "/lib/systemd/system/berth-cluster.service", mode: 0o644},
	{path: "/usr/lib/sysusers.d/berth-cluster.conf", mode: 0o644},
	{path: "/etc/berth/cluster.toml", mode: 0o640, group: "berth-cluster"},
	{path: "/var/lib/berth-cluster", mode: fs.ModeDir | 0o750, owner: "berth-cluster", group: "berth-cluster"},
	{path: "/usr/share/doc/berth-cluster/copyright", mode: 0o644},
}

var lbFiles = []wantFile{
	{path: "/usr/bin/berth-lb", mode: 0o755},
	{path: "/lib/systemd/system/berth-lb.service", mode: 0o644},
	{path: "/etc/berth/lb.toml", mode: 0o600},
	{path: "/usr/share/doc/berth-lb/copyright", mode: 0o644},
}

// packages are the three packages make package builds.
var packages = []string{"berth-agent", "berth-cluster", "berth-lb"}

const wantsDir = "/etc/systemd/system/multi-user.target.wants"

// TestPackages builds the six packages with `make package`, inspects the
// .rpm files, then installs, upgrades, removes and purges the .deb files on
// this machine, checking the files, the maintainer scripts' effects and the
// installed units at each step. It changes the host, so it runs only as
// root, refuses to run over an existing Berth installation, and purges what
// it installed even when it fails.
func TestPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the package install test")
	}
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "make", "git", "dpkg", "dpkg-deb", "dpkg-query")
	// The agent package depends on these; the test installs it without
	// --force-depends, so they must be present. The dev-mode step runs a
	// task with them.
	testenv.RequireBinaries(t, "containerd", "runc", "iptables", "ip")
	rpmPath := requireTool(t, "rpm", "rpm")
	analyze := requireTool(t, "systemd-analyze", "systemd")
	lockHost(t)
	hostIsClean(t)
	clusterUserExisted := userExists("berth-cluster")
	t.Cleanup(func() {
		// Purge whatever got installed, then the system user the
		// package created (packages keep it on purge, by policy).
		// t.Context() is already cancelled when clean-ups run.
		for _, pkg := range packages {
			if installed(pkg) {
				if out, err := runCmd(context.Background(), "", nil, "dpkg", "--purge", pkg); err != nil {
					t.Errorf("clean-up: %v\n%s", err, out)
				}
			}
		}
		if !clusterUserExisted && userExists("berth-cluster") {
			if out, err := runCmd(context.Background(), "", nil, "userdel", "berth-cluster"); err != nil {
				t.Errorf("clean-up: %v\n%s", err, out)
			}
		}
	})

	root := repoRoot(t)
	dist, bin := t.TempDir(), t.TempDir()
	mustRun(t, root, nil, "make", "package", "DIST="+dist, "PACKAGE_BIN="+bin)
	debs := map[string]string{
		"berth-agent":   globOne(t, dist, "berth-agent_*.deb"),
		"berth-cluster": globOne(t, dist, "berth-cluster_*.deb"),
		"berth-lb":      globOne(t, dist, "berth-lb_*.deb"),
	}
	rpms := map[string]string{
		"berth-agent":   globOne(t, dist, "berth-agent-*.rpm"),
		"berth-cluster": globOne(t, dist, "berth-cluster-*.rpm"),
		"berth-lb":      globOne(t, dist, "berth-lb-*.rpm"),
	}
	if entries, _ := os.ReadDir(dist); len(entries) != 6 {
		t.Errorf("make package wrote %d files to %s, want 6 (.deb and .rpm of each)", len(entries), dist)
	}
	// One version everywhere: scripts/version.sh's, as make stamped it
	// into the binaries, is the packages' (.deb here, .rpm in checkRPMs),
	// the binaries' --version, and what the agent sends and shows
	// (checkVersionOnTheWire, and dev mode in checkDevModeTask).
	version := strings.TrimSpace(mustRun(t, "", nil, "dpkg-deb", "--field", debs["berth-agent"], "Version"))
	if want := strings.TrimSpace(mustRun(t, root, nil, "./scripts/version.sh")); version != want {
		t.Errorf("berth-agent .deb version %q, want scripts/version.sh's %q", version, want)
	}
	for _, pkg := range []string{"berth-cluster", "berth-lb"} {
		if got := strings.TrimSpace(mustRun(t, "", nil, "dpkg-deb", "--field", debs[pkg], "Version")); got != version {
			t.Errorf("%s .deb version %q, want berth-agent's %q", pkg, got, version)
		}
	}

	t.Run("rpm", func(t *testing.T) { checkRPMs(t, rpmPath, rpms, version) })

	if got := mustRun(t, "", nil, "dpkg-deb", "--field", debs["berth-agent"], "Depends"); strings.TrimSpace(got) != "containerd, runc, containernetworking-plugins, iptables" {
		t.Errorf("berth-agent Depends = %q", strings.TrimSpace(got))
	}
	if got := mustRun(t, "", nil, "dpkg-deb", "--field", debs["berth-lb"], "Depends"); strings.TrimSpace(got) != "haproxy" {
		t.Errorf("berth-lb Depends = %q", strings.TrimSpace(got))
	}

	mustRun(t, "", nil, "dpkg", "--install", debs["berth-agent"], debs["berth-cluster"], debs["berth-lb"])
	checkFiles(t, agentFiles, true)
	checkFiles(t, clusterFiles, true)
	checkFiles(t, lbFiles, true)
	checkVersion(t, "/usr/bin/berth-agent", "berth-agent", version)
	checkVersion(t, "/usr/bin/berth-logd", "berth-logd", version)
	checkVersion(t, "/usr/bin/berth-cluster", "berth-cluster", version)
	checkVersion(t, "/usr/bin/berth-lb", "berth-lb", version)
	for _, pkg := range packages {
		checkExists(t, filepath.Join(wantsDir, pkg+".service"), true, "postinst enables "+pkg)
	}
	conffiles := mustRun(t, "", nil, "dpkg-query", "--show", "--showformat=${Conffiles}\n", "berth-agent", "berth-cluster", "berth-lb")
	for _, f := range []string{"/etc/ecs/ecs.config", "/etc/berth/agent.toml", "/etc/berth/cluster.toml", "/etc/berth/lb.toml"} {
		if !strings.Contains(conffiles, f) {
			t.Errorf("%s is not a conffile; dpkg lists:\n%s", f, conffiles)
		}
	}
	out, err := runCmd(t.Context(), "", nil, analyze, "verify",
		"/lib/systemd/system/berth-agent.service", "/lib/systemd/system/berth-cluster.service", "/lib/systemd/system/berth-lb.service")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify of the installed units: err=%v, want no error and no output:\n%s", err, out)
	}
	checkShippedConfigs(t)
	t.Run("version on the wire", func(t *testing.T) { checkVersionOnTheWire(t, version) })
	t.Run("dev-mode task", func(t *testing.T) { checkDevModeTask(t, version) })

	// An upgrade keeps an edited configuration file. A second build of the
	// same binaries under a later version stands in for the next release.
	const edited = "ECS_CLUSTER=kept-on-upgrade\n"
	writeFile(t, "/etc/ecs/ecs.config", edited, 0o600)
	next := t.TempDir()
	mustRun(t, root, []string{"BIN=" + bin, "DIST=" + next, "VERSION=99.0.0"}, "./scripts/package.sh")
	mustRun(t, "", nil, "dpkg", "--install", globOne(t, next, "berth-agent_*.deb"))
	if got := strings.TrimSpace(mustRun(t, "", nil, "dpkg-query", "--show", "--showformat=${Version}", "berth-agent")); got != "99.0.0" {
		t.Errorf("after the upgrade berth-agent is at %q, want 99.0.0", got)
	}
	if got := readFile(t, "/etc/ecs/ecs.config"); got != edited {
		t.Errorf("the upgrade replaced the edited ecs.config; now:\n%s", got)
	}

	// Removal keeps configuration and data, and only those.
	writeFile(t, "/var/lib/berth/berth.db", "state", 0o600)
	writeFile(t, "/var/lib/berth-cluster/cluster.db", "state", 0o600)
	mustRun(t, "", nil, "dpkg", "--remove", "berth-agent", "berth-cluster", "berth-lb")
	for _, f := range slices.Concat(agentFiles, clusterFiles, lbFiles) {
		kept := strings.HasPrefix(f.path, "/etc/") || strings.HasPrefix(f.path, "/var/lib/")
		checkExists(t, f.path, kept, "after dpkg --remove")
	}
	for _, pkg := range packages {
		checkExists(t, filepath.Join(wantsDir, pkg+".service"), false, "prerm disables "+pkg)
	}
	checkExists(t, "/var/lib/berth/berth.db", true, "agent data after dpkg --remove")
	checkExists(t, "/var/lib/berth-cluster/cluster.db", true, "cluster data after dpkg --remove")

	// A purge removes configuration and data too.
	mustRun(t, "", nil, "dpkg", "--purge", "berth-agent", "berth-cluster", "berth-lb")
	for _, p := range []string{"/etc/ecs", "/etc/berth", "/var/lib/berth", "/var/lib/berth-cluster", "/var/log/ecs"} {
		checkExists(t, p, false, "after dpkg --purge")
	}
}

// lockHost serialises this test across processes: `go test ./...` run by
// two people (or two packages' worth of CI) on one host would otherwise
// install and purge the same packages under each other. The lock is
// released by the last clean-up, after the purge.
func lockHost(t *testing.T) {
	t.Helper()
	const path = "/run/lock/berth-packaging-test.lock"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("open the host lock: %v", err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", path, err)
	}
}

// hostIsClean stops the test when Berth is already installed or its paths
// are in use: the test would otherwise remove someone's installation.
func hostIsClean(t *testing.T) {
	t.Helper()
	var busy []string
	for _, pkg := range packages {
		if installed(pkg) {
			busy = append(busy, "package "+pkg+" is installed")
		}
	}
	for _, p := range []string{"/etc/ecs", "/etc/berth", "/var/lib/berth", "/var/lib/berth-cluster", "/var/log/ecs"} {
		if _, err := os.Lstat(p); err == nil {
			busy = append(busy, p+" exists")
		}
	}
	if len(busy) == 0 {
		return
	}
	msg := "this host already has Berth files (" + strings.Join(busy, "; ") + "); the test installs and purges the packages, so it runs only on a host without them"
	if testenv.InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// installed reports whether dpkg has pkg installed or half-installed.
func installed(pkg string) bool {
	out, err := exec.Command("dpkg-query", "--show", "--showformat=${db:Status-Status}", pkg).Output()
	return err == nil && strings.TrimSpace(string(out)) != "" && strings.TrimSpace(string(out)) != "not-installed"
}

func userExists(name string) bool {
	_, err := user.Lookup(name)
	return err == nil
}

func globOne(t *testing.T, dir, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(m) != 1 {
		t.Fatalf("want exactly one %s in %s, found %q (%v)", pattern, dir, m, err)
	}
	return m[0]
}

// checkFiles compares type, permissions and ownership of installed files.
func checkFiles(t *testing.T, files []wantFile, present bool) {
	t.Helper()
	for _, f := range files {
		st, err := os.Lstat(f.path)
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		if got := st.Mode() & (fs.ModeType | fs.ModePerm); got != f.mode {
			t.Errorf("%s has mode %v, want %v", f.path, got, f.mode)
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			continue
		}
		if got, want := userName(sys.Uid), or(f.owner, "root"); got != want {
			t.Errorf("%s is owned by %s, want %s", f.path, got, want)
		}
		if got, want := groupName(sys.Gid), or(f.group, "root"); got != want {
			t.Errorf("%s has group %s, want %s", f.path, got, want)
		}
	}
}

func checkExists(t *testing.T, path string, want bool, when string) {
	t.Helper()
	_, err := os.Lstat(path)
	switch {
	case want && err != nil:
		t.Errorf("%s: %s is missing: %v", when, path, err)
	case !want && err == nil:
		t.Errorf("%s: %s is still there", when, path)
	case !want && !errors.Is(err, fs.ErrNotExist):
		t.Errorf("%s: stat %s: %v", when, path, err)
	}
}

// checkVersion runs `binary --version`, which must print name and the
// package's version, exactly.
func checkVersion(t *testing.T, binary, name, pkgVersion string) {
	t.Helper()
	if got, want := strings.TrimSpace(mustRun(t, "", nil, binary, "--version")), name+" "+pkgVersion; got != want {
		t.Errorf("%s --version = %q, want %q", binary, got, want)
	}
}

// checkShippedConfigs proves that the commented configuration files name
// only real settings: with every commented assignment enabled, the
// installed binaries accept them.
func checkShippedConfigs(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	assign := regexp.MustCompile(`(?m)^#([A-Za-z_][A-Za-z0-9_]* ?=)`)

	agentCfg := assign.ReplaceAllString(readFile(t, "/etc/ecs/ecs.config"), "$1")
	agentCfg = strings.ReplaceAll(agentCfg, "ECS_DATADIR=/var/lib/berth", "ECS_DATADIR="+dir)
	writeFile(t, filepath.Join(dir, "ecs.config"), agentCfg, 0o600)
	out := mustRun(t, "", nil, "/usr/bin/berth-agent", "check", "--config", filepath.Join(dir, "ecs.config"))
	if !strings.Contains(out, "configuration OK (0 warning(s))") {
		t.Errorf("berth-agent check of ecs.config with every setting uncommented:\n%s", out)
	}

	clusterCfg := assign.ReplaceAllString(readFile(t, "/etc/berth/cluster.toml"), "$1")
	// The defaults as shipped name TLS files that do not exist here; only
	// the keys' names and value syntax are under test.
	clusterCfg = strings.ReplaceAll(clusterCfg, `data_dir = "/var/lib/berth-cluster"`, fmt.Sprintf("data_dir = %q", dir))
	writeFile(t, filepath.Join(dir, "cluster.toml"), clusterCfg, 0o600)
	if out, err := runCmd(t.Context(), "", nil, "/usr/bin/berth-cluster", "keys", "list", "--config", filepath.Join(dir, "cluster.toml")); err != nil {
		t.Errorf("berth-cluster rejects cluster.toml with every setting uncommented: %v\n%s", err, out)
	}

	lbCfg := assign.ReplaceAllString(readFile(t, "/etc/berth/lb.toml"), "$1")
	writeFile(t, filepath.Join(dir, "lb.toml"), lbCfg, 0o600)
	if out, err := runCmd(t.Context(), "", nil, "/usr/bin/berth-lb", "--check", "--config", filepath.Join(dir, "lb.toml")); err != nil {
		t.Errorf("berth-lb rejects lb.toml with every setting uncommented: %v\n%s", err, out)
	}
}

// checkRPMs inspects the .rpm files: contents, config files, dependencies,
// version and scriptlets.
func checkRPMs(t *testing.T, rpmPath string, rpms map[string]string, debVersion string) {
	query := func(file string, args ...string) string {
		return mustRun(t, "", nil, rpmPath, append([]string{"-qp", "--nosignature", "--nodigest"}, append(args, file)...)...)
	}
	for pkg, file := range rpms {
		files := map[string][]wantFile{"berth-agent": agentFiles, "berth-cluster": clusterFiles, "berth-lb": lbFiles}[pkg]
		listed := strings.Fields(query(file, "--list"))
		for _, f := range files {
			if !slices.Contains(listed, f.path) {
				t.Errorf("%s does not contain %s; it lists %q", filepath.Base(file), f.path, listed)
			}
		}
		confs := map[string][]string{"berth-agent": {"/etc/berth/agent.toml", "/etc/ecs/ecs.config"}, "berth-cluster": {"/etc/berth/cluster.toml"}, "berth-lb": {"/etc/berth/lb.toml"}}[pkg]
		if got := strings.Fields(query(file, "--configfiles")); !slices.Equal(got, confs) {
			t.Errorf("%s config files = %q, want %q", filepath.Base(file), got, confs)
		}
		// %{FILEFLAGS} bit 16 is RPMFILE_NOREPLACE; bit 1 RPMFILE_CONFIG.
		flags := query(file, "--queryformat", "[%{FILENAMES} %{FILEFLAGS}\n]")
		for _, conf := range confs {
			if !strings.Contains(flags, conf+" 17\n") {
				t.Errorf("%s: %s is not %%config(noreplace); flags:\n%s", filepath.Base(file), conf, flags)
			}
		}
		if got := query(file, "--queryformat", "%{VERSION}"); got != debVersion {
			t.Errorf("%s version %q, want the .deb's %q", filepath.Base(file), got, debVersion)
		}
		scripts := query(file, "--scripts")
		for _, s := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet"} {
			if !strings.Contains(scripts, s) {
				t.Errorf("%s has no %s:\n%s", filepath.Base(file), s, scripts)
			}
		}
	}
	requires := strings.Fields(query(rpms["berth-agent"], "--requires"))
	for _, dep := range []string{"containerd", "runc", "containernetworking-plugins", "iptables"} {
		if !slices.Contains(requires, dep) {
			t.Errorf("berth-agent rpm does not require %s; requires %q", dep, requires)
		}
	}
	if requires := strings.Fields(query(rpms["berth-lb"], "--requires")); !slices.Contains(requires, "haproxy") {
		t.Errorf("berth-lb rpm does not require haproxy; requires %q", requires)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func userName(uid uint32) string {
	if u, err := user.LookupId(fmt.Sprint(uid)); err == nil {
		return u.Username
	}
	return fmt.Sprint(uid)
}

func groupName(gid uint32) string {
	if g, err := user.LookupGroupId(fmt.Sprint(gid)); err == nil {
		return g.Name
	}
	return fmt.Sprint(gid)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
