package metrics

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// PrometheusWindow is how old the newest minute of a series may be for
// /metrics to expose it: a service whose agents stopped publishing drops
// out instead of showing a stale figure.
const PrometheusWindow = 5 * time.Minute

// promMetric is how one AWS/ECS metric is exposed to Prometheus.
type promMetric struct {
	name, help string
	labels     []string // the dimensions, in order, as labels
}

var promMetrics = map[string]promMetric{
	CPUUtilization: {"berth_ecs_service_cpu_utilization_percent",
		"CPU used by the service's running tasks over their CPU reservation (AWS/ECS CPUUtilization, the newest minute's average).",
		[]string{"ClusterName", "ServiceName"}},
	MemoryUtilization: {"berth_ecs_service_memory_utilization_percent",
		"Memory used by the service's running tasks over their memory reservation (AWS/ECS MemoryUtilization, the newest minute's average).",
		[]string{"ClusterName", "ServiceName"}},
	CPUReservation: {"berth_ecs_cluster_cpu_reservation_percent",
		"CPU units reserved by the cluster's tasks over its instances' registered units (AWS/ECS CPUReservation).",
		[]string{"ClusterName"}},
	MemoryReservation: {"berth_ecs_cluster_memory_reservation_percent",
		"Memory reserved by the cluster's tasks over its instances' registered memory (AWS/ECS MemoryReservation).",
		[]string{"ClusterName"}},
}

var promLabels = map[string]string{"ClusterName": "cluster", "ServiceName": "service"}

// WritePrometheus writes the AWS/ECS figures of the last PrometheusWindow
// in the Prometheus text exposition format (version 0.0.4): per service
// its CPU and memory utilisation, per cluster its reservations, each the
// newest minute's average. Only the dimension sets ECS publishes are
// written.
func (s *Store) WritePrometheus(w io.Writer) error {
	latest, err := s.Latest(ECSNamespace, PrometheusWindow)
	if err != nil {
		return err
	}
	byMetric := map[string][]string{}
	for _, sm := range latest {
		pm, ok := promMetrics[sm.MetricName]
		if !ok || len(sm.Dimensions) != len(pm.labels) {
			continue
		}
		var labels []string
		for i, d := range sm.normalized().Dimensions {
			if d.Name != pm.labels[i] {
				labels = nil
				break
			}
			labels = append(labels, promLabels[d.Name]+`="`+promEscaper.Replace(d.Value)+`"`)
		}
		if labels == nil {
			continue
		}
		byMetric[sm.MetricName] = append(byMetric[sm.MetricName],
			fmt.Sprintf("%s{%s} %g", pm.name, strings.Join(labels, ","), sm.Stat.Sum/sm.Stat.Count))
	}
	var b strings.Builder
	for _, name := range []string{CPUUtilization, MemoryUtilization, CPUReservation, MemoryReservation} {
		pm := promMetrics[name]
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", pm.name, pm.help, pm.name)
		lines := byMetric[name]
		slices.Sort(lines)
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// promEscaper escapes a label value as the text format wants.
var promEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
