package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testenv"
)

// podmanEngine is Debian's podman, rootful, with its own storage (graph
// root and run root), its own network configuration directory holding one
// bridge network of the benchmark's (netavark, DNS off as on Docker's
// default bridge), and otherwise podman's defaults (conmon per container,
// the OCI runtime it finds). The configuration reaches every podman call
// through CONTAINERS_CONF and CONTAINERS_STORAGE_CONF.
type podmanEngine struct {
	cliEngine
	dir, bridge, subnet string
}

// podmanNetwork is the network's name, in `run --network`.
const podmanNetwork = "bench-peers"

func startPodman(ctx context.Context, s *setup) (*podmanEngine, error) {
	dir := filepath.Join(s.dir, "podman")
	e := &podmanEngine{dir: dir, bridge: s.names.podmanBridge, subnet: s.names.podmanSubnet}
	if err := e.sweepHost(ctx); err != nil {
		return e, fmt.Errorf("podman: remove an earlier run's leftovers: %w", err)
	}
	program, err := findBinary("/usr/bin/podman")
	if err != nil {
		return e, err
	}
	for _, d := range []string{"net", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return e, err
		}
	}
	if err := e.writeConfig(s.shared.Snapshotter); err != nil {
		return e, err
	}
	runArgs := []string{"--network", podmanNetwork}
	if !hasCapability(unix.CAP_SYS_RESOURCE) {
		// Rootful podman gives containers RLIMIT_NOFILE and RLIMIT_NPROC of
		// 1048576 (and lowers its own RLIMIT_NPROC), which runc cannot set
		// without CAP_SYS_RESOURCE (a sandbox, a container host); podman
		// 4.3 applies neither "--ulimit host" nor the limits of this process
		// to pulled images. Lowering always works: nofile 1024 is what
		// containerd's default spec gives the other engines' containers,
		// and root in a container is exempt from nproc.
		runArgs = append(runArgs, "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
	}
	e.cliEngine = cliEngine{name: "podman", program: program, image: s.image, runArgs: runArgs,
		env: []string{"CONTAINERS_CONF=" + filepath.Join(dir, "containers.conf"), "CONTAINERS_STORAGE_CONF=" + filepath.Join(dir, "storage.conf")}}
	if _, err := e.cli(ctx, "pull", "-q", "--tls-verify=false", s.image); err != nil {
		return e, err
	}
	return e, nil
}

// writeConfig writes containers.conf, storage.conf and the network.
func (e *podmanEngine) writeConfig(snapshotter string) error {
	var conf strings.Builder
	fmt.Fprintf(&conf, "[engine]\ntmp_dir = %q\n", filepath.Join(e.dir, "tmp"))
	if !systemdRuns() {
		// Podman's defaults (systemd cgroups, journald events) need systemd.
		fmt.Fprintf(&conf, "cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = %q\n",
			filepath.Join(e.dir, "events.log"))
	}
	fmt.Fprintf(&conf, "\n[network]\nnetwork_backend = \"netavark\"\nnetwork_config_dir = %q\n", filepath.Join(e.dir, "net"))
	driver := "overlay"
	if snapshotter != testenv.SnapshotterOverlay {
		driver = "vfs" // where containerd cannot use overlay, neither can podman
	}
	storage := fmt.Sprintf("[storage]\ndriver = %q\nrunroot = %q\ngraphroot = %q\n", driver, filepath.Join(e.dir, "run"), filepath.Join(e.dir, "root"))
	gw, err := gatewayCIDR(e.subnet)
	if err != nil {
		return err
	}
	// netavark's network file; `podman network create` of podman 4.3 has
	// no flag for the bridge's name.
	network, err := json.MarshalIndent(map[string]any{
		"name": podmanNetwork, "id": strings.Repeat("b1", 32), "driver": "bridge",
		"network_interface": e.bridge, "created": "2026-01-01T00:00:00Z",
		"subnets":      []map[string]string{{"subnet": e.subnet, "gateway": strings.Split(gw, "/")[0]}},
		"ipv6_enabled": false, "internal": false, "dns_enabled": false,
		"ipam_options": map[string]string{"driver": "host-local"},
	}, "", "  ")
	if err != nil {
		return err
	}
	for name, data := range map[string]string{
		"containers.conf":                conf.String(),
		"storage.conf":                   storage,
		"net/" + podmanNetwork + ".json": string(network),
	} {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(data), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// hasCapability reports whether this process has capability c in its
// effective set.
func hasCapability(c int) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<c) != 0
		}
	}
	return false
}

// systemdRuns reports whether systemd is the init system.
func systemdRuns() bool {
	_, err := os.Stat("/run/systemd/system")
	return err == nil
}

// memory is every conmon of this podman and any other process whose
// command line names its directories (none were seen: podman has no
// daemon, netavark runs only while a container's network is set up, and
// aardvark-dns only for networks with DNS).
func (e *podmanEngine) memory() ([]procGroup, error) {
	pids, err := testenv.FindProcs(func(a []string) bool { return anyArgHas(a, e.dir) })
	if err != nil {
		return nil, err
	}
	byName := map[string][]int{}
	for _, pid := range pids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		name := strings.TrimSpace(string(b))
		byName[name] = append(byName[name], pid)
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	var groups []procGroup
	for _, n := range names {
		groups = append(groups, newGroup(n, true, byName[n]))
	}
	return groups, nil
}

// close removes the containers and images, then what netavark leaves on
// the host (its chains, the bridge) and the storage's mounts.
func (e *podmanEngine) close(ctx context.Context) error {
	var errs []error
	if e.program != "" {
		if _, err := e.cli(ctx, "rm", "-af", "-t", "0"); err != nil {
			errs = append(errs, err)
		}
		if _, err := e.cli(ctx, "rmi", "-af"); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, e.sweepHost(ctx), unmountUnder(e.dir))
	return errors.Join(errs...)
}

// sweepHost removes the rules that name the benchmark's bridge or subnet
// and the bridge; netavark's shared chains too when no other podman
// container runs (no conmon outside the benchmark's directory).
func (e *podmanEngine) sweepHost(ctx context.Context) error {
	others, err := procsNamed("conmon", func(a []string) bool { return !anyArgHas(a, e.dir) })
	if err != nil {
		return err
	}
	netavark := func(c string) bool { return len(others) == 0 && strings.HasPrefix(c, "NETAVARK") }
	err = removeIPTables(ctx, func(chain string, args []string) bool {
		return netavark(chain) || netavark(jumpsTo(args)) || anyArgHas(args, e.bridge) || anyArgHas(args, e.subnet)
	}, netavark)
	return errors.Join(err, delLink(ctx, e.bridge))
}
