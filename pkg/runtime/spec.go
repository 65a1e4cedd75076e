package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/pkg/apparmor"
	"github.com/containerd/containerd/pkg/cap"
	"github.com/moby/sys/signal"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/selinux/go-selinux"
	"github.com/opencontainers/selinux/go-selinux/label"

	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/logs"
)

// createSpec is a container.Spec with its Docker-format strings read (tmpfs
// options, log options and their sizes): what create works from.
type createSpec struct {
	container.Spec
	tmpfs []tmpfsMount
	// log places the json-file; nil discards the output.
	log *logOptions
}

// tmpfsMount is a tmpfs mount with its size read.
type tmpfsMount struct {
	Destination string
	// Size in bytes; 0 means the kernel default (half of RAM).
	Size int64
	// Options are mount options such as "noexec" or "mode=1777".
	Options []string
}

// logOptions place a container's json-file log: Dir/<ID>-json.log, rotated
// at MaxSize bytes keeping MaxFile files.
type logOptions struct {
	Dir     string
	MaxSize int64
	MaxFile int
}

// readSpec reads spec's Docker-format strings: the image reference, the
// tmpfs options ("rw,size=16m,mode=1777") and the json-file's max-size and
// max-file. Its errors name the setting.
func readSpec(spec container.Spec) (createSpec, error) {
	ref, err := NormalizeReference(spec.Image)
	if err != nil {
		return createSpec{}, err
	}
	spec.Image = ref
	cs := createSpec{Spec: spec}
	for _, t := range spec.Tmpfs {
		tm, err := readTmpfs(t)
		if err != nil {
			return createSpec{}, err
		}
		cs.tmpfs = append(cs.tmpfs, tm)
	}
	if spec.Log.Driver != "none" && spec.LogPath != "" {
		lo := logOptions{Dir: filepath.Dir(spec.LogPath)}
		if v := spec.Log.Options["max-size"]; v != "" {
			n, err := parseSize(v)
			if err != nil {
				return createSpec{}, fmt.Errorf("log option max-size: %w", err)
			}
			lo.MaxSize = n
		}
		if v := spec.Log.Options["max-file"]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return createSpec{}, fmt.Errorf("log option max-file %q: %w", v, err)
			}
			lo.MaxFile = n
		}
		cs.log = &lo
	}
	return cs, nil
}

// readTmpfs splits Docker's tmpfs options ("rw,size=16m,mode=1777").
func readTmpfs(t container.Tmpfs) (tmpfsMount, error) {
	out := tmpfsMount{Destination: t.Path}
	for _, o := range strings.Split(t.Options, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if v, ok := strings.CutPrefix(o, "size="); ok {
			n, err := parseSize(v)
			if err != nil {
				return out, fmt.Errorf("tmpfs %s size: %w", t.Path, err)
			}
			out.Size = n
			continue
		}
		out.Options = append(out.Options, o)
	}
	return out, nil
}

// parseSize reads Docker sizes: "10m", "64k", "1g", "512" (bytes).
func parseSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for suffix, m := range map[string]int64{"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "b": 1} {
		if strings.HasSuffix(s, suffix) {
			num := strings.TrimSuffix(s, suffix)
			if _, err := strconv.ParseFloat(num, 64); err == nil {
				s, mult = num, m
				break
			}
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q is not a number with an optional k, m or g suffix", s)
	}
	return int64(f * float64(mult)), nil
}

// rlimit maps Docker's -1 (unlimited) onto the largest rlimit.
func rlimit(v int64) uint64 {
	if v < 0 {
		return ^uint64(0)
	}
	return uint64(v)
}

// LogPath is where a container's current json-file log is written.
func LogPath(dir, id string) string { return filepath.Join(dir, id+"-json.log") }

// Labels set by the runtime on every container it creates. Containers
// created before the log daemon also carry io.berth.log-binary, the program
// their shim started as their logger (see logio.go).
const (
	labelStopSignal = "io.berth.stop-signal"
	labelLogConfig  = "io.berth.log-config"
)

// ErrPrivilegedDisabled is returned by Create for privileged containers when
// the Runtime was configured with DisablePrivileged.
var ErrPrivilegedDisabled = errors.New("privileged containers are disabled on this host")

// ErrContainerExists is returned by Create for an ID already in use.
var ErrContainerExists = errors.New("container already exists")

// ErrUnsupported marks a container.Spec setting the runtime cannot honour;
// the error text names the setting.
var ErrUnsupported = errors.New("unsupported container setting")

// Create makes a container (not yet started) from spec. The image must have
// been pulled. On error nothing is left behind; the error wraps
// container.ErrExists for an ID in use and container.ErrUnavailable when
// containerd could not be reached.
func (r *Runtime) Create(ctx context.Context, spec container.Spec) error {
	cs, err := readSpec(spec)
	if err != nil {
		return err
	}
	return r.opErr(ctx, r.create(ctx, cs))
}

func (r *Runtime) create(ctx context.Context, spec createSpec) (retErr error) {
	ctx = r.withNS(ctx)
	if spec.ID == "" {
		return errors.New("create container: ID is empty")
	}
	if spec.Privileged && r.opts.DisablePrivileged {
		return fmt.Errorf("create container %s: privileged: %w", spec.ID, ErrPrivilegedDisabled)
	}
	// Refuse an existing ID before touching anything: the cleanup below
	// would otherwise remove the existing container's files and snapshot.
	if _, err := r.client.LoadContainer(ctx, spec.ID); err == nil {
		return fmt.Errorf("create container %s: %w", spec.ID, ErrContainerExists)
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	img, err := r.localImage(ctx, spec.Image)
	if err != nil {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	imgSpec, err := img.Spec(ctx)
	if err != nil {
		return fmt.Errorf("create container %s: read image config: %w", spec.ID, err)
	}
	stopSignal := spec.StopSignal
	if stopSignal == "" {
		stopSignal = imgSpec.Config.StopSignal
	}
	if stopSignal == "" {
		stopSignal = "SIGTERM"
	}
	if _, err := signal.ParseSignal(stopSignal); err != nil {
		return fmt.Errorf("create container %s: stop signal %q: %w", spec.ID, stopSignal, err)
	}
	labels := map[string]string{labelStopSignal: stopSignal}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	if spec.log != nil {
		arg, err := logArg(spec.ID, *spec.log)
		if err != nil {
			return fmt.Errorf("create container %s: %w", spec.ID, err)
		}
		labels[labelLogConfig] = arg
	}

	files, err := r.writeNetworkFiles(spec)
	if err != nil {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(r.containerDir(spec.ID))
		}
	}()
	r.step(ctx, "create:files")
	specOpts, err := r.specOpts(spec, img, imgSpec, files)
	if err != nil {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	if spec.TaskCgroup != nil {
		opt, label, err := r.taskCgroupOpts(spec.ID, spec.TaskCgroup)
		if err != nil {
			return fmt.Errorf("create container %s: %w", spec.ID, err)
		}
		specOpts = append(specOpts, opt)
		labels[labelTaskCgroup] = label
	}
	// The snapshot is made before the container record: a create that was
	// interrupted between the two (the agent killed, containerd gone) left
	// it, and no container owns it (checked above). It is that create's.
	if err := r.removeSnapshot(ctx, spec.ID); err != nil {
		return fmt.Errorf("create container %s: snapshot left by an interrupted create: %w", spec.ID, err)
	}
	// Our lease instead of the client's, which a kill -9 here would leave.
	lctx, release, err := r.withLease(ctx)
	if err != nil {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	_, err = r.client.NewContainer(lctx, spec.ID,
		containerd.WithImage(img),
		containerd.WithSnapshotter(r.opts.Snapshotter),
		containerd.WithNewSnapshot(spec.ID, img),
		func(ctx context.Context, _ *containerd.Client, _ *containers.Container) error {
			r.step(ctx, "create:snapshot")
			return nil
		},
		containerd.WithNewSpec(specOpts...),
		containerd.WithContainerLabels(labels),
		containerd.WithRuntime(r.opts.RuntimeName, nil),
	)
	release(err != nil)
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			// Lost a race with another Create of the same ID: leave its snapshot.
			return fmt.Errorf("create container %s: %w: %w", spec.ID, ErrContainerExists, err)
		}
		// NewContainer leaves the snapshot behind when the spec fails.
		if rmErr := r.client.SnapshotService(r.opts.Snapshotter).Remove(ctx, spec.ID); rmErr != nil && !errdefs.IsNotFound(rmErr) {
			err = errors.Join(err, fmt.Errorf("remove snapshot: %w", rmErr))
		}
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	return nil
}

// logArg creates the container's log directory and returns its log
// config, stored on the container as a label so that every start of it
// (by this agent or the next) captures into the same json-file.
func logArg(id string, lo logOptions) (string, error) {
	if err := os.MkdirAll(lo.Dir, 0o750); err != nil {
		return "", fmt.Errorf("log dir: %w", err)
	}
	cfg := logs.Config{Path: LogPath(lo.Dir, id), MaxSize: lo.MaxSize, MaxFile: lo.MaxFile}
	return cfg.Encode()
}

// specOpts translates the spec into OCI spec options, in an order
// where later options see the effects of earlier ones (image config first,
// then overrides).
func (r *Runtime) specOpts(spec createSpec, img containerd.Image, imgSpec ocispec.Image, files networkFiles) ([]oci.SpecOpts, error) {
	opts := []oci.SpecOpts{
		// Start from an empty env so that the image's PATH is not overridden
		// by the default spec's.
		func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			s.Process.Env = nil
			return nil
		},
		oci.WithImageConfig(img),
		oci.WithProcessArgs(processArgs(spec.Spec, imgSpec.Config)...),
	}
	if len(spec.Env) > 0 {
		opts = append(opts, oci.WithEnv(spec.Env))
	}
	if spec.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(spec.WorkingDir))
	}
	if spec.User != "" {
		opts = append(opts, oci.WithUser(spec.User), withAdditionalGIDsOf(spec.User))
	}
	if len(processArgs(spec.Spec, imgSpec.Config)) == 0 {
		return nil, errors.New("no command: neither the spec nor the image has an entrypoint or command")
	}
	if spec.Init {
		if r.opts.InitBinary == "" {
			return nil, fmt.Errorf("init: %w: no init binary is configured", ErrUnsupported)
		}
		opts = append(opts, withInit(r.opts.InitBinary))
	}

	res, err := resourceOpts(spec.Spec)
	if err != nil {
		return nil, err
	}
	opts = append(opts, res...)
	sec, err := securityOpts(spec.Spec, hostLSMs())
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)

	if spec.ShmSize > 0 {
		opts = append(opts, oci.WithDevShmSize(spec.ShmSize/1024))
	}
	mounts, err := mountSpecs(spec)
	if err != nil {
		return nil, err
	}
	mounts = append(mounts, files.mounts()...)
	opts = append(opts, oci.WithMounts(mounts))

	switch {
	case spec.HostNetwork && spec.NetNSPath != "":
		return nil, errors.New("network: both host network and a network namespace path are set")
	case spec.HostNetwork:
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace))
	case spec.NetNSPath != "":
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: spec.NetNSPath}))
	}
	if spec.Hostname != "" {
		opts = append(opts, oci.WithHostname(spec.Hostname))
	}
	if len(spec.Sysctls) > 0 {
		sysctls := spec.Sysctls
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			if s.Linux.Sysctl == nil {
				s.Linux.Sysctl = map[string]string{}
			}
			for k, v := range sysctls {
				s.Linux.Sysctl[k] = v
			}
			return nil
		})
	}
	// Cgroups under /<namespace>/<id>, so they are easy to find and clean.
	opts = append(opts, oci.WithNamespacedCgroup())
	return opts, nil
}

// processArgs applies Docker's entrypoint/command rules.
func processArgs(spec container.Spec, img ocispec.ImageConfig) []string {
	var args []string
	switch {
	case len(spec.Entrypoint) > 0:
		args = append(args, spec.Entrypoint...)
		args = append(args, spec.Command...)
	case len(spec.Command) > 0:
		args = append(args, img.Entrypoint...)
		args = append(args, spec.Command...)
	default:
		args = append(args, img.Entrypoint...)
		args = append(args, img.Cmd...)
	}
	return args
}

// withAdditionalGIDsOf sets supplementary groups from the image's
// /etc/group for the user part of "user[:group]", as Docker does.
func withAdditionalGIDsOf(user string) oci.SpecOpts {
	name, _, _ := strings.Cut(user, ":")
	return oci.WithAdditionalGIDs(name)
}

func withInit(binary string) oci.SpecOpts {
	const target = "/sbin/docker-init"
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: target, Type: "bind", Source: binary, Options: []string{"rbind", "ro"}})
		s.Process.Args = append([]string{target, "--"}, s.Process.Args...)
		return nil
	}
}

func resourceOpts(res container.Spec) ([]oci.SpecOpts, error) {
	var opts []oci.SpecOpts
	if res.CPUShares > 0 {
		opts = append(opts, oci.WithCPUShares(uint64(res.CPUShares)))
	}
	if res.MemoryLimit < 0 || res.MemoryReservation < 0 {
		return nil, errors.New("memory: negative limit or reservation")
	}
	if res.MemoryLimit > 0 {
		if res.MemoryReservation > res.MemoryLimit {
			return nil, fmt.Errorf("memory reservation %d is above the memory limit %d", res.MemoryReservation, res.MemoryLimit)
		}
		opts = append(opts, oci.WithMemoryLimit(uint64(res.MemoryLimit)), oci.WithMemorySwap(res.MemoryLimit))
	}
	if res.MemoryReservation > 0 {
		reservation := res.MemoryReservation
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			if s.Linux.Resources == nil {
				s.Linux.Resources = &specs.LinuxResources{}
			}
			if s.Linux.Resources.Memory == nil {
				s.Linux.Resources.Memory = &specs.LinuxMemory{}
			}
			s.Linux.Resources.Memory.Reservation = &reservation
			return nil
		})
	}
	if res.PidsLimit > 0 {
		opts = append(opts, oci.WithPidsLimit(res.PidsLimit))
	}
	if len(res.Ulimits) > 0 {
		var rlimits []specs.POSIXRlimit
		for _, u := range res.Ulimits {
			name, err := rlimitName(u.Name)
			if err != nil {
				return nil, err
			}
			soft, hard := rlimit(u.Soft), rlimit(u.Hard)
			if soft > hard {
				return nil, fmt.Errorf("ulimit %s: soft limit %d above hard limit %d", u.Name, soft, hard)
			}
			rlimits = append(rlimits, specs.POSIXRlimit{Type: name, Soft: soft, Hard: hard})
		}
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			for _, rl := range rlimits {
				replaced := false
				for i := range s.Process.Rlimits {
					if s.Process.Rlimits[i].Type == rl.Type {
						s.Process.Rlimits[i], replaced = rl, true
					}
				}
				if !replaced {
					s.Process.Rlimits = append(s.Process.Rlimits, rl)
				}
			}
			return nil
		})
	}
	return opts, nil
}

var rlimits = map[string]bool{
	"as": true, "core": true, "cpu": true, "data": true, "fsize": true, "locks": true,
	"memlock": true, "msgqueue": true, "nice": true, "nofile": true, "nproc": true,
	"rss": true, "rtprio": true, "rttime": true, "sigpending": true, "stack": true,
}

func rlimitName(name string) (string, error) {
	n := strings.ToLower(strings.TrimPrefix(strings.ToUpper(name), "RLIMIT_"))
	if !rlimits[n] {
		return "", fmt.Errorf("ulimit %q: %w: unknown limit name", name, ErrUnsupported)
	}
	return "RLIMIT_" + strings.ToUpper(n), nil
}

// lsms says which Linux security modules the host has enabled.
type lsms struct{ apparmor, selinux bool }

func hostLSMs() lsms {
	return lsms{apparmor: apparmor.HostSupports(), selinux: selinux.GetEnabled()}
}

func securityOpts(sec container.Spec, host lsms) ([]oci.SpecOpts, error) {
	var opts []oci.SpecOpts
	if p := sec.AppArmorProfile; p != "" {
		if !host.apparmor {
			return nil, fmt.Errorf("apparmor:%s: %w: AppArmor is not enabled on this host", p, ErrUnsupported)
		}
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			s.Process.ApparmorProfile = p
			return nil
		})
	}
	if o := sec.SELinuxOptions; len(o) > 0 {
		if !host.selinux {
			return nil, fmt.Errorf("label:%s: %w: SELinux is not enabled on this host", o[0], ErrUnsupported)
		}
		processLabel, mountLabel, err := label.InitLabels(o)
		if err != nil {
			return nil, fmt.Errorf("label:%s: %w", strings.Join(o, ","), err)
		}
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			s.Process.SelinuxLabel = processLabel
			if s.Linux == nil {
				s.Linux = &specs.Linux{}
			}
			s.Linux.MountLabel = mountLabel
			return nil
		})
	}
	if sec.Privileged {
		all, err := cap.Current()
		if err != nil {
			return nil, fmt.Errorf("privileged: read capabilities: %w", err)
		}
		opts = append(opts,
			oci.WithCapabilities(all),
			oci.WithMaskedPaths(nil),
			oci.WithReadonlyPaths(nil),
			oci.WithHostDevices,
			oci.WithAllDevicesAllowed,
			oci.WithWriteableSysfs,
			oci.WithWriteableCgroupfs,
		)
	}
	add, err := capNames("capAdd", sec.CapAdd)
	if err != nil {
		return nil, err
	}
	drop, err := capNames("capDrop", sec.CapDrop)
	if err != nil {
		return nil, err
	}
	// Docker applies drops first, then adds, so "drop ALL, add X" keeps X.
	if len(drop) > 0 {
		if drop[0] == "ALL" {
			opts = append(opts, oci.WithCapabilities(nil))
		} else {
			opts = append(opts, oci.WithDroppedCapabilities(drop))
		}
	}
	if len(add) > 0 {
		if add[0] == "ALL" {
			opts = append(opts, oci.WithAddedCapabilities(cap.Known()))
		} else {
			opts = append(opts, oci.WithAddedCapabilities(add))
		}
	}
	if sec.ReadonlyRootfs {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if sec.NoNewPrivileges {
		opts = append(opts, oci.WithNoNewPrivileges)
	}
	return opts, nil
}

// capNames normalises capability names to "CAP_X" and checks they exist;
// "ALL" is returned alone.
func capNames(setting string, names []string) ([]string, error) {
	known := map[string]bool{}
	for _, c := range cap.Known() {
		known[c] = true
	}
	var out []string
	for _, n := range names {
		u := strings.ToUpper(strings.TrimSpace(n))
		if u == "ALL" {
			return []string{"ALL"}, nil
		}
		if !strings.HasPrefix(u, "CAP_") {
			u = "CAP_" + u
		}
		if !known[u] {
			return nil, fmt.Errorf("%s %q: %w: unknown capability", setting, n, ErrUnsupported)
		}
		out = append(out, u)
	}
	return out, nil
}

func mountSpecs(spec createSpec) ([]specs.Mount, error) {
	var mounts []specs.Mount
	for _, m := range spec.Mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Destination) {
			return nil, fmt.Errorf("mount %s:%s: source and destination must be absolute", m.Source, m.Destination)
		}
		opt := "rw"
		if m.ReadOnly {
			opt = "ro"
		}
		mounts = append(mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: []string{"rbind", opt}})
	}
	for _, t := range spec.tmpfs {
		if !filepath.IsAbs(t.Destination) {
			return nil, fmt.Errorf("tmpfs %s: destination must be absolute", t.Destination)
		}
		opts := append([]string{"nosuid", "nodev"}, t.Options...)
		if t.Size > 0 {
			opts = append(opts, fmt.Sprintf("size=%d", t.Size))
		}
		mounts = append(mounts, specs.Mount{Destination: t.Destination, Type: "tmpfs", Source: "tmpfs", Options: opts})
	}
	return mounts, nil
}
