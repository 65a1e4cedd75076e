package lb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/elbv2/lbwire"
)

// counters are HAProxy's cumulative counters berth-lb turns into
// metrics: requests received per frontend, responses by status class per
// backend/server.
type counters struct {
	frontends map[string]int64
	servers   map[string][6]int64
}

func countersOf(stats []serverStat) counters {
	c := counters{frontends: map[string]int64{}, servers: map[string][6]int64{}}
	for _, s := range stats {
		if s.name == frontendRow {
			c.frontends[s.backend] = s.requests
		} else {
			c.servers[s.backend+"/"+s.name] = s.responses
		}
	}
	return c
}

// delta is what a counter counted since prev; a counter below prev was
// started again (a new server of the same name, a new worker) and counted
// cur since.
func delta(cur, prev int64) int64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// metricsInput is the report of what HAProxy counted between prev and
// cur, and of the targets' health now, for the plan's target groups.
func metricsInput(lbArn string, p *plan, stats []serverStat, cur, prev counters, health func(be *backend, d desiredServer, s serverStat) string) lbwire.MetricsInput {
	in := lbwire.MetricsInput{LoadBalancerArn: lbArn}
	for fe, n := range cur.frontends {
		in.RequestCount += delta(n, prev.frontends[fe])
	}
	byName := map[string]serverStat{}
	for _, s := range stats {
		byName[s.backend+"/"+s.name] = s
	}
	for _, be := range p.backends {
		m := lbwire.TargetGroupMetrics{TargetGroupArn: be.targetGroupArn}
		for _, d := range be.targets {
			key := be.name + "/" + d.name
			s, ok := byName[key]
			if !ok {
				continue
			}
			var n [6]int64
			total := int64(0)
			for i := range n {
				n[i] = delta(cur.servers[key][i], prev.servers[key][i])
				total += n[i]
			}
			m.Target2XX += n[1]
			m.Target3XX += n[2]
			m.Target4XX += n[3]
			m.Target5XX += n[4]
			if total > 0 {
				rt := float64(s.rtime) / 1000
				if m.RequestCount == 0 || rt < m.ResponseTimeMin {
					m.ResponseTimeMin = rt
				}
				m.ResponseTimeMax = max(m.ResponseTimeMax, rt)
				m.ResponseTimeSum += rt * float64(total)
				m.RequestCount += total
			}
			if d.draining || strings.HasPrefix(s.status, "MAINT") {
				continue
			}
			switch health(be, d, s) {
			case "healthy":
				m.HealthyHostCount++
			case "unhealthy":
				m.UnHealthyHostCount++
			}
		}
		in.TargetGroups = append(in.TargetGroups, m)
	}
	return in
}

// sendMetrics reports what HAProxy counted since the last report, once
// every metrics interval. The first reading after berth-lb starts is only
// the base (what HAProxy counted before is not known to be unreported);
// after a reload the new worker counts from zero. A failed report keeps
// the base, so its counts go with the next one. Failures are logged, not
// returned: metrics never hold back serving.
func (b *balancer) sendMetrics(ctx context.Context, p *plan, lbArn string) {
	now := time.Now()
	if b.metricsInterval <= 0 || now.Sub(b.metricsAt) < b.metricsInterval {
		return
	}
	err := b.reportMetrics(ctx, p, lbArn, now)
	switch {
	case err != nil && err.Error() != b.metricsErr:
		b.metricsErr = err.Error()
		b.log.Warn("load balancer metrics not reported; they go with the next report", "err", err)
	case err == nil && b.metricsErr != "":
		b.metricsErr = ""
		b.log.Info("load balancer metrics reported again")
	}
}

func (b *balancer) reportMetrics(ctx context.Context, p *plan, lbArn string, now time.Time) error {
	stats, err := b.h.stats(ctx)
	if err != nil {
		return err
	}
	cur := countersOf(stats)
	if b.metricsBase == nil {
		b.metricsBase, b.metricsReloads, b.metricsAt = &cur, b.reloads, now
		return nil
	}
	prev := *b.metricsBase
	if b.reloads != b.metricsReloads {
		prev = counters{}
	}
	in := metricsInput(lbArn, p, stats, cur, prev, func(be *backend, d desiredServer, s serverStat) string {
		return healthOf(be.checked, s, b.reported[be.name+"/"+d.name]).State
	})
	if _, err := b.client.Metrics(ctx, in); err != nil {
		return fmt.Errorf("report metrics: %w", err)
	}
	b.metricsBase, b.metricsReloads, b.metricsAt = &cur, b.reloads, now
	return nil
}
