package registration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/api"
)

// TestMetricsFrames: a publication is paged as the upstream agent pages
// it: at most ten tasks and 1 MiB a frame, one messageId, fin on the last
// frame only; an idle instance sends one idle, fin frame; nothing to say
// sends nothing.
func TestMetricsFrames(t *testing.T) {
	now := time.Unix(1750000000, 0)
	tasks := func(n, nameLen int) []*api.TaskMetric {
		var out []*api.TaskMetric
		for i := range n {
			out = append(out, &api.TaskMetric{TaskArn: fmt.Sprintf("task-%d", i),
				ContainerMetrics: []*api.ContainerMetric{{ContainerName: strings.Repeat("c", nameLen)}}})
		}
		return out
	}
	cases := []struct {
		name  string
		tasks []*api.TaskMetric
		idle  bool
		pages []int // tasks per frame
	}{
		{"idle", nil, true, []int{0}},
		{"nothing new", nil, false, nil},
		{"one task", tasks(1, 3), false, []int{1}},
		{"ten tasks", tasks(10, 3), false, []int{10}},
		{"twenty-five tasks", tasks(25, 3), false, []int{10, 10, 5}},
		// 300 KiB per task: three fit under 1 MiB.
		{"large tasks", tasks(7, 300<<10), false, []int{3, 3, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			frames := metricsFrames("cl", "ci", c.tasks, c.idle, now)
			if len(frames) != len(c.pages) {
				t.Fatalf("%d frames, want %d", len(frames), len(c.pages))
			}
			seen := 0
			for i, f := range frames {
				m := f.Metadata
				if len(f.TaskMetrics) != c.pages[i] || m.Fin != (i == len(frames)-1) || m.Idle != c.idle ||
					m.MessageID != frames[0].Metadata.MessageID || m.Cluster != "cl" || m.ContainerInstance != "ci" || !f.Timestamp.Equal(now) {
					t.Errorf("frame %d: %d tasks, metadata %+v, want %d tasks, fin %v", i, len(f.TaskMetrics), m, c.pages[i], i == len(frames)-1)
				}
				for _, tm := range f.TaskMetrics {
					if tm.TaskArn != fmt.Sprintf("task-%d", seen) {
						t.Errorf("frame %d holds %s, want task-%d (order kept)", i, tm.TaskArn, seen)
					}
					seen++
				}
				b, _ := api.EncodeFrame(f)
				if len(b) > api.MaxMetricsFrameBytes {
					t.Errorf("frame %d is %d bytes, over the limit", i, len(b))
				}
				var env struct{ Message map[string]json.RawMessage }
				if err := json.Unmarshal(b, &env); err != nil || string(env.Message["metadata"]) == "" {
					t.Errorf("frame %d does not encode: %v", i, err)
				}
			}
			if seen != len(c.tasks) {
				t.Errorf("%d tasks sent, want %d", seen, len(c.tasks))
			}
		})
	}
}
