package lb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/berth-dev/berth/pkg/cluster/elbv2/lbwire"
)

// healthOf is what HAProxy's view of a server means as an AWS target
// health: UP (also while a failing check counts down, "UP 1/3") is
// healthy; DOWN after a failed check is unhealthy with AWS's reason for
// the check's status; DOWN before any failure (a new target counting up to
// its healthy threshold) is initial, unless it was unhealthy before, which
// it stays until it is UP.
func healthOf(checked bool, s serverStat, prev lbwire.TargetHealth) lbwire.TargetHealth {
	h := lbwire.TargetHealth{}
	word, _, _ := strings.Cut(s.status, " ")
	switch {
	case !checked || s.status == "no check":
		h.State, h.Reason = "unavailable", "Target.HealthCheckDisabled"
		h.Description = "Health checks are disabled"
	case word == "UP" || word == "NOLB" || (word == "DRAIN" && !strings.Contains(s.status, "DOWN")):
		h.State = "healthy"
	case failedCheck(s.checkStatus):
		h.State = "unhealthy"
		switch s.checkStatus {
		case "L7STS":
			h.Reason, h.Description = "Target.ResponseCodeMismatch", fmt.Sprintf("Health checks failed with these codes: [%s]", s.checkCode)
		case "L4TOUT", "L6TOUT", "L7TOUT":
			h.Reason, h.Description = "Target.Timeout", "Request timed out"
		default:
			h.Reason, h.Description = "Target.FailedHealthChecks", fmt.Sprintf("Health checks failed (HAProxy check status %s)", s.checkStatus)
		}
	case prev.State == "unhealthy":
		h = prev
	default:
		h.State, h.Reason = "initial", "Elb.InitialHealthChecking"
		h.Description = "Initial health checks in progress"
	}
	return h
}

// failedCheck tells the check statuses that are failures.
func failedCheck(status string) bool {
	switch status {
	case "", "UNK", "INI", "L4OK", "L6OK", "L7OK", "L7OKC":
		return false
	}
	return true
}

// report sends each target group's health when it changed since the last
// report (or when the state changed: a target registered again starts over
// at the endpoint).
func (l *balancer) report(ctx context.Context, p *plan, version string) error {
	stats, err := l.h.stats(ctx)
	if err != nil {
		return err
	}
	byName := map[string]serverStat{}
	for _, s := range stats {
		byName[s.backend+"/"+s.name] = s
	}
	var errs []error
	for _, be := range p.backends {
		var targets []lbwire.TargetHealth
		changed := version != l.reportedVersion
		for _, d := range be.targets {
			key := be.name + "/" + d.name
			s, ok := byName[key]
			if !ok || d.draining || strings.HasPrefix(s.status, "MAINT") {
				continue
			}
			prev := l.reported[key]
			h := healthOf(be.checked, s, prev)
			h.ID, h.Port = d.id, d.port
			if h != prev {
				changed = true
				if prev.State != "" && prev.State != h.State {
					l.log.Info("target health changed", "backend", be.name, "target", d.name, "from", prev.State, "to", h.State, "reason", h.Reason)
				}
			}
			targets = append(targets, h)
		}
		if !changed || len(targets) == 0 {
			continue
		}
		if _, err := l.client.Report(ctx, lbwire.ReportInput{TargetGroupArn: be.targetGroupArn, Targets: targets}); err != nil {
			errs = append(errs, fmt.Errorf("report health of %s: %w", be.name, err))
			continue
		}
		for _, h := range targets {
			l.reported[be.name+"/"+serverName(h.ID, h.Port)] = h
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	l.reportedVersion = version
	return nil
}
