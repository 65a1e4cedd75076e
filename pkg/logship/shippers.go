package logship

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// ShippersOptions configures Shippers.
type ShippersOptions struct {
	// PositionDir holds one position file per container
	// (<ECS_DATADIR>/logship).
	PositionDir string
	// Deps are handed to every driver; per-container credentials can be
	// set in StartContainer's deps instead.
	Deps Deps
	// Metrics collects the counters of every Shipper; nil makes a new one.
	Metrics *Metrics
	Logger  *slog.Logger
}

// Shippers owns the Shipper of each of an agent's containers, keyed by
// container id: the engine starts one when a container starts, drains it
// when the container exits, and removes it at cleanup. It is safe for
// concurrent use.
type Shippers struct {
	opts ShippersOptions

	// mu guards shippers.
	mu       sync.Mutex
	shippers map[string]*Shipper
}

// NewShippers returns an empty set of Shippers.
func NewShippers(opts ShippersOptions) *Shippers {
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Shippers{opts: opts, shippers: map[string]*Shipper{}}
}

// Metrics returns the counters for /metrics.
func (m *Shippers) Metrics() *Metrics { return m.opts.Metrics }

// ContainerLog says what to ship for one container.
type ContainerLog struct {
	// ID is the container id; LogPath its json-file (runtime.LogPath).
	ID, LogPath string
	// Driver and Options are the task definition's logConfiguration.
	Driver  string
	Options map[string]string
	Info    ContainerInfo
	// Deps, when set, replace the Shippers' for this container (e.g. the
	// task's execution-role credentials).
	Deps *Deps
}

// StartContainer validates the options and starts shipping (also after an
// agent restart: the Shipper resumes from the container's position file).
// json-file and none start nothing. Starting a container already shipping
// is a no-op.
func (m *Shippers) StartContainer(ctx context.Context, c ContainerLog) error {
	if err := ValidateOptions(c.Driver, c.Options); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.shippers[c.ID]; ok {
		return nil
	}
	deps := m.opts.Deps
	if c.Deps != nil {
		deps = *c.Deps
	}
	if deps.Logger == nil {
		deps.Logger = m.opts.Logger
	}
	d, err := NewDriver(c.Driver, c.Options, c.Info, deps)
	if err != nil || d == nil {
		return err
	}
	nb, maxBuf := Mode(c.Options)
	s, err := Start(ctx, Options{
		Path: c.LogPath, Positions: &FilePositions{Path: m.positionPath(c.ID)}, Driver: d, DriverName: c.Driver,
		NonBlocking: nb, MaxBufferSize: maxBuf, Metrics: m.opts.Metrics, Logger: m.opts.Logger.With("container", c.ID),
	})
	if err != nil {
		d.Close()
		return fmt.Errorf("ship logs of %s: %w", c.ID, err)
	}
	m.shippers[c.ID] = s
	return nil
}

func (m *Shippers) positionPath(id string) string {
	return filepath.Join(m.opts.PositionDir, id+".json")
}

// Stats returns the counters of a container's Shipper.
func (m *Shippers) Stats(id string) (Stats, bool) {
	m.mu.Lock()
	s, ok := m.shippers[id]
	m.mu.Unlock()
	if !ok {
		return Stats{}, false
	}
	return s.Stats(), true
}

func (m *Shippers) take(id string) *Shipper {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.shippers[id]
	delete(m.shippers, id)
	return s
}

// DrainContainer ships what the exited container's log holds, bounded by
// ctx, and stops its Shipper. The position file stays until Remove.
func (m *Shippers) DrainContainer(ctx context.Context, id string) error {
	if s := m.take(id); s != nil {
		return s.Drain(ctx)
	}
	return nil
}

// RemoveContainer stops the container's Shipper, if any, and deletes its
// position file; call it before the container's logs are removed.
func (m *Shippers) RemoveContainer(id string) error {
	var err error
	if s := m.take(id); s != nil {
		err = s.Close()
	}
	if rerr := os.Remove(m.positionPath(id)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, fmt.Errorf("remove log position of %s: %w", id, rerr))
	}
	return err
}

// Close stops every Shipper at once (agent shutdown); positions stay.
func (m *Shippers) Close() error {
	m.mu.Lock()
	all := m.shippers
	m.shippers = map[string]*Shipper{}
	m.mu.Unlock()
	var errs []error
	for _, s := range all {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
