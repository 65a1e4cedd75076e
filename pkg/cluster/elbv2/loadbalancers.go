package elbv2

import (
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// checkSubnets accepts the lab's subnet only (named directly or in a
// subnet mapping without addresses).
func checkSubnets(subnets []string, mappings []elbtypes.SubnetMapping) error {
	if len(subnets) > 0 && len(mappings) > 0 {
		return apiErr(errValidation, "You can specify subnets or subnet mappings, not both")
	}
	for _, m := range mappings {
		if m.AllocationId != nil || m.PrivateIPv4Address != nil || m.IPv6Address != nil || m.SourceNatIpv6Prefix != nil {
			return apiErr(errValidation, "Subnet mappings with addresses are not served: the lab network assigns none")
		}
		subnets = append(subnets, aws.ToString(m.SubnetId))
	}
	for _, sn := range subnets {
		if sn != LabSubnet {
			return apiErr(errSubnetNotFound, "The subnet ID '%s' is not valid: the lab network has one subnet, '%s'", sn, LabSubnet)
		}
	}
	return nil
}

func (s *Server) createLoadBalancer(tx store.Tx, in *elb.CreateLoadBalancerInput) (any, error) {
	name := aws.ToString(in.Name)
	if err := checkName("Load balancer", name, false); err != nil {
		return nil, err
	}
	typ := in.Type
	switch typ {
	case "":
		typ = elbtypes.LoadBalancerTypeEnumApplication
	case elbtypes.LoadBalancerTypeEnumApplication, elbtypes.LoadBalancerTypeEnumNetwork:
	default:
		return nil, apiErr(errValidation, "Load balancer type '%s' is not served; use 'application' or 'network'", typ)
	}
	scheme := in.Scheme
	switch scheme {
	case "":
		scheme = elbtypes.LoadBalancerSchemeEnumInternetFacing
	case elbtypes.LoadBalancerSchemeEnumInternetFacing, elbtypes.LoadBalancerSchemeEnumInternal:
	default:
		return nil, apiErr(errValidation, "Scheme '%s' must be 'internet-facing' or 'internal'", scheme)
	}
	ipType := in.IpAddressType
	switch ipType {
	case "":
		ipType = elbtypes.IpAddressTypeIpv4
	case elbtypes.IpAddressTypeIpv4:
	default:
		return nil, apiErr(errValidation, "IP address type '%s' is not served: the lab network is IPv4", ipType)
	}
	if in.CustomerOwnedIpv4Pool != nil || in.IpamPools != nil || in.EnablePrefixForIpv6SourceNat == elbtypes.EnablePrefixForIpv6SourceNatEnumOn {
		return nil, apiErr(errValidation, "Customer-owned and IPAM pools and IPv6 source NAT are not served")
	}
	if err := checkSubnets(in.Subnets, in.SubnetMappings); err != nil {
		return nil, err
	}
	if err := checkTags(in.Tags, len(in.Tags)); err != nil {
		return nil, err
	}
	lbs, err := all[records.LoadBalancer](tx, records.LoadBalancers, "")
	if err != nil {
		return nil, err
	}
	for _, lb := range lbs {
		if aws.ToString(lb.LoadBalancer.LoadBalancerName) == name {
			return nil, apiErr(errDupLB, "A load balancer with the name '%s' already exists", name)
		}
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	lbArn := s.arns.LoadBalancer(lbKind(typ), name, id)
	now := s.o.Now().UTC()
	rec := &records.LoadBalancer{LoadBalancer: elbtypes.LoadBalancer{
		LoadBalancerArn:       aws.String(lbArn),
		LoadBalancerName:      aws.String(name),
		DNSName:               aws.String(s.dnsName(name, id, scheme)),
		CanonicalHostedZoneId: aws.String(hostedZone),
		CreatedTime:           &now,
		Scheme:                scheme,
		Type:                  typ,
		IpAddressType:         ipType,
		VpcId:                 aws.String(LabVPC),
		State:                 &elbtypes.LoadBalancerState{Code: elbtypes.LoadBalancerStateEnumActive},
		AvailabilityZones:     []elbtypes.AvailabilityZone{s.labZone()},
		SecurityGroups:        in.SecurityGroups,
	}, Tags: in.Tags}
	if err := records.Put(tx, rec); err != nil {
		return nil, err
	}
	return &elb.CreateLoadBalancerOutput{LoadBalancers: []elbtypes.LoadBalancer{rec.LoadBalancer}}, nil
}

// dnsName is "<name>-<10 digits>.<region>.elb.localhost" ("internal-"
// first for internal load balancers): the form of AWS's names, under
// .localhost, which resolves to loopback, where a lab's berth-lb listens.
func (s *Server) dnsName(name, id string, scheme elbtypes.LoadBalancerSchemeEnum) string {
	n, _ := strconv.ParseUint(id[:8], 16, 64)
	host := name + "-" + strconv.FormatUint(n%10000000000, 10) + "." + s.o.Region + "." + dnsSuffix
	if scheme == elbtypes.LoadBalancerSchemeEnumInternal {
		host = "internal-" + host
	}
	return strings.ToLower(host)
}

func (s *Server) describeLoadBalancers(tx store.Tx, in *elb.DescribeLoadBalancersInput) (any, error) {
	if len(in.LoadBalancerArns) > 0 && len(in.Names) > 0 {
		return nil, apiErr(errValidation, "Load balancer ARNs and names cannot be specified at the same time")
	}
	var lbs []*records.LoadBalancer
	switch {
	case len(in.LoadBalancerArns) > 0:
		for _, a := range in.LoadBalancerArns {
			lb, err := s.loadBalancer(tx, a)
			if err != nil {
				return nil, err
			}
			lbs = append(lbs, lb)
		}
	default:
		every, err := all[records.LoadBalancer](tx, records.LoadBalancers, "")
		if err != nil {
			return nil, err
		}
		sortBy(every, func(lb *records.LoadBalancer) string { return aws.ToString(lb.LoadBalancer.LoadBalancerName) })
		for _, name := range in.Names {
			i := slices.IndexFunc(every, func(lb *records.LoadBalancer) bool { return aws.ToString(lb.LoadBalancer.LoadBalancerName) == name })
			if i < 0 {
				return nil, apiErr(errLBNotFound, "Load balancers '[%s]' not found", name)
			}
			lbs = append(lbs, every[i])
		}
		if len(in.Names) == 0 {
			lbs = every
		}
	}
	out, next, err := pageOf(lbs, in.Marker, in.PageSize, func(lb *records.LoadBalancer) elbtypes.LoadBalancer { return lb.LoadBalancer })
	if err != nil {
		return nil, err
	}
	return &elb.DescribeLoadBalancersOutput{LoadBalancers: out, NextMarker: next}, nil
}

func (s *Server) deleteLoadBalancer(tx store.Tx, in *elb.DeleteLoadBalancerInput) (any, error) {
	lb, err := s.loadBalancer(tx, aws.ToString(in.LoadBalancerArn))
	if err != nil {
		return nil, err
	}
	if lb.Attributes["deletion_protection.enabled"] == "true" {
		return nil, apiErr(errOperationForbidden, "Load balancer '%s' cannot be deleted because deletion protection is enabled", aws.ToString(in.LoadBalancerArn))
	}
	lbID := lb.Key()
	listeners, err := all[records.Listener](tx, records.Listeners, lbID+"/")
	if err != nil {
		return nil, err
	}
	for _, l := range listeners {
		if err := s.removeListener(tx, l); err != nil {
			return nil, err
		}
	}
	if err := tx.Delete(records.LoadBalancers, lbID); err != nil {
		return nil, err
	}
	return &elb.DeleteLoadBalancerOutput{}, nil
}

func (s *Server) describeLoadBalancerAttributes(tx store.Tx, in *elb.DescribeLoadBalancerAttributesInput) (any, error) {
	lb, err := s.loadBalancer(tx, aws.ToString(in.LoadBalancerArn))
	if err != nil {
		return nil, err
	}
	return &elb.DescribeLoadBalancerAttributesOutput{Attributes: attrList(lbAttrs(lb.LoadBalancer.Type), lb.Attributes, mkLBAttr)}, nil
}

func mkLBAttr(k, v *string) elbtypes.LoadBalancerAttribute {
	return elbtypes.LoadBalancerAttribute{Key: k, Value: v}
}

func (s *Server) modifyLoadBalancerAttributes(tx store.Tx, in *elb.ModifyLoadBalancerAttributesInput) (any, error) {
	lb, err := s.loadBalancer(tx, aws.ToString(in.LoadBalancerArn))
	if err != nil {
		return nil, err
	}
	specs := lbAttrs(lb.LoadBalancer.Type)
	set, err := setAttrs("Load balancer", specs, lb.Attributes, kvs(in.Attributes, func(a elbtypes.LoadBalancerAttribute) (*string, *string) { return a.Key, a.Value }))
	if err != nil {
		return nil, err
	}
	lb.Attributes = set
	if err := records.Put(tx, lb); err != nil {
		return nil, err
	}
	return &elb.ModifyLoadBalancerAttributesOutput{Attributes: attrList(specs, set, mkLBAttr)}, nil
}

func (s *Server) setSecurityGroups(tx store.Tx, in *elb.SetSecurityGroupsInput) (any, error) {
	lb, err := s.loadBalancer(tx, aws.ToString(in.LoadBalancerArn))
	if err != nil {
		return nil, err
	}
	lb.LoadBalancer.SecurityGroups = in.SecurityGroups
	if err := records.Put(tx, lb); err != nil {
		return nil, err
	}
	return &elb.SetSecurityGroupsOutput{SecurityGroupIds: in.SecurityGroups}, nil
}

func (s *Server) setSubnets(tx store.Tx, in *elb.SetSubnetsInput) (any, error) {
	lb, err := s.loadBalancer(tx, aws.ToString(in.LoadBalancerArn))
	if err != nil {
		return nil, err
	}
	if err := checkSubnets(in.Subnets, in.SubnetMappings); err != nil {
		return nil, err
	}
	return &elb.SetSubnetsOutput{AvailabilityZones: lb.LoadBalancer.AvailabilityZones, IpAddressType: lb.LoadBalancer.IpAddressType}, nil
}

// describeCapacityReservation answers that a load balancer has no
// capacity reservation (Terraform's aws_lb reads it): the lab reserves
// none.
func (s *Server) describeCapacityReservation(tx store.Tx, in *elb.DescribeCapacityReservationInput) (any, error) {
	if _, err := s.loadBalancer(tx, aws.ToString(in.LoadBalancerArn)); err != nil {
		return nil, err
	}
	return &elb.DescribeCapacityReservationOutput{CapacityReservationState: []elbtypes.ZonalCapacityReservationState{}}, nil
}
