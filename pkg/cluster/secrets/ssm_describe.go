package secrets

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

func jsonUnmarshal(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode record: %w", err)
	}
	return nil
}

// paramFilter is one DescribeParameters filter: a predicate over a
// parameter's current version.
type paramFilter func(p *parameter) bool

// describeFilters turns Filters and ParameterFilters into predicates;
// keys and options that are not served are refused by name.
func describeFilters(in *ssm.DescribeParametersInput) ([]paramFilter, error) {
	if len(in.Filters) > 0 && len(in.ParameterFilters) > 0 {
		return nil, ssmValidation("You can use either Filters or ParameterFilters in a single request.")
	}
	var out []paramFilter
	for _, f := range in.Filters {
		values := f.Values
		if len(values) == 0 {
			return nil, awsproto.ClientError("InvalidFilterValue", "Filter %s needs at least one value.", f.Key)
		}
		switch f.Key {
		case types.ParametersFilterKeyName:
			out = append(out, func(p *parameter) bool { return slices.Contains(values, p.Name) })
		case types.ParametersFilterKeyType:
			out = append(out, func(p *parameter) bool { return slices.Contains(values, p.current().Type) })
		case types.ParametersFilterKeyKeyId:
			out = append(out, func(p *parameter) bool { return slices.Contains(values, p.current().KeyID) })
		default:
			return nil, awsproto.ClientError("InvalidFilterKey", "Filters key %q: allowed are Name, Type, KeyId.", f.Key)
		}
	}
	for _, f := range in.ParameterFilters {
		key, option, values := aws.ToString(f.Key), aws.ToString(f.Option), f.Values
		if option == "" {
			option = "Equals"
		}
		field := func(get func(p *parameter) string, options ...string) error {
			if !slices.Contains(options, option) {
				return awsproto.ClientError("InvalidFilterOption", "The filter option %q is not valid for key %s: allowed are %s.", option, key, strings.Join(options, ", "))
			}
			if len(values) == 0 {
				return awsproto.ClientError("InvalidFilterValue", "ParameterFilters key %s needs at least one value.", key)
			}
			out = append(out, func(p *parameter) bool {
				v := get(p)
				return slices.ContainsFunc(values, func(want string) bool {
					switch option {
					case "BeginsWith":
						return strings.HasPrefix(v, want)
					case "Contains":
						return strings.Contains(v, want)
					}
					return v == want
				})
			})
			return nil
		}
		var err error
		switch {
		case key == "Name":
			err = field(func(p *parameter) string { return p.Name }, "Equals", "BeginsWith", "Contains")
		case key == "Type":
			err = field(func(p *parameter) string { return p.current().Type }, "Equals", "BeginsWith")
		case key == "KeyId":
			err = field(func(p *parameter) string { return p.current().KeyID }, "Equals", "BeginsWith")
		case key == "Tier":
			err = field(func(p *parameter) string { return p.current().Tier }, "Equals")
		case key == "DataType":
			err = field(func(p *parameter) string { return p.current().DataType }, "Equals")
		case key == "Path":
			if option == "Equals" {
				option = "OneLevel"
			}
			if option != "OneLevel" && option != "Recursive" {
				return nil, awsproto.ClientError("InvalidFilterOption", "The filter option %q is not valid for key Path: allowed are OneLevel, Recursive.", option)
			}
			recursive := option == "Recursive"
			out = append(out, func(p *parameter) bool {
				return slices.ContainsFunc(values, func(path string) bool {
					prefix := strings.TrimSuffix(path, "/") + "/"
					rest, ok := strings.CutPrefix(p.Name, prefix)
					return ok && (recursive || !strings.Contains(rest, "/"))
				})
			})
		case strings.HasPrefix(key, "tag:"):
			tagKey := strings.TrimPrefix(key, "tag:")
			if option != "Equals" {
				return nil, awsproto.ClientError("InvalidFilterOption", "The filter option %q is not valid for key %s: allowed is Equals.", option, key)
			}
			out = append(out, func(p *parameter) bool {
				return slices.ContainsFunc(p.Tags, func(t tag) bool {
					return t.Key == tagKey && (len(values) == 0 || slices.Contains(values, t.Value))
				})
			})
		case key == "Label":
			return nil, awsproto.ClientError("InvalidFilterKey", "ParameterFilters key Label: parameter labels are not served by this endpoint.")
		default:
			return nil, awsproto.ClientError("InvalidFilterKey", "ParameterFilters key %q: allowed are Name, Type, KeyId, Path, Tier, DataType and tag:KEY.", key)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Server) describeParameters(k auth.Key, in *ssm.DescribeParametersInput) (*ssm.DescribeParametersOutput, error) {
	if err := mayWrite(k, "ssm:DescribeParameters", fmt.Sprintf("arn:aws:ssm:%s:%s:*", s.o.Region, s.o.AccountID)); err != nil {
		return nil, err
	}
	if aws.ToBool(in.Shared) {
		return nil, ssmValidation("Shared: parameters shared from other accounts (AWS RAM) are not served by this endpoint.")
	}
	filters, err := describeFilters(in)
	if err != nil {
		return nil, err
	}
	limit, err := maxResults(in.MaxResults, 50, 50, "ValidationException")
	if err != nil {
		return nil, err
	}
	from, err := fromToken(in.NextToken, "InvalidNextToken")
	if err != nil {
		return nil, err
	}
	var out *ssm.DescribeParametersOutput
	err = s.o.Store.View(func(tx store.Tx) error {
		out = &ssm.DescribeParametersOutput{Parameters: []types.ParameterMetadata{}}
		return tx.Scan(ParametersBucket, store.Range{From: from}, func(key string, raw []byte) error {
			var p parameter
			if err := jsonUnmarshal(raw, &p); err != nil {
				return err
			}
			for _, f := range filters {
				if !f(&p) {
					return nil
				}
			}
			if len(out.Parameters) == limit {
				out.NextToken = pageToken(key)
				return store.ErrStopScan
			}
			v := p.current()
			out.Parameters = append(out.Parameters, types.ParameterMetadata{Name: aws.String(p.Name), ARN: aws.String(s.paramArn(p.Name)),
				Type: types.ParameterType(v.Type), KeyId: optional(v.KeyID), LastModifiedDate: aws.Time(v.Modified),
				LastModifiedUser: aws.String(v.ModifiedUser), Description: optional(v.Description), AllowedPattern: optional(v.AllowedPattern),
				Version: v.Version, Tier: types.ParameterTier(v.Tier), DataType: aws.String(v.DataType), Policies: []types.ParameterInlinePolicy{}})
			return nil
		})
	})
	return out, err
}
