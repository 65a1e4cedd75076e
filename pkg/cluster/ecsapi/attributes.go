package ecsapi

import (
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

var (
	attrNameRE  = regexp.MustCompile(`^[a-zA-Z0-9_.\-/\\]{1,128}$`)
	attrValueRE = regexp.MustCompile(`^[a-zA-Z0-9_.\-@/\\: ]{1,128}$`)
)

// maxCustomAttributes is ECS's limit of custom attributes per instance;
// the ones the agent reports (named ecs.*) do not count.
const maxCustomAttributes = 10

// customAttributes counts the attributes that are not ECS's own.
func customAttributes(as []types.Attribute) int {
	n := 0
	for _, a := range as {
		if !strings.HasPrefix(aws.ToString(a.Name), "ecs.") {
			n++
		}
	}
	return n
}

// validateAttributes checks names and values; withTarget requires targetId
// (PutAttributes, DeleteAttributes).
func validateAttributes(as []types.Attribute, withTarget bool) error {
	for _, a := range as {
		if !attrNameRE.MatchString(aws.ToString(a.Name)) {
			return invalidParam("Attribute name %q is invalid: up to 128 letters, numbers, hyphens, underscores, slashes or periods.", aws.ToString(a.Name))
		}
		if a.Value != nil && (!attrValueRE.MatchString(*a.Value) || strings.HasPrefix(*a.Value, " ") || strings.HasSuffix(*a.Value, " ")) {
			return invalidParam("Attribute value %q of %q is invalid.", *a.Value, aws.ToString(a.Name))
		}
		if a.TargetType != "" && a.TargetType != types.TargetTypeContainerInstance {
			return invalidParam("Attribute targetType must be container-instance.")
		}
		if withTarget && aws.ToString(a.TargetId) == "" {
			return invalidParam("Attribute %q needs a targetId.", aws.ToString(a.Name))
		}
	}
	return nil
}

// mergeAttributes sets (by name) the attributes in add on have.
func mergeAttributes(have, add []types.Attribute) []types.Attribute {
	byName := map[string]int{}
	for i, a := range have {
		byName[aws.ToString(a.Name)] = i
	}
	for _, a := range add {
		a.TargetId, a.TargetType = nil, ""
		if i, ok := byName[aws.ToString(a.Name)]; ok {
			have[i] = a
			continue
		}
		byName[aws.ToString(a.Name)] = len(have)
		have = append(have, a)
	}
	return sortedAttributes(have)
}

// changeAttributes applies fn to the instance each attribute targets.
func (s *Server) changeAttributes(clusterRef *string, as []types.Attribute, fn func(rec *records.Instance, a types.Attribute) error) ([]types.Attribute, error) {
	cluster, err := s.clusterName(clusterRef)
	if err != nil {
		return nil, err
	}
	if len(as) == 0 || len(as) > 10 {
		return nil, invalidParam("attributes must have between 1 and 10 items.")
	}
	if err := validateAttributes(as, true); err != nil {
		return nil, err
	}
	err = s.opts.Store.Update(func(tx store.Tx) error {
		if _, err := activeCluster(tx, cluster); err != nil {
			return err
		}
		for i, a := range as {
			rec, ok, err := s.loadInstance(tx, cluster, *a.TargetId)
			if err != nil {
				return err
			}
			if !ok {
				return clientErr("TargetNotFoundException", "Could not find %s.", *a.TargetId)
			}
			if err := fn(rec, a); err != nil {
				return err
			}
			if err := records.Put(tx, rec); err != nil {
				return err
			}
			as[i].TargetType = types.TargetTypeContainerInstance
			as[i].TargetId = rec.Instance.ContainerInstanceArn
		}
		return nil
	})
	return as, err
}

func (s *Server) putAttributes(c *call, in *ecs.PutAttributesInput) (smithy.Serializable, error) {
	as, err := s.changeAttributes(in.Cluster, in.Attributes, func(rec *records.Instance, a types.Attribute) error {
		rec.Instance.Attributes = mergeAttributes(rec.Instance.Attributes, []types.Attribute{a})
		if n := customAttributes(rec.Instance.Attributes); n > maxCustomAttributes {
			return clientErr("AttributeLimitExceededException",
				"You can apply up to %d custom attributes per resource; %s would have %d.", maxCustomAttributes, aws.ToString(rec.Instance.ContainerInstanceArn), n)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &ecs.PutAttributesOutput{Attributes: as}, nil
}

func (s *Server) deleteAttributes(c *call, in *ecs.DeleteAttributesInput) (smithy.Serializable, error) {
	as, err := s.changeAttributes(in.Cluster, in.Attributes, func(rec *records.Instance, a types.Attribute) error {
		kept := rec.Instance.Attributes[:0]
		for _, h := range rec.Instance.Attributes {
			if aws.ToString(h.Name) != aws.ToString(a.Name) {
				kept = append(kept, h)
			}
		}
		rec.Instance.Attributes = kept
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &ecs.DeleteAttributesOutput{Attributes: as}, nil
}

func (s *Server) listAttributes(c *call, in *ecs.ListAttributesInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	if in.TargetType != types.TargetTypeContainerInstance {
		return nil, invalidParam("targetType must be container-instance.")
	}
	if in.AttributeValue != nil && in.AttributeName == nil {
		return nil, invalidParam("attributeValue requires attributeName.")
	}
	// The attributes are paged by their keys, unique per instance and name.
	var out []types.Attribute
	var keys []string
	page, next, err := s.listPage(in.MaxResults, in.NextToken, func(tx store.Tx) ([]string, error) {
		if _, err := activeCluster(tx, cluster); err != nil {
			return nil, err
		}
		err := records.Each(tx, records.Instances, cluster+"/", func(rec *records.Instance) error {
			if aws.ToString(rec.Instance.Status) == "INACTIVE" {
				return nil
			}
			for _, a := range rec.Instance.Attributes {
				if in.AttributeName != nil && aws.ToString(a.Name) != *in.AttributeName {
					continue
				}
				if in.AttributeValue != nil && aws.ToString(a.Value) != *in.AttributeValue {
					continue
				}
				a.TargetType = types.TargetTypeContainerInstance
				a.TargetId = rec.Instance.ContainerInstanceArn
				keys = append(keys, aws.ToString(a.TargetId)+"|"+aws.ToString(a.Name))
				out = append(out, a)
			}
			return nil
		})
		return keys, err
	})
	if err != nil {
		return nil, err
	}
	start := 0
	if len(page) > 0 {
		for i, k := range keys {
			if k == page[0] {
				start = i
				break
			}
		}
	}
	res := out[start : start+len(page)]
	if res == nil {
		res = []types.Attribute{}
	}
	return &ecs.ListAttributesOutput{Attributes: res, NextToken: next}, nil
}
