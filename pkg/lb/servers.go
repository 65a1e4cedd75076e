package lb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// apply makes the HAProxy match the plan: started with the plan's
// structure when none runs, reloaded when its structure differs, and its
// servers changed through the runtime API.
func (l *balancer) apply(ctx context.Context, p *plan) error {
	if _, err := l.h.status(ctx); err != nil {
		if !errors.Is(err, errNotRunning) {
			return err
		}
		// A cold start has no server lines: every target is added through
		// the runtime API below, where it starts DOWN until its health
		// checks pass (a server of the configuration would start UP).
		if err := l.writeConfig(ctx, p, nil); err != nil {
			return err
		}
		if err := l.h.start(ctx); err != nil {
			return err
		}
		l.log.Info("started haproxy", "pid", l.h.masterPID(), "config", l.h.configPath())
	} else if cur, err := os.ReadFile(l.h.configPath()); err != nil || runningHash(cur) != p.hash {
		if err := l.reload(ctx, p); err != nil {
			return err
		}
	}
	return l.reconcile(ctx, p)
}

// writeConfig writes the plan's files and configuration (with the given
// server lines) and has HAProxy check it before it replaces the old one.
func (l *balancer) writeConfig(ctx context.Context, p *plan, servers map[string][]string) error {
	for path, data := range p.files {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := writeFileAtomic(path, data, 0o600); err != nil {
			return err
		}
	}
	next := l.h.configPath() + ".next"
	if err := writeFileAtomic(next, []byte(p.config(servers)), 0o600); err != nil {
		return err
	}
	if err := l.h.check(ctx, next); err != nil {
		return err
	}
	if err := os.Rename(next, l.h.configPath()); err != nil {
		return fmt.Errorf("install haproxy config: %w", err)
	}
	return nil
}

// reload applies a new structure: the configuration is written with a
// line for every server HAProxy has now that the plan still wants (so no
// target is lost; their health and drain states travel in the server
// state file), and the master reloads it seamlessly.
func (l *balancer) reload(ctx context.Context, p *plan) error {
	running, err := l.h.servers(ctx)
	if err != nil {
		return err
	}
	lines := map[string][]string{}
	for _, be := range p.backends {
		want := map[string]desiredServer{}
		for _, d := range be.targets {
			want[d.name] = d
		}
		for _, s := range running {
			if d, ok := want[s.name]; ok && s.backend == be.name && s.addr == d.addr && s.port == int(d.port) {
				lines[be.name] = append(lines[be.name], s.name+" "+d.args(be))
			}
		}
	}
	if err := l.h.saveServerState(ctx); err != nil {
		return err
	}
	if err := l.writeConfig(ctx, p, lines); err != nil {
		return err
	}
	if err := l.h.reload(ctx); err != nil {
		return err
	}
	l.reloads++
	l.log.Info("reloaded haproxy: listeners, rules or target groups changed", "structure", p.hash)
	return nil
}

// reconcile adds, drains, readies and removes servers so that each
// backend has the plan's targets.
func (l *balancer) reconcile(ctx context.Context, p *plan) error {
	running, err := l.h.servers(ctx)
	if err != nil {
		return err
	}
	backends, err := l.h.backends(ctx)
	if err != nil {
		return err
	}
	byBackend := map[string]map[string]runtimeServer{}
	for _, s := range running {
		if byBackend[s.backend] == nil {
			byBackend[s.backend] = map[string]runtimeServer{}
		}
		byBackend[s.backend][s.name] = s
	}
	var errs []error
	for _, be := range p.backends {
		if !backends[be.name] {
			continue // not in the running configuration (its reload failed)
		}
		cur := byBackend[be.name]
		want := map[string]bool{}
		for _, d := range be.targets {
			want[d.name] = true
			s, ok := cur[d.name]
			switch {
			case !ok && d.draining:
				// Deregistered before it was ever added here.
			case !ok:
				errs = append(errs, l.addServer(ctx, be, d))
			case s.addr != d.addr || s.port != int(d.port):
				// Added at its new address once the old server is gone.
				errs = append(errs, l.removeServer(ctx, be.name, s.name))
			case d.draining && s.adminState&admForcedDrain == 0:
				l.log.Info("draining target", "backend", be.name, "target", d.name)
				errs = append(errs, l.h.run(ctx, fmt.Sprintf("set server %s/%s state drain", be.name, d.name)))
			case !d.draining && s.adminState&(admForcedDrain|admForcedMaint) != 0:
				delete(l.removing, be.name+"/"+d.name) // registered again while being removed
				errs = append(errs, l.h.run(ctx, fmt.Sprintf("set server %s/%s state ready", be.name, d.name)))
			}
		}
		for name := range cur {
			if !want[name] {
				errs = append(errs, l.removeServer(ctx, be.name, name))
			}
		}
	}
	return errors.Join(errs...)
}

// addServer adds a target as a dynamic server. HAProxy starts a dynamic
// server in maintenance and, on leaving maintenance, takes it for UP; so
// the server is first taken to drain (no new traffic), marked DOWN, and
// only then made ready: it gets traffic once its health checks have
// passed the healthy threshold.
func (l *balancer) addServer(ctx context.Context, be *backend, d desiredServer) error {
	id := be.name + "/" + d.name
	if err := l.h.run(ctx, "add server "+id+" "+d.args(be), "New server registered"); err != nil {
		return fmt.Errorf("add target %s: %w", id, err)
	}
	steps := []string{"set server " + id + " state ready"}
	if be.checked {
		steps = []string{"enable health " + id, "set server " + id + " state drain", "set server " + id + " health down", "set server " + id + " state ready"}
	}
	for _, s := range steps {
		if err := l.h.run(ctx, s); err != nil {
			return errors.Join(fmt.Errorf("add target %s: %w", id, err), l.removeServer(ctx, be.name, d.name))
		}
	}
	l.log.Info("added target", "backend", be.name, "target", d.name, "address", fmt.Sprintf("%s:%d", d.addr, d.port))
	return nil
}

// removeGrace is how long a removed server's requests in flight may take
// to finish before its sessions are shut.
const removeGrace = 10 * time.Second

// removeServer takes a server out: maintenance (no new traffic, no
// checks), then deleted once its last session ended. HAProxy refuses to
// delete a server that still has connections; the removal is tried again
// at the next step, and past removeGrace its sessions are shut first.
func (l *balancer) removeServer(ctx context.Context, backend, name string) error {
	id := backend + "/" + name
	since, ok := l.removing[id]
	if !ok {
		if err := l.h.run(ctx, "set server "+id+" state maint"); err != nil {
			return fmt.Errorf("remove target %s: %w", id, err)
		}
		since = time.Now()
		l.removing[id] = since
	}
	if time.Since(since) > removeGrace {
		if err := l.h.run(ctx, "shutdown sessions server "+id); err != nil {
			return fmt.Errorf("remove target %s: %w", id, err)
		}
	}
	if err := l.h.run(ctx, "del server "+id, "Server deleted"); err != nil {
		if strings.Contains(err.Error(), "still has connections") {
			return nil // in flight: the next step tries again
		}
		return fmt.Errorf("remove target %s: %w", id, err)
	}
	delete(l.removing, id)
	l.log.Info("removed target", "backend", backend, "target", name)
	return nil
}

// backends lists the running configuration's backends.
func (h *haproxy) backends(ctx context.Context) (map[string]bool, error) {
	out, err := command(ctx, h.adminSock(), "show backend")
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			names[line] = true
		}
	}
	return names, nil
}
