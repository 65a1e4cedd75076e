package ecsapi

import (
	"errors"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

func (s *Server) registerTaskDefinition(c *call, in *ecs.RegisterTaskDefinitionInput) (smithy.Serializable, error) {
	if c.bodyLen > maxTaskDefLength {
		return nil, clientException("Actual length: '%d'. Max allowed length is '%d' bytes.", c.bodyLen, maxTaskDefLength)
	}
	if err := validateTaskDefinition(in); err != nil {
		return nil, err
	}
	if err := validateRuntimePlatform(in.RuntimePlatform); err != nil {
		return nil, err
	}
	if s.opts.Roles != nil {
		if err := s.opts.Roles.ValidateTaskDefinition(aws.ToString(in.TaskRoleArn), aws.ToString(in.ExecutionRoleArn)); err != nil {
			return nil, invalidParam("%s", err)
		}
	}
	for _, rc := range in.RequiresCompatibilities {
		if rc != types.CompatibilityEc2 && rc != types.CompatibilityExternal {
			return nil, clientException("requiresCompatibilities %q is not supported by this endpoint: use EC2 or EXTERNAL.", rc)
		}
	}
	family := *in.Family
	out := &ecs.RegisterTaskDefinitionOutput{}
	err := s.opts.Store.Update(func(tx store.Tx) error {
		var fam records.Family
		if err := tx.Get(records.Families, family, &fam); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		fam.Family = family
		fam.LatestRevision++
		if err := records.Put(tx, &fam); err != nil {
			return err
		}
		td := types.TaskDefinition{
			TaskDefinitionArn:       aws.String(s.arns.TaskDefinition(family, fam.LatestRevision)),
			Family:                  aws.String(family),
			Revision:                fam.LatestRevision,
			ContainerDefinitions:    in.ContainerDefinitions,
			Volumes:                 in.Volumes,
			NetworkMode:             in.NetworkMode,
			Cpu:                     in.Cpu,
			Memory:                  in.Memory,
			TaskRoleArn:             in.TaskRoleArn,
			ExecutionRoleArn:        in.ExecutionRoleArn,
			PlacementConstraints:    in.PlacementConstraints,
			RequiresCompatibilities: in.RequiresCompatibilities,
			Compatibilities:         []types.Compatibility{types.CompatibilityEc2, types.CompatibilityExternal},
			PidMode:                 in.PidMode,
			IpcMode:                 in.IpcMode,
			ProxyConfiguration:      in.ProxyConfiguration,
			RuntimePlatform:         in.RuntimePlatform,
			EphemeralStorage:        in.EphemeralStorage,
			Status:                  types.TaskDefinitionStatusActive,
			RegisteredAt:            aws.Time(c.now),
			RegisteredBy:            aws.String(s.arns.IAMUser(c.key.AccessKeyID)),
		}
		if td.Volumes == nil {
			td.Volumes = []types.Volume{}
		}
		if td.PlacementConstraints == nil {
			td.PlacementConstraints = []types.TaskDefinitionPlacementConstraint{}
		}
		td.RequiresAttributes = requiredAttributes(&td)
		if err := records.Put(tx, &records.TaskDefinition{TaskDefinition: td, Tags: in.Tags}); err != nil {
			return err
		}
		out.TaskDefinition = &td
		out.Tags = in.Tags
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// findTaskDefinition resolves "family", "family:revision" or an ARN. A bare
// family means its latest ACTIVE revision.
func (s *Server) findTaskDefinition(tx store.Tx, ref string) (*records.TaskDefinition, error) {
	rec, ok, err := records.FindTaskDefinition(tx, s.arns, ref)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, clientException("Unable to describe task definition.")
	}
	return rec, nil
}

func (s *Server) deregisterTaskDefinition(c *call, in *ecs.DeregisterTaskDefinitionInput) (smithy.Serializable, error) {
	ref := aws.ToString(in.TaskDefinition)
	if ref == "" {
		return nil, clientException("TaskDefinition is required.")
	}
	if !strings.Contains(strings.TrimPrefix(ref, "arn:"), ":") {
		return nil, clientException("Revision is required: use family:revision or the full ARN.")
	}
	out := &ecs.DeregisterTaskDefinitionOutput{}
	err := s.opts.Store.Update(func(tx store.Tx) error {
		rec, err := s.findTaskDefinition(tx, ref)
		if err != nil {
			return err
		}
		td := &rec.TaskDefinition
		if td.Status == types.TaskDefinitionStatusActive {
			td.Status = types.TaskDefinitionStatusInactive
			td.DeregisteredAt = aws.Time(c.now)
			if err := records.Put(tx, rec); err != nil {
				return err
			}
		}
		out.TaskDefinition = td
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Server) describeTaskDefinition(c *call, in *ecs.DescribeTaskDefinitionInput) (smithy.Serializable, error) {
	ref := aws.ToString(in.TaskDefinition)
	if ref == "" {
		return nil, clientException("TaskDefinition is required.")
	}
	out := &ecs.DescribeTaskDefinitionOutput{}
	err := s.opts.Store.View(func(tx store.Tx) error {
		rec, err := s.findTaskDefinition(tx, ref)
		if err != nil {
			return err
		}
		out.TaskDefinition = &rec.TaskDefinition
		if slices.Contains(in.Include, types.TaskDefinitionFieldTags) {
			out.Tags = rec.Tags
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Server) listTaskDefinitions(c *call, in *ecs.ListTaskDefinitionsInput) (smithy.Serializable, error) {
	status := in.Status
	if status == "" {
		status = types.TaskDefinitionStatusActive
	}
	if status != types.TaskDefinitionStatusActive && status != types.TaskDefinitionStatusInactive {
		return nil, invalidParam("status must be ACTIVE or INACTIVE.")
	}
	if in.Sort != "" && in.Sort != types.SortOrderAsc && in.Sort != types.SortOrderDesc {
		return nil, invalidParam("sort must be ASC or DESC.")
	}
	type item struct {
		family string
		rev    int32
		arn    string
	}
	// ListTaskDefinitions' familyPrefix is a whole family name, unlike
	// ListTaskDefinitionFamilies'.
	prefix := ""
	if in.FamilyPrefix != nil {
		prefix = *in.FamilyPrefix + ":"
	}
	page, next, err := s.listPage(in.MaxResults, in.NextToken, func(tx store.Tx) ([]string, error) {
		var items []item
		err := records.Each(tx, records.TaskDefinitions, prefix, func(r *records.TaskDefinition) error {
			if r.TaskDefinition.Status == status {
				items = append(items, item{*r.TaskDefinition.Family, r.TaskDefinition.Revision, *r.TaskDefinition.TaskDefinitionArn})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		// ECS sorts by family name, then revision.
		sort.Slice(items, func(i, j int) bool {
			if items[i].family != items[j].family {
				return items[i].family < items[j].family
			}
			return items[i].rev < items[j].rev
		})
		if in.Sort == types.SortOrderDesc {
			slices.Reverse(items)
		}
		arns := make([]string, len(items))
		for i, it := range items {
			arns[i] = it.arn
		}
		return arns, nil
	})
	if err != nil {
		return nil, err
	}
	return &ecs.ListTaskDefinitionsOutput{TaskDefinitionArns: page, NextToken: next}, nil
}

func (s *Server) listTaskDefinitionFamilies(c *call, in *ecs.ListTaskDefinitionFamiliesInput) (smithy.Serializable, error) {
	status := in.Status
	if status == "" {
		status = types.TaskDefinitionFamilyStatusActive
	}
	switch status {
	case types.TaskDefinitionFamilyStatusActive, types.TaskDefinitionFamilyStatusInactive, types.TaskDefinitionFamilyStatusAll:
	default:
		return nil, invalidParam("status must be ACTIVE, INACTIVE or ALL.")
	}
	prefix := aws.ToString(in.FamilyPrefix)
	page, next, err := s.listPage(in.MaxResults, in.NextToken, func(tx store.Tx) ([]string, error) {
		var families []string
		if err := store.ForEach(tx, records.Families, prefix, func(k string, _ []byte) error {
			families = append(families, k)
			return nil
		}); err != nil {
			return nil, err
		}
		active := map[string]bool{}
		err := records.Each(tx, records.TaskDefinitions, prefix, func(r *records.TaskDefinition) error {
			if r.TaskDefinition.Status == types.TaskDefinitionStatusActive {
				active[*r.TaskDefinition.Family] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		var out []string
		for _, f := range families {
			switch {
			case status == types.TaskDefinitionFamilyStatusAll,
				status == types.TaskDefinitionFamilyStatusActive && active[f],
				status == types.TaskDefinitionFamilyStatusInactive && !active[f]:
				out = append(out, f)
			}
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return &ecs.ListTaskDefinitionFamiliesOutput{Families: page, NextToken: next}, nil
}

// requiredAttributes lists the attributes an instance must have to run
// td, as ECS derives them: privileged mode, and the runtimePlatform's CPU
// architecture and operating system (ecs.cpu-architecture, ecs.os-type or
// ecs.os-family, as the agent registers them). Every Berth agent reports
// the other capabilities it has (health checks, ordering), and one it
// leaves out because it is switched off (ECS_DISABLE_PRIVILEGED) must keep
// such tasks away from it.
func requiredAttributes(td *types.TaskDefinition) []types.Attribute {
	var out []types.Attribute
	for _, cd := range td.ContainerDefinitions {
		if aws.ToBool(cd.Privileged) {
			out = append(out, types.Attribute{Name: aws.String("com.amazonaws.ecs.capability.privileged-container")})
			break
		}
	}
	if rp := td.RuntimePlatform; rp != nil {
		switch rp.CpuArchitecture {
		case types.CPUArchitectureX8664:
			out = append(out, types.Attribute{Name: aws.String("ecs.cpu-architecture"), Value: aws.String("x86_64")})
		case types.CPUArchitectureArm64:
			out = append(out, types.Attribute{Name: aws.String("ecs.cpu-architecture"), Value: aws.String("arm64")})
		}
		switch fam := rp.OperatingSystemFamily; {
		case fam == types.OSFamilyLinux:
			out = append(out, types.Attribute{Name: aws.String("ecs.os-type"), Value: aws.String("linux")})
		case fam != "":
			out = append(out, types.Attribute{Name: aws.String("ecs.os-family"), Value: aws.String(string(fam))})
		}
	}
	return out
}

// validateRuntimePlatform checks runtimePlatform's values.
func validateRuntimePlatform(rp *types.RuntimePlatform) error {
	if rp == nil {
		return nil
	}
	if rp.CpuArchitecture != "" && !slices.Contains(rp.CpuArchitecture.Values(), rp.CpuArchitecture) {
		return clientException("runtimePlatform.cpuArchitecture must be X86_64 or ARM64, got %q.", rp.CpuArchitecture)
	}
	if rp.OperatingSystemFamily != "" && !slices.Contains(rp.OperatingSystemFamily.Values(), rp.OperatingSystemFamily) {
		return clientException("runtimePlatform.operatingSystemFamily %q is not an ECS operating system family.", rp.OperatingSystemFamily)
	}
	return nil
}

// maxDeleteTaskDefinitions is how many revisions DeleteTaskDefinitions
// takes.
const maxDeleteTaskDefinitions = 10

// deleteTaskDefinitions deletes INACTIVE revisions. A revision that a task
// not yet pruned still uses stays, DELETE_IN_PROGRESS, as ECS keeps it
// while tasks reference it (the agent may need it again); the others are
// gone at once.
func (s *Server) deleteTaskDefinitions(c *call, in *ecs.DeleteTaskDefinitionsInput) (smithy.Serializable, error) {
	if len(in.TaskDefinitions) == 0 || len(in.TaskDefinitions) > maxDeleteTaskDefinitions {
		return nil, invalidParam("taskDefinitions must have between 1 and %d items.", maxDeleteTaskDefinitions)
	}
	var out *ecs.DeleteTaskDefinitionsOutput
	err := s.opts.Store.Update(func(tx store.Tx) error {
		out = &ecs.DeleteTaskDefinitionsOutput{TaskDefinitions: []types.TaskDefinition{}, Failures: []types.Failure{}}
		used := map[string]bool{}
		if err := records.Each(tx, records.Tasks, "", func(t *records.Task) error {
			used[aws.ToString(t.Task.TaskDefinitionArn)] = true
			return nil
		}); err != nil {
			return err
		}
		for _, ref := range in.TaskDefinitions {
			if !strings.Contains(strings.TrimPrefix(ref, "arn:"), ":") {
				out.Failures = append(out.Failures, types.Failure{Arn: aws.String(ref), Reason: aws.String("INVALID"),
					Detail: aws.String("The task definition must be named by family:revision or its ARN.")})
				continue
			}
			rec, ok, err := records.FindTaskDefinition(tx, s.arns, ref)
			if err != nil {
				return err
			}
			if !ok {
				out.Failures = append(out.Failures, missingFailure(ref))
				continue
			}
			td := &rec.TaskDefinition
			if td.Status == types.TaskDefinitionStatusActive {
				out.Failures = append(out.Failures, types.Failure{Arn: td.TaskDefinitionArn, Reason: aws.String("ACTIVE"),
					Detail: aws.String("The task definition is ACTIVE: deregister it before deleting it.")})
				continue
			}
			td.Status = types.TaskDefinitionStatusDeleteInProgress
			if used[aws.ToString(td.TaskDefinitionArn)] {
				if err := records.Put(tx, rec); err != nil {
					return err
				}
			} else if err := tx.Delete(records.TaskDefinitions, rec.Key()); err != nil {
				return err
			}
			out.TaskDefinitions = append(out.TaskDefinitions, *td)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
