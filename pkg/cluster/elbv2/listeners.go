package elbv2

import (
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// sslPolicies are the security policies an HTTPS listener may name.
var sslPolicies = []string{"ELBSecurityPolicy-2016-08", "ELBSecurityPolicy-TLS13-1-2-2021-06",
	"ELBSecurityPolicy-TLS13-1-2-Res-2021-06", "ELBSecurityPolicy-TLS-1-2-2017-01", "ELBSecurityPolicy-TLS13-1-3-2021-06"}

// listenerSpec is what CreateListener and ModifyListener set.
type listenerSpec struct {
	Port           *int32
	Protocol       elbtypes.ProtocolEnum
	SslPolicy      *string
	Certificates   []elbtypes.Certificate
	DefaultActions []elbtypes.Action
	AlpnPolicy     []string
}

// applyListener validates spec over l (a new listener is empty) on lb and
// writes it into l.
func (s *Server) applyListener(tx store.Tx, lb *records.LoadBalancer, l *elbtypes.Listener, spec listenerSpec) error {
	if spec.Protocol != "" {
		l.Protocol = spec.Protocol
	}
	if spec.Port != nil {
		if err := checkPort("port", spec.Port); err != nil {
			return err
		}
		l.Port = spec.Port
	}
	if l.Protocol == "" || l.Port == nil {
		return apiErr(errValidation, "A listener needs a protocol and a port")
	}
	allowed := albProtocols
	if lb.LoadBalancer.Type == elbtypes.LoadBalancerTypeEnumNetwork {
		allowed = nlbProtocols
	}
	if !slices.Contains(allowed, l.Protocol) {
		return apiErr(errUnsupportedProto, "Protocol '%s' is not supported on a %s load balancer (allowed: %v)", l.Protocol, lb.LoadBalancer.Type, allowed)
	}
	if len(spec.AlpnPolicy) > 0 {
		return apiErr(errValidation, "ALPN policies are for TLS listeners, which are not served")
	}
	if spec.Certificates != nil {
		l.Certificates = spec.Certificates
	}
	if spec.SslPolicy != nil {
		l.SslPolicy = spec.SslPolicy
	}
	if l.Protocol != elbtypes.ProtocolEnumHttps {
		if spec.Certificates != nil || spec.SslPolicy != nil {
			return apiErr(errValidation, "Certificates and SSL policies can only be set on HTTPS listeners")
		}
		l.Certificates, l.SslPolicy = nil, nil
	} else {
		if len(l.Certificates) != 1 || l.Certificates[0].CertificateArn == nil {
			return apiErr(errValidation, "A certificate must be specified for HTTPS listeners (exactly one)")
		}
		ref := aws.ToString(l.Certificates[0].CertificateArn)
		if !slices.ContainsFunc(s.o.Certificates, func(c Certificate) bool { return c.ARN == ref }) {
			return apiErr(errCertNotFound, "Certificate '%s' not found: the endpoint's certificates are the ones cluster.toml declares", ref)
		}
		l.Certificates = []elbtypes.Certificate{{CertificateArn: aws.String(ref)}}
		if l.SslPolicy == nil {
			l.SslPolicy = aws.String(defaultSSLPolicy)
		}
		if !slices.Contains(sslPolicies, *l.SslPolicy) {
			return apiErr(errSSLPolicyNotFound, "SSL policy '%s' not found", *l.SslPolicy)
		}
	}
	if spec.DefaultActions != nil || l.DefaultActions == nil {
		actions, err := s.checkActions(tx, lb, l.Protocol, spec.DefaultActions)
		if err != nil {
			return err
		}
		l.DefaultActions = actions
	} else if _, err := s.checkActions(tx, lb, l.Protocol, l.DefaultActions); err != nil {
		return err // a protocol change must still fit the target groups
	}
	others, err := all[records.Listener](tx, records.Listeners, lb.Key()+"/")
	if err != nil {
		return err
	}
	for _, o := range others {
		if aws.ToString(o.Listener.ListenerArn) != aws.ToString(l.ListenerArn) && aws.ToInt32(o.Listener.Port) == *l.Port {
			return apiErr(errDupListener, "A listener already exists on port %d of this load balancer", *l.Port)
		}
	}
	return nil
}

func (s *Server) createListener(tx store.Tx, in *elb.CreateListenerInput) (any, error) {
	lb, err := s.loadBalancer(tx, aws.ToString(in.LoadBalancerArn))
	if err != nil {
		return nil, err
	}
	if in.MutualAuthentication != nil {
		return nil, apiErr(errValidation, "Mutual TLS authentication is not served")
	}
	if err := checkTags(in.Tags, len(in.Tags)); err != nil {
		return nil, err
	}
	l := elbtypes.Listener{LoadBalancerArn: in.LoadBalancerArn}
	if err := s.applyListener(tx, lb, &l, listenerSpec{Port: in.Port, Protocol: in.Protocol, SslPolicy: in.SslPolicy,
		Certificates: in.Certificates, DefaultActions: nonNil(in.DefaultActions), AlpnPolicy: in.AlpnPolicy}); err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	ruleID, err := newID()
	if err != nil {
		return nil, err
	}
	l.ListenerArn = aws.String(s.arns.Listener(aws.ToString(lb.LoadBalancer.LoadBalancerArn), id))
	rec := &records.Listener{Listener: l, Tags: in.Tags}
	if err := records.Put(tx, rec); err != nil {
		return nil, err
	}
	def := &records.Rule{ListenerArn: *l.ListenerArn, Rule: elbtypes.Rule{RuleArn: aws.String(s.arns.Rule(*l.ListenerArn, ruleID)),
		Priority: aws.String("default"), IsDefault: aws.Bool(true), Conditions: []elbtypes.RuleCondition{}, Actions: l.DefaultActions}}
	if err := records.Put(tx, def); err != nil {
		return nil, err
	}
	if err := s.associate(tx, actionTargetGroups(l.DefaultActions)); err != nil {
		return nil, err
	}
	return &elb.CreateListenerOutput{Listeners: []elbtypes.Listener{l}}, nil
}

// nonNil makes a missing list an empty one, so that "none given" is
// validated rather than skipped.
func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

func (s *Server) describeListeners(tx store.Tx, in *elb.DescribeListenersInput) (any, error) {
	var ls []*records.Listener
	switch {
	case in.LoadBalancerArn != nil && len(in.ListenerArns) > 0, in.LoadBalancerArn == nil && len(in.ListenerArns) == 0:
		return nil, apiErr(errValidation, "You must specify either listener ARNs or a load balancer ARN")
	case in.LoadBalancerArn != nil:
		lb, err := s.loadBalancer(tx, *in.LoadBalancerArn)
		if err != nil {
			return nil, err
		}
		if ls, err = all[records.Listener](tx, records.Listeners, lb.Key()+"/"); err != nil {
			return nil, err
		}
		slices.SortFunc(ls, func(a, b *records.Listener) int {
			return int(aws.ToInt32(a.Listener.Port) - aws.ToInt32(b.Listener.Port))
		})
	default:
		for _, a := range in.ListenerArns {
			l, err := s.listener(tx, a)
			if err != nil {
				return nil, err
			}
			ls = append(ls, l)
		}
	}
	listeners, next, err := pageOf(ls, in.Marker, in.PageSize, func(l *records.Listener) elbtypes.Listener { return l.Listener })
	if err != nil {
		return nil, err
	}
	return &elb.DescribeListenersOutput{Listeners: listeners, NextMarker: next}, nil
}

func (s *Server) modifyListener(tx store.Tx, in *elb.ModifyListenerInput) (any, error) {
	l, err := s.listener(tx, aws.ToString(in.ListenerArn))
	if err != nil {
		return nil, err
	}
	if in.MutualAuthentication != nil {
		return nil, apiErr(errValidation, "Mutual TLS authentication is not served")
	}
	lb, err := s.loadBalancer(tx, aws.ToString(l.Listener.LoadBalancerArn))
	if err != nil {
		return nil, err
	}
	before := actionTargetGroups(l.Listener.DefaultActions)
	if in.Protocol != "" && in.Protocol != elbtypes.ProtocolEnumHttps && in.Certificates == nil {
		l.Listener.Certificates, l.Listener.SslPolicy = nil, nil
	}
	if err := s.applyListener(tx, lb, &l.Listener, listenerSpec{Port: in.Port, Protocol: in.Protocol, SslPolicy: in.SslPolicy,
		Certificates: in.Certificates, DefaultActions: in.DefaultActions, AlpnPolicy: in.AlpnPolicy}); err != nil {
		return nil, err
	}
	if err := records.Put(tx, l); err != nil {
		return nil, err
	}
	if err := s.syncDefaultRule(tx, l); err != nil {
		return nil, err
	}
	if err := s.associate(tx, append(before, actionTargetGroups(l.Listener.DefaultActions)...)); err != nil {
		return nil, err
	}
	return &elb.ModifyListenerOutput{Listeners: []elbtypes.Listener{l.Listener}}, nil
}

// syncDefaultRule gives a listener's default rule its default actions.
func (s *Server) syncDefaultRule(tx store.Tx, l *records.Listener) error {
	rules, err := all[records.Rule](tx, records.Rules, records.LBResourceID(aws.ToString(l.Listener.ListenerArn))+"/")
	if err != nil {
		return err
	}
	for _, r := range rules {
		if aws.ToBool(r.Rule.IsDefault) {
			r.Rule.Actions = l.Listener.DefaultActions
			return records.Put(tx, r)
		}
	}
	return nil
}

func (s *Server) deleteListener(tx store.Tx, in *elb.DeleteListenerInput) (any, error) {
	l, err := s.listener(tx, aws.ToString(in.ListenerArn))
	if err != nil {
		return nil, err
	}
	if err := s.removeListener(tx, l); err != nil {
		return nil, err
	}
	return &elb.DeleteListenerOutput{}, nil
}

// removeListener deletes a listener and its rules and updates the target
// groups they forwarded to.
func (s *Server) removeListener(tx store.Tx, l *records.Listener) error {
	rules, err := all[records.Rule](tx, records.Rules, records.LBResourceID(aws.ToString(l.Listener.ListenerArn))+"/")
	if err != nil {
		return err
	}
	var tgs []string
	for _, r := range rules {
		tgs = append(tgs, actionTargetGroups(r.Rule.Actions)...)
		if err := tx.Delete(records.Rules, r.Key()); err != nil {
			return err
		}
	}
	if err := tx.Delete(records.Listeners, l.Key()); err != nil {
		return err
	}
	return s.associate(tx, tgs)
}

func mkListenerAttr(k, v *string) elbtypes.ListenerAttribute {
	return elbtypes.ListenerAttribute{Key: k, Value: v}
}

func (s *Server) describeListenerAttributes(tx store.Tx, in *elb.DescribeListenerAttributesInput) (any, error) {
	l, err := s.listener(tx, aws.ToString(in.ListenerArn))
	if err != nil {
		return nil, err
	}
	return &elb.DescribeListenerAttributesOutput{Attributes: attrList(listenerAttrs(l.Listener.Protocol), l.Attributes, mkListenerAttr)}, nil
}

func (s *Server) modifyListenerAttributes(tx store.Tx, in *elb.ModifyListenerAttributesInput) (any, error) {
	l, err := s.listener(tx, aws.ToString(in.ListenerArn))
	if err != nil {
		return nil, err
	}
	specs := listenerAttrs(l.Listener.Protocol)
	set, err := setAttrs("Listener", specs, l.Attributes, kvs(in.Attributes, func(a elbtypes.ListenerAttribute) (*string, *string) { return a.Key, a.Value }))
	if err != nil {
		return nil, err
	}
	l.Attributes = set
	if err := records.Put(tx, l); err != nil {
		return nil, err
	}
	return &elb.ModifyListenerAttributesOutput{Attributes: attrList(specs, set, mkListenerAttr)}, nil
}

func (s *Server) describeSSLPolicies(_ store.Tx, in *elb.DescribeSSLPoliciesInput) (any, error) {
	out := &elb.DescribeSSLPoliciesOutput{SslPolicies: []elbtypes.SslPolicy{}}
	for _, n := range sslPolicies {
		if len(in.Names) == 0 || slices.Contains(in.Names, n) {
			out.SslPolicies = append(out.SslPolicies, elbtypes.SslPolicy{Name: aws.String(n),
				SslProtocols: []string{"TLSv1.2"}, SupportedLoadBalancerTypes: []string{"application"}})
		}
	}
	for _, n := range in.Names {
		if !slices.Contains(sslPolicies, n) {
			return nil, apiErr(errSSLPolicyNotFound, "SSL policy '%s' not found", n)
		}
	}
	return out, nil
}
