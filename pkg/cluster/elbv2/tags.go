package elbv2

import (
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// tagged is a taggable record: it is stored back with records.Put after
// its tags changed.
type tagged struct {
	rec  records.Record
	tags *[]elbtypes.Tag
}

// taggedResource reads the load balancer, target group, listener or rule
// an ARN names.
func (s *Server) taggedResource(tx store.Tx, ref string) (tagged, error) {
	switch {
	case isType(s, ref, "loadbalancer"):
		r, err := s.loadBalancer(tx, ref)
		if err != nil {
			return tagged{}, err
		}
		return tagged{r, &r.Tags}, nil
	case isType(s, ref, "targetgroup"):
		r, err := s.targetGroup(tx, ref)
		if err != nil {
			return tagged{}, err
		}
		return tagged{r, &r.Tags}, nil
	case isType(s, ref, "listener"):
		r, err := s.listener(tx, ref)
		if err != nil {
			return tagged{}, err
		}
		return tagged{r, &r.Tags}, nil
	case isType(s, ref, "listener-rule"):
		r, err := s.rule(tx, ref)
		if err != nil {
			return tagged{}, err
		}
		return tagged{r, &r.Tags}, nil
	}
	return tagged{}, apiErr(errValidation, "'%s' is not the ARN of a load balancer, target group, listener or rule of this endpoint", ref)
}

func isType(s *Server, ref, typ string) bool {
	_, ok := s.arns.Own(ref, typ)
	return ok
}

func checkResourceArns(arns []string) error {
	if len(arns) == 0 || len(arns) > 20 {
		return apiErr(errValidation, "Between 1 and 20 resource ARNs must be specified")
	}
	return nil
}

func (s *Server) addTags(tx store.Tx, in *elb.AddTagsInput) (any, error) {
	if err := checkResourceArns(in.ResourceArns); err != nil {
		return nil, err
	}
	if len(in.Tags) == 0 {
		return nil, apiErr(errValidation, "At least one tag must be specified")
	}
	for _, ref := range in.ResourceArns {
		t, err := s.taggedResource(tx, ref)
		if err != nil {
			return nil, err
		}
		merged := mergeTags(*t.tags, in.Tags)
		if err := checkTags(in.Tags, len(merged)); err != nil {
			return nil, err
		}
		*t.tags = merged
		if err := records.Put(tx, t.rec); err != nil {
			return nil, err
		}
	}
	return &elb.AddTagsOutput{}, nil
}

func (s *Server) removeTags(tx store.Tx, in *elb.RemoveTagsInput) (any, error) {
	if err := checkResourceArns(in.ResourceArns); err != nil {
		return nil, err
	}
	if len(in.TagKeys) == 0 {
		return nil, apiErr(errValidation, "At least one tag key must be specified")
	}
	for _, ref := range in.ResourceArns {
		t, err := s.taggedResource(tx, ref)
		if err != nil {
			return nil, err
		}
		*t.tags = slices.DeleteFunc(slices.Clone(*t.tags), func(tag elbtypes.Tag) bool { return slices.Contains(in.TagKeys, aws.ToString(tag.Key)) })
		if err := records.Put(tx, t.rec); err != nil {
			return nil, err
		}
	}
	return &elb.RemoveTagsOutput{}, nil
}

func (s *Server) describeTags(tx store.Tx, in *elb.DescribeTagsInput) (any, error) {
	if err := checkResourceArns(in.ResourceArns); err != nil {
		return nil, err
	}
	out := &elb.DescribeTagsOutput{TagDescriptions: []elbtypes.TagDescription{}}
	for _, ref := range in.ResourceArns {
		t, err := s.taggedResource(tx, ref)
		if err != nil {
			return nil, err
		}
		out.TagDescriptions = append(out.TagDescriptions, elbtypes.TagDescription{ResourceArn: aws.String(ref), Tags: nonNil(*t.tags)})
	}
	return out, nil
}
