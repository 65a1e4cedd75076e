package secrets

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// secretFilter is one ListSecrets filter.
func secretFilter(f types.Filter) (func(*secret) bool, error) {
	if len(f.Values) == 0 || len(f.Values) > 10 {
		return nil, invalidParam("Filter %s needs 1 to 10 values.", f.Key)
	}
	// A value is a prefix (case-sensitive here); a leading "!" negates it.
	match := func(candidates []string) bool {
		for _, v := range f.Values {
			neg := strings.HasPrefix(v, "!")
			v = strings.TrimPrefix(v, "!")
			hit := slices.ContainsFunc(candidates, func(c string) bool { return strings.HasPrefix(c, v) })
			if hit != neg {
				return true
			}
		}
		return false
	}
	switch f.Key {
	case types.FilterNameStringTypeName:
		return func(sec *secret) bool { return match([]string{sec.Name}) }, nil
	case types.FilterNameStringTypeDescription:
		return func(sec *secret) bool { return match([]string{sec.Description}) }, nil
	case types.FilterNameStringTypeTagKey:
		return func(sec *secret) bool { return match(tagField(sec.Tags, true)) }, nil
	case types.FilterNameStringTypeTagValue:
		return func(sec *secret) bool { return match(tagField(sec.Tags, false)) }, nil
	case types.FilterNameStringTypeAll:
		return func(sec *secret) bool {
			return match(append(append([]string{sec.Name, sec.Description}, tagField(sec.Tags, true)...), tagField(sec.Tags, false)...))
		}, nil
	case types.FilterNameStringTypePrimaryRegion, types.FilterNameStringTypeOwningService:
		// No secret here is replicated or owned by a service: only
		// negated values match.
		return func(*secret) bool { return match(nil) }, nil
	}
	return nil, invalidParam("Filter key %q: allowed are description, name, tag-key, tag-value, primary-region, owning-service, all.", f.Key)
}

func tagField(ts []tag, keys bool) []string {
	var out []string
	for _, t := range ts {
		if keys {
			out = append(out, t.Key)
		} else {
			out = append(out, t.Value)
		}
	}
	return out
}

func (s *Server) listSecrets(k auth.Key, in *sm.ListSecretsInput) (*sm.ListSecretsOutput, error) {
	if err := mayWrite(k, "secretsmanager:ListSecrets", s.secretArnPrefix()+"*"); err != nil {
		return nil, err
	}
	var filters []func(*secret) bool
	for _, f := range in.Filters {
		fn, err := secretFilter(f)
		if err != nil {
			return nil, err
		}
		filters = append(filters, fn)
	}
	limit, err := maxResults(in.MaxResults, 100, 100, "InvalidParameterException")
	if err != nil {
		return nil, err
	}
	from, err := fromToken(in.NextToken, "InvalidNextTokenException")
	if err != nil {
		return nil, err
	}
	start := 0
	if from != "" {
		if start, err = strconv.Atoi(from); err != nil || start < 0 {
			return nil, awsproto.ClientError("InvalidNextTokenException", "The NextToken is not valid.")
		}
	}
	desc := false
	switch in.SortOrder {
	case "", types.SortOrderTypeAsc:
	case types.SortOrderTypeDesc:
		desc = true
	default:
		return nil, invalidParam("SortOrder %q: allowed are asc, desc.", in.SortOrder)
	}
	var all []secret
	err = s.o.Store.View(func(tx store.Tx) error {
		all = nil
		return tx.Scan(SecretsBucket, store.Range{}, func(_ string, raw []byte) error {
			var sec secret
			if err := jsonUnmarshal(raw, &sec); err != nil {
				return err
			}
			if s.gone(&sec) || (sec.Deleted != nil && !aws.ToBool(in.IncludePlannedDeletion)) {
				return nil
			}
			for _, f := range filters {
				if !f(&sec) {
					return nil
				}
			}
			all = append(all, sec)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	less, err := secretOrder(in.SortBy)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(all, func(i, j int) bool {
		if desc {
			return less(&all[j], &all[i])
		}
		return less(&all[i], &all[j])
	})
	out := &sm.ListSecretsOutput{SecretList: []types.SecretListEntry{}}
	for i := start; i < len(all); i++ {
		if len(out.SecretList) == limit {
			out.NextToken = pageToken(strconv.Itoa(i))
			break
		}
		sec := &all[i]
		out.SecretList = append(out.SecretList, types.SecretListEntry{ARN: aws.String(sec.ARN), Name: aws.String(sec.Name),
			Description: optional(sec.Description), CreatedDate: aws.Time(sec.Created), LastChangedDate: aws.Time(sec.Changed),
			DeletedDate: sec.Deleted, Tags: outTags(sec.Tags), SecretVersionsToStages: versionsToStages(sec), RotationEnabled: aws.Bool(false)})
	}
	return out, nil
}

func secretOrder(by types.SortByType) (func(a, b *secret) bool, error) {
	switch by {
	case "", types.SortByTypeCreatedDate:
		return func(a, b *secret) bool { return a.Created.Before(b.Created) }, nil
	case types.SortByTypeName:
		return func(a, b *secret) bool { return a.Name < b.Name }, nil
	case types.SortByTypeLastChangedDate:
		return func(a, b *secret) bool { return a.Changed.Before(b.Changed) }, nil
	}
	return nil, invalidParam("SortBy %q: allowed are created-date, name, last-changed-date (last-accessed-date is not kept by this endpoint).", by)
}
