package agent

// Container metrics (issue 21): the stats sampler (pkg/stats) reads the
// engine's running containers every ECS_POLLING_METRICS_WAIT_DURATION; the
// TCS session publishes its statistic sets (TaskMetrics) and task
// metadata /stats serves its newest samples. ECS_DISABLE_METRICS=true
// builds no sampler.

import (
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/runtime"
	"github.com/berth-dev/berth/pkg/stats"
)

// statsTargets lists the engine's running containers for the sampler.
type statsTargets struct{ eng *engine.Engine }

var _ stats.Targets = statsTargets{}

// Targets implements stats.Targets.
func (s statsTargets) Targets() []stats.Target {
	var out []stats.Target
	for _, t := range s.eng.Tasks() {
		if t.KnownStatus != engine.TaskRunning {
			continue
		}
		for _, c := range t.Containers {
			if c.RuntimeID == "" || c.KnownStatus != engine.ContainerRunning {
				continue
			}
			out = append(out, stats.Target{ID: c.RuntimeID, Name: c.Name,
				TaskArn: t.Def.ARN, ClusterArn: t.Def.Cluster, Family: t.Def.Family, Version: t.Def.Version,
				Network: t.Def.NetworkMode != "host"})
		}
	}
	return out
}

// newSampler builds the stats sampler, or returns nil when metrics are
// disabled.
func (a *Agent) newSampler(eng *engine.Engine, rt *runtime.Runtime) (*stats.Sampler, error) {
	if a.cfg.Metrics.Disabled {
		return nil, nil
	}
	return stats.New(stats.Options{Reader: rt, Targets: statsTargets{eng: eng},
		Interval: a.cfg.Metrics.PollInterval, Logger: a.log})
}

// TaskMetrics hands the sampler's statistic sets to the TCS session
// (registration.MetricsSource). Before Run has built the sampler, or with
// metrics disabled, there is nothing to publish.
func (a *Agent) TaskMetrics() ([]*api.TaskMetric, bool) {
	a.mu.Lock()
	s := a.sampler
	a.mu.Unlock()
	if s == nil {
		return nil, false
	}
	return s.TaskMetrics()
}
