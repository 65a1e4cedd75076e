package engine

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/container"
)

// Docker's health-check defaults, used when the task leaves them zero.
const (
	defaultHealthInterval = 30 * time.Second
	defaultHealthTimeout  = 30 * time.Second
	defaultHealthRetries  = 3
)

// healthArgs turns a Docker test into the command to exec.
func healthArgs(test []string) []string {
	if len(test) == 0 {
		return nil
	}
	switch test[0] {
	case "CMD":
		return test[1:]
	case "CMD-SHELL":
		if len(test) < 2 {
			return nil
		}
		return []string{"/bin/sh", "-c", test[1]}
	case "NONE":
		return nil
	default:
		// Docker treats a test without a kind as CMD.
		return test
	}
}

// startHealth runs the container's health check every interval until ctx
// (the container's life) ends, delivering each result to the select loop.
func (r *taskRunner) startHealth(ctx context.Context, name, id string, hc HealthCheck) {
	args := healthArgs(hc.Test)
	if len(args) == 0 {
		return
	}
	interval, timeout := hc.Interval, hc.Timeout
	if interval <= 0 {
		interval = defaultHealthInterval
	}
	if timeout <= 0 {
		timeout = defaultHealthTimeout
	}
	rt := r.e.opts.Runtime
	r.ops.Add(1)
	go func() {
		defer r.ops.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			code, err := rt.Exec(ctx, id, args, timeout)
			if ctx.Err() != nil {
				return
			}
			healthy := err == nil && code == 0
			select {
			case r.events <- event{kind: evHealth, container: name, healthy: healthy}:
			case <-ctx.Done():
				return
			}
		}
	}()
}

// healthResult applies one probe result with Docker's rules: one success
// makes the container HEALTHY; Retries consecutive failures make it
// UNHEALTHY, except that failures during the start period do not count.
func (r *taskRunner) healthResult(c *ContainerState, healthy bool) {
	if c.KnownStatus != ContainerRunning {
		return
	}
	d := r.def(c)
	if d.HealthCheck == nil {
		return
	}
	cr := r.container(c.Name)
	next := c.Health
	if healthy {
		cr.healthFails = 0
		next = container.HealthHealthy
	} else {
		inStart := r.now().Before(c.StartedAt.Add(d.HealthCheck.StartPeriod))
		if !inStart || c.Health == container.HealthHealthy {
			cr.healthFails++
		}
		retries := d.HealthCheck.Retries
		if retries <= 0 {
			retries = defaultHealthRetries
		}
		if cr.healthFails >= retries {
			next = container.HealthUnhealthy
		}
	}
	if next == c.Health {
		return
	}
	c.Health = next
	r.mustSave(r.containerChange(c))
}

// TaskHealth returns the health of the running tasks' containers that have
// a health check (pkg/registration publishes it on the TCS session), sorted
// by task ARN, containers in definition order, so an unchanged state gives
// an equal result. Tasks without such a container are left out.
func (e *Engine) TaskHealth() []container.TaskHealth {
	var out []container.TaskHealth
	for _, t := range e.Tasks() {
		if t.KnownStatus != TaskRunning {
			continue
		}
		th := container.TaskHealth{TaskARN: t.Def.ARN, Cluster: t.Def.Cluster, Family: t.Def.Family, Version: t.Def.Version}
		for i := range t.Def.Containers {
			d := &t.Def.Containers[i]
			if d.HealthCheck == nil {
				continue
			}
			for _, c := range t.Containers {
				if c.Name == d.Name {
					th.Containers = append(th.Containers, container.ContainerHealth{Name: c.Name, Status: c.Health})
				}
			}
		}
		if len(th.Containers) > 0 {
			out = append(out, th)
		}
	}
	slices.SortFunc(out, func(a, b container.TaskHealth) int { return strings.Compare(a.TaskARN, b.TaskARN) })
	return out
}
