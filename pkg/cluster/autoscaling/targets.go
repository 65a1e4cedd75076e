package autoscaling

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	aas "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"

	"github.com/berth-dev/berth/pkg/cluster/metrics"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// maxCapacityLimit bounds a service's desired count, as ECS does.
const maxCapacityLimit = 5000

func registerScalableTarget(s *Server, _ context.Context, in *aas.RegisterScalableTargetInput) (*aas.RegisterScalableTargetOutput, error) {
	r, err := requireRef(in.ServiceNamespace, in.ResourceId, in.ScalableDimension)
	if err != nil {
		return nil, err
	}
	for _, c := range []struct {
		member string
		v      *int32
	}{{"MinCapacity", in.MinCapacity}, {"MaxCapacity", in.MaxCapacity}} {
		if c.v != nil && (*c.v < 0 || *c.v > maxCapacityLimit) {
			return nil, validation("%s must be from 0 to %d, not %d", c.member, maxCapacityLimit, *c.v)
		}
	}
	if len(in.Tags) > 50 {
		return nil, validation("Tags may hold at most 50 tags")
	}
	now := s.o.Now()
	out := &aas.RegisterScalableTargetOutput{}
	changed := false
	err = s.o.Store.Update(func(tx store.Tx) error {
		changed = false
		if _, ok, err := loadService(tx, r.Resource); err != nil {
			return err
		} else if !ok {
			return validation("ECS service doesn't exist: %s", r.Resource)
		}
		t, exists, err := getTarget(tx, r.Resource)
		if err != nil {
			return err
		}
		if !exists {
			if in.MinCapacity == nil || in.MaxCapacity == nil {
				return validation("MinCapacity and MaxCapacity are required when registering a new scalable target")
			}
			id := strings.ReplaceAll(newID(), "-", "")
			t = &Target{Tags: in.Tags, Target: types.ScalableTarget{ServiceNamespace: r.Namespace, ResourceId: aws.String(r.Resource),
				ScalableDimension: r.Dimension, CreationTime: aws.Time(now), ScalableTargetARN: aws.String(s.targetARN(id)),
				RoleARN: aws.String(fmt.Sprintf("arn:aws:iam::%s:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService", s.o.AccountID)),
				SuspendedState: &types.SuspendedState{DynamicScalingInSuspended: aws.Bool(false), DynamicScalingOutSuspended: aws.Bool(false),
					ScheduledScalingSuspended: aws.Bool(false)}}}
		} else if in.Tags != nil {
			return validation("Tags can be given only when the scalable target is first registered; use TagResource")
		}
		if in.MinCapacity != nil {
			t.Target.MinCapacity = in.MinCapacity
		}
		if in.MaxCapacity != nil {
			t.Target.MaxCapacity = in.MaxCapacity
		}
		if in.RoleARN != nil {
			t.Target.RoleARN = in.RoleARN
		}
		if ss := in.SuspendedState; ss != nil {
			cur := t.Target.SuspendedState
			for _, f := range []struct{ in, cur **bool }{{&ss.DynamicScalingInSuspended, &cur.DynamicScalingInSuspended},
				{&ss.DynamicScalingOutSuspended, &cur.DynamicScalingOutSuspended}, {&ss.ScheduledScalingSuspended, &cur.ScheduledScalingSuspended}} {
				if *f.in != nil {
					*f.cur = *f.in
				}
			}
		}
		if aws.ToInt32(t.Target.MinCapacity) > aws.ToInt32(t.Target.MaxCapacity) {
			return validation("Minimum capacity cannot be greater than maximum capacity")
		}
		if err := tx.Put(TargetsBucket, r.Resource, t); err != nil {
			return fmt.Errorf("write scalable target: %w", err)
		}
		// A range the service is outside of moves it in, as AWS does.
		cause := fmt.Sprintf("minimum capacity was set to %d", aws.ToInt32(t.Target.MinCapacity))
		if svc, _, err := loadService(tx, r.Resource); err == nil && svc.Service.DesiredCount > aws.ToInt32(t.Target.MaxCapacity) {
			cause = fmt.Sprintf("maximum capacity was set to %d", aws.ToInt32(t.Target.MaxCapacity))
		}
		changed, err = clampToTarget(tx, t, cause, now)
		out.ScalableTargetARN = t.Target.ScalableTargetARN
		return err
	})
	if err != nil {
		return nil, err
	}
	if changed && s.o.Services != nil {
		s.o.Services.Wake()
	}
	return out, nil
}

// page returns the items after a NextToken (a base64 key) and the next
// token, maxResults (1..50, default 50) at a time.
func page[T any](items []T, key func(T) string, tok *string, maxResults *int32) ([]T, *string, error) {
	limit, err := pageLimit(maxResults)
	if err != nil {
		return nil, nil, err
	}
	start := 0
	if tok != nil {
		b, err := base64.RawURLEncoding.DecodeString(*tok)
		if err != nil || len(b) == 0 {
			return nil, nil, invalidToken("Invalid token")
		}
		start = len(items)
		for i, it := range items {
			if key(it) > string(b) {
				start = i
				break
			}
		}
	}
	end := min(len(items), start+limit)
	var next *string
	if end < len(items) {
		next = aws.String(base64.RawURLEncoding.EncodeToString([]byte(key(items[end-1]))))
	}
	return items[start:end], next, nil
}

// pageLimit is MaxResults: 1 to 50, 50 when absent.
func pageLimit(maxResults *int32) (int, error) {
	limit := int(aws.ToInt32(maxResults))
	if maxResults != nil && (limit < 1 || limit > 50) {
		return 0, validation("MaxResults must be from 1 to 50")
	}
	if limit == 0 {
		limit = 50
	}
	return limit, nil
}

func describeScalableTargets(s *Server, _ context.Context, in *aas.DescribeScalableTargetsInput) (*aas.DescribeScalableTargetsOutput, error) {
	if _, err := checkRef(in.ServiceNamespace, nil, in.ScalableDimension); err != nil {
		return nil, err
	}
	for _, id := range in.ResourceIds {
		if _, _, ok := serviceOf(id); !ok {
			return nil, validation("Unsupported resource ID %s for namespace ecs: it must be service/<cluster>/<service>", id)
		}
	}
	var all []types.ScalableTarget
	err := s.o.Store.View(func(tx store.Tx) error {
		all = nil
		return store.ForEach(tx, TargetsBucket, "", func(k string, raw []byte) error {
			t, err := decode[Target](raw)
			if err != nil {
				return fmt.Errorf("scalable target %s: %w", k, err)
			}
			if len(in.ResourceIds) == 0 || slices.Contains(in.ResourceIds, k) {
				all = append(all, t.Target)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	items, next, err := page(all, func(t types.ScalableTarget) string { return aws.ToString(t.ResourceId) }, in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	return &aas.DescribeScalableTargetsOutput{ScalableTargets: nonNil(items), NextToken: next}, nil
}

func nonNil[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}

func deregisterScalableTarget(s *Server, _ context.Context, in *aas.DeregisterScalableTargetInput) (*aas.DeregisterScalableTargetOutput, error) {
	r, err := requireRef(in.ServiceNamespace, in.ResourceId, in.ScalableDimension)
	if err != nil {
		return nil, err
	}
	err = s.o.Store.Update(func(tx store.Tx) error {
		if _, err := mustTarget(tx, r.Resource); err != nil {
			return err
		}
		// The target's policies (and the alarms they own), scheduled
		// actions and activities go with it.
		for _, b := range []store.Bucket{PoliciesBucket, ScheduledBucket, ActivitiesBucket} {
			var keys []string
			var alarms []string
			if err := children(tx, b, r.Resource, func(k string, raw []byte) error {
				keys = append(keys, k)
				if b == PoliciesBucket {
					p, err := decode[Policy](raw)
					if err != nil {
						return fmt.Errorf("scaling policy %s: %w", k, err)
					}
					alarms = append(alarms, ownedAlarms(&p.Policy)...)
				}
				return nil
			}); err != nil {
				return err
			}
			if err := metrics.DeleteAlarmsTx(tx, alarms, true); err != nil {
				return err
			}
			for _, k := range keys {
				if err := tx.Delete(b, k); err != nil {
					return err
				}
			}
		}
		return tx.Delete(TargetsBucket, r.Resource)
	})
	if err != nil {
		return nil, err
	}
	return &aas.DeregisterScalableTargetOutput{}, nil
}
