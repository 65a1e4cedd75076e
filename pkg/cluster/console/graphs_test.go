package console_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/berth-dev/berth/pkg/cluster/metrics"
)

// putUtilisation writes AWS/ECS samples for the service as the TCS
// publications do: the CPU a minute for the last minutes, the memory for
// all but the oldest.
func putUtilisation(t *testing.T, f *fixture, service string, minutes int) time.Time {
	t.Helper()
	ms, err := metrics.New(metrics.Options{Store: f.ep.Store()})
	if err != nil {
		t.Fatal(err)
	}
	dims := []metrics.Dimension{{Name: "ClusterName", Value: "web"}, {Name: "ServiceName", Value: service}}
	first := time.Now().Truncate(time.Minute).Add(-time.Duration(minutes-1) * time.Minute)
	var samples []metrics.Sample
	for i := range minutes {
		at := first.Add(time.Duration(i) * time.Minute)
		samples = append(samples, metrics.Sample{MetricID: metrics.MetricID{Namespace: metrics.ECSNamespace, MetricName: metrics.CPUUtilization,
			Dimensions: dims}, Unit: metrics.UnitPercent, Time: at, Stat: metrics.Value(float64(10 + i))})
		if i > 0 {
			samples = append(samples, metrics.Sample{MetricID: metrics.MetricID{Namespace: metrics.ECSNamespace, MetricName: metrics.MemoryUtilization,
				Dimensions: dims}, Unit: metrics.UnitPercent, Time: at, Stat: metrics.Value(50)})
		}
	}
	if err := ms.Put(samples); err != nil {
		t.Fatalf("put samples: %v", err)
	}
	return first
}

// TestServiceMetrics: the graph's data is the service's AWS/ECS CPU and
// memory utilisation a minute, on one time axis, null where a series has
// no point.
func TestServiceMetrics(t *testing.T) {
	f := newFixture(t)
	f.createService(t, "api", 1)
	first := putUtilisation(t, f, "api", 5)
	c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	var g graphData
	if err := json.Unmarshal([]byte(get(t, c, f.url+"/console/clusters/web/services/api/metrics")), &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Times) != 5 || len(g.Series) != 2 || g.Times[0] != first.Unix() || !g.Percent {
		t.Fatalf("graph data %+v: want 5 minutes from %d of 2 series in percent", g, first.Unix())
	}
	cpu, mem := g.Series[0], g.Series[1]
	if cpu.Label != "CPU %" || mem.Label != "Memory %" || len(cpu.Values) != 5 || len(mem.Values) != 5 {
		t.Fatalf("series %+v: want CPU %% and Memory %%, 5 values each", g.Series)
	}
	if *cpu.Values[0] != 10 || *cpu.Values[4] != 14 || mem.Values[0] != nil || *mem.Values[1] != 50 {
		t.Errorf("cpu %v memory %v: want 10..14 and null, 50...", cpu.Values, mem.Values)
	}
}

// graphData is the JSON a chart draws.
type graphData struct {
	Times  []int64 `json:"times"`
	Series []struct {
		Label  string     `json:"label"`
		Values []*float64 `json:"values"`
	} `json:"series"`
	Percent bool `json:"percent"`
}

// TestBrowserGraph: the service page draws the utilisation with uPlot.
func TestBrowserGraph(t *testing.T) {
	path := requireBrowser(t)
	f := newFixture(t)
	f.createService(t, "api", 1)
	putUtilisation(t, f, "api", 30)
	ctx := browser(t, path)
	signIn(t, ctx, f.url, f.adminID, f.adminKey)
	if err := chromedp.Do(ctx, chromedp.Navigate(f.url+"/console/clusters/web/services/api"),
		chromedp.WaitVisible(chromedp.CSS("#utilisation-chart canvas"))); err != nil {
		t.Fatalf("the service page draws no chart: %v", err)
	}
	legend, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#utilisation-chart .u-legend")))
	if err != nil {
		t.Fatal(err)
	}
	if !containsAll(legend, "CPU %", "Memory %") {
		t.Errorf("chart legend %q: want the CPU and memory series", legend)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
