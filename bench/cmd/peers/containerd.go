package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	gocni "github.com/containerd/go-cni"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/pkg/network"
)

// containerdEngine starts the containers with the containerd client, like
// the raw baselines of bench/cmd/e2e and bench/cmd/engine: image already
// unpacked, no log capture (null IO). Without CNI (the floor) each
// container runs in the host's network namespace and its httpd listens on
// a free port the benchmark picked, so "answers" means the server process
// is up and serving; with CNI each container gets a new netns set up by
// go-cni with the CNI plugins and configuration Berth's bridge mode uses
// (network.Conflist: bridge with host-local IPAM, portmap, firewall, plus
// loopback) and a portmap mapping from a free host port to port 80.
type containerdEngine struct {
	cli         *containerd.Client
	image       containerd.Image
	ns          string
	snapshotter string
	address     string
	// cni is nil for the raw engine.
	cni      gocni.CNI
	netnsDir string
	bridge   string

	mu      sync.Mutex // guards seq and running
	seq     int
	running []rawContainer
}

// rawContainer is what clear needs to remove one container again.
type rawContainer struct {
	id, netns string
	ports     []gocni.PortMapping
}

func startContainerdEngine(ctx context.Context, s *setup, withCNI bool) (*containerdEngine, error) {
	name := "raw"
	if withCNI {
		name = "cni"
	}
	e := &containerdEngine{ns: "bench-peers-" + name, snapshotter: s.shared.Snapshotter, address: s.shared.Address}
	cli, err := containerd.New(s.shared.Address)
	if err != nil {
		return nil, fmt.Errorf("%s: connect to containerd: %w", name, err)
	}
	e.cli = cli
	nctx := namespaces.WithNamespace(ctx, e.ns)
	e.image, err = cli.Pull(nctx, s.image, containerd.WithPullUnpack, containerd.WithPullSnapshotter(e.snapshotter),
		containerd.WithResolver(s.shared.Registry.Resolver()))
	if err != nil {
		return e, fmt.Errorf("%s: pull %s: %w", name, s.image, err)
	}
	if !withCNI {
		return e, nil
	}
	dir := filepath.Join(s.dir, "cni")
	e.netnsDir, e.bridge = filepath.Join(dir, "netns"), s.names.cniBridge
	conf, err := network.Conflist(network.Options{
		NetworkName: "bench-peers", Bridge: e.bridge, Subnet: s.names.cniSubnet, IPAMDir: filepath.Join(dir, "ipam"),
	})
	if err != nil {
		return e, err
	}
	// As pkg/network loads it: the conflist first (eth0), then loopback.
	e.cni, err = gocni.New(gocni.WithPluginDir(network.DefaultPluginDirs), gocni.WithInterfacePrefix("eth"),
		gocni.WithMinNetworkCount(2), gocni.WithConfListBytes(conf), gocni.WithLoNetwork)
	if err != nil {
		return e, fmt.Errorf("cni: load the configuration: %w", err)
	}
	return e, nil
}

func (e *containerdEngine) launch(ctx context.Context, n int, up func(addr string)) error {
	ctx = namespaces.WithNamespace(ctx, e.ns)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		e.mu.Lock()
		e.seq++
		c := rawContainer{id: fmt.Sprintf("%s-%d", e.ns, e.seq)}
		e.running = append(e.running, c)
		idx := len(e.running) - 1
		e.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			c, err = e.start(ctx, c, up)
			e.mu.Lock()
			e.running[idx] = c
			e.mu.Unlock()
			errs[i] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// start starts one container; the returned record holds what was set up
// so far, also on failure.
func (e *containerdEngine) start(ctx context.Context, c rawContainer, up func(addr string)) (rawContainer, error) {
	port, err := freePort()
	if err != nil {
		return c, err
	}
	opts := []oci.SpecOpts{oci.WithImageConfig(e.image)}
	if e.cni == nil {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithProcessArgs(httpdArgs(port)...))
	} else {
		c.netns, err = network.CreateNetns(e.netnsDir, c.id)
		if err != nil {
			return c, err
		}
		c.ports = []gocni.PortMapping{{HostPort: int32(port), ContainerPort: 80, Protocol: "tcp"}}
		if _, err := e.cni.Setup(ctx, c.id, c.netns, gocni.WithCapabilityPortMap(c.ports)); err != nil {
			return c, fmt.Errorf("cni: set up %s: %w", c.id, err)
		}
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: c.netns}))
	}
	up("127.0.0.1:" + strconv.Itoa(port))
	ctr, err := e.cli.NewContainer(ctx, c.id, containerd.WithSnapshotter(e.snapshotter),
		containerd.WithNewSnapshot(c.id, e.image), containerd.WithNewSpec(opts...))
	if err != nil {
		return c, fmt.Errorf("create %s: %w", c.id, err)
	}
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		return c, fmt.Errorf("create task %s: %w", c.id, err)
	}
	if err := task.Start(ctx); err != nil {
		return c, fmt.Errorf("start %s: %w", c.id, err)
	}
	return c, nil
}

func (e *containerdEngine) clear(ctx context.Context) error {
	ctx = namespaces.WithNamespace(ctx, e.ns)
	e.mu.Lock()
	running := e.running
	e.running = nil
	e.mu.Unlock()
	errs := make([]error, len(running))
	var wg sync.WaitGroup
	for i, c := range running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.remove(ctx, c)
		}()
	}
	wg.Wait()
	// What could not be removed is tried again by the next clear or close.
	e.mu.Lock()
	for i, c := range running {
		if errs[i] != nil {
			e.running = append(e.running, c)
		}
	}
	e.mu.Unlock()
	return errors.Join(errs...)
}

func (e *containerdEngine) remove(ctx context.Context, c rawContainer) error {
	var errs []error
	if ctr, err := e.cli.LoadContainer(ctx, c.id); err == nil {
		if task, err := ctr.Task(ctx, nil); err == nil {
			if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil {
				errs = append(errs, fmt.Errorf("delete task %s: %w", c.id, err))
			}
		}
		if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			errs = append(errs, fmt.Errorf("delete container %s: %w", c.id, err))
		}
	}
	if c.netns != "" {
		if err := e.cni.Remove(ctx, c.id, c.netns, gocni.WithCapabilityPortMap(c.ports)); err != nil {
			errs = append(errs, fmt.Errorf("cni: remove %s: %w", c.id, err))
		}
		if err := network.RemoveNetns(c.netns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *containerdEngine) memory() ([]procGroup, error) {
	return containerdGroups(e.address, e.ns)
}

// containerdGroups is the containerd that address belongs to and the shims
// of namespace ns: the processes every containerd-based engine has.
func containerdGroups(address, ns string) ([]procGroup, error) {
	daemon, err := procsNamed("containerd", func(a []string) bool { return anyArgHas(a, filepath.Dir(address)) })
	if err != nil {
		return nil, err
	}
	shims, err := procsNamed("containerd-shim-runc-v2", func(a []string) bool {
		return anyArgHas(a, address) && argAfter(a, "-namespace") == ns
	})
	if err != nil {
		return nil, err
	}
	return []procGroup{
		newGroup("containerd", false, daemon),
		newGroup("containerd-shim-runc-v2", false, shims),
	}, nil
}

// argAfter returns the argument after flag, or "".
func argAfter(args []string, flag string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			return args[i+1]
		}
	}
	return ""
}

func (e *containerdEngine) close(ctx context.Context) error {
	if e.cli == nil {
		return nil
	}
	errs := []error{e.clear(ctx), emptyNamespace(ctx, e.cli, e.ns)}
	if e.bridge != "" {
		errs = append(errs, delLink(ctx, e.bridge)) // CNI's bridge plugin leaves the bridge
	}
	if e.netnsDir != "" {
		// CreateNetns bound the directory onto itself (shared mount).
		errs = append(errs, network.ReleaseNetnsDir(e.netnsDir))
	}
	errs = append(errs, e.cli.Close())
	return errors.Join(errs...)
}
