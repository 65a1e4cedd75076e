package elbv2

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// AddressAttribute is the container instance attribute that holds the
// address a load balancer reaches an instance's host ports on (an
// instance target's address). Agents register it; an operator may set it
// with `aws ecs put-attributes`.
const AddressAttribute = "berth.host-address"

// instanceOf finds the container instance a target id names (its id or
// ARN); nil when there is none.
func instanceOf(tx store.Tx, id string) (*records.Instance, error) {
	id = records.LBResourceID(id)
	var found *records.Instance
	err := records.Each(tx, records.Instances, "", func(in *records.Instance) error {
		if strings.HasSuffix(in.Key(), "/"+id) {
			found = in
			return store.ErrStopScan
		}
		return nil
	})
	return found, err
}

// instanceAddress is an instance's AddressAttribute, or "".
func instanceAddress(in *records.Instance) string {
	for _, a := range in.Instance.Attributes {
		if aws.ToString(a.Name) == AddressAttribute {
			return aws.ToString(a.Value)
		}
	}
	return ""
}

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
		in, err := instanceOf(tx, id)
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

// pruneDrained deletes the targets of a target group whose draining ended.
func (s *Server) pruneDrained(tx store.Tx, tg *records.TargetGroup, now time.Time) error {
	targets, err := all[records.Target](tx, records.Targets, tg.Key()+"/")
	if err != nil {
		return err
	}
	for _, t := range targets {
		if !t.DrainingUntil.IsZero() && !now.Before(t.DrainingUntil) {
			if err := tx.Delete(records.Targets, t.Key()); err != nil {
				return err
			}
		}
	}
	return nil
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
	return tg, now, s.pruneDrained(tx, tg, now)
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
		key := records.TargetKey(tg.Key(), id, port)
		t, found, err := records.Get[records.Target](tx, records.Targets, key)
		if err != nil {
			return nil, err
		}
		if found && t.DrainingUntil.IsZero() {
			continue // registered already
		}
		t = &records.Target{TargetGroupArn: *tg.TargetGroup.TargetGroupArn, ID: id, Port: port, RegisteredAt: now}
		if err := records.Put(tx, t); err != nil {
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
	delay, _ := strconv.Atoi(tgAttr(tg, "deregistration_delay.timeout_seconds"))
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
		if !t.DrainingUntil.IsZero() {
			continue // draining already
		}
		// A target group no load balancer uses has no connections to drain.
		if delay == 0 || len(tg.TargetGroup.LoadBalancerArns) == 0 {
			if err := tx.Delete(records.Targets, t.Key()); err != nil {
				return nil, err
			}
			continue
		}
		t.DrainingUntil = now.Add(time.Duration(delay) * time.Second)
		if err := records.Put(tx, t); err != nil {
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
	registered, err := liveTargets(tx, tg, now)
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

// liveTargets are a target group's targets not done draining at now, in
// key order.
func liveTargets(tx store.Tx, tg *records.TargetGroup, now time.Time) ([]*records.Target, error) {
	var out []*records.Target
	err := records.Each(tx, records.Targets, tg.Key()+"/", func(t *records.Target) error {
		if t.DrainingUntil.IsZero() || now.Before(t.DrainingUntil) {
			out = append(out, t)
		}
		return nil
	})
	return out, err
}

func healthCheckPort(tg *records.TargetGroup, port int32) string {
	if p := aws.ToString(tg.TargetGroup.HealthCheckPort); p != "" && p != "traffic-port" {
		return p
	}
	return strconv.Itoa(int(port))
}

// health is a registered target's health as AWS shows it: draining while
// it drains; unused when no load balancer uses the group or the instance
// is gone or unreachable; unavailable when health checks are off;
// otherwise the data plane's last report, or initial before one.
func (s *Server) health(tx store.Tx, tg *records.TargetGroup, t *records.Target) (elbtypes.TargetHealthDescription, error) {
	h := elbtypes.TargetHealthDescription{Target: &elbtypes.TargetDescription{Id: aws.String(t.ID), Port: aws.Int32(t.Port)},
		HealthCheckPort: aws.String(healthCheckPort(tg, t.Port))}
	set := func(state elbtypes.TargetHealthStateEnum, reason elbtypes.TargetHealthReasonEnum, desc string) {
		h.TargetHealth = &elbtypes.TargetHealth{State: state, Reason: reason}
		if desc != "" {
			h.TargetHealth.Description = aws.String(desc)
		}
	}
	if tg.TargetGroup.TargetType == elbtypes.TargetTypeEnumInstance {
		h.Target.AvailabilityZone = aws.String(s.o.Region + "a")
	}
	switch {
	case !t.DrainingUntil.IsZero():
		set(elbtypes.TargetHealthStateEnumDraining, elbtypes.TargetHealthReasonEnumDeregistrationInProgress, "Target deregistration is in progress")
		return h, nil
	case len(tg.TargetGroup.LoadBalancerArns) == 0:
		set(elbtypes.TargetHealthStateEnumUnused, elbtypes.TargetHealthReasonEnumNotInUse, "Target group is not configured to receive traffic from the load balancer")
		return h, nil
	}
	if tg.TargetGroup.TargetType == elbtypes.TargetTypeEnumInstance {
		in, err := instanceOf(tx, t.ID)
		if err != nil {
			return h, err
		}
		switch {
		case in == nil || aws.ToString(in.Instance.Status) == "INACTIVE":
			set(elbtypes.TargetHealthStateEnumUnused, elbtypes.TargetHealthReasonEnumInvalidState, "Target is in the stopped state")
			return h, nil
		case instanceAddress(in) == "":
			set(elbtypes.TargetHealthStateEnumUnused, elbtypes.TargetHealthReasonEnumInvalidState,
				"The container instance has no "+AddressAttribute+" attribute, so the load balancer cannot reach it")
			return h, nil
		}
	}
	switch r := t.Health; {
	case r != nil && !r.ReportedAt.Before(t.RegisteredAt):
		set(elbtypes.TargetHealthStateEnum(r.State), elbtypes.TargetHealthReasonEnum(r.Reason), r.Description)
	case !aws.ToBool(tg.TargetGroup.HealthCheckEnabled):
		set(elbtypes.TargetHealthStateEnumUnavailable, elbtypes.TargetHealthReasonEnumHealthCheckDisabled, "Health checks are disabled")
	default:
		set(elbtypes.TargetHealthStateEnumInitial, elbtypes.TargetHealthReasonEnumRegistrationInProgress, "Target registration is in progress")
	}
	return h, nil
}
