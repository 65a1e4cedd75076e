package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// cliEngine is what Docker and Podman share: a command-line client that
// starts a container with `run -d -p 80 IMAGE` (a dynamic host port for
// container port 80) and tells the port with `port ID 80/tcp`, as a user
// would script it. Each `run` is its own client process, so 20 containers
// at once are 20 concurrent clients.
type cliEngine struct {
	name    string
	program string
	global  []string // flags before the command (docker -H ...)
	env     []string
	runArgs []string // extra `run` flags (podman --network ...)
	image   string

	mu  sync.Mutex // guards ids
	ids []string
}

func (c *cliEngine) cli(ctx context.Context, args ...string) (string, error) {
	return command(ctx, c.env, c.program, slices.Concat(c.global, args)...)
}

func (c *cliEngine) launch(ctx context.Context, n int, up func(addr string)) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.runOne(ctx, up)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *cliEngine) runOne(ctx context.Context, up func(addr string)) error {
	args := append(append([]string{"run", "-d", "-p", "80"}, c.runArgs...), c.image)
	out, err := c.cli(ctx, args...)
	id := strings.TrimSpace(out)
	if id != "" {
		c.mu.Lock()
		c.ids = append(c.ids, id)
		c.mu.Unlock()
	}
	if err != nil {
		return err
	}
	out, err = c.cli(ctx, "port", id, "80/tcp")
	if err != nil {
		return err
	}
	// "0.0.0.0:49153" (and "[::]:49153" where IPv6 is on).
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	i := strings.LastIndexByte(first, ':')
	if i < 0 {
		return fmt.Errorf("%s port %s: unexpected answer %q", c.name, id, out)
	}
	up("127.0.0.1" + first[i:])
	return nil
}

// clear removes every container started, forcibly (SIGKILL).
func (c *cliEngine) clear(ctx context.Context) error {
	c.mu.Lock()
	ids := c.ids
	c.ids = nil
	c.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	args := []string{"rm", "-f"}
	if c.name == "podman" {
		args = append(args, "-t", "0")
	}
	if _, err := c.cli(ctx, append(args, ids...)...); err != nil {
		c.mu.Lock()
		c.ids = append(c.ids, ids...) // tried again by the next clear
		c.mu.Unlock()
		return err
	}
	return nil
}

// dockerEngine is a private dockerd from Debian's docker.io with its own
// data root, exec root, socket and bridge, and otherwise Docker's defaults:
// its own managed containerd, iptables rules, and the userland proxy
// (docker-proxy) for every published port.
type dockerEngine struct {
	cliEngine
	dir, bridge, subnet string
	daemon              *daemonProc
	saved               sysctls
}

func startDocker(ctx context.Context, s *setup) (*dockerEngine, error) {
	dir := filepath.Join(s.dir, "docker")
	e := &dockerEngine{dir: dir, bridge: s.names.dockerBridge, subnet: s.names.dockerSubnet}
	if err := e.refuseForeignDaemon(); err != nil {
		return nil, err
	}
	// Docker turns bridge netfilter on; these are put back at the end.
	e.saved = saveSysctls("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")
	if err := e.sweepHost(ctx); err != nil {
		return e, fmt.Errorf("docker: remove an earlier run's leftovers: %w", err)
	}
	dockerd, err := findBinary("/usr/sbin/dockerd")
	if err != nil {
		return e, err
	}
	// Debian's client, not another docker on PATH.
	client, err := findBinary("/usr/bin/docker")
	if err != nil {
		return e, err
	}
	gw, err := gatewayCIDR(e.subnet)
	if err != nil {
		return e, err
	}
	if err := addBridge(ctx, e.bridge, gw); err != nil {
		return e, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return e, err
	}
	sock := filepath.Join(dir, "docker.sock")
	e.cliEngine = cliEngine{name: "docker", program: client, image: s.image,
		global: []string{"-H", "unix://" + sock}, env: []string{"DOCKER_CONFIG=" + filepath.Join(dir, "cli")}}
	e.daemon, err = startDaemonProc(nil, filepath.Join(dir, "dockerd.log"), dockerd,
		"--data-root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"), "-H", "unix://"+sock, "--bridge", e.bridge)
	if err != nil {
		return e, err
	}
	err = e.daemon.waitFor(ctx, "docker: dockerd answers", time.Minute, func() error {
		_, err := e.cli(ctx, "version")
		return err
	})
	if err != nil {
		return e, err
	}
	// The loopback registry is plain HTTP; Docker allows that for
	// 127.0.0.0/8 without configuration.
	if _, err := e.cli(ctx, "pull", "-q", s.image); err != nil {
		return e, err
	}
	return e, nil
}

// refuseForeignDaemon fails when another dockerd runs: Docker's iptables
// chains are host-wide, so a private daemon would share and then remove
// them.
func (e *dockerEngine) refuseForeignDaemon() error {
	pids, err := procsNamed("dockerd", func(a []string) bool { return !anyArgHas(a, e.dir) })
	if err != nil {
		return err
	}
	if len(pids) > 0 {
		return fmt.Errorf("docker: another dockerd runs (pid %d); its iptables chains would be shared with the benchmark's private daemon: stop it, or leave docker out with -engines", pids[0])
	}
	return nil
}

// gatewayCIDR is the first address of subnet with its prefix length.
func gatewayCIDR(subnet string) (string, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return "", err
	}
	return netip.PrefixFrom(p.Addr().Next(), p.Bits()).String(), nil
}

func (e *dockerEngine) memory() ([]procGroup, error) {
	exec := filepath.Join(e.dir, "exec")
	ctrd, err := procsNamed("containerd", func(a []string) bool { return anyArgHas(a, exec) })
	if err != nil {
		return nil, err
	}
	subnet := netip.MustParsePrefix(e.subnet)
	proxies, err := procsNamed("docker-proxy", func(a []string) bool {
		ip, err := netip.ParseAddr(argAfter(a, "-container-ip"))
		return err == nil && subnet.Contains(ip)
	})
	if err != nil {
		return nil, err
	}
	shims, err := procsNamed("containerd-shim-runc-v2", func(a []string) bool { return anyArgHas(a, exec) })
	if err != nil {
		return nil, err
	}
	return []procGroup{
		newGroup("dockerd", true, []int{e.daemon.pid()}),
		newGroup("containerd (dockerd's own)", true, ctrd),
		newGroup("docker-proxy", true, proxies),
		newGroup("containerd-shim-runc-v2", false, shims),
	}, nil
}

// close removes the containers and the image, stops dockerd (which stops
// its containerd), and removes what it leaves: iptables chains and rules,
// the bridge, mounts; kernel settings it changed are put back.
func (e *dockerEngine) close(ctx context.Context) error {
	var errs []error
	if e.daemon != nil && !e.daemon.exited() {
		if out, err := e.cli(ctx, "ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			_, err = e.cli(ctx, append([]string{"rm", "-f"}, strings.Fields(out)...)...)
			errs = append(errs, err)
		}
		e.daemon.stop(time.Minute)
	}
	errs = append(errs, e.sweepHost(ctx), e.saved.restore(), unmountUnder(e.dir))
	return errors.Join(errs...)
}

// sweepHost removes Docker's iptables chains and every rule that jumps to
// them or names the benchmark's bridge or subnet, and the bridge. It runs
// only while no other dockerd runs (refuseForeignDaemon).
func (e *dockerEngine) sweepHost(ctx context.Context) error {
	if err := e.refuseForeignDaemon(); err != nil {
		return err
	}
	docker := func(c string) bool { return strings.HasPrefix(c, "DOCKER") }
	err := removeIPTables(ctx, func(chain string, args []string) bool {
		return docker(chain) || docker(jumpsTo(args)) || anyArgHas(args, e.bridge) || anyArgHas(args, e.subnet)
	}, docker)
	return errors.Join(err, delLink(ctx, e.bridge))
}
