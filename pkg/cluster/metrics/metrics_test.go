package metrics

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/scheduler"
	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
)

// clock is a settable clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func openStore(t *testing.T) (*Store, store.Store, *clock) {
	t.Helper()
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "cluster.db"),
		boltstore.Options{Buckets: append(records.Buckets(), Buckets()...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{t: time.Date(2025, 3, 1, 12, 0, 30, 0, time.UTC)}
	s, err := New(Options{Store: db, Now: c.now, MaxSeries: 5})
	if err != nil {
		t.Fatal(err)
	}
	return s, db, c
}

func TestStatisticsOverPeriods(t *testing.T) {
	s, _, c := openStore(t)
	id := MetricID{Namespace: "Lab", MetricName: "Queue", Dimensions: []Dimension{{"b", "2"}, {"a", "1"}}}
	base := c.t.Truncate(time.Hour)
	var samples []Sample
	// Minutes 0..9 get the values 0..9, twice each (5 and 10 s in).
	for m := range 10 {
		for _, sec := range []int{5, 10} {
			samples = append(samples, Sample{MetricID: id, Unit: "Count", Time: base.Add(time.Duration(m)*time.Minute + time.Duration(sec)*time.Second), Stat: Value(float64(m))})
		}
	}
	if err := s.Put(samples); err != nil {
		t.Fatal(err)
	}
	// The dimensions in another order name the same series.
	q := Query{MetricID: MetricID{Namespace: "Lab", MetricName: "Queue", Dimensions: []Dimension{{"a", "1"}, {"b", "2"}}},
		Start: base, End: base.Add(10 * time.Minute), Period: 300}
	pts, unit, err := s.Statistics(q)
	if err != nil {
		t.Fatal(err)
	}
	want := []Point{{base, StatSet{Count: 10, Sum: 2 * (0 + 1 + 2 + 3 + 4), Min: 0, Max: 4}},
		{base.Add(5 * time.Minute), StatSet{Count: 10, Sum: 2 * (5 + 6 + 7 + 8 + 9), Min: 5, Max: 9}}}
	if unit != "Count" || len(pts) != 2 || pts[0] != want[0] || pts[1] != want[1] {
		t.Fatalf("Statistics: %v %q, want %v Count", pts, unit, want)
	}
	// Across an hour boundary: blocks are per hour.
	if err := s.Put([]Sample{{MetricID: id, Unit: "Count", Time: base.Add(-time.Second), Stat: Value(100)}}); err != nil {
		t.Fatal(err)
	}
	q.Start, q.Period = base.Add(-time.Minute), 120
	pts, _, err = s.Statistics(q)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 6 || pts[0].Stat != (StatSet{Count: 3, Sum: 100, Min: 0, Max: 100}) {
		t.Errorf("across the hour: %v", pts)
	}
	if _, _, err := s.Statistics(Query{MetricID: id, Start: base, End: base.Add(time.Hour), Period: 90}); err == nil {
		t.Error("a period of 90 s was served")
	}
}

func TestSeriesLimitAndRetention(t *testing.T) {
	s, db, c := openStore(t)
	put := func(name string, at time.Time) error {
		return s.Put([]Sample{{MetricID: MetricID{Namespace: "Lab", MetricName: name}, Time: at, Stat: Value(1)}})
	}
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		if err := put(n, c.t); err != nil {
			t.Fatal(err)
		}
	}
	if err := put("f", c.t); err == nil {
		t.Fatal("a sixth series was kept with MaxSeries 5")
	}
	if err := put("a", c.t.Add(time.Minute)); err != nil {
		t.Fatalf("a known series refused at the limit: %v", err)
	}
	// 16 days on: the minute blocks are gone, the hours stay.
	c.t = c.t.Add(16 * 24 * time.Hour)
	n, err := s.Prune()
	if err != nil || n != 5 {
		t.Fatalf("Prune: %d, %v; want the 5 minute blocks", n, err)
	}
	snap, err := store.Snapshot(db, Buckets())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap[PointsBucket]) != 5 || len(snap[SeriesBucket]) != 5 {
		t.Errorf("after pruning: %d blocks, %d series; want the 5 hour blocks and 5 series", len(snap[PointsBucket]), len(snap[SeriesBucket]))
	}
	pts, _, err := s.Statistics(Query{MetricID: MetricID{Namespace: "Lab", MetricName: "a"}, Start: c.t.Add(-17 * 24 * time.Hour),
		End: c.t, Period: 3600})
	if err != nil || len(pts) != 1 || pts[0].Stat.Count != 2 {
		t.Errorf("hour tier after pruning: %v, %v", pts, err)
	}
	c.t = c.t.Add(HourRetention)
	if _, err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	if snap, _ = store.Snapshot(db, Buckets()); len(snap[PointsBucket])+len(snap[SeriesBucket]) != 0 {
		t.Errorf("after 455 days: %v", snap)
	}
}

func TestRecordPublish(t *testing.T) {
	s, db, c := openStore(t)
	const inst = "arn:aws:ecs:us-test-1:123456789012:container-instance/lab/i1"
	task := func(id, group, instance, status string, cpu, mem int64) *records.Task {
		return &records.Task{Cluster: "lab", Demand: scheduler.Demand{CPU: cpu, Memory: mem}, Task: types.Task{
			TaskArn: aws.String("arn:aws:ecs:us-test-1:123456789012:task/lab/" + id), Group: aws.String(group),
			ContainerInstanceArn: aws.String(instance), LastStatus: aws.String(status)}}
	}
	tasks := []*records.Task{
		task("t1", "service:web", inst, "RUNNING", 512, 256),
		task("t2", "service:web", inst, "RUNNING", 512, 256),
		task("t3", "family:web", inst, "RUNNING", 512, 256),      // not a service's
		task("t4", "service:web", inst+"x", "RUNNING", 512, 256), // another instance's
		task("t5", "service:web", inst, "STOPPED", 512, 256),     // stopped
		task("t6", "service:idle", inst, "RUNNING", 0, 128),      // no CPU reservation
	}
	instance := &records.Instance{Cluster: "lab", Instance: types.ContainerInstance{ContainerInstanceArn: aws.String(inst),
		Status: aws.String("ACTIVE"), RegisteredResources: []types.Resource{{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: 2048}}}}
	if err := db.Update(func(tx store.Tx) error {
		if err := records.Put(tx, instance); err != nil {
			return err
		}
		for _, tk := range tasks {
			if err := records.Put(tx, tk); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	set := func(sum float64, n int64) *api.CWStatsSet {
		lo, hi := sum/float64(n)-1, sum/float64(n)+1
		return &api.CWStatsSet{Sum: &sum, SampleCount: &n, Min: &lo, Max: &hi}
	}
	// cpuPct is of the whole instance (2 CPUs, 2048 units), as the agent
	// reports it.
	tm := func(id string, cpuPct, memMiB float64) *api.TaskMetric {
		return &api.TaskMetric{TaskArn: "arn:aws:ecs:us-test-1:123456789012:task/lab/" + id, ContainerMetrics: []*api.ContainerMetric{
			{ContainerName: "a", CPUStatsSet: set(cpuPct*2, 2), MemoryStatsSet: set(memMiB*2, 2)},
			{ContainerName: "b", CPUStatsSet: set(0, 2), MemoryStatsSet: set(0, 2)},
		}}
	}
	// t1 uses a quarter CPU (12.5 % of the instance: 256 of its 512
	// units, 50 %) and 64 MiB (25 %); t2 a whole CPU (50 %: 200 %) and
	// 128 MiB (50 %); t6 a tenth of a CPU (5 %; no reservation: 10 %).
	p := &api.PublishMetricsRequest{TaskMetrics: []*api.TaskMetric{tm("t1", 12.5, 64), tm("t2", 50, 128), tm("t3", 50, 50), tm("t4", 50, 50),
		tm("t5", 50, 50), tm("t6", 5, 32), tm("unknown", 50, 50), {TaskArn: "not an arn"}}}
	n, err := s.RecordPublish(inst, p)
	if err != nil || n != 3 {
		t.Fatalf("RecordPublish: %d tasks, %v; want 3", n, err)
	}
	stat := func(service, metric string) StatSet {
		t.Helper()
		pts, unit, err := s.Statistics(Query{MetricID: MetricID{Namespace: ECSNamespace, MetricName: metric,
			Dimensions: []Dimension{{"ClusterName", "lab"}, {"ServiceName", service}}}, Start: c.t.Add(-time.Minute), End: c.t.Add(time.Minute), Period: 120})
		if err != nil || len(pts) != 1 || unit != UnitPercent {
			t.Fatalf("%s %s: %v %q %v", service, metric, pts, unit, err)
		}
		return pts[0].Stat
	}
	// Minimum and maximum add the containers' (each avg -+ 1 % of the
	// instance: 20.48 units, 4 % of 512).
	if st := stat("web", CPUUtilization); st.Count != 2 || st.Sum/st.Count != 125 || st.Min != 42 || st.Max != 208 {
		t.Errorf("web CPUUtilization: %+v, want the average of 50 and 200, min 42, max 208", st)
	}
	if st := stat("web", MemoryUtilization); st.Count != 2 || st.Sum/st.Count != 37.5 {
		t.Errorf("web MemoryUtilization: %+v, want the average of 25 and 50", st)
	}
	if st := stat("idle", CPUUtilization); st.Sum != 10 {
		t.Errorf("idle CPUUtilization: %+v, want 10 (of one CPU)", st)
	}
}

func TestSampleReservations(t *testing.T) {
	s, db, c := openStore(t)
	inst := func(id, status string, cpu, mem, usedCPU, usedMem int64) *records.Instance {
		return &records.Instance{Cluster: "lab", UsedCPU: usedCPU, UsedMemory: usedMem, Instance: types.ContainerInstance{
			ContainerInstanceArn: aws.String("arn:aws:ecs:us-test-1:123456789012:container-instance/lab/" + id),
			Status:               aws.String(status),
			RegisteredResources: []types.Resource{{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: int32(cpu)},
				{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: int32(mem)}}}}
	}
	if err := db.Update(func(tx store.Tx) error {
		for _, in := range []*records.Instance{inst("a", "ACTIVE", 2048, 4096, 1024, 1024), inst("b", "ACTIVE", 2048, 4096, 0, 0),
			inst("c", "INACTIVE", 2048, 4096, 2048, 4096)} {
			if err := records.Put(tx, in); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.SampleReservations(); err != nil {
		t.Fatal(err)
	}
	for metric, want := range map[string]float64{CPUReservation: 25, MemoryReservation: 12.5} {
		pts, _, err := s.Statistics(Query{MetricID: MetricID{Namespace: ECSNamespace, MetricName: metric,
			Dimensions: []Dimension{{"ClusterName", "lab"}}}, Start: c.t.Add(-time.Minute), End: c.t.Add(time.Minute), Period: 120})
		if err != nil || len(pts) != 1 || pts[0].Stat.Sum != want {
			t.Errorf("%s: %v %v, want %v", metric, pts, err, want)
		}
	}
}

func TestWritePrometheus(t *testing.T) {
	s, _, c := openStore(t)
	svc := func(name, service string, v float64, at time.Time) Sample {
		return Sample{MetricID: MetricID{Namespace: ECSNamespace, MetricName: name,
			Dimensions: []Dimension{{"ServiceName", service}, {"ClusterName", "lab"}}}, Unit: UnitPercent, Time: at, Stat: StatSet{Count: 2, Sum: 2 * v, Min: v, Max: v}}
	}
	if err := s.Put([]Sample{
		svc(CPUUtilization, `web "blue"`, 40, c.t),
		svc(MemoryUtilization, `web "blue"`, 12.5, c.t),
		svc(CPUUtilization, "old", 99, c.t.Add(-10*time.Minute)), // stale: left out
		{MetricID: MetricID{Namespace: ECSNamespace, MetricName: CPUReservation, Dimensions: []Dimension{{"ClusterName", "lab"}}}, Time: c.t, Stat: Value(25)},
	}); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := s.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# TYPE berth_ecs_service_cpu_utilization_percent gauge\n",
		`berth_ecs_service_cpu_utilization_percent{cluster="lab",service="web \"blue\""} 40` + "\n",
		`berth_ecs_service_memory_utilization_percent{cluster="lab",service="web \"blue\""} 12.5` + "\n",
		`berth_ecs_cluster_cpu_reservation_percent{cluster="lab"} 25` + "\n",
		"# TYPE berth_ecs_cluster_memory_reservation_percent gauge\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "old") {
		t.Errorf("a series without data for 10 minutes is exposed:\n%s", out)
	}
}
