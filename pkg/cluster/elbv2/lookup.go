package elbv2

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// loadBalancer reads the load balancer an ARN names.
func (s *Server) loadBalancer(tx store.Tx, ref string) (*records.LoadBalancer, error) {
	path, ok := s.arns.Own(ref, "loadbalancer")
	if ok && len(path) == 3 {
		rec, found, err := records.Get[records.LoadBalancer](tx, records.LoadBalancers, path[2])
		if err != nil || (found && aws.ToString(rec.LoadBalancer.LoadBalancerArn) == ref) {
			return rec, err
		}
	}
	return nil, apiErr(errLBNotFound, "One or more load balancers not found: '%s'", ref)
}

// targetGroup reads the target group an ARN names.
func (s *Server) targetGroup(tx store.Tx, ref string) (*records.TargetGroup, error) {
	path, ok := s.arns.Own(ref, "targetgroup")
	if ok && len(path) == 2 {
		rec, found, err := records.Get[records.TargetGroup](tx, records.TargetGroups, path[1])
		if err != nil || (found && aws.ToString(rec.TargetGroup.TargetGroupArn) == ref) {
			return rec, err
		}
	}
	return nil, apiErr(errTGNotFound, "One or more target groups not found: '%s'", ref)
}

// listener reads the listener an ARN names.
func (s *Server) listener(tx store.Tx, ref string) (*records.Listener, error) {
	path, ok := s.arns.Own(ref, "listener")
	if ok && len(path) == 4 {
		rec, found, err := records.Get[records.Listener](tx, records.Listeners, path[2]+"/"+path[3])
		if err != nil || (found && aws.ToString(rec.Listener.ListenerArn) == ref) {
			return rec, err
		}
	}
	return nil, apiErr(errListenerNotFound, "One or more listeners not found: '%s'", ref)
}

// rule reads the rule an ARN names.
func (s *Server) rule(tx store.Tx, ref string) (*records.Rule, error) {
	path, ok := s.arns.Own(ref, "listener-rule")
	if ok && len(path) == 5 {
		rec, found, err := records.Get[records.Rule](tx, records.Rules, path[3]+"/"+path[4])
		if err != nil || (found && aws.ToString(rec.Rule.RuleArn) == ref) {
			return rec, err
		}
	}
	return nil, apiErr(errRuleNotFound, "One or more rules not found: '%s'", ref)
}

// all reads every record of a bucket under prefix.
func all[T any](tx store.Tx, b store.Bucket, prefix string) ([]*T, error) {
	var out []*T
	err := records.Each(tx, b, prefix, func(r *T) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// page returns the page of items starting at marker (an offset, as the
// previous page's NextMarker gave it) with at most size items (1-400,
// default 400), and the next marker.
func page[T any](items []T, marker *string, size *int32) ([]T, *string, error) {
	if err := checkRange("pageSize", size, 1, 400); err != nil {
		return nil, nil, err
	}
	start := 0
	if marker != nil {
		n, err := strconv.Atoi(*marker)
		if err != nil || n < 0 || n > len(items) {
			return nil, nil, apiErr(errValidation, "The marker '%s' is not valid", *marker)
		}
		start = n
	}
	n := int(aws.ToInt32(size))
	if n == 0 {
		n = 400
	}
	end := min(len(items), start+n)
	var next *string
	if end < len(items) {
		next = aws.String(strconv.Itoa(end))
	}
	return items[start:end], next, nil
}

// pageOf is the page of records as the SDK type get returns (never nil,
// so that an empty result is an empty list), and the next marker.
func pageOf[R, T any](items []*R, marker *string, size *int32, get func(*R) T) ([]T, *string, error) {
	pg, next, err := page(items, marker, size)
	if err != nil {
		return nil, nil, err
	}
	out := make([]T, 0, len(pg))
	for _, r := range pg {
		out = append(out, get(r))
	}
	return out, next, nil
}

// sortBy sorts records by a string key.
func sortBy[T any](items []*T, key func(*T) string) {
	slices.SortFunc(items, func(a, b *T) int { return cmp.Compare(key(a), key(b)) })
}
