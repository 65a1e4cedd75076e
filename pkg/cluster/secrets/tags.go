package secrets

import (
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

type tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func ssmTags(in []types.Tag) ([]tag, error) {
	if len(in) > maxTags {
		return nil, awsproto.ClientError("TooManyTagsError", "The Tags parameter has %d tags; at most %d are allowed.", len(in), maxTags)
	}
	var out []tag
	for _, t := range in {
		key, value := aws.ToString(t.Key), aws.ToString(t.Value)
		if key == "" || len(key) > 128 || len(value) > 256 {
			return nil, ssmValidation("Tag keys must be 1-128 characters and values at most 256 (key %q).", key)
		}
		if strings.HasPrefix(strings.ToLower(key), "aws:") {
			return nil, ssmValidation("Tag key %q: the aws: prefix is reserved.", key)
		}
		out = append(out, tag{Key: key, Value: value})
	}
	return out, nil
}

// ssmResource checks the ResourceType and ResourceId of the tag operations:
// only parameters carry tags here.
func (s *Server) ssmResource(tx store.Tx, rt types.ResourceTypeForTagging, id *string) (*parameter, error) {
	if rt != types.ResourceTypeForTaggingParameter {
		return nil, awsproto.ClientError("InvalidResourceType", "ResourceType %q: only Parameter is served by this endpoint.", rt)
	}
	name, err := s.resolveName(tx, aws.ToString(id))
	if err != nil {
		return nil, err
	}
	var p parameter
	if err := tx.Get(ParametersBucket, name, &p); err != nil {
		if isNotFound(err) {
			return nil, awsproto.ClientError("InvalidResourceId", "The resource ID %q is not valid. Verify the ID and try again.", aws.ToString(id))
		}
		return nil, err
	}
	return &p, nil
}

func (s *Server) addTags(k auth.Key, in *ssm.AddTagsToResourceInput) (*ssm.AddTagsToResourceOutput, error) {
	tags, err := ssmTags(in.Tags)
	if err != nil {
		return nil, err
	}
	err = s.o.Store.Update(func(tx store.Tx) error {
		p, err := s.ssmResource(tx, in.ResourceType, in.ResourceId)
		if err != nil {
			return err
		}
		if err := mayWrite(k, "ssm:AddTagsToResource", s.paramArn(p.Name)); err != nil {
			return err
		}
		p.Tags = mergeTags(p.Tags, tags)
		if len(p.Tags) > maxTags {
			return awsproto.ClientError("TooManyTagsError", "The parameter would have %d tags; at most %d are allowed.", len(p.Tags), maxTags)
		}
		return tx.Put(ParametersBucket, p.Name, p)
	})
	if err != nil {
		return nil, err
	}
	return &ssm.AddTagsToResourceOutput{}, nil
}

func (s *Server) removeTags(k auth.Key, in *ssm.RemoveTagsFromResourceInput) (*ssm.RemoveTagsFromResourceOutput, error) {
	err := s.o.Store.Update(func(tx store.Tx) error {
		p, err := s.ssmResource(tx, in.ResourceType, in.ResourceId)
		if err != nil {
			return err
		}
		if err := mayWrite(k, "ssm:RemoveTagsFromResource", s.paramArn(p.Name)); err != nil {
			return err
		}
		p.Tags = removeTags(p.Tags, in.TagKeys)
		return tx.Put(ParametersBucket, p.Name, p)
	})
	if err != nil {
		return nil, err
	}
	return &ssm.RemoveTagsFromResourceOutput{}, nil
}

func (s *Server) listTags(k auth.Key, in *ssm.ListTagsForResourceInput) (*ssm.ListTagsForResourceOutput, error) {
	var out *ssm.ListTagsForResourceOutput
	err := s.o.Store.View(func(tx store.Tx) error {
		p, err := s.ssmResource(tx, in.ResourceType, in.ResourceId)
		if err != nil {
			return err
		}
		if err := mayWrite(k, "ssm:ListTagsForResource", s.paramArn(p.Name)); err != nil {
			return err
		}
		out = &ssm.ListTagsForResourceOutput{TagList: []types.Tag{}}
		for _, t := range p.Tags {
			out.TagList = append(out.TagList, types.Tag{Key: aws.String(t.Key), Value: aws.String(t.Value)})
		}
		return nil
	})
	return out, err
}

// mergeTags sets each of add on tags, replacing the value of a key present.
func mergeTags(tags, add []tag) []tag {
	for _, t := range add {
		i := slices.IndexFunc(tags, func(x tag) bool { return x.Key == t.Key })
		if i >= 0 {
			tags[i].Value = t.Value
		} else {
			tags = append(tags, t)
		}
	}
	return tags
}

func removeTags(tags []tag, keys []string) []tag {
	return slices.DeleteFunc(tags, func(t tag) bool { return slices.Contains(keys, t.Key) })
}
