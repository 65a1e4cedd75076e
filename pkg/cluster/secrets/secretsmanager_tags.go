package secrets

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

func smTags(in []types.Tag) ([]tag, error) {
	if len(in) > maxTags {
		return nil, invalidParam("A secret can have at most %d tags; the request has %d.", maxTags, len(in))
	}
	var out []tag
	for _, t := range in {
		key, value := aws.ToString(t.Key), aws.ToString(t.Value)
		if key == "" || len(key) > 128 || len(value) > 256 {
			return nil, invalidParam("Tag keys must be 1-128 characters and values at most 256 (key %q).", key)
		}
		if strings.HasPrefix(strings.ToLower(key), "aws:") {
			return nil, invalidParam("Tag key %q: the aws: prefix is reserved.", key)
		}
		out = append(out, tag{Key: key, Value: value})
	}
	return out, nil
}

func outTags(ts []tag) []types.Tag {
	out := []types.Tag{}
	for _, t := range ts {
		out = append(out, types.Tag{Key: aws.String(t.Key), Value: aws.String(t.Value)})
	}
	return out
}

func (s *Server) tagResource(k auth.Key, in *sm.TagResourceInput) (*sm.TagResourceOutput, error) {
	tags, err := smTags(in.Tags)
	if err != nil {
		return nil, err
	}
	err = s.changeSecret(k, "secretsmanager:TagResource", in.SecretId, true, func(_ store.Tx, sec *secret) error {
		sec.Tags = mergeTags(sec.Tags, tags)
		if len(sec.Tags) > maxTags {
			return invalidParam("A secret can have at most %d tags.", maxTags)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &sm.TagResourceOutput{}, nil
}

func (s *Server) untagResource(k auth.Key, in *sm.UntagResourceInput) (*sm.UntagResourceOutput, error) {
	err := s.changeSecret(k, "secretsmanager:UntagResource", in.SecretId, true, func(_ store.Tx, sec *secret) error {
		sec.Tags = removeTags(sec.Tags, in.TagKeys)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &sm.UntagResourceOutput{}, nil
}
