package ecsapi

import (
	"encoding/json"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/cluster/launch"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// ECS's tag limits (the AWS tagging rules).
const (
	maxTags        = 50
	maxTagKey      = 128
	maxTagValue    = 256
	reservedPrefix = "aws:"
)

// tagCharsRE is what AWS allows in tag keys and values: letters, digits,
// spaces and + - = . _ : / @ in any script.
var tagCharsRE = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)

// validateTags checks tags a caller sets: at most 50, keys 1-128 and values
// 0-256 characters of the allowed ones, no key twice, none starting with
// aws: (ECS's own).
func validateTags(tags []types.Tag) error {
	if len(tags) > maxTags {
		return invalidParam("tags: a resource can have at most %d tags, got %d.", maxTags, len(tags))
	}
	seen := map[string]bool{}
	for _, t := range tags {
		k, v := aws.ToString(t.Key), aws.ToString(t.Value)
		switch {
		case t.Key == nil || len(k) == 0 || len([]rune(k)) > maxTagKey || !tagCharsRE.MatchString(k):
			return invalidParam("tags: key %q must be 1 to %d letters, digits, spaces or + - = . _ : / @.", k, maxTagKey)
		case len([]rune(v)) > maxTagValue || !tagCharsRE.MatchString(v):
			return invalidParam("tags: the value of %q must be at most %d letters, digits, spaces or + - = . _ : / @.", k, maxTagValue)
		case strings.HasPrefix(strings.ToLower(k), reservedPrefix):
			return invalidParam("tags: key %q uses the reserved prefix aws:.", k)
		case seen[k]:
			return invalidParam("tags: key %q is given twice.", k)
		}
		seen[k] = true
	}
	return nil
}

// validateTagsMember validates the tags member of any request that has one,
// before the operation runs: every create and TagResource.
func validateTagsMember(body []byte) error {
	var in struct{ Tags []types.Tag }
	if json.Unmarshal(body, &in) != nil {
		return nil // decodeInput answers a malformed body
	}
	return validateTags(in.Tags)
}

// taggable is a record whose tags TagResource changes.
type taggable struct {
	rec  records.Record
	tags *[]types.Tag
}

// loadTaggable resolves a resource ARN of this endpoint to its record.
func (s *Server) loadTaggable(tx store.Tx, ref string) (*taggable, error) {
	if ref == "" {
		return nil, invalidParam("resourceArn is required.")
	}
	p, err := arn.Parse(ref)
	if err != nil || p.Service != "ecs" {
		return nil, invalidParam("resourceArn %q is not an ECS ARN.", ref)
	}
	notFound := clientErr("ResourceNotFoundException", "The specified resource %s could not be found.", ref)
	if p.Region != s.arns.Region || p.AccountID != s.arns.AccountID {
		return nil, notFound
	}
	typ, path := arn.SplitResource(p.Resource)
	var t *taggable
	ok := false
	switch {
	case typ == "cluster" && len(path) == 1:
		var rec *records.Cluster
		if rec, ok, err = records.Get[records.Cluster](tx, records.Clusters, path[0]); ok {
			ok = aws.ToString(rec.Cluster.Status) != "INACTIVE"
			t = &taggable{rec: rec, tags: &rec.Cluster.Tags}
		}
	case typ == "service" && len(path) == 2:
		var rec *records.Service
		if rec, ok, err = records.Get[records.Service](tx, records.Services, records.ServiceKey(path[0], path[1])); ok {
			t = &taggable{rec: rec, tags: &rec.Service.Tags}
		}
	case typ == "task" && len(path) == 2:
		var rec *records.Task
		if rec, ok, err = records.Get[records.Task](tx, records.Tasks, records.TaskKey(path[0], path[1])); ok {
			t = &taggable{rec: rec, tags: &rec.Task.Tags}
		}
	case typ == "container-instance" && len(path) == 2:
		var rec *records.Instance
		if rec, ok, err = records.Get[records.Instance](tx, records.Instances, records.InstanceKey(path[0], path[1])); ok {
			t = &taggable{rec: rec, tags: &rec.Instance.Tags}
		}
	case typ == "task-definition" && len(path) == 1:
		var rec *records.TaskDefinition
		if rec, ok, err = records.FindTaskDefinition(tx, s.arns, ref); ok && strings.Contains(path[0], ":") {
			t = &taggable{rec: rec, tags: &rec.Tags}
		} else {
			ok = false
		}
	default:
		return nil, invalidParam("resourceArn %q does not name a cluster, service, task, task definition or container instance.", ref)
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound
	}
	return t, nil
}

func (s *Server) tagResource(c *call, in *ecs.TagResourceInput) (smithy.Serializable, error) {
	if len(in.Tags) == 0 {
		return nil, invalidParam("tags must have at least one tag.")
	}
	err := s.opts.Store.Update(func(tx store.Tx) error {
		t, err := s.loadTaggable(tx, aws.ToString(in.ResourceArn))
		if err != nil {
			return err
		}
		merged := launch.MergeTags(*t.tags, in.Tags)
		if n := userTags(merged); n > maxTags {
			return invalidParam("tags: a resource can have at most %d tags; this would make %d.", maxTags, n)
		}
		*t.tags = merged
		return records.Put(tx, t.rec)
	})
	if err != nil {
		return nil, err
	}
	return &ecs.TagResourceOutput{}, nil
}

// userTags counts the tags that are not ECS's own (aws:).
func userTags(tags []types.Tag) int {
	n := 0
	for _, t := range tags {
		if !strings.HasPrefix(strings.ToLower(aws.ToString(t.Key)), reservedPrefix) {
			n++
		}
	}
	return n
}

func (s *Server) untagResource(c *call, in *ecs.UntagResourceInput) (smithy.Serializable, error) {
	if len(in.TagKeys) == 0 || len(in.TagKeys) > maxTags {
		return nil, invalidParam("tagKeys must have between 1 and %d keys.", maxTags)
	}
	drop := map[string]bool{}
	for _, k := range in.TagKeys {
		if strings.HasPrefix(strings.ToLower(k), reservedPrefix) {
			return nil, invalidParam("tagKeys: key %q uses the reserved prefix aws:.", k)
		}
		drop[k] = true
	}
	err := s.opts.Store.Update(func(tx store.Tx) error {
		t, err := s.loadTaggable(tx, aws.ToString(in.ResourceArn))
		if err != nil {
			return err
		}
		kept := []types.Tag{}
		for _, tag := range *t.tags {
			if !drop[aws.ToString(tag.Key)] {
				kept = append(kept, tag)
			}
		}
		*t.tags = kept
		return records.Put(tx, t.rec)
	})
	if err != nil {
		return nil, err
	}
	return &ecs.UntagResourceOutput{}, nil
}

func (s *Server) listTagsForResource(c *call, in *ecs.ListTagsForResourceInput) (smithy.Serializable, error) {
	out := &ecs.ListTagsForResourceOutput{}
	err := s.opts.Store.View(func(tx store.Tx) error {
		t, err := s.loadTaggable(tx, aws.ToString(in.ResourceArn))
		if err != nil {
			return err
		}
		out.Tags = append([]types.Tag{}, *t.tags...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
