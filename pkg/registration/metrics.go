package registration

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/berth-dev/berth/pkg/api"
)

// MetricsSource hands out task metrics for a PublishMetricsRequest
// (*stats.Sampler implements it): the statistic sets of the samples taken
// since the last call, and whether the instance runs no task at all.
type MetricsSource interface {
	TaskMetrics() (tasks []*api.TaskMetric, idle bool)
}

// DefaultMetricsInterval is how often metrics are published (the upstream
// agent's DefaultContainerMetricsPublishInterval).
const DefaultMetricsInterval = 20 * time.Second

// metricsFrames pages one publication as the upstream agent does: at most
// api.MaxTasksPerMetricsFrame tasks and api.MaxMetricsFrameBytes per frame,
// every frame with the same messageId, fin on the last. (Berth sends no
// instanceMetrics; the upstream agent puts them on the first frame.) An idle instance sends one frame with idle
// and fin set and no tasks. No frame for a publication with neither tasks
// nor idle.
func metricsFrames(cluster, instance string, tasks []*api.TaskMetric, idle bool, now time.Time) []*api.PublishMetricsRequest {
	var id [16]byte
	_, _ = rand.Read(id[:])
	meta := func(fin bool) *api.MetricsMetadata {
		return &api.MetricsMetadata{Cluster: cluster, ContainerInstance: instance,
			MessageID: hex.EncodeToString(id[:]), Idle: idle, Fin: fin}
	}
	ts := &api.ECSEpochTime{Time: now.UTC()}
	if idle {
		return []*api.PublishMetricsRequest{{Metadata: meta(true), Timestamp: ts}}
	}
	if len(tasks) == 0 {
		return nil
	}
	var frames []*api.PublishMetricsRequest
	cur := &api.PublishMetricsRequest{Metadata: meta(false), Timestamp: ts}
	for _, tm := range tasks {
		if len(cur.TaskMetrics) > 0 {
			next := *cur
			next.TaskMetrics = append(cur.TaskMetrics[:len(cur.TaskMetrics):len(cur.TaskMetrics)], tm)
			if len(next.TaskMetrics) > api.MaxTasksPerMetricsFrame || encodedSize(&next) > api.MaxMetricsFrameBytes {
				frames = append(frames, cur)
				cur = &api.PublishMetricsRequest{Metadata: meta(false), Timestamp: ts}
			}
		}
		cur.TaskMetrics = append(cur.TaskMetrics, tm)
	}
	cur.Metadata.Fin = true
	return append(frames, cur)
}

// encodedSize is the size of r's frame on the wire.
func encodedSize(r *api.PublishMetricsRequest) int {
	b, err := json.Marshal(r)
	if err != nil {
		return 0
	}
	return len(b) + len(`{"type":"PublishMetricsRequest","message":}`)
}
