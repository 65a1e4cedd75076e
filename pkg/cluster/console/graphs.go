package console

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/cluster/metrics"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// Statistics reads a metric series' statistic sets: *metrics.Store.
type Statistics interface {
	Statistics(q metrics.Query) ([]metrics.Point, string, error)
}

var _ Statistics = (*metrics.Store)(nil)

// graphWindow is how far back a service's graphs reach, at one point a
// minute (the metrics store keeps minutes for 15 days).
const graphWindow = 3 * time.Hour

// graph is a chart's data in uPlot's shape: the times (unix seconds) and
// one value per series and time, null where a series has no point.
// static/console.js draws it.
type graph struct {
	Times  []int64       `json:"times"`
	Series []graphSeries `json:"series"`
	// Percent fixes the value axis to 0–100.
	Percent bool `json:"percent,omitempty"`
}

type graphSeries struct {
	Label  string     `json:"label"`
	Values []*float64 `json:"values"`
}

// graphLine is one series of a graph: the sum over metrics of value, a
// figure of each minute's statistic set.
type graphLine struct {
	Label   string
	Metrics []metrics.MetricID
	Value   func(metrics.StatSet) float64
}

func average(st metrics.StatSet) float64 { return st.Sum / st.Count }
func sum(st metrics.StatSet) float64     { return st.Sum }

// graphOf reads the lines' last graphWindow, a point a minute.
func (s *Server) graphOf(lines []graphLine, percent bool) (*graph, error) {
	end := s.o.Now().Truncate(time.Minute).Add(time.Minute)
	byLine := make([]map[int64]float64, len(lines))
	times := map[int64]bool{}
	for i, l := range lines {
		byLine[i] = map[int64]float64{}
		for _, id := range l.Metrics {
			pts, _, err := s.o.Metrics.Statistics(metrics.Query{MetricID: id, Start: end.Add(-graphWindow), End: end, Period: 60})
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", id.Namespace, id.MetricName, err)
			}
			for _, p := range pts {
				t := p.Time.Unix()
				byLine[i][t] += l.Value(p.Stat)
				times[t] = true
			}
		}
	}
	g := &graph{Times: slices.Sorted(maps.Keys(times)), Series: []graphSeries{}, Percent: percent}
	if g.Times == nil {
		g.Times = []int64{}
	}
	for i, l := range lines {
		sr := graphSeries{Label: l.Label, Values: make([]*float64, len(g.Times))}
		for j, t := range g.Times {
			if v, ok := byLine[i][t]; ok {
				sr.Values[j] = &v
			}
		}
		g.Series = append(g.Series, sr)
	}
	return g, nil
}

// writeGraph answers a graph as JSON.
func (s *Server) writeGraph(w http.ResponseWriter, what string, lines []graphLine, percent bool) {
	g, err := s.graphOf(lines, percent)
	if err == nil {
		var b []byte
		if b, err = json.Marshal(g); err == nil {
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
			return
		}
	}
	s.internalError(w, fmt.Errorf("%s: %w", what, err))
}

// serviceMetrics answers a service's CPU and memory utilisation (AWS/ECS,
// {ClusterName, ServiceName}, the average a minute) for the page's chart.
func (s *Server) serviceMetrics(w http.ResponseWriter, r *http.Request) {
	if s.o.Metrics == nil {
		http.NotFound(w, r)
		return
	}
	cluster, service := r.PathValue("cluster"), r.PathValue("service")
	dims := []metrics.Dimension{{Name: "ClusterName", Value: cluster}, {Name: "ServiceName", Value: service}}
	line := func(label, name string) graphLine {
		return graphLine{Label: label, Value: average,
			Metrics: []metrics.MetricID{{Namespace: metrics.ECSNamespace, MetricName: name, Dimensions: dims}}}
	}
	s.writeGraph(w, "service metrics "+cluster+"/"+service,
		[]graphLine{line("CPU %", metrics.CPUUtilization), line("Memory %", metrics.MemoryUtilization)}, true)
}

// serviceRequests answers the requests a minute of each of the service's
// target groups: AWS/ApplicationELB RequestCount for {LoadBalancer,
// TargetGroup}, summed over the load balancers using the group (what
// the data planes reported; docs/metrics.md).
func (s *Server) serviceRequests(w http.ResponseWriter, r *http.Request) {
	if s.o.Metrics == nil {
		http.NotFound(w, r)
		return
	}
	cluster, service := r.PathValue("cluster"), r.PathValue("service")
	var lines []graphLine
	err := s.o.Store.View(func(tx store.Tx) error {
		lines = nil
		sv, ok, err := records.Get[records.Service](tx, records.Services, records.ServiceKey(cluster, service))
		if err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("%w: service %s in cluster %s", errNotFound, service, cluster)
			}
			return err
		}
		_, groups, err := serviceTargetGroups(tx, sv)
		for _, tg := range groups {
			l := graphLine{Label: aws.ToString(tg.TargetGroup.TargetGroupName), Value: sum}
			for _, lbArn := range tg.TargetGroup.LoadBalancerArns {
				l.Metrics = append(l.Metrics, metrics.MetricID{Namespace: metrics.ELBNamespace, MetricName: metrics.RequestCount,
					Dimensions: []metrics.Dimension{{Name: "LoadBalancer", Value: metrics.ELBDimension(lbArn)},
						{Name: "TargetGroup", Value: metrics.ELBDimension(aws.ToString(tg.TargetGroup.TargetGroupArn))}}})
			}
			lines = append(lines, l)
		}
		return err
	})
	if s.viewFailed(w, r, "service requests", err) {
		return
	}
	s.writeGraph(w, "service requests "+cluster+"/"+service, lines, false)
}
