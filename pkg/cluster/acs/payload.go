package acs

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/api"
)

// acsTask builds the ACS task that the endpoint delivers to an agent
// from a task (as RunTask created it: ARNs, desired status, overrides) and
// its task definition. Overrides are applied here, so the ACS task carries
// the final command, environment and sizes and its overrides strings are
// "{}". Settings that ECS carries in Docker's words go into
// dockerConfig.config and dockerConfig.hostConfig as Docker Engine API JSON
// strings, encoded with api.EncodeDockerConfig; settings outside Berth's Docker
// subset are still written there (Sysctls, SecurityOpt, Tty, ...) so that
// the agent reports them as unsupported instead of silently dropping them.
func acsTask(td *types.TaskDefinition, task *types.Task) (*api.Task, error) {
	if td == nil || task == nil {
		return nil, fmt.Errorf("translate task: task and task definition are required")
	}
	ov := task.Overrides
	if ov == nil {
		ov = &types.TaskOverride{}
	}
	out := &api.Task{
		Arn:            aws.ToString(task.TaskArn),
		TaskClusterArn: aws.ToString(task.ClusterArn),
		Family:         aws.ToString(td.Family),
		Version:        strconv.Itoa(int(td.Revision)),
		DesiredStatus:  aws.ToString(task.DesiredStatus),
		Overrides:      "{}",
		NetworkMode:    string(td.NetworkMode),
		PidMode:        string(td.PidMode),
		IpcMode:        string(td.IpcMode),
		LaunchType:     string(task.LaunchType),
		Group:          aws.ToString(task.Group),
	}
	if out.NetworkMode == "" {
		out.NetworkMode = api.NetworkModeBridge
	}
	if svc, ok := strings.CutPrefix(out.Group, "service:"); ok {
		out.ServiceName = svc
	}
	if arn := aws.ToString(td.TaskDefinitionArn); strings.HasPrefix(arn, "arn:") {
		if parts := strings.Split(arn, ":"); len(parts) > 4 {
			out.TaskDefinitionAccountID = parts[4]
		}
	}
	cpu, mem := td.Cpu, td.Memory
	if ov.Cpu != nil {
		cpu = ov.Cpu
	}
	if ov.Memory != nil {
		mem = ov.Memory
	}
	if cpu != nil {
		v, err := strconv.ParseFloat(*cpu, 64)
		if err != nil {
			return nil, fmt.Errorf("translate task: cpu %q: %w", *cpu, err)
		}
		out.Cpu = v
	}
	if mem != nil {
		v, err := strconv.ParseInt(*mem, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("translate task: memory %q: %w", *mem, err)
		}
		out.Memory = v
	}
	for _, v := range td.Volumes {
		out.Volumes = append(out.Volumes, acsVolume(v))
	}
	arns := map[string]string{}
	for _, c := range task.Containers {
		arns[aws.ToString(c.Name)] = aws.ToString(c.ContainerArn)
	}
	cos := map[string]types.ContainerOverride{}
	for _, co := range ov.ContainerOverrides {
		cos[aws.ToString(co.Name)] = co
	}
	for i := range td.ContainerDefinitions {
		cd := &td.ContainerDefinitions[i]
		c, err := acsContainer(cd, cos[aws.ToString(cd.Name)])
		if err != nil {
			return nil, fmt.Errorf("translate task: container %s: %w", aws.ToString(cd.Name), err)
		}
		c.ContainerArn = arns[c.Name]
		out.Containers = append(out.Containers, c)
	}
	return out, nil
}

func acsVolume(v types.Volume) *api.Volume {
	out := &api.Volume{Name: aws.ToString(v.Name)}
	switch {
	case v.DockerVolumeConfiguration != nil:
		d := v.DockerVolumeConfiguration
		out.Type = api.VolumeTypeDocker
		out.DockerVolumeConfiguration = &api.DockerVolumeConfiguration{
			Scope: string(d.Scope), Autoprovision: aws.ToBool(d.Autoprovision), Driver: aws.ToString(d.Driver),
			DriverOpts: d.DriverOpts, Labels: d.Labels,
		}
		if out.DockerVolumeConfiguration.Scope == "" {
			out.DockerVolumeConfiguration.Scope = api.VolumeScopeTask
		}
	case v.EfsVolumeConfiguration != nil:
		e := v.EfsVolumeConfiguration
		out.Type = api.VolumeTypeEFS
		out.EFSVolumeConfiguration = &api.EFSVolumeConfiguration{
			FileSystemID: aws.ToString(e.FileSystemId), RootDirectory: aws.ToString(e.RootDirectory),
			TransitEncryption: string(e.TransitEncryption), TransitEncryptionPort: int64(aws.ToInt32(e.TransitEncryptionPort)),
		}
		if a := e.AuthorizationConfig; a != nil {
			out.EFSVolumeConfiguration.AuthorizationConfig = &api.EFSAuthorizationConfig{AccessPointID: aws.ToString(a.AccessPointId), IAM: string(a.Iam)}
		}
	default:
		// A host volume; without a source path the agent makes a
		// task-scoped empty directory, as ECS does.
		out.Type = api.VolumeTypeHost
		out.Host = &api.HostVolumeProperties{}
		if v.Host != nil {
			out.Host.SourcePath = aws.ToString(v.Host.SourcePath)
		}
	}
	return out
}

// environmentMap turns ECS's list of name/value pairs into ACS's object;
// override values replace the definition's.
func environmentMap(lists ...[]types.KeyValuePair) map[string]string {
	var m map[string]string
	for _, l := range lists {
		for _, kv := range l {
			if m == nil {
				m = map[string]string{}
			}
			m[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
		}
	}
	return m
}

func seconds(v *int32) time.Duration {
	return time.Duration(aws.ToInt32(v)) * time.Second
}

func acsContainer(cd *types.ContainerDefinition, co types.ContainerOverride) (*api.Container, error) {
	c := &api.Container{
		Name:         aws.ToString(cd.Name),
		Image:        aws.ToString(cd.Image),
		Cpu:          int64(cd.Cpu),
		Memory:       int64(aws.ToInt32(cd.Memory)),
		Essential:    aws.ToBool(cd.Essential),
		EntryPoint:   cd.EntryPoint,
		Command:      cd.Command,
		Environment:  environmentMap(cd.Environment, co.Environment),
		Links:        cd.Links,
		Overrides:    "{}",
		Privileged:   cd.Privileged,
		StartTimeout: int64(aws.ToInt32(cd.StartTimeout)),
		StopTimeout:  int64(aws.ToInt32(cd.StopTimeout)),
	}
	if co.Command != nil {
		c.Command = co.Command
	}
	if co.Cpu != nil {
		c.Cpu = int64(*co.Cpu)
	}
	if co.Memory != nil {
		c.Memory = int64(*co.Memory)
	}
	reservation := cd.MemoryReservation
	if co.MemoryReservation != nil {
		reservation = co.MemoryReservation
	}
	for _, f := range append(append([]types.EnvironmentFile{}, cd.EnvironmentFiles...), co.EnvironmentFiles...) {
		c.EnvironmentFiles = append(c.EnvironmentFiles, api.EnvironmentFile{Value: aws.ToString(f.Value), Type: string(f.Type)})
	}
	for _, pm := range cd.PortMappings {
		c.PortMappings = append(c.PortMappings, api.PortMapping{
			ContainerPort: int64(aws.ToInt32(pm.ContainerPort)), HostPort: int64(aws.ToInt32(pm.HostPort)),
			ContainerPortRange: aws.ToString(pm.ContainerPortRange), Protocol: string(pm.Protocol),
		})
	}
	for _, mp := range cd.MountPoints {
		c.MountPoints = append(c.MountPoints, api.MountPoint{SourceVolume: aws.ToString(mp.SourceVolume), ContainerPath: aws.ToString(mp.ContainerPath), ReadOnly: aws.ToBool(mp.ReadOnly)})
	}
	for _, vf := range cd.VolumesFrom {
		c.VolumesFrom = append(c.VolumesFrom, api.VolumeFrom{SourceContainer: aws.ToString(vf.SourceContainer), ReadOnly: aws.ToBool(vf.ReadOnly)})
	}
	for _, d := range cd.DependsOn {
		c.DependsOn = append(c.DependsOn, api.ContainerDependency{ContainerName: aws.ToString(d.ContainerName), Condition: string(d.Condition)})
	}
	for _, s := range cd.Secrets {
		c.Secrets = append(c.Secrets, api.Secret{Name: aws.ToString(s.Name), ValueFrom: aws.ToString(s.ValueFrom), Type: api.SecretTypeEnv,
			Target: api.SecretTargetContainer, Provider: secretProvider(aws.ToString(s.ValueFrom))})
	}
	if lc := cd.LogConfiguration; lc != nil {
		// The log driver's secretOptions travel as secrets aimed at it,
		// as ECS sends them.
		for _, s := range lc.SecretOptions {
			c.Secrets = append(c.Secrets, api.Secret{Name: aws.ToString(s.Name), ValueFrom: aws.ToString(s.ValueFrom), Type: api.SecretTypeEnv,
				Target: api.SecretTargetLogDriver, Provider: secretProvider(aws.ToString(s.ValueFrom))})
		}
	}
	if rp := cd.RestartPolicy; rp != nil {
		c.RestartPolicy = &api.RestartPolicy{Enabled: aws.ToBool(rp.Enabled), RestartAttemptPeriod: int64(aws.ToInt32(rp.RestartAttemptPeriod))}
		for _, code := range rp.IgnoredExitCodes {
			c.RestartPolicy.IgnoredExitCodes = append(c.RestartPolicy.IgnoredExitCodes, int64(code))
		}
	}
	if fc := cd.FirelensConfiguration; fc != nil {
		c.FirelensConfiguration = &api.FirelensConfiguration{Type: string(fc.Type), Options: fc.Options}
	}
	if rc := cd.RepositoryCredentials; rc != nil {
		c.RegistryAuthentication = &api.RegistryAuthenticationData{Type: "asm", ASMAuthData: &api.ASMAuthData{CredentialsParameter: aws.ToString(rc.CredentialsParameter)}}
	}

	s := &api.ContainerSettings{}
	cfg, host := &s.Config, &s.HostConfig
	cfg.Hostname = aws.ToString(cd.Hostname)
	cfg.User = aws.ToString(cd.User)
	cfg.WorkingDir = aws.ToString(cd.WorkingDirectory)
	cfg.Labels = cd.DockerLabels
	if hc := cd.HealthCheck; hc != nil {
		c.HealthCheckType = api.HealthCheckTypeDocker
		cfg.Healthcheck = &api.HealthConfig{
			Test: hc.Command, Interval: seconds(hc.Interval), Timeout: seconds(hc.Timeout),
			Retries: int(aws.ToInt32(hc.Retries)), StartPeriod: seconds(hc.StartPeriod),
		}
	}
	if lc := cd.LogConfiguration; lc != nil {
		host.LogConfig = &api.LogConfig{Type: string(lc.LogDriver), Config: lc.Options}
	}
	for _, u := range cd.Ulimits {
		host.Ulimits = append(host.Ulimits, api.Ulimit{Name: string(u.Name), Soft: int64(u.SoftLimit), Hard: int64(u.HardLimit)})
	}
	if reservation != nil {
		host.MemoryReservation = int64(*reservation) << 20
	}
	host.DNS = cd.DnsServers
	host.DNSSearch = cd.DnsSearchDomains
	for _, h := range cd.ExtraHosts {
		host.ExtraHosts = append(host.ExtraHosts, aws.ToString(h.Hostname)+":"+aws.ToString(h.IpAddress))
	}
	host.ReadonlyRootfs = aws.ToBool(cd.ReadonlyRootFilesystem)
	host.Privileged = aws.ToBool(cd.Privileged)
	unsupportedConfig := map[string]any{}
	unsupportedHost := map[string]any{}
	if lp := cd.LinuxParameters; lp != nil {
		c.LinuxParameters = &api.LinuxParameters{InitProcessEnabled: lp.InitProcessEnabled}
		if caps := lp.Capabilities; caps != nil {
			c.LinuxParameters.Capabilities = &api.KernelCapabilities{Add: caps.Add, Drop: caps.Drop}
			host.CapAdd, host.CapDrop = caps.Add, caps.Drop
		}
		for _, d := range lp.Devices {
			dev := api.Device{HostPath: aws.ToString(d.HostPath), ContainerPath: aws.ToString(d.ContainerPath)}
			for _, p := range d.Permissions {
				dev.Permissions = append(dev.Permissions, string(p))
			}
			c.LinuxParameters.Devices = append(c.LinuxParameters.Devices, dev)
		}
		host.Init = lp.InitProcessEnabled
		if lp.SharedMemorySize != nil {
			shm := int64(*lp.SharedMemorySize)
			c.LinuxParameters.SharedMemorySize = &shm
			host.ShmSize = shm << 20
		}
		for _, t := range lp.Tmpfs {
			if host.Tmpfs == nil {
				host.Tmpfs = map[string]string{}
			}
			opts := append(append([]string{}, t.MountOptions...), fmt.Sprintf("size=%dm", t.Size))
			host.Tmpfs[aws.ToString(t.ContainerPath)] = strings.Join(opts, ",")
		}
		if lp.MaxSwap != nil {
			unsupportedHost["MemorySwap"] = int64(*lp.MaxSwap)<<20 + int64(aws.ToInt32(cd.Memory))<<20
		}
		if lp.Swappiness != nil {
			unsupportedHost["MemorySwappiness"] = *lp.Swappiness
		}
	}
	if len(cd.SystemControls) > 0 {
		sysctls := map[string]string{}
		for _, sc := range cd.SystemControls {
			sysctls[aws.ToString(sc.Namespace)] = aws.ToString(sc.Value)
		}
		unsupportedHost["Sysctls"] = sysctls
	}
	if len(cd.DockerSecurityOptions) > 0 {
		unsupportedHost["SecurityOpt"] = cd.DockerSecurityOptions
	}
	if aws.ToBool(cd.PseudoTerminal) {
		unsupportedConfig["Tty"] = true
	}
	if aws.ToBool(cd.Interactive) {
		unsupportedConfig["OpenStdin"] = true
	}
	if aws.ToBool(cd.DisableNetworking) {
		unsupportedConfig["NetworkDisabled"] = true
	}
	raw, err := api.EncodeDockerConfig(s)
	if err != nil {
		return nil, err
	}
	if raw.Config, err = addMembers(raw.Config, unsupportedConfig); err != nil {
		return nil, err
	}
	if raw.HostConfig, err = addMembers(raw.HostConfig, unsupportedHost); err != nil {
		return nil, err
	}
	c.DockerConfig = raw
	return c, nil
}

// addMembers adds members to a JSON object string.
func addMembers(obj string, add map[string]any) (string, error) {
	if len(add) == 0 {
		return obj, nil
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal([]byte(obj), &m); err != nil {
		return "", fmt.Errorf("add dockerConfig members: %w", err)
	}
	keys := make([]string, 0, len(add))
	for k := range add {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b, err := json.Marshal(add[k])
		if err != nil {
			return "", fmt.Errorf("add dockerConfig member %s: %w", k, err)
		}
		m[k] = b
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("add dockerConfig members: %w", err)
	}
	return string(b), nil
}

// secretProvider tells Secrets Manager ARNs from SSM parameters.
func secretProvider(valueFrom string) string {
	if strings.Contains(valueFrom, ":secretsmanager:") {
		return api.SecretProviderASM
	}
	return api.SecretProviderSSM
}
