package elbv2

import (
	"regexp"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// checkActions validates a listener's default actions or a rule's actions
// for a listener of protocol proto on lb, and returns them as AWS shows
// them: a forward action carries both TargetGroupArn (one target group)
// and ForwardConfig with weights; every action has its Order.
func (s *Server) checkActions(tx store.Tx, lb *records.LoadBalancer, proto elbtypes.ProtocolEnum, actions []elbtypes.Action) ([]elbtypes.Action, error) {
	if len(actions) == 0 {
		return nil, apiErr(errValidation, "At least one action must be specified")
	}
	if len(actions) > 1 {
		return nil, apiErr(errInvalidAction, "Only one action (forward, redirect or fixed-response) may be specified: authentication actions are not served")
	}
	a := actions[0]
	if err := checkRange("order", a.Order, 1, 50000); err != nil {
		return nil, err
	}
	if a.Order == nil {
		a.Order = aws.Int32(1)
	}
	alb := lb.LoadBalancer.Type != elbtypes.LoadBalancerTypeEnumNetwork
	if !alb && a.Type != elbtypes.ActionTypeEnumForward {
		return nil, apiErr(errInvalidAction, "Network Load Balancer listeners only support 'forward' actions, not '%s'", a.Type)
	}
	switch a.Type {
	case elbtypes.ActionTypeEnumForward:
		if a.FixedResponseConfig != nil || a.RedirectConfig != nil {
			return nil, apiErr(errInvalidAction, "A forward action cannot have a redirect or fixed-response configuration")
		}
		fc, err := s.checkForward(tx, lb, proto, a.TargetGroupArn, a.ForwardConfig)
		if err != nil {
			return nil, err
		}
		a.ForwardConfig = fc
		a.TargetGroupArn = nil
		if len(fc.TargetGroups) == 1 {
			a.TargetGroupArn = fc.TargetGroups[0].TargetGroupArn
		}
	case elbtypes.ActionTypeEnumFixedResponse:
		fr := a.FixedResponseConfig
		if fr == nil || a.TargetGroupArn != nil || a.ForwardConfig != nil || a.RedirectConfig != nil {
			return nil, apiErr(errValidation, "A fixed-response action needs FixedResponseConfig and nothing else")
		}
		if !regexp.MustCompile(`^(2|4|5)\d\d$`).MatchString(aws.ToString(fr.StatusCode)) {
			return nil, apiErr(errValidation, "Fixed response status code '%s' must be 2XX, 4XX or 5XX", aws.ToString(fr.StatusCode))
		}
		if ct := aws.ToString(fr.ContentType); ct != "" && !slices.Contains([]string{"text/plain", "text/css", "text/html", "application/javascript", "application/json"}, ct) {
			return nil, apiErr(errValidation, "Fixed response content type '%s' must be text/plain, text/css, text/html, application/javascript or application/json", ct)
		}
		if len(aws.ToString(fr.MessageBody)) > 1024 {
			return nil, apiErr(errValidation, "Fixed response message body cannot be longer than 1024 characters")
		}
	case elbtypes.ActionTypeEnumRedirect:
		rc := a.RedirectConfig
		if rc == nil || a.TargetGroupArn != nil || a.ForwardConfig != nil || a.FixedResponseConfig != nil {
			return nil, apiErr(errValidation, "A redirect action needs RedirectConfig and nothing else")
		}
		if rc.StatusCode != elbtypes.RedirectActionStatusCodeEnumHttp301 && rc.StatusCode != elbtypes.RedirectActionStatusCodeEnumHttp302 {
			return nil, apiErr(errValidation, "Redirect status code '%s' must be HTTP_301 or HTTP_302", rc.StatusCode)
		}
		c := *rc
		for _, d := range []struct {
			p   **string
			def string
		}{{&c.Host, "#{host}"}, {&c.Path, "/#{path}"}, {&c.Port, "#{port}"}, {&c.Protocol, "#{protocol}"}, {&c.Query, "#{query}"}} {
			if *d.p == nil {
				*d.p = aws.String(d.def)
			}
		}
		a.RedirectConfig = &c
	default:
		return nil, apiErr(errInvalidAction, "Action type '%s' is not served: use forward, redirect or fixed-response", a.Type)
	}
	return []elbtypes.Action{a}, nil
}

// checkForward validates a forward action's target groups: 1 to 5, each
// once, weights 0-999, of a protocol the listener can forward to, in the
// load balancer's VPC, and used by no other load balancer.
func (s *Server) checkForward(tx store.Tx, lb *records.LoadBalancer, proto elbtypes.ProtocolEnum, tgArn *string, fc *elbtypes.ForwardActionConfig) (*elbtypes.ForwardActionConfig, error) {
	out := &elbtypes.ForwardActionConfig{TargetGroupStickinessConfig: &elbtypes.TargetGroupStickinessConfig{Enabled: aws.Bool(false)}}
	if fc != nil {
		out.TargetGroups = slices.Clone(fc.TargetGroups)
		if sc := fc.TargetGroupStickinessConfig; sc != nil {
			if err := checkRange("durationSeconds", sc.DurationSeconds, 1, 604800); err != nil {
				return nil, err
			}
			if aws.ToBool(sc.Enabled) && sc.DurationSeconds == nil {
				return nil, apiErr(errValidation, "Target group stickiness needs a duration when enabled")
			}
			out.TargetGroupStickinessConfig = sc
		}
	}
	switch {
	case tgArn != nil && len(out.TargetGroups) == 0:
		out.TargetGroups = []elbtypes.TargetGroupTuple{{TargetGroupArn: tgArn}}
	case tgArn != nil && (len(out.TargetGroups) != 1 || aws.ToString(out.TargetGroups[0].TargetGroupArn) != *tgArn):
		return nil, apiErr(errValidation, "You cannot specify a target group ARN and a forward configuration with other target groups")
	case len(out.TargetGroups) == 0:
		return nil, apiErr(errValidation, "A forward action must name a target group")
	case len(out.TargetGroups) > 5:
		return nil, apiErr(errTooManyTGs, "A forward action can name at most 5 target groups")
	}
	seen := map[string]bool{}
	for i, t := range out.TargetGroups {
		ref := aws.ToString(t.TargetGroupArn)
		if seen[ref] {
			return nil, apiErr(errValidation, "Target group '%s' is named more than once", ref)
		}
		seen[ref] = true
		if err := checkRange("weight", t.Weight, 0, 999); err != nil {
			return nil, err
		}
		if t.Weight == nil {
			out.TargetGroups[i].Weight = aws.Int32(1)
		}
		tg, err := s.targetGroup(tx, ref)
		if err != nil {
			return nil, err
		}
		if isHTTP(proto) != isHTTP(tg.TargetGroup.Protocol) {
			return nil, apiErr(errIncompatible, "Target group '%s' has the %s protocol, which a %s listener cannot forward to", ref, tg.TargetGroup.Protocol, proto)
		}
		if aws.ToString(tg.TargetGroup.VpcId) != aws.ToString(lb.LoadBalancer.VpcId) {
			return nil, apiErr(errInvalidConfig, "Target group '%s' is in VPC '%s', the load balancer in '%s'", ref, aws.ToString(tg.TargetGroup.VpcId), aws.ToString(lb.LoadBalancer.VpcId))
		}
		lbArn := aws.ToString(lb.LoadBalancer.LoadBalancerArn)
		for _, other := range tg.TargetGroup.LoadBalancerArns {
			if other != lbArn {
				return nil, apiErr(errAssociationLimit, "The following target groups cannot be associated with more than one load balancer: %s", ref)
			}
		}
	}
	return out, nil
}

// actionTargetGroups lists the target groups actions forward to.
func actionTargetGroups(actions []elbtypes.Action) []string {
	var out []string
	for _, a := range actions {
		if a.TargetGroupArn != nil {
			out = append(out, *a.TargetGroupArn)
		}
		if a.ForwardConfig != nil {
			for _, t := range a.ForwardConfig.TargetGroups {
				out = append(out, aws.ToString(t.TargetGroupArn))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// associate recomputes the LoadBalancerArns of the target groups tgArns
// from every rule (default rules included) after rules changed.
func (s *Server) associate(tx store.Tx, tgArns []string) error {
	if len(tgArns) == 0 {
		return nil
	}
	rules, err := all[records.Rule](tx, records.Rules, "")
	if err != nil {
		return err
	}
	lbsOf := map[string][]string{}
	for _, r := range rules {
		lbArn := s.lbArnOfListener(r.ListenerArn)
		for _, tg := range actionTargetGroups(r.Rule.Actions) {
			if !slices.Contains(lbsOf[tg], lbArn) {
				lbsOf[tg] = append(lbsOf[tg], lbArn)
			}
		}
	}
	slices.Sort(tgArns)
	for _, ref := range slices.Compact(tgArns) {
		tg, err := s.targetGroup(tx, ref)
		if err != nil {
			continue // deleted in this transaction
		}
		lbs := lbsOf[ref]
		if lbs == nil {
			lbs = []string{}
		}
		slices.Sort(lbs)
		tg.TargetGroup.LoadBalancerArns = lbs
		if err := records.Put(tx, tg); err != nil {
			return err
		}
	}
	return nil
}

// checkConditions validates a rule's conditions: path-pattern and
// host-header, each at most once, at most 5 values in all, each value at
// most 128 characters. They are returned as AWS shows them, with the
// values in both Values and the condition's config.
func checkConditions(conds []elbtypes.RuleCondition) ([]elbtypes.RuleCondition, error) {
	if len(conds) == 0 {
		return nil, apiErr(errValidation, "A rule must have at least one condition")
	}
	var out []elbtypes.RuleCondition
	seen := map[string]bool{}
	total := 0
	for _, c := range conds {
		field := aws.ToString(c.Field)
		if c.HttpHeaderConfig != nil || c.HttpRequestMethodConfig != nil || c.QueryStringConfig != nil || c.SourceIpConfig != nil || len(c.RegexValues) > 0 {
			return nil, apiErr(errValidation, "Condition '%s': only path-pattern and host-header conditions are served", field)
		}
		var cfgValues []string
		switch field {
		case "path-pattern":
			if c.HostHeaderConfig != nil {
				return nil, apiErr(errValidation, "A path-pattern condition cannot have a host-header configuration")
			}
			if c.PathPatternConfig != nil {
				if len(c.PathPatternConfig.RegexValues) > 0 {
					return nil, apiErr(errValidation, "Regular expression path patterns are not served")
				}
				cfgValues = c.PathPatternConfig.Values
			}
		case "host-header":
			if c.PathPatternConfig != nil {
				return nil, apiErr(errValidation, "A host-header condition cannot have a path-pattern configuration")
			}
			if c.HostHeaderConfig != nil {
				if len(c.HostHeaderConfig.RegexValues) > 0 {
					return nil, apiErr(errValidation, "Regular expression host headers are not served")
				}
				cfgValues = c.HostHeaderConfig.Values
			}
		default:
			return nil, apiErr(errValidation, "Condition field '%s' is not served: use path-pattern or host-header", field)
		}
		if seen[field] {
			return nil, apiErr(errValidation, "A rule can only have one '%s' condition", field)
		}
		seen[field] = true
		values := c.Values
		switch {
		case len(values) > 0 && len(cfgValues) > 0:
			return nil, apiErr(errValidation, "Condition '%s': specify Values or the condition's configuration, not both", field)
		case len(values) == 0:
			values = cfgValues
		}
		if len(values) == 0 {
			return nil, apiErr(errValidation, "Condition '%s' must have at least one value", field)
		}
		for _, v := range values {
			if v == "" || len(v) > 128 {
				return nil, apiErr(errValidation, "Condition value '%s' must be 1 to 128 characters", v)
			}
		}
		total += len(values)
		nc := elbtypes.RuleCondition{Field: aws.String(field), Values: slices.Clone(values)}
		if field == "path-pattern" {
			nc.PathPatternConfig = &elbtypes.PathPatternConditionConfig{Values: slices.Clone(values)}
		} else {
			nc.HostHeaderConfig = &elbtypes.HostHeaderConditionConfig{Values: slices.Clone(values)}
		}
		out = append(out, nc)
	}
	if total > 5 {
		return nil, apiErr(errValidation, "A rule can have at most 5 condition values, not %d", total)
	}
	return out, nil
}
