package elbv2

import (
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// listenerRules reads a listener's rules, ordered by priority with the
// default rule last.
func listenerRules(tx store.Tx, listenerArn string) ([]*records.Rule, error) {
	rules, err := all[records.Rule](tx, records.Rules, records.LBResourceID(listenerArn)+"/")
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rules, func(a, b *records.Rule) int { return a.Order() - b.Order() })
	return rules, nil
}

// checkPriority refuses a priority outside 1-50000 or taken by another
// rule of the listener.
func checkPriority(rules []*records.Rule, self string, p int32) error {
	if p < 1 || p > 50000 {
		return apiErr(errValidation, "1 validation error detected: Value '%d' at 'priority' failed to satisfy constraint: Member must have value between 1 and 50000", p)
	}
	for _, r := range rules {
		if aws.ToString(r.Rule.RuleArn) != self && !aws.ToBool(r.Rule.IsDefault) && r.Order() == int(p) {
			return apiErr(errPriorityInUse, "Priority '%d' is currently in use", p)
		}
	}
	return nil
}

func (s *Server) createRule(tx store.Tx, in *elb.CreateRuleInput) (any, error) {
	l, err := s.listener(tx, aws.ToString(in.ListenerArn))
	if err != nil {
		return nil, err
	}
	if len(in.Transforms) > 0 {
		return nil, apiErr(errValidation, "Rule transforms are not served")
	}
	if in.Priority == nil {
		return nil, apiErr(errValidation, "A priority must be specified")
	}
	lb, err := s.loadBalancer(tx, aws.ToString(l.Listener.LoadBalancerArn))
	if err != nil {
		return nil, err
	}
	if lb.LoadBalancer.Type == elbtypes.LoadBalancerTypeEnumNetwork {
		return nil, apiErr(errValidation, "Network Load Balancer listeners cannot have rules")
	}
	rules, err := listenerRules(tx, *l.Listener.ListenerArn)
	if err != nil {
		return nil, err
	}
	if err := checkPriority(rules, "", *in.Priority); err != nil {
		return nil, err
	}
	conds, err := checkConditions(in.Conditions)
	if err != nil {
		return nil, err
	}
	actions, err := s.checkActions(tx, lb, l.Listener.Protocol, in.Actions)
	if err != nil {
		return nil, err
	}
	if err := checkTags(in.Tags, len(in.Tags)); err != nil {
		return nil, err
	}
	if len(rules) > 100 {
		return nil, apiErr("TooManyRules", "A listener can have at most 100 rules")
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	rec := &records.Rule{ListenerArn: *l.Listener.ListenerArn, Tags: in.Tags, Rule: elbtypes.Rule{
		RuleArn: aws.String(s.arns.Rule(*l.Listener.ListenerArn, id)), Priority: aws.String(strconv.Itoa(int(*in.Priority))),
		IsDefault: aws.Bool(false), Conditions: conds, Actions: actions}}
	if err := records.Put(tx, rec); err != nil {
		return nil, err
	}
	if err := s.associate(tx, actionTargetGroups(actions)); err != nil {
		return nil, err
	}
	return &elb.CreateRuleOutput{Rules: []elbtypes.Rule{rec.Rule}}, nil
}

func (s *Server) describeRules(tx store.Tx, in *elb.DescribeRulesInput) (any, error) {
	var rules []*records.Rule
	switch {
	case in.ListenerArn != nil && len(in.RuleArns) > 0, in.ListenerArn == nil && len(in.RuleArns) == 0:
		return nil, apiErr(errValidation, "You must specify either listener ARN or rule ARNs")
	case in.ListenerArn != nil:
		l, err := s.listener(tx, *in.ListenerArn)
		if err != nil {
			return nil, err
		}
		if rules, err = listenerRules(tx, *l.Listener.ListenerArn); err != nil {
			return nil, err
		}
	default:
		for _, a := range in.RuleArns {
			r, err := s.rule(tx, a)
			if err != nil {
				return nil, err
			}
			rules = append(rules, r)
		}
	}
	out, next, err := pageOf(rules, in.Marker, in.PageSize, func(r *records.Rule) elbtypes.Rule { return r.Rule })
	if err != nil {
		return nil, err
	}
	return &elb.DescribeRulesOutput{Rules: out, NextMarker: next}, nil
}

func (s *Server) modifyRule(tx store.Tx, in *elb.ModifyRuleInput) (any, error) {
	r, err := s.rule(tx, aws.ToString(in.RuleArn))
	if err != nil {
		return nil, err
	}
	if len(in.Transforms) > 0 || aws.ToBool(in.ResetTransforms) {
		return nil, apiErr(errValidation, "Rule transforms are not served")
	}
	l, err := s.listener(tx, r.ListenerArn)
	if err != nil {
		return nil, err
	}
	lb, err := s.loadBalancer(tx, aws.ToString(l.Listener.LoadBalancerArn))
	if err != nil {
		return nil, err
	}
	before := actionTargetGroups(r.Rule.Actions)
	if in.Conditions != nil {
		if aws.ToBool(r.Rule.IsDefault) {
			return nil, apiErr(errOperationForbidden, "The conditions of default rule '%s' cannot be modified", aws.ToString(in.RuleArn))
		}
		if r.Rule.Conditions, err = checkConditions(in.Conditions); err != nil {
			return nil, err
		}
	}
	if in.Actions != nil {
		if r.Rule.Actions, err = s.checkActions(tx, lb, l.Listener.Protocol, in.Actions); err != nil {
			return nil, err
		}
	}
	if err := records.Put(tx, r); err != nil {
		return nil, err
	}
	if aws.ToBool(r.Rule.IsDefault) {
		l.Listener.DefaultActions = r.Rule.Actions
		if err := records.Put(tx, l); err != nil {
			return nil, err
		}
	}
	if err := s.associate(tx, append(before, actionTargetGroups(r.Rule.Actions)...)); err != nil {
		return nil, err
	}
	return &elb.ModifyRuleOutput{Rules: []elbtypes.Rule{r.Rule}}, nil
}

func (s *Server) deleteRule(tx store.Tx, in *elb.DeleteRuleInput) (any, error) {
	r, err := s.rule(tx, aws.ToString(in.RuleArn))
	if err != nil {
		return nil, err
	}
	if aws.ToBool(r.Rule.IsDefault) {
		return nil, apiErr(errOperationForbidden, "Default rule '%s' cannot be deleted", aws.ToString(in.RuleArn))
	}
	if err := tx.Delete(records.Rules, r.Key()); err != nil {
		return nil, err
	}
	if err := s.associate(tx, actionTargetGroups(r.Rule.Actions)); err != nil {
		return nil, err
	}
	return &elb.DeleteRuleOutput{}, nil
}

func (s *Server) setRulePriorities(tx store.Tx, in *elb.SetRulePrioritiesInput) (any, error) {
	if len(in.RulePriorities) == 0 {
		return nil, apiErr(errValidation, "At least one rule priority must be specified")
	}
	var changed []*records.Rule
	listenerArn := ""
	for _, rp := range in.RulePriorities {
		r, err := s.rule(tx, aws.ToString(rp.RuleArn))
		if err != nil {
			return nil, err
		}
		if aws.ToBool(r.Rule.IsDefault) {
			return nil, apiErr(errOperationForbidden, "The priority of default rule '%s' cannot be changed", aws.ToString(rp.RuleArn))
		}
		if listenerArn != "" && r.ListenerArn != listenerArn {
			return nil, apiErr(errValidation, "All rules must belong to the same listener")
		}
		listenerArn = r.ListenerArn
		if rp.Priority == nil {
			return nil, apiErr(errValidation, "Rule '%s' needs a priority", aws.ToString(rp.RuleArn))
		}
		r.Rule.Priority = aws.String(strconv.Itoa(int(*rp.Priority)))
		changed = append(changed, r)
	}
	rules, err := listenerRules(tx, listenerArn)
	if err != nil {
		return nil, err
	}
	// The new priorities are checked against the listener's rules as they
	// will be: the changed ones replacing their old selves.
	for i, r := range rules {
		if j := slices.IndexFunc(changed, func(c *records.Rule) bool { return c.Key() == r.Key() }); j >= 0 {
			rules[i] = changed[j]
		}
	}
	for _, c := range changed {
		if err := checkPriority(rules, aws.ToString(c.Rule.RuleArn), int32(c.Order())); err != nil {
			return nil, err
		}
	}
	out := &elb.SetRulePrioritiesOutput{Rules: []elbtypes.Rule{}}
	for _, c := range changed {
		if err := records.Put(tx, c); err != nil {
			return nil, err
		}
		out.Rules = append(out.Rules, c.Rule)
	}
	return out, nil
}
