package logship

import (
	"fmt"
	"io"
	"sort"
	"sync"
)

// Metrics aggregates the counters of all Shippers of an agent, per driver,
// for the agent's /metrics. A nil *Metrics counts nothing.
type Metrics struct {
	// mu guards byDriver.
	mu       sync.Mutex
	byDriver map[string]*DriverCounts
}

// DriverCounts are the lifetime totals of one driver.
type DriverCounts struct {
	Shipped uint64
	Dropped uint64
	Retries uint64
}

// NewMetrics returns empty counters.
func NewMetrics() *Metrics { return &Metrics{byDriver: map[string]*DriverCounts{}} }

func (m *Metrics) add(driver string, shipped, dropped, retries uint64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.byDriver[driver]
	if c == nil {
		c = &DriverCounts{}
		m.byDriver[driver] = c
	}
	c.Shipped += shipped
	c.Dropped += dropped
	c.Retries += retries
}

// Snapshot returns a copy of the counters by driver name.
func (m *Metrics) Snapshot() map[string]DriverCounts {
	out := map[string]DriverCounts{}
	if m == nil {
		return out
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range m.byDriver {
		out[k] = *v
	}
	return out
}

// WritePrometheus writes the counters in the Prometheus text format:
// berth_log_lines_shipped_total, berth_log_lines_dropped_total and
// berth_log_ship_retries_total, labelled by driver.
func (m *Metrics) WritePrometheus(w io.Writer) error {
	snap := m.Snapshot()
	names := make([]string, 0, len(snap))
	for k := range snap {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, c := range []struct {
		name, help string
		get        func(DriverCounts) uint64
	}{
		{"berth_log_lines_shipped_total", "Log lines delivered by log drivers.", func(d DriverCounts) uint64 { return d.Shipped }},
		{"berth_log_lines_dropped_total", "Log lines rotated away or over max-buffer-size before they were shipped.", func(d DriverCounts) uint64 { return d.Dropped }},
		{"berth_log_ship_retries_total", "Failed log delivery attempts (retried).", func(d DriverCounts) uint64 { return d.Retries }},
	} {
		if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name); err != nil {
			return err
		}
		for _, n := range names {
			if _, err := fmt.Fprintf(w, "%s{driver=%q} %d\n", c.name, n, c.get(snap[n])); err != nil {
				return err
			}
		}
	}
	return nil
}
