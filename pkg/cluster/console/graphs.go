package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/metrics"
)

// Statistics reads a metric series' statistic sets: *metrics.Store.
type Statistics interface {
	Statistics(q metrics.Query) ([]metrics.Point, string, error)
}

var _ Statistics = (*metrics.Store)(nil)

// graphWindow is how far back a service's graphs reach, at one point a
// minute (the metrics store keeps minutes for 15 days).
const graphWindow = 3 * time.Hour

// utilisation is a service's graph data, in uPlot's shape: the times
// (unix seconds) and one value per series and time, null where a series
// has no point.
type utilisation struct {
	Times  []int64    `json:"times"`
	CPU    []*float64 `json:"cpu"`
	Memory []*float64 `json:"memory"`
}

// serviceMetrics answers a service's CPU and memory utilisation (AWS/ECS,
// {ClusterName, ServiceName}, the average a minute) as JSON for the
// page's chart (static/console.js draws it with uPlot).
func (s *Server) serviceMetrics(w http.ResponseWriter, r *http.Request) {
	if s.o.Metrics == nil {
		http.NotFound(w, r)
		return
	}
	cluster, service := r.PathValue("cluster"), r.PathValue("service")
	end := s.o.Now().Truncate(time.Minute).Add(time.Minute)
	dims := []metrics.Dimension{{Name: "ClusterName", Value: cluster}, {Name: "ServiceName", Value: service}}
	byName := map[string]map[int64]float64{}
	times := map[int64]bool{}
	for _, name := range []string{metrics.CPUUtilization, metrics.MemoryUtilization} {
		pts, _, err := s.o.Metrics.Statistics(metrics.Query{MetricID: metrics.MetricID{Namespace: metrics.ECSNamespace, MetricName: name,
			Dimensions: dims}, Start: end.Add(-graphWindow), End: end, Period: 60})
		if err != nil {
			s.internalError(w, fmt.Errorf("service metrics %s/%s %s: %w", cluster, service, name, err))
			return
		}
		byName[name] = map[int64]float64{}
		for _, p := range pts {
			t := p.Time.Unix()
			byName[name][t] = p.Stat.Sum / p.Stat.Count
			times[t] = true
		}
	}
	u := utilisation{Times: []int64{}, CPU: []*float64{}, Memory: []*float64{}}
	for t := range times {
		u.Times = append(u.Times, t)
	}
	slices.Sort(u.Times)
	at := func(name string, t int64) *float64 {
		if v, ok := byName[name][t]; ok {
			return &v
		}
		return nil
	}
	for _, t := range u.Times {
		u.CPU = append(u.CPU, at(metrics.CPUUtilization, t))
		u.Memory = append(u.Memory, at(metrics.MemoryUtilization, t))
	}
	b, err := json.Marshal(u)
	if err != nil {
		s.internalError(w, fmt.Errorf("service metrics: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}
