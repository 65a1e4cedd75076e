package ecsapi

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/launch"
	"github.com/berth-dev/berth/pkg/cluster/records"
)

// Limits of task definitions for the EC2 launch type.
const (
	minContainerMiB = 6
	maxContainers   = 10
	// maxTaskDefLength is ECS's limit on a RegisterTaskDefinition request.
	maxTaskDefLength = 64 << 10
)

func validDependencyCondition(c types.ContainerCondition) bool {
	switch c {
	case types.ContainerConditionStart, types.ContainerConditionComplete, types.ContainerConditionSuccess, types.ContainerConditionHealthy:
		return true
	}
	return false
}

// validateTaskDefinition checks a RegisterTaskDefinition input as ECS does
// and fills the defaults ECS returns (essential, protocol, host ports).
func validateTaskDefinition(in *ecs.RegisterTaskDefinitionInput) error {
	family := aws.ToString(in.Family)
	if !records.NameRE.MatchString(family) {
		return clientException("Family name can have up to 255 characters: letters (upper and lower case), numbers, hyphens and underscores; got %q.", family)
	}
	if len(in.ContainerDefinitions) == 0 {
		return clientException("Container list cannot be empty.")
	}
	if err := validateTaskDefConstraints(in.PlacementConstraints); err != nil {
		return err
	}
	if len(in.ContainerDefinitions) > maxContainers {
		return clientException("Too many containers: at most %d per task definition.", maxContainers)
	}
	mode := in.NetworkMode
	switch mode {
	case "", types.NetworkModeBridge, types.NetworkModeHost, types.NetworkModeAwsvpc, types.NetworkModeNone:
	default:
		return clientException("Invalid networkMode %q: must be one of bridge, host, awsvpc, none.", mode)
	}
	if mode == "" {
		mode = types.NetworkModeBridge
	}
	var tCPU, tMem int64
	var err error
	if in.Cpu != nil {
		if tCPU, err = launch.TaskCPU(*in.Cpu); err != nil {
			return err
		}
		in.Cpu = aws.String(strconv.FormatInt(tCPU, 10))
	}
	if in.Memory != nil {
		if tMem, err = launch.TaskMemory(*in.Memory); err != nil {
			return err
		}
		in.Memory = aws.String(strconv.FormatInt(tMem, 10))
	}
	volumes := map[string]bool{}
	for _, v := range in.Volumes {
		if err := refuseVolume(v); err != nil {
			return err
		}
		n := aws.ToString(v.Name)
		if !records.NameRE.MatchString(n) {
			return clientException("Invalid volume name %q.", n)
		}
		if volumes[n] {
			return clientException("Duplicate volume name %q.", n)
		}
		volumes[n] = true
	}
	names := map[string]*types.ContainerDefinition{}
	essential := false
	var sumCPU int64
	hostPorts := map[string]bool{}
	for i := range in.ContainerDefinitions {
		cd := &in.ContainerDefinitions[i]
		n := aws.ToString(cd.Name)
		if !records.NameRE.MatchString(n) {
			return clientException("Container name can have up to 255 characters: letters (upper and lower case), numbers, hyphens and underscores; got %q.", n)
		}
		if names[n] != nil {
			return clientException("Duplicate container name %q.", n)
		}
		names[n] = cd
		if strings.TrimSpace(aws.ToString(cd.Image)) == "" {
			return clientException("Container.image should not be null or empty.")
		}
		if err := validateImage(n, aws.ToString(cd.Image)); err != nil {
			return err
		}
		if err := validateContainerText(cd); err != nil {
			return err
		}
		if len(cd.ResourceRequirements) > 0 {
			rr := cd.ResourceRequirements[0]
			return refusal("RegisterTaskDefinition", "containerDefinitions.resourceRequirements",
				fmt.Sprintf("%s resources (container %q) need a GPU or an Inferentia device, which Berth does not schedule", rr.Type, n))
		}
		if cd.Essential == nil {
			cd.Essential = aws.Bool(true)
		}
		if *cd.Essential {
			essential = true
		}
		if cd.Cpu < 0 {
			return clientException("Invalid 'cpu' setting for container %q: must not be negative.", n)
		}
		sumCPU += int64(cd.Cpu)
		if err := validateContainerMemory(cd, tMem); err != nil {
			return err
		}
		for j := range cd.PortMappings {
			if err := normalizePortMapping(n, mode, &cd.PortMappings[j], hostPorts); err != nil {
				return err
			}
		}
		for _, mp := range cd.MountPoints {
			if !volumes[aws.ToString(mp.SourceVolume)] {
				return clientException("Invalid 'mountPoints' setting for container %q. Volume %q is not defined in the task definition's volumes.", n, aws.ToString(mp.SourceVolume))
			}
			if aws.ToString(mp.ContainerPath) == "" {
				return clientException("Invalid 'mountPoints' setting for container %q: containerPath is required.", n)
			}
		}
		if len(cd.Links) > 0 && mode != types.NetworkModeBridge {
			return clientException("Links are only supported with the bridge network mode.")
		}
		if hc := cd.HealthCheck; hc != nil {
			if err := validateHealthCheck(n, hc); err != nil {
				return err
			}
		}
		if lc := cd.LogConfiguration; lc != nil && lc.LogDriver == "" {
			return clientException("Invalid 'logConfiguration' for container %q: logDriver is required.", n)
		}
		ensureLists(cd)
	}
	if !essential {
		return clientException("Task definition does not have any essential container.")
	}
	if in.Cpu != nil && sumCPU > tCPU {
		return clientException("Invalid 'cpu' setting for task: the containers' cpu (%d) exceeds the task's cpu (%d).", sumCPU, tCPU)
	}
	for _, cd := range in.ContainerDefinitions {
		for _, vf := range cd.VolumesFrom {
			if names[aws.ToString(vf.SourceContainer)] == nil {
				return clientException("Invalid 'volumesFrom' setting for container %q: container %q is not in the task definition.", aws.ToString(cd.Name), aws.ToString(vf.SourceContainer))
			}
		}
		for _, d := range cd.DependsOn {
			target := names[aws.ToString(d.ContainerName)]
			if target == nil {
				return clientException("Invalid 'dependsOn' setting for container %q: container %q is not in the task definition.", aws.ToString(cd.Name), aws.ToString(d.ContainerName))
			}
			if !validDependencyCondition(d.Condition) {
				return clientException("Invalid 'dependsOn' condition %q for container %q: must be START, COMPLETE, SUCCESS or HEALTHY.", d.Condition, aws.ToString(cd.Name))
			}
			if d.Condition == types.ContainerConditionHealthy && target.HealthCheck == nil {
				return clientException("Invalid 'dependsOn' setting for container %q: container %q has no healthCheck, so it cannot be waited on as HEALTHY.", aws.ToString(cd.Name), aws.ToString(d.ContainerName))
			}
		}
	}
	return checkDependencyCycles(in.ContainerDefinitions)
}

func validateContainerMemory(cd *types.ContainerDefinition, taskMem int64) error {
	n := aws.ToString(cd.Name)
	if cd.Memory == nil && cd.MemoryReservation == nil && taskMem == 0 {
		return clientException("Invalid setting for container %q. At least one of 'memory' or 'memoryReservation' must be specified.", n)
	}
	if cd.Memory != nil && *cd.Memory < minContainerMiB {
		return clientException("Invalid 'memory' setting for container %q. The value must be at least %d MiB.", n, minContainerMiB)
	}
	if cd.MemoryReservation != nil && *cd.MemoryReservation < minContainerMiB {
		return clientException("Invalid 'memoryReservation' setting for container %q. The value must be at least %d MiB.", n, minContainerMiB)
	}
	if cd.Memory != nil && cd.MemoryReservation != nil && *cd.MemoryReservation > *cd.Memory {
		return clientException("Invalid setting for container %q. 'memory' must be greater than or equal to 'memoryReservation'.", n)
	}
	if taskMem > 0 && cd.Memory != nil && int64(*cd.Memory) > taskMem {
		return clientException("Invalid 'memory' setting for container %q: it exceeds the task's memory (%d MiB).", n, taskMem)
	}
	return nil
}

func normalizePortMapping(container string, mode types.NetworkMode, pm *types.PortMapping, seen map[string]bool) error {
	if mode == types.NetworkModeNone {
		return clientException("Port mappings are not allowed with the none network mode (container %q).", container)
	}
	if pm.ContainerPort == nil || *pm.ContainerPort < 1 || *pm.ContainerPort > 65535 {
		if pm.ContainerPortRange == nil {
			return clientException("Invalid 'portMappings' for container %q: containerPort must be between 1 and 65535.", container)
		}
	}
	switch pm.Protocol {
	case "":
		pm.Protocol = types.TransportProtocolTcp
	case types.TransportProtocolTcp, types.TransportProtocolUdp:
	default:
		return clientException("Invalid 'portMappings' protocol %q for container %q: must be tcp or udp.", pm.Protocol, container)
	}
	if pm.ContainerPort == nil {
		return nil
	}
	if pm.HostPort != nil && (*pm.HostPort < 0 || *pm.HostPort > 65535) {
		return clientException("Invalid 'portMappings' for container %q: hostPort must be between 0 and 65535.", container)
	}
	switch mode {
	case types.NetworkModeHost, types.NetworkModeAwsvpc:
		if pm.HostPort != nil && *pm.HostPort != 0 && *pm.HostPort != *pm.ContainerPort {
			return clientException("When networkMode=%s, the host ports and container ports in port mappings must match.", mode)
		}
		pm.HostPort = aws.Int32(*pm.ContainerPort)
	default:
		if pm.HostPort == nil {
			pm.HostPort = aws.Int32(0)
		}
	}
	if *pm.HostPort != 0 {
		k := fmt.Sprintf("%d/%s", *pm.HostPort, pm.Protocol)
		if seen[k] {
			return clientException("Invalid 'portMappings': host port %s is used more than once in the task definition.", k)
		}
		seen[k] = true
	}
	return nil
}

func validateHealthCheck(container string, hc *types.HealthCheck) error {
	if len(hc.Command) == 0 {
		return clientException("Invalid 'healthCheck' for container %q: command is required.", container)
	}
	switch hc.Command[0] {
	case "CMD", "CMD-SHELL", "NONE":
	default:
		return clientException("Invalid 'healthCheck' command for container %q: the first item must be CMD, CMD-SHELL or NONE.", container)
	}
	check := func(name string, v *int32, lo, hi int32, def int32) (*int32, error) {
		if v == nil {
			return aws.Int32(def), nil
		}
		if *v < lo || *v > hi {
			return nil, clientException("Invalid 'healthCheck' %s for container %q: must be between %d and %d.", name, container, lo, hi)
		}
		return v, nil
	}
	var err error
	if hc.Interval, err = check("interval", hc.Interval, 5, 300, 30); err != nil {
		return err
	}
	if hc.Timeout, err = check("timeout", hc.Timeout, 2, 120, 5); err != nil {
		return err
	}
	if hc.Retries, err = check("retries", hc.Retries, 1, 10, 3); err != nil {
		return err
	}
	if hc.StartPeriod != nil && (*hc.StartPeriod < 0 || *hc.StartPeriod > 300) {
		return clientException("Invalid 'healthCheck' startPeriod for container %q: must be between 0 and 300.", container)
	}
	return nil
}

// ensureLists makes the list members ECS always returns non-nil.
func ensureLists(cd *types.ContainerDefinition) {
	if cd.PortMappings == nil {
		cd.PortMappings = []types.PortMapping{}
	}
	if cd.Environment == nil {
		cd.Environment = []types.KeyValuePair{}
	}
	if cd.MountPoints == nil {
		cd.MountPoints = []types.MountPoint{}
	}
	if cd.VolumesFrom == nil {
		cd.VolumesFrom = []types.VolumeFrom{}
	}
}

// checkDependencyCycles refuses dependsOn graphs with a cycle.
func checkDependencyCycles(cds []types.ContainerDefinition) error {
	deps := map[string][]string{}
	for _, cd := range cds {
		for _, d := range cd.DependsOn {
			deps[aws.ToString(cd.Name)] = append(deps[aws.ToString(cd.Name)], aws.ToString(d.ContainerName))
		}
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var visit func(n string, path []string) error
	visit = func(n string, path []string) error {
		switch state[n] {
		case visiting:
			return clientException("Invalid 'dependsOn' setting: the containers' dependencies form a cycle (%s -> %s).", strings.Join(path, " -> "), n)
		case done:
			return nil
		}
		state[n] = visiting
		for _, d := range deps[n] {
			if err := visit(d, append(path, n)); err != nil {
				return err
			}
		}
		state[n] = done
		return nil
	}
	names := make([]string, 0, len(cds))
	for _, cd := range cds {
		names = append(names, aws.ToString(cd.Name))
	}
	sort.Strings(names)
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return err
		}
	}
	return nil
}

// refuseVolume names the volume members Berth cannot mount.
func refuseVolume(v types.Volume) error {
	const op = "RegisterTaskDefinition"
	switch {
	case v.EfsVolumeConfiguration != nil:
		return refusal(op, "volumes.efsVolumeConfiguration", "EFS file systems need the ECS volume plugin and AWS EFS")
	case v.FsxWindowsFileServerVolumeConfiguration != nil:
		return refusal(op, "volumes.fsxWindowsFileServerVolumeConfiguration", "FSx for Windows File Server needs Windows and AWS FSx")
	case aws.ToBool(v.ConfiguredAtLaunch):
		return refusal(op, "volumes.configuredAtLaunch", "volumes configured at launch are EBS volumes that ECS creates and attaches")
	}
	return nil
}

// ECS's limits on an image reference: up to 255 letters, digits, hyphens,
// underscores, colons, periods, slashes and number signs; with a digest
// the limit applies before the @, which is followed by sha256: and 64 hex
// digits.
const maxImageName = 255

var (
	imageNameRE   = regexp.MustCompile(`^[A-Za-z0-9\-_:./#]+$`)
	imageDigestRE = regexp.MustCompile(`^sha256:[A-Fa-f0-9]{64}$`)
)

// validateImage checks a container's image reference against ECS's limits.
func validateImage(container, image string) error {
	name, digest, hasDigest := strings.Cut(image, "@")
	switch {
	case len(name) > maxImageName:
		return clientException("Invalid 'image' for container %q: at most %d characters before any @digest, got %d.", container, maxImageName, len(name))
	case !imageNameRE.MatchString(name):
		return clientException("Invalid 'image' %q for container %q: only letters, digits and - _ : . / # are allowed (and @sha256:<64 hex digits>).", truncate(image, 80), container)
	case hasDigest && !imageDigestRE.MatchString(digest):
		return clientException("Invalid 'image' digest %q for container %q: must be sha256: and 64 hexadecimal digits.", truncate(digest, 80), container)
	}
	return nil
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// maxFreeText bounds the free-text members of a container definition that
// ECS passes to Docker as one value (hostname, user, working directory,
// DNS names, extra hosts, links, mount paths, log driver).
const maxFreeText = 255

// textMember is a single-line member's values and length limit.
type textMember struct {
	member string
	values []string
	limit  int
}

// validateContainerText refuses control characters (a newline, an escape)
// in the single-line members of a container definition, and values longer
// than ECS takes. Command, entry point and environment values may hold
// any text, as in ECS.
func validateContainerText(cd *types.ContainerDefinition) error {
	n := aws.ToString(cd.Name)
	check := func(member, v string, limit int) error {
		if limit > 0 && len(v) > limit {
			return clientException("Invalid '%s' for container %q: at most %d characters, got %d.", member, n, limit, len(v))
		}
		for _, r := range v {
			if unicode.IsControl(r) {
				return clientException("Invalid '%s' for container %q: control characters (%q) are not allowed.", member, n, r)
			}
		}
		return nil
	}
	fields := []textMember{
		{"hostname", []string{aws.ToString(cd.Hostname)}, maxFreeText},
		{"user", []string{aws.ToString(cd.User)}, maxFreeText},
		{"workingDirectory", []string{aws.ToString(cd.WorkingDirectory)}, 4096},
		{"dnsServers", cd.DnsServers, maxFreeText},
		{"dnsSearchDomains", cd.DnsSearchDomains, maxFreeText},
		{"links", cd.Links, maxFreeText},
		{"dockerSecurityOptions", cd.DockerSecurityOptions, maxFreeText},
	}
	for _, h := range cd.ExtraHosts {
		fields = append(fields, textMember{"extraHosts", []string{aws.ToString(h.Hostname), aws.ToString(h.IpAddress)}, maxFreeText})
	}
	for _, mp := range cd.MountPoints {
		fields = append(fields, textMember{"mountPoints", []string{aws.ToString(mp.ContainerPath), aws.ToString(mp.SourceVolume)}, 4096})
	}
	for _, e := range cd.Environment {
		fields = append(fields, textMember{"environment", []string{aws.ToString(e.Name)}, maxFreeText})
	}
	for _, f := range fields {
		for _, v := range f.values {
			if err := check(f.member, v, f.limit); err != nil {
				return err
			}
		}
	}
	return nil
}
