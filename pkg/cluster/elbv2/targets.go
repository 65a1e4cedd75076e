package elbv2

import (
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// AddressAttribute is the container instance attribute that holds the
// address a load balancer reaches an instance's host ports on.
const AddressAttribute = records.AddressAttribute

// targetOf validates one target description for tg and returns its id as
// stored (an instance ARN becomes its id) and port.
func (s *Server) targetOf(tx store.Tx, tg *records.TargetGroup, d elbtypes.TargetDescription, registering bool) (string, int32, error) {
	id := aws.ToString(d.Id)
	port := d.Port
	if port == nil {
		port = tg.TargetGroup.Port
	}
	if err := checkPort("port", port); err != nil {
		return "", 0, err
	}
	if id == "" {
		return "", 0, apiErr(errValidation, "A target must have an Id")
	}
	if z := aws.ToString(d.AvailabilityZone); registering && z != "" && z != s.o.Region+"a" && z != "all" {
		return "", 0, apiErr(errValidation, "Availability zone '%s' is not the lab network's ('%sa')", z, s.o.Region)
	}
	switch tg.TargetGroup.TargetType {
	case elbtypes.TargetTypeEnumIp:
		addr, err := netip.ParseAddr(id)
		if err != nil || !addr.Is4() || addr.IsUnspecified() || addr.IsMulticast() {
			return "", 0, apiErr(errInvalidTarget, "The IP address '%s' is not a valid IPv4 address", id)
		}
		return addr.String(), *port, nil
	default:
		if !registering {
			return records.LBResourceID(id), *port, nil
		}
		in, err := records.FindInstanceByID(tx, id)
		if err != nil {
			return "", 0, err
		}
		if in == nil {
			return "", 0, apiErr(errInvalidTarget, "The following targets are not valid container instances: '%s'", id)
		}
		if aws.ToString(in.Instance.Status) == "INACTIVE" {
			return "", 0, apiErr(errInvalidTarget, "The following targets are not in a running state and cannot be registered: '%s'", id)
		}
		return records.LBResourceID(id), *port, nil
	}
}

// changeTargets starts RegisterTargets and DeregisterTargets: it reads the
// target group, checks that targets are given and deletes the targets whose
// draining ended.
func (s *Server) changeTargets(tx store.Tx, tgArn string, n int) (*records.TargetGroup, time.Time, error) {
	tg, err := s.targetGroup(tx, tgArn)
	if err != nil {
		return nil, time.Time{}, err
	}
	if n == 0 {
		return nil, time.Time{}, apiErr(errValidation, "At least one target must be specified")
	}
	now := s.o.Now().UTC()
	return tg, now, records.PruneDrained(tx, tg, now)
}

func (s *Server) registerTargets(tx store.Tx, in *elb.RegisterTargetsInput) (any, error) {
	tg, now, err := s.changeTargets(tx, aws.ToString(in.TargetGroupArn), len(in.Targets))
	if err != nil {
		return nil, err
	}
	for _, d := range in.Targets {
		id, port, err := s.targetOf(tx, tg, d, true)
		if err != nil {
			return nil, err
		}
		if _, err := records.RegisterTarget(tx, tg, id, port, now, false); err != nil {
			return nil, err
		}
	}
	return &elb.RegisterTargetsOutput{}, nil
}

func (s *Server) deregisterTargets(tx store.Tx, in *elb.DeregisterTargetsInput) (any, error) {
	tg, now, err := s.changeTargets(tx, aws.ToString(in.TargetGroupArn), len(in.Targets))
	if err != nil {
		return nil, err
	}
	for _, d := range in.Targets {
		id, port, err := s.targetOf(tx, tg, d, false)
		if err != nil {
			return nil, err
		}
		t, found, err := records.Get[records.Target](tx, records.Targets, records.TargetKey(tg.Key(), id, port))
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, apiErr(errInvalidTarget, "The following targets are not registered in target group '%s': '%s'", aws.ToString(in.TargetGroupArn), aws.ToString(d.Id))
		}
		if _, err := records.DeregisterTarget(tx, tg, t, now); err != nil {
			return nil, err
		}
	}
	return &elb.DeregisterTargetsOutput{}, nil
}

func (s *Server) describeTargetHealth(tx store.Tx, in *elb.DescribeTargetHealthInput) (any, error) {
	if len(in.Include) > 0 {
		return nil, apiErr(errValidation, "Include %v: anomaly detection is not served", in.Include)
	}
	tg, err := s.targetGroup(tx, aws.ToString(in.TargetGroupArn))
	if err != nil {
		return nil, err
	}
	now := s.o.Now().UTC()
	registered, err := records.LiveTargets(tx, tg, now)
	if err != nil {
		return nil, err
	}
	out := &elb.DescribeTargetHealthOutput{TargetHealthDescriptions: []elbtypes.TargetHealthDescription{}}
	if len(in.Targets) == 0 {
		for _, t := range registered {
			h, err := s.health(tx, tg, t)
			if err != nil {
				return nil, err
			}
			out.TargetHealthDescriptions = append(out.TargetHealthDescriptions, h)
		}
		return out, nil
	}
	for _, d := range in.Targets {
		id, port, err := s.targetOf(tx, tg, d, false)
		if err != nil {
			return nil, err
		}
		var h elbtypes.TargetHealthDescription
		key := records.TargetKey(tg.Key(), id, port)
		if i := slices.IndexFunc(registered, func(t *records.Target) bool { return t.Key() == key }); i >= 0 {
			t := registered[i]
			if h, err = s.health(tx, tg, t); err != nil {
				return nil, err
			}
		} else {
			h = elbtypes.TargetHealthDescription{Target: &elbtypes.TargetDescription{Id: aws.String(id), Port: aws.Int32(port)},
				HealthCheckPort: aws.String(healthCheckPort(tg, port)),
				TargetHealth: &elbtypes.TargetHealth{State: elbtypes.TargetHealthStateEnumUnused, Reason: elbtypes.TargetHealthReasonEnumNotRegistered,
					Description: aws.String("Target is not registered to the target group")}}
		}
		out.TargetHealthDescriptions = append(out.TargetHealthDescriptions, h)
	}
	return out, nil
}

func healthCheckPort(tg *records.TargetGroup, port int32) string {
	if p := aws.ToString(tg.TargetGroup.HealthCheckPort); p != "" && p != "traffic-port" {
		return p
	}
	return strconv.Itoa(int(port))
}

// health is a registered target's health description as AWS shows it
// (records.Target.State).
func (s *Server) health(tx store.Tx, tg *records.TargetGroup, t *records.Target) (elbtypes.TargetHealthDescription, error) {
	h := elbtypes.TargetHealthDescription{Target: &elbtypes.TargetDescription{Id: aws.String(t.ID), Port: aws.Int32(t.Port)},
		HealthCheckPort: aws.String(healthCheckPort(tg, t.Port))}
	if tg.TargetGroup.TargetType == elbtypes.TargetTypeEnumInstance {
		h.Target.AvailabilityZone = aws.String(s.o.Region + "a")
	}
	state, err := t.State(tx, tg)
	h.TargetHealth = &state
	return h, err
}
