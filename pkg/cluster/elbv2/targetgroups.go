package elbv2

import (
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

func (s *Server) createTargetGroup(tx store.Tx, in *elb.CreateTargetGroupInput) (any, error) {
	name := aws.ToString(in.Name)
	if err := checkName("Target group", name, true); err != nil {
		return nil, err
	}
	tt := in.TargetType
	switch tt {
	case "":
		tt = elbtypes.TargetTypeEnumInstance
	case elbtypes.TargetTypeEnumInstance, elbtypes.TargetTypeEnumIp:
	default:
		return nil, apiErr(errValidation, "Target type '%s' is not served; use 'instance' or 'ip'", tt)
	}
	if in.Protocol == "" || in.Port == nil || in.VpcId == nil {
		return nil, apiErr(errValidation, "A protocol, a port and a VPC ID are required for target groups with the target type '%s'", tt)
	}
	if !slices.Contains(tgProtocols, in.Protocol) {
		return nil, apiErr(errValidation, "Target group protocol '%s' is not served; use HTTP, HTTPS or TCP", in.Protocol)
	}
	if err := checkPort("port", in.Port); err != nil {
		return nil, err
	}
	if vpc := aws.ToString(in.VpcId); vpc != LabVPC {
		return nil, apiErr(errValidation, "The VPC ID '%s' is not found: the lab network is '%s'", vpc, LabVPC)
	}
	if in.IpAddressType != "" && in.IpAddressType != elbtypes.TargetGroupIpAddressTypeEnumIpv4 {
		return nil, apiErr(errValidation, "IP address type '%s' is not served: the lab network is IPv4", in.IpAddressType)
	}
	if in.TargetControlPort != nil {
		return nil, apiErr(errValidation, "Target control ports are not served")
	}
	tg := elbtypes.TargetGroup{TargetGroupName: aws.String(name), Protocol: in.Protocol, Port: in.Port,
		VpcId: in.VpcId, TargetType: tt, IpAddressType: elbtypes.TargetGroupIpAddressTypeEnumIpv4,
		LoadBalancerArns: []string{}}
	if v := aws.ToString(in.ProtocolVersion); v != "" {
		if !isHTTP(in.Protocol) || (v != "HTTP1" && v != "HTTP2") {
			return nil, apiErr(errValidation, "Protocol version '%s' is not valid for the %s protocol; HTTP1 or HTTP2 with HTTP and HTTPS", v, in.Protocol)
		}
		tg.ProtocolVersion = in.ProtocolVersion
	} else if isHTTP(in.Protocol) {
		tg.ProtocolVersion = aws.String("HTTP1")
	}
	if err := applyHealthCheck(&tg, healthCheck{Enabled: in.HealthCheckEnabled, Protocol: in.HealthCheckProtocol,
		Port: in.HealthCheckPort, Path: in.HealthCheckPath, Interval: in.HealthCheckIntervalSeconds,
		Timeout: in.HealthCheckTimeoutSeconds, Healthy: in.HealthyThresholdCount, Unhealthy: in.UnhealthyThresholdCount,
		Matcher: in.Matcher}); err != nil {
		return nil, err
	}
	if err := checkTags(in.Tags, len(in.Tags)); err != nil {
		return nil, err
	}
	tgs, err := all[records.TargetGroup](tx, records.TargetGroups, "")
	if err != nil {
		return nil, err
	}
	for _, t := range tgs {
		if aws.ToString(t.TargetGroup.TargetGroupName) == name {
			return nil, apiErr(errDupTG, "A target group with the same name '%s' exists", name)
		}
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	tg.TargetGroupArn = aws.String(s.arns.TargetGroup(name, id))
	rec := &records.TargetGroup{TargetGroup: tg, Tags: in.Tags}
	if err := records.Put(tx, rec); err != nil {
		return nil, err
	}
	return &elb.CreateTargetGroupOutput{TargetGroups: []elbtypes.TargetGroup{tg}}, nil
}

func (s *Server) describeTargetGroups(tx store.Tx, in *elb.DescribeTargetGroupsInput) (any, error) {
	if len(in.TargetGroupArns) > 0 && len(in.Names) > 0 || (in.LoadBalancerArn != nil && len(in.TargetGroupArns)+len(in.Names) > 0) {
		return nil, apiErr(errValidation, "Only one of load balancer ARN, target group ARNs and names can be specified")
	}
	var tgs []*records.TargetGroup
	if len(in.TargetGroupArns) > 0 {
		for _, a := range in.TargetGroupArns {
			tg, err := s.targetGroup(tx, a)
			if err != nil {
				return nil, err
			}
			tgs = append(tgs, tg)
		}
	} else {
		every, err := all[records.TargetGroup](tx, records.TargetGroups, "")
		if err != nil {
			return nil, err
		}
		sortBy(every, func(tg *records.TargetGroup) string { return aws.ToString(tg.TargetGroup.TargetGroupName) })
		switch {
		case len(in.Names) > 0:
			for _, name := range in.Names {
				i := slices.IndexFunc(every, func(tg *records.TargetGroup) bool { return aws.ToString(tg.TargetGroup.TargetGroupName) == name })
				if i < 0 {
					return nil, apiErr(errTGNotFound, "Target groups '[%s]' not found", name)
				}
				tgs = append(tgs, every[i])
			}
		case in.LoadBalancerArn != nil:
			if _, err := s.loadBalancer(tx, *in.LoadBalancerArn); err != nil {
				return nil, err
			}
			for _, tg := range every {
				if slices.Contains(tg.TargetGroup.LoadBalancerArns, *in.LoadBalancerArn) {
					tgs = append(tgs, tg)
				}
			}
		default:
			tgs = every
		}
	}
	groups, next, err := pageOf(tgs, in.Marker, in.PageSize, func(tg *records.TargetGroup) elbtypes.TargetGroup { return tg.TargetGroup })
	if err != nil {
		return nil, err
	}
	return &elb.DescribeTargetGroupsOutput{TargetGroups: groups, NextMarker: next}, nil
}

func (s *Server) modifyTargetGroup(tx store.Tx, in *elb.ModifyTargetGroupInput) (any, error) {
	tg, err := s.targetGroup(tx, aws.ToString(in.TargetGroupArn))
	if err != nil {
		return nil, err
	}
	if err := applyHealthCheck(&tg.TargetGroup, healthCheck{Enabled: in.HealthCheckEnabled, Protocol: in.HealthCheckProtocol,
		Port: in.HealthCheckPort, Path: in.HealthCheckPath, Interval: in.HealthCheckIntervalSeconds,
		Timeout: in.HealthCheckTimeoutSeconds, Healthy: in.HealthyThresholdCount, Unhealthy: in.UnhealthyThresholdCount,
		Matcher: in.Matcher}); err != nil {
		return nil, err
	}
	if err := records.Put(tx, tg); err != nil {
		return nil, err
	}
	return &elb.ModifyTargetGroupOutput{TargetGroups: []elbtypes.TargetGroup{tg.TargetGroup}}, nil
}

func (s *Server) deleteTargetGroup(tx store.Tx, in *elb.DeleteTargetGroupInput) (any, error) {
	ref := aws.ToString(in.TargetGroupArn)
	tg, err := s.targetGroup(tx, ref)
	if err != nil {
		return nil, err
	}
	if len(tg.TargetGroup.LoadBalancerArns) > 0 {
		return nil, apiErr(errResourceInUse, "Target group '%s' is currently in use by a listener or a rule", ref)
	}
	targets, err := all[records.Target](tx, records.Targets, tg.Key()+"/")
	if err != nil {
		return nil, err
	}
	for _, t := range targets {
		if err := tx.Delete(records.Targets, t.Key()); err != nil {
			return nil, err
		}
	}
	if err := tx.Delete(records.TargetGroups, tg.Key()); err != nil {
		return nil, err
	}
	return &elb.DeleteTargetGroupOutput{}, nil
}

func mkTGAttr(k, v *string) elbtypes.TargetGroupAttribute {
	return elbtypes.TargetGroupAttribute{Key: k, Value: v}
}

func (s *Server) describeTargetGroupAttributes(tx store.Tx, in *elb.DescribeTargetGroupAttributesInput) (any, error) {
	tg, err := s.targetGroup(tx, aws.ToString(in.TargetGroupArn))
	if err != nil {
		return nil, err
	}
	return &elb.DescribeTargetGroupAttributesOutput{Attributes: attrList(tgAttrs(&tg.TargetGroup), tg.Attributes, mkTGAttr)}, nil
}

func (s *Server) modifyTargetGroupAttributes(tx store.Tx, in *elb.ModifyTargetGroupAttributesInput) (any, error) {
	tg, err := s.targetGroup(tx, aws.ToString(in.TargetGroupArn))
	if err != nil {
		return nil, err
	}
	specs := tgAttrs(&tg.TargetGroup)
	set, err := setAttrs("Target group", specs, tg.Attributes, kvs(in.Attributes, func(a elbtypes.TargetGroupAttribute) (*string, *string) { return a.Key, a.Value }))
	if err != nil {
		return nil, err
	}
	tg.Attributes = set
	if err := records.Put(tx, tg); err != nil {
		return nil, err
	}
	return &elb.ModifyTargetGroupAttributesOutput{Attributes: attrList(specs, set, mkTGAttr)}, nil
}
