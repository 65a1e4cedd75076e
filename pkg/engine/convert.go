package engine

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/container"
)

const mib = 1 << 20

// FromAPI turns a task as ACS delivers it into the engine's definition.
// Whatever the engine cannot honour (an unsupported field, an invalid
// definition) does not fail here: it lands in TaskDef.Invalid, and the task
// is stopped with that reason, so a bad task never stops the agent.
func FromAPI(t *api.Task, cluster string) TaskDef {
	def := TaskDef{
		ARN:         t.Arn,
		Family:      t.Family,
		Version:     t.Version,
		Cluster:     cluster,
		NetworkMode: t.EffectiveNetworkMode(),
		CPU:         int64(t.Cpu),
		MemoryMiB:   t.Memory,
	}
	if t.TaskClusterArn != "" {
		def.Cluster = t.TaskClusterArn
	}
	invalid := func(reason string) {
		if def.Invalid == "" {
			def.Invalid = reason
		}
	}
	if err := t.Validate(); err != nil {
		invalid(prefixCreate + firstLine(err))
	}
	if reason := unsupportedTask(t); reason != "" {
		invalid(prefixCreate + reason)
	}
	for _, v := range t.Volumes {
		if v == nil {
			continue
		}
		vol, err := convertVolume(v)
		if err != nil {
			invalid(prefixResourceInit + err.Error())
			continue
		}
		def.Volumes = append(def.Volumes, vol)
	}
	for _, c := range t.Containers {
		if c == nil {
			continue
		}
		cd, err := convertContainer(c)
		if err != nil {
			invalid(prefixCreate + fmt.Sprintf("container %s: %v", c.Name, err))
		}
		def.Containers = append(def.Containers, cd)
	}
	return def
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// unsupportedTask names a task-level setting the engine cannot honour.
func unsupportedTask(t *api.Task) string {
	switch {
	case t.PidMode != "":
		return "unsupported task field pidMode"
	case t.IpcMode != "":
		return "unsupported task field ipcMode"
	case t.ProxyConfiguration != nil:
		return "unsupported task field proxyConfiguration"
	case len(t.Associations) > 0:
		return "unsupported task field associations"
	}
	return ""
}

func convertVolume(v *api.Volume) (Volume, error) {
	switch v.Type {
	case "", api.VolumeTypeHost:
		vol := Volume{Name: v.Name, Kind: VolumeHost}
		if v.Host != nil {
			vol.SourcePath = v.Host.SourcePath
		}
		return vol, nil
	case api.VolumeTypeDocker:
		dv := v.DockerVolumeConfiguration
		if dv == nil || dv.Scope == "" || dv.Scope == api.VolumeScopeTask {
			vol := Volume{Name: v.Name, Kind: VolumeTaskScoped}
			if dv != nil {
				if err := checkDriver(v.Name, dv); err != nil {
					return Volume{}, err
				}
			}
			return vol, nil
		}
		if err := checkDriver(v.Name, dv); err != nil {
			return Volume{}, err
		}
		return Volume{Name: v.Name, Kind: VolumeSharedScoped, Autoprovision: dv.Autoprovision}, nil
	}
	return Volume{}, fmt.Errorf("volume %s: unsupported volume type %q", v.Name, v.Type)
}

func checkDriver(name string, dv *api.DockerVolumeConfiguration) error {
	if dv.Driver != "" && dv.Driver != "local" {
		return fmt.Errorf("volume %s: unsupported volume driver %q", name, dv.Driver)
	}
	if len(dv.DriverOpts) > 0 {
		return fmt.Errorf("volume %s: unsupported field driverOpts", name)
	}
	return nil
}

// unsupportedContainer names a container-level setting the engine cannot
// honour.
func unsupportedContainer(c *api.Container) string {
	switch {
	case len(c.Links) > 0:
		return "unsupported field links"
	case len(c.VolumesFrom) > 0:
		return "unsupported field volumesFrom"
	case len(c.EnvironmentFiles) > 0:
		return "unsupported field environmentFiles"
	case c.FirelensConfiguration != nil:
		return "unsupported field firelensConfiguration"
	case c.RestartPolicy != nil && c.RestartPolicy.Enabled:
		return "unsupported field restartPolicy"
	case len(c.CredentialSpecs) > 0:
		return "unsupported field credentialSpecs"
	case c.RegistryAuthentication != nil:
		return "unsupported field registryAuthentication"
	case c.LinuxParameters != nil && len(c.LinuxParameters.Devices) > 0:
		return "unsupported field linuxParameters.devices"
	case c.HealthCheckType != "" && c.HealthCheckType != api.HealthCheckTypeDocker:
		return fmt.Sprintf("unsupported healthCheckType %q", c.HealthCheckType)
	}
	for _, p := range c.PortMappings {
		if p.ContainerPortRange != "" {
			return "unsupported field portMappings.containerPortRange"
		}
	}
	return ""
}

// convertContainer maps one container and its decoded dockerConfig onto the
// engine's definition and runtime spec. On error the returned definition is
// still usable for reporting (name, essential).
func convertContainer(c *api.Container) (ContainerDef, error) {
	cd := ContainerDef{
		Name:         c.Name,
		Image:        c.Image,
		Essential:    c.Essential,
		CPU:          c.Cpu,
		MemoryMiB:    c.Memory,
		StartTimeout: time.Duration(c.StartTimeout) * time.Second,
		StopTimeout:  time.Duration(c.StopTimeout) * time.Second,
	}
	for _, p := range c.PortMappings {
		cd.Ports = append(cd.Ports, container.PortMapping{
			ContainerPort: uint16(p.ContainerPort),
			HostPort:      uint16(p.HostPort),
			Protocol:      p.EffectiveProtocol(),
		})
	}
	for _, m := range c.MountPoints {
		cd.Mounts = append(cd.Mounts, MountPoint{Volume: m.SourceVolume, ContainerPath: m.ContainerPath, ReadOnly: m.ReadOnly})
	}
	for _, d := range c.DependsOn {
		cd.DependsOn = append(cd.DependsOn, Dependency{Container: d.ContainerName, Condition: Condition(d.Condition)})
	}
	if reason := unsupportedContainer(c); reason != "" {
		return cd, errors.New(reason)
	}
	secrets, err := convertSecrets(c.Secrets)
	if err != nil {
		return cd, err
	}
	cd.Secrets = secrets
	settings, err := c.DockerConfig.Decode()
	if err != nil {
		return cd, err
	}
	spec := container.Spec{
		Image:      c.Image,
		Entrypoint: slices.Clone(c.EntryPoint),
		Command:    slices.Clone(c.Command),
		CPUShares:  c.Cpu,
	}
	if spec.CPUShares > 0 && spec.CPUShares < 2 {
		spec.CPUShares = 2 // the kernel's minimum, as Docker does
	}
	if c.Memory > 0 {
		spec.MemoryLimit = c.Memory * mib
	}
	keys := slices.Collect(maps.Keys(c.Environment))
	sort.Strings(keys)
	for _, k := range keys {
		spec.Env = append(spec.Env, k+"="+c.Environment[k])
	}
	if c.Privileged != nil {
		spec.Privileged = *c.Privileged
	}
	if lp := c.LinuxParameters; lp != nil {
		if lp.Capabilities != nil {
			spec.CapAdd = append(spec.CapAdd, lp.Capabilities.Add...)
			spec.CapDrop = append(spec.CapDrop, lp.Capabilities.Drop...)
		}
		if lp.InitProcessEnabled != nil {
			spec.Init = *lp.InitProcessEnabled
		}
		if lp.SharedMemorySize != nil {
			spec.ShmSize = *lp.SharedMemorySize * mib
		}
	}
	cfg, host := settings.Config, settings.HostConfig
	spec.User = cfg.User
	spec.WorkingDir = cfg.WorkingDir
	spec.Hostname = cfg.Hostname
	spec.StopSignal = cfg.StopSignal
	if len(cfg.Labels) > 0 {
		spec.Labels = maps.Clone(cfg.Labels)
	}
	if hc := cfg.Healthcheck; hc != nil && len(hc.Test) > 0 && hc.Test[0] != api.HealthTestNone {
		cd.HealthCheck = &HealthCheck{
			Test:        slices.Clone(hc.Test),
			Interval:    hc.Interval,
			Timeout:     hc.Timeout,
			Retries:     hc.Retries,
			StartPeriod: hc.StartPeriod,
		}
	}
	if lc := host.LogConfig; lc != nil {
		// The driver and its options are checked when the task starts
		// (Engine.checkLogConfig), against the agent's allowed drivers.
		spec.Log = container.LogConfig{Driver: lc.Type, Options: maps.Clone(lc.Config)}
	}
	for _, u := range host.Ulimits {
		spec.Ulimits = append(spec.Ulimits, container.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	spec.MemoryReservation = host.MemoryReservation
	spec.CapAdd = append(spec.CapAdd, host.CapAdd...)
	spec.CapDrop = append(spec.CapDrop, host.CapDrop...)
	spec.DNS = slices.Clone(host.DNS)
	spec.DNSSearch = slices.Clone(host.DNSSearch)
	spec.ExtraHosts = slices.Clone(host.ExtraHosts)
	tmpfs := slices.Collect(maps.Keys(host.Tmpfs))
	sort.Strings(tmpfs)
	for _, p := range tmpfs {
		spec.Tmpfs = append(spec.Tmpfs, container.Tmpfs{Path: p, Options: host.Tmpfs[p]})
	}
	if host.ShmSize > 0 {
		spec.ShmSize = host.ShmSize
	}
	spec.ReadonlyRootfs = host.ReadonlyRootfs
	if host.Init != nil {
		spec.Init = *host.Init
	}
	if host.Privileged {
		spec.Privileged = true
	}
	if err := readSecurityOptions(host.SecurityOpt, &spec); err != nil {
		return cd, err
	}
	cd.Spec = spec
	return cd, nil
}

// convertSecrets takes a container's secrets (environment variables) and
// its log driver's secretOptions (target LOG_DRIVER) as references; a
// secret mounted as a file, or one without a name or a source, is refused
// by name.
func convertSecrets(in []api.Secret) ([]container.SecretRef, error) {
	var out []container.SecretRef
	seen := map[string]bool{}
	for _, s := range in {
		log := s.Target == api.SecretTargetLogDriver
		switch {
		case s.Name == "" || s.ValueFrom == "":
			return nil, fmt.Errorf("secrets: a secret needs a name and a valueFrom (name %q)", s.Name)
		case !log && s.Type != "" && s.Type != api.SecretTypeEnv:
			return nil, fmt.Errorf("secret %s: unsupported type %q (only %s)", s.Name, s.Type, api.SecretTypeEnv)
		case s.Target != "" && s.Target != api.SecretTargetContainer && !log:
			return nil, fmt.Errorf("secret %s: unsupported target %q", s.Name, s.Target)
		}
		key := fmt.Sprint(log, s.Name)
		if seen[key] {
			return nil, fmt.Errorf("secret %s: named twice", s.Name)
		}
		seen[key] = true
		out = append(out, container.SecretRef{Name: s.Name, ValueFrom: s.ValueFrom, Region: s.Region, Log: log})
	}
	return out, nil
}
