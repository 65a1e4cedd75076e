package api

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalidTask is wrapped by every error Task.Validate returns.
var ErrInvalidTask = errors.New("invalid task")

// Validate checks that a task is consistent in itself: it has an ARN whose
// last segment (ID) is a safe name, and at least one container; container
// and volume names are unique and made of letters, digits, '-' and '_'
// (so they are safe in paths); host volume paths are absolute;
// dependsOn, links, volumesFrom and mountPoints name things that exist;
// dependsOn conditions are known and form no cycle; port mappings are in
// range, use tcp or udp, and no host port is claimed twice. Containers of a
// task whose desired status is RUNNING must name an image. It does not
// decode dockerConfig (see DecodeDockerConfig) and does not judge whether
// the host can run the task. All problems found are joined into one error,
// each wrapping ErrInvalidTask.
func (t *Task) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidTask, fmt.Sprintf(format, args...)))
	}
	if t.Arn == "" {
		bad("no arn")
	} else if !safeName(t.ID()) {
		bad("arn %q does not end in a task ID of letters, digits, '-' and '_'", t.Arn)
	}
	if len(t.Containers) == 0 {
		bad("no containers")
	}
	volumes := map[string]bool{}
	for i, v := range t.Volumes {
		if v == nil || v.Name == "" {
			bad("volume %d has no name", i)
			continue
		}
		if volumes[v.Name] {
			bad("volume %q appears twice", v.Name)
		}
		if !safeName(v.Name) {
			bad("volume name %q: only letters, digits, '-' and '_' are allowed (at most 255)", v.Name)
		}
		if v.Host != nil && v.Host.SourcePath != "" && !strings.HasPrefix(v.Host.SourcePath, "/") {
			bad("volume %q: host sourcePath %q is not absolute", v.Name, v.Host.SourcePath)
		}
		volumes[v.Name] = true
		switch v.Type {
		case "", VolumeTypeHost, VolumeTypeDocker, VolumeTypeEFS, VolumeTypeFSx, VolumeTypeEBS, VolumeTypeLogs:
		default:
			bad("volume %q has unknown type %q", v.Name, v.Type)
		}
		if d := v.DockerVolumeConfiguration; d != nil {
			switch d.Scope {
			case "", VolumeScopeTask, VolumeScopeShared:
			default:
				bad("volume %q has unknown scope %q", v.Name, d.Scope)
			}
		}
	}
	names := map[string]bool{}
	for i, c := range t.Containers {
		if c == nil || c.Name == "" {
			bad("container %d has no name", i)
			continue
		}
		if names[c.Name] {
			bad("container %q appears twice", c.Name)
		}
		if !safeName(c.Name) {
			bad("container name %q: only letters, digits, '-' and '_' are allowed (at most 255)", c.Name)
		}
		names[c.Name] = true
	}
	type hostPortKey struct {
		port  int64
		proto string
	}
	hostPorts := map[hostPortKey]string{}
	for _, c := range t.Containers {
		if c == nil || c.Name == "" {
			continue
		}
		if t.DesiredStatus == StatusRunning && c.Image == "" {
			bad("container %q has no image", c.Name)
		}
		for _, d := range c.DependsOn {
			switch {
			case d.ContainerName == c.Name:
				bad("container %q depends on itself", c.Name)
			case !names[d.ContainerName]:
				bad("container %q depends on unknown container %q", c.Name, d.ContainerName)
			}
			switch d.Condition {
			case ConditionStart, ConditionComplete, ConditionSuccess, ConditionHealthy:
			default:
				bad("container %q: dependsOn %q has unknown condition %q", c.Name, d.ContainerName, d.Condition)
			}
		}
		for _, l := range c.Links {
			target, _, _ := strings.Cut(l, ":")
			if !names[target] || target == c.Name {
				bad("container %q links to unknown container %q", c.Name, target)
			}
		}
		for _, vf := range c.VolumesFrom {
			if !names[vf.SourceContainer] || vf.SourceContainer == c.Name {
				bad("container %q: volumesFrom unknown container %q", c.Name, vf.SourceContainer)
			}
		}
		for _, mp := range c.MountPoints {
			if !volumes[mp.SourceVolume] {
				bad("container %q mounts unknown volume %q", c.Name, mp.SourceVolume)
			}
			if !strings.HasPrefix(mp.ContainerPath, "/") {
				bad("container %q: mount path %q is not absolute", c.Name, mp.ContainerPath)
			}
		}
		if c.StartTimeout < 0 || c.StopTimeout < 0 {
			bad("container %q has a negative start or stop timeout", c.Name)
		}
		for _, pm := range c.PortMappings {
			proto := pm.EffectiveProtocol()
			if proto != ProtocolTCP && proto != ProtocolUDP {
				bad("container %q: port mapping protocol %q is not tcp or udp", c.Name, pm.Protocol)
			}
			if pm.ContainerPortRange != "" {
				if pm.ContainerPort != 0 {
					bad("container %q: port mapping has both containerPort and containerPortRange", c.Name)
				}
				if _, _, err := ParsePortRange(pm.ContainerPortRange); err != nil {
					bad("container %q: %v", c.Name, err)
				}
				if pm.HostPort != 0 {
					bad("container %q: containerPortRange %q cannot have a hostPort", c.Name, pm.ContainerPortRange)
				}
				continue
			}
			if pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
				bad("container %q: containerPort %d is out of range 1-65535", c.Name, pm.ContainerPort)
			}
			if pm.HostPort < 0 || pm.HostPort > 65535 {
				bad("container %q: hostPort %d is out of range 0-65535", c.Name, pm.HostPort)
			}
			if pm.HostPort != 0 {
				k := hostPortKey{pm.HostPort, proto}
				if other, dup := hostPorts[k]; dup {
					bad("container %q: host port %d/%s is already used by container %q", c.Name, pm.HostPort, proto, other)
				}
				hostPorts[k] = c.Name
			}
		}
	}
	if len(errs) == 0 {
		if _, err := t.StartOrder(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// safeName reports whether s is a valid ECS container or volume name: 1 to
// 255 letters, digits, hyphens and underscores. Such names are safe as path
// segments and label values, which the agent relies on.
func safeName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// ParsePortRange parses a containerPortRange "first-last" (1-65535, first
// not above last).
func ParsePortRange(s string) (first, last int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("port range %q is not first-last", s)
	}
	first, err1 := strconv.Atoi(strings.TrimSpace(a))
	last, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || first < 1 || last > 65535 || first > last {
		return 0, 0, fmt.Errorf("port range %q is not first-last within 1-65535", s)
	}
	return first, last, nil
}

// StartOrder returns the container names in an order in which every
// container comes after the containers it depends on (dependsOn, links and
// volumesFrom all count); among independent containers the task's own order
// is kept. Stopping goes in the reverse order. A dependency cycle is an
// error wrapping ErrInvalidTask that names the containers in it.
// References to unknown containers are ignored here; Validate reports them.
func (t *Task) StartOrder() ([]string, error) {
	var names []string
	deps := map[string][]string{}
	for _, c := range t.Containers {
		if c == nil {
			continue
		}
		names = append(names, c.Name)
		deps[c.Name] = c.Dependencies()
	}
	const (
		unvisited = iota
		visiting
		done
	)
	mark := map[string]int{}
	order := make([]string, 0, len(names))
	var stack []string
	var visit func(n string) error
	visit = func(n string) error {
		switch mark[n] {
		case done:
			return nil
		case visiting:
			i := slices.Index(stack, n)
			cycle := append(slices.Clone(stack[i:]), n)
			return fmt.Errorf("%w: dependency cycle %s", ErrInvalidTask, strings.Join(cycle, " -> "))
		}
		mark[n] = visiting
		stack = append(stack, n)
		for _, d := range deps[n] {
			if _, known := deps[d]; !known || d == n {
				continue
			}
			if err := visit(d); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		mark[n] = done
		order = append(order, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Dependencies lists the containers this one must start after: those named
// in dependsOn, links and volumesFrom, without duplicates.
func (c *Container) Dependencies() []string {
	var out []string
	add := func(n string) {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for _, d := range c.DependsOn {
		add(d.ContainerName)
	}
	for _, l := range c.Links {
		n, _, _ := strings.Cut(l, ":")
		add(n)
	}
	for _, v := range c.VolumesFrom {
		add(v.SourceContainer)
	}
	return out
}
