package elbv2

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/elbv2/lbwire"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// dataPlane serves the data-plane API (package lbwire) for lb and admin
// keys.
type dataPlane struct{ s *Server }

var _ awsproto.Handler = dataPlane{}

// DataPlaneAPI is the load balancer data-plane API for the AWS protocol
// router: JSON 1.1, signed for elasticloadbalancing like the ELBv2 API.
func (s *Server) DataPlaneAPI() awsproto.API {
	return awsproto.API{Name: "LB data plane", Service: auth.LBService, Protocol: awsproto.JSON11,
		TargetPrefix: lbwire.TargetPrefix, Handler: dataPlane{s}}
}

// ServeAWS runs one data-plane operation.
func (d dataPlane) ServeAWS(r *awsproto.Request) ([]byte, error) {
	if r.Key.Role != auth.RoleLB && r.Key.Role != auth.RoleAdmin {
		return nil, apiErr("AccessDeniedException", "%s keys may not call the load balancer data-plane API", r.Key.Role)
	}
	var out any
	var err error
	switch r.Operation {
	case lbwire.OpGetLoadBalancerState:
		var in lbwire.GetStateInput
		if err = decodeJSON(r.Body, &in); err == nil {
			err = d.s.o.Store.View(func(tx store.Tx) error {
				var e error
				out, e = d.s.state(tx, in)
				return e
			})
		}
	case lbwire.OpReportTargetHealth:
		var in lbwire.ReportInput
		if err = decodeJSON(r.Body, &in); err == nil {
			err = d.s.o.Store.Update(func(tx store.Tx) error {
				var e error
				out, e = d.s.report(tx, r.Key.AccessKeyID, in)
				return e
			})
		}
	case lbwire.OpReportMetrics:
		var in lbwire.MetricsInput
		if err = decodeJSON(r.Body, &in); err == nil {
			out, err = d.s.recordMetrics(&in)
		}
	default:
		return nil, apiErr("UnknownOperationException", "operation %s is not served by this endpoint", r.Operation)
	}
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode %s output: %w", r.Operation, err)
	}
	return b, nil
}

// recordMetrics records a data plane's metrics of an existing load
// balancer; target groups deleted meanwhile are left out.
func (s *Server) recordMetrics(in *lbwire.MetricsInput) (*lbwire.MetricsOutput, error) {
	if s.o.Metrics == nil {
		return nil, apiErr("UnknownOperationException", "this endpoint keeps no metrics")
	}
	kept := *in
	kept.TargetGroups = nil
	err := s.o.Store.View(func(tx store.Tx) error {
		kept.TargetGroups = nil
		if _, err := s.loadBalancer(tx, in.LoadBalancerArn); err != nil {
			return err
		}
		for _, tg := range in.TargetGroups {
			_, err := s.targetGroup(tx, tg.TargetGroupArn)
			var gone *awsproto.Error
			switch {
			case err == nil:
				kept.TargetGroups = append(kept.TargetGroups, tg)
			case !errors.As(err, &gone):
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.o.Metrics.RecordLoadBalancer(&kept); err != nil {
		return nil, err
	}
	return &lbwire.MetricsOutput{Recorded: len(kept.TargetGroups)}, nil
}

func decodeJSON(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return apiErr("SerializationException", "decode input: %v", err)
	}
	return nil
}

// state builds a load balancer's lbwire.State.
func (s *Server) state(tx store.Tx, in lbwire.GetStateInput) (*lbwire.State, error) {
	var lb *records.LoadBalancer
	switch {
	case in.LoadBalancerArn != "":
		var err error
		if lb, err = s.loadBalancer(tx, in.LoadBalancerArn); err != nil {
			return nil, err
		}
	case in.LoadBalancerName != "":
		err := records.Each(tx, records.LoadBalancers, "", func(r *records.LoadBalancer) error {
			if aws.ToString(r.LoadBalancer.LoadBalancerName) == in.LoadBalancerName {
				lb = r
				return store.ErrStopScan
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if lb == nil {
			return nil, apiErr(errLBNotFound, "Load balancers '[%s]' not found", in.LoadBalancerName)
		}
	default:
		return nil, apiErr(errValidation, "LoadBalancerArn or LoadBalancerName is required")
	}
	out := &lbwire.State{LoadBalancer: lb.LoadBalancer, Attributes: attrMap(lbAttrs(lb.LoadBalancer.Type), lb.Attributes),
		Listeners: []lbwire.Listener{}, TargetGroups: []lbwire.TargetGroup{}}
	listeners, err := all[records.Listener](tx, records.Listeners, lb.Key()+"/")
	if err != nil {
		return nil, err
	}
	slices.SortFunc(listeners, func(a, b *records.Listener) int {
		return int(aws.ToInt32(a.Listener.Port) - aws.ToInt32(b.Listener.Port))
	})
	var tgArns []string
	for _, l := range listeners {
		wl := lbwire.Listener{Listener: l.Listener, Attributes: attrMap(listenerAttrs(l.Listener.Protocol), l.Attributes)}
		rules, err := listenerRules(tx, aws.ToString(l.Listener.ListenerArn))
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			wl.Rules = append(wl.Rules, r.Rule)
			tgArns = append(tgArns, actionTargetGroups(r.Rule.Actions)...)
		}
		if len(l.Listener.Certificates) > 0 {
			if wl.Certificate, err = s.certificatePEM(aws.ToString(l.Listener.Certificates[0].CertificateArn)); err != nil {
				return nil, err
			}
		}
		out.Listeners = append(out.Listeners, wl)
	}
	slices.Sort(tgArns)
	now := s.o.Now().UTC()
	for _, ref := range slices.Compact(tgArns) {
		tg, err := s.targetGroup(tx, ref)
		if err != nil {
			return nil, err
		}
		wtg := lbwire.TargetGroup{TargetGroup: tg.TargetGroup, Attributes: attrMap(tgAttrs(&tg.TargetGroup), tg.Attributes), Targets: []lbwire.Target{}}
		targets, err := records.LiveTargets(tx, tg, now)
		if err != nil {
			return nil, err
		}
		for _, t := range targets {
			wt := lbwire.Target{ID: t.ID, Port: t.Port, Draining: !t.DrainingUntil.IsZero(), DrainingUntil: t.DrainingUntil}
			hp, _ := strconv.Atoi(healthCheckPort(tg, t.Port))
			wt.HealthCheckPort = int32(hp)
			if tg.TargetGroup.TargetType == elbtypes.TargetTypeEnumIp {
				wt.Address = t.ID
			} else {
				inst, err := records.FindInstanceByID(tx, t.ID)
				if err != nil {
					return nil, err
				}
				if inst != nil && aws.ToString(inst.Instance.Status) != "INACTIVE" {
					wt.Address = inst.HostAddress()
				}
			}
			wtg.Targets = append(wtg.Targets, wt)
		}
		out.TargetGroups = append(out.TargetGroups, wtg)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("hash load balancer state: %w", err)
	}
	sum := sha256.Sum256(b)
	out.Version = hex.EncodeToString(sum[:8])
	return out, nil
}

func attrMap(specs map[string]attrSpec, set map[string]string) map[string]string {
	out := make(map[string]string, len(specs))
	for k, spec := range specs {
		out[k] = spec.def
	}
	maps.Copy(out, set)
	return out
}

// certificatePEM reads a declared certificate's files.
func (s *Server) certificatePEM(ref string) (*lbwire.Certificate, error) {
	i := slices.IndexFunc(s.o.Certificates, func(c Certificate) bool { return c.ARN == ref })
	if i < 0 {
		return nil, fmt.Errorf("certificate %s: no longer declared in cluster.toml", ref)
	}
	c := s.o.Certificates[i]
	cert, err := os.ReadFile(c.CertFile)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", ref, err)
	}
	key, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", ref, err)
	}
	return &lbwire.Certificate{CertificateArn: ref, CertificatePEM: string(cert), PrivateKeyPEM: string(key)}, nil
}

// reportStates are the states a data plane may report, and the reasons
// each may carry.
var reportStates = map[string][]string{
	"healthy":     {""},
	"initial":     {"", "Elb.InitialHealthChecking", "Elb.RegistrationInProgress"},
	"unhealthy":   {"Target.ResponseCodeMismatch", "Target.Timeout", "Target.FailedHealthChecks", "Elb.InternalError"},
	"unavailable": {"Target.HealthCheckDisabled", "Elb.InternalError"},
}

// report records a data plane's health reports on registered targets.
func (s *Server) report(tx store.Tx, reporter string, in lbwire.ReportInput) (*lbwire.ReportOutput, error) {
	tg, err := s.targetGroup(tx, in.TargetGroupArn)
	if err != nil {
		return nil, err
	}
	now := s.o.Now().UTC()
	out := &lbwire.ReportOutput{}
	for _, h := range in.Targets {
		reasons, ok := reportStates[h.State]
		if !ok || !slices.Contains(reasons, h.Reason) {
			return nil, apiErr(errValidation, "target %s:%d: state %q with reason %q is not a reportable health (states: healthy; initial; unhealthy with Target.ResponseCodeMismatch, Target.Timeout, Target.FailedHealthChecks or Elb.InternalError; unavailable with Target.HealthCheckDisabled or Elb.InternalError)", h.ID, h.Port, h.State, h.Reason)
		}
		t, found, err := records.Get[records.Target](tx, records.Targets, records.TargetKey(tg.Key(), h.ID, h.Port))
		if err != nil {
			return nil, err
		}
		if !found || (!t.DrainingUntil.IsZero() && !now.Before(t.DrainingUntil)) {
			out.NotRegistered = append(out.NotRegistered, h)
			continue
		}
		t.Health = &records.TargetReport{State: h.State, Reason: h.Reason, Description: h.Description, ReportedAt: now, Reporter: reporter}
		if err := records.Put(tx, t); err != nil {
			return nil, err
		}
		out.Recorded++
	}
	return out, nil
}
