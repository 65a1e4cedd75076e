package logstore

import (
	"encoding/json"
	"maps"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// Tags on log groups: CreateLogGroup's tags, TagResource, UntagResource
// and ListTagsForResource with the group's ARN, and the older
// TagLogGroup, UntagLogGroup and ListTagsLogGroup with its name. They are
// kept on the group's record and go with it.

// maxTags is how many tags a log group may have.
const maxTags = 50

var (
	tagKeyRE   = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]+$`)
	tagValueRE = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
)

// validTags checks tag keys and values as CloudWatch Logs does.
func validTags(member string, tags map[string]string) error {
	for k, v := range tags {
		if n := utf8.RuneCountInString(k); n < 1 || n > 128 || !tagKeyRE.MatchString(k) {
			return apiErr(errInvalid, "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Map keys must have length between 1 and 128 and satisfy regular expression pattern: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+)$", k, member)
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return apiErr(errInvalid, "Tag keys starting with 'aws:' are reserved for AWS use: %s", k)
		}
		if utf8.RuneCountInString(v) > 256 || !tagValueRE.MatchString(v) {
			return apiErr(errInvalid, "1 validation error detected: Value '%s' at '%s.%s' failed to satisfy constraint: Member must have length less than or equal to 256 and satisfy regular expression pattern: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$", v, member, k)
		}
	}
	return nil
}

// tagGroup adds or replaces tags on a group. tooMany is the error type of
// passing maxTags: TagResource answers TooManyTagsException, TagLogGroup
// InvalidParameterException.
func (s *Store) tagGroup(group, member string, tags map[string]string, tooMany string) error {
	if len(tags) == 0 {
		return apiErr(errInvalid, "1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length greater than or equal to 1", member)
	}
	if err := validTags(member, tags); err != nil {
		return err
	}
	return s.st.Update(func(tx store.Tx) error {
		g, err := loadGroup(tx, group)
		if err != nil {
			return err
		}
		merged := maps.Clone(g.Tags)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, tags)
		if len(merged) > maxTags {
			return apiErr(tooMany, "A resource can have no more than %d tags; %s would have %d.", maxTags, group, len(merged))
		}
		g.Tags = merged
		return tx.Put(groupsBucket, group, g)
	})
}

// untagGroup removes the tag keys from a group; absent keys are fine.
func (s *Store) untagGroup(group, member string, keys []string) error {
	if len(keys) == 0 || len(keys) > maxTags {
		return apiErr(errInvalid, "1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length between 1 and %d", member, maxTags)
	}
	return s.st.Update(func(tx store.Tx) error {
		g, err := loadGroup(tx, group)
		if err != nil {
			return err
		}
		for _, k := range keys {
			delete(g.Tags, k)
		}
		return tx.Put(groupsBucket, group, g)
	})
}

// groupTags returns a group's tags ({} when it has none).
func (s *Store) groupTags(group string) (map[string]string, error) {
	var tags map[string]string
	err := s.st.View(func(tx store.Tx) error {
		g, err := loadGroup(tx, group)
		if err != nil {
			return err
		}
		tags = maps.Clone(g.Tags)
		return nil
	})
	if tags == nil {
		tags = map[string]string{}
	}
	return tags, err
}

// serveTagResource runs TagResource, UntagResource or ListTagsForResource
// on the log group its resourceArn names.
func (s *Store) serveTagResource(op string, dec func(any) error) (any, error) {
	var in struct {
		ResourceArn string
		Tags        map[string]string
		TagKeys     []string
	}
	if err := dec(&in); err != nil {
		return nil, err
	}
	group, err := s.groupOfResourceARN(in.ResourceArn)
	if err != nil {
		return nil, err
	}
	switch op {
	case "TagResource":
		return struct{}{}, s.tagGroup(group, "tags", in.Tags, errTooManyTags)
	case "UntagResource":
		return struct{}{}, s.untagGroup(group, "tagKeys", in.TagKeys)
	}
	tags, err := s.groupTags(group)
	return struct {
		Tags map[string]string `json:"tags"`
	}{tags}, err
}

// serveTagLogGroup runs the older TagLogGroup, UntagLogGroup or
// ListTagsLogGroup on the group logGroupName names.
func (s *Store) serveTagLogGroup(op string, dec func(any) error) (any, error) {
	var in struct {
		LogGroupName string
		Tags         json.RawMessage // a map for TagLogGroup, a list of keys for UntagLogGroup
	}
	if err := dec(&in); err != nil {
		return nil, err
	}
	switch op {
	case "TagLogGroup":
		var tags map[string]string
		if err := json.Unmarshal(orNull(in.Tags), &tags); err != nil {
			return nil, apiErr(errSerializat, "decode TagLogGroup tags: %v", err)
		}
		return struct{}{}, s.tagGroup(in.LogGroupName, "tags", tags, errInvalid)
	case "UntagLogGroup":
		var keys []string
		if err := json.Unmarshal(orNull(in.Tags), &keys); err != nil {
			return nil, apiErr(errSerializat, "decode UntagLogGroup tags: %v", err)
		}
		return struct{}{}, s.untagGroup(in.LogGroupName, "tags", keys)
	}
	tags, err := s.groupTags(in.LogGroupName)
	return struct {
		Tags map[string]string `json:"tags"`
	}{tags}, err
}

func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}
