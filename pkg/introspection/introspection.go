// Package introspection serves the agent's local HTTP API: ECS's
// introspection endpoints (/v1/metadata, /v1/tasks with ?taskarn= and
// ?dockerid=) in ECS's JSON shapes, container log streaming
// (/v1/tasks/{id}/containers/{name}/logs), what the agent failed to remove
// and keeps retrying (/v1/cleanup), /healthz, and /metrics in the
// Prometheus text format.
//
// It reads the engine's task snapshots and the json-file logs of pkg/logs;
// it changes nothing. pkg/agent builds it and serves it on
// BERTH_INTROSPECTION_ADDRESS.
package introspection

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/logs"
)

// Tasks is what the API reads from the engine.
type Tasks interface {
	Tasks() []engine.TaskState
	Metrics() engine.Metrics
}

var _ Tasks = (*engine.Engine)(nil)

// Metadata is the body of /v1/metadata, in ECS's shape.
type Metadata struct {
	Cluster              string `json:"Cluster"`
	ContainerInstanceArn string `json:"ContainerInstanceArn,omitempty"`
	Version              string `json:"Version"`
}

// Options configures the handler. Tasks and Metadata are required.
type Options struct {
	Tasks    Tasks
	Metadata func() Metadata
	// Pending counts state changes not yet sent (the outbox); optional.
	Pending func() (int, error)
	Logger  *slog.Logger
	// LogPollInterval is how often a follower looks for new log lines; 0
	// means pkg/logs' default.
	LogPollInterval time.Duration
	// ExtraMetrics are appended to /metrics in the Prometheus text format
	// (the log shippers' counters); optional.
	ExtraMetrics []PrometheusWriter
	// Cleanup lists what the agent failed to remove and retries in the
	// background (task networks); optional.
	Cleanup func() []PendingCleanup
}

// PendingCleanup is one thing the agent failed to remove and retries, as
// /v1/cleanup lists it.
type PendingCleanup struct {
	// Resource names it, e.g. "sandbox berth-1a2b3c4d-0123456789abcdef".
	Resource string `json:"Resource"`
	// Task is the ID of the task it belonged to, if any.
	Task string `json:"Task,omitempty"`
	// Error is the last attempt's error.
	Error       string    `json:"Error"`
	Attempts    int       `json:"Attempts"`
	Since       time.Time `json:"Since"`
	NextAttempt time.Time `json:"NextAttempt"`
}

// CleanupResponse is the body of /v1/cleanup.
type CleanupResponse struct {
	Pending []PendingCleanup `json:"Pending"`
}

// PrometheusWriter writes metric families in the Prometheus text format;
// *logship.Metrics is one.
type PrometheusWriter interface {
	WritePrometheus(w io.Writer) error
}

// TaskResponse is one task in ECS's /v1/tasks shape.
type TaskResponse struct {
	Arn           string              `json:"Arn"`
	DesiredStatus string              `json:"DesiredStatus"`
	KnownStatus   string              `json:"KnownStatus"`
	Family        string              `json:"Family"`
	Version       string              `json:"Version"`
	Containers    []ContainerResponse `json:"Containers"`
}

// ContainerResponse is one container in ECS's /v1/tasks shape.
type ContainerResponse struct {
	DockerID   string            `json:"DockerId"`
	DockerName string            `json:"DockerName"`
	Name       string            `json:"Name"`
	Ports      []PortResponse    `json:"Ports,omitempty"`
	Networks   []NetworkResponse `json:"Networks,omitempty"`
	Volumes    []VolumeResponse  `json:"Volumes,omitempty"`
}

// PortResponse is a port binding in ECS's shape.
type PortResponse struct {
	ContainerPort uint16 `json:"ContainerPort"`
	Protocol      string `json:"Protocol"`
	HostPort      uint16 `json:"HostPort,omitempty"`
}

// NetworkResponse is a task network in ECS's shape (awsvpc tasks).
type NetworkResponse struct {
	NetworkMode   string   `json:"NetworkMode"`
	IPv4Addresses []string `json:"IPv4Addresses"`
}

// VolumeResponse is a mount in ECS's shape.
type VolumeResponse struct {
	DockerName  string `json:"DockerName,omitempty"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
}

// TasksResponse is the body of /v1/tasks.
type TasksResponse struct {
	Tasks []TaskResponse `json:"Tasks"`
}

type server struct {
	o   Options
	mux *http.ServeMux
}

// New returns the API's handler.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &server{o: o, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /v1/metadata", s.metadata)
	s.mux.HandleFunc("GET /v1/tasks", s.tasks)
	s.mux.HandleFunc("GET /v1/tasks/{id}/containers/{name}/logs", s.logs)
	s.mux.HandleFunc("GET /v1/cleanup", s.cleanup)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /metrics", s.metrics)
	return s.mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *server) metadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.o.Metadata())
}

func (s *server) cleanup(w http.ResponseWriter, r *http.Request) {
	resp := CleanupResponse{Pending: []PendingCleanup{}}
	if s.o.Cleanup != nil {
		resp.Pending = append(resp.Pending, s.o.Cleanup()...)
	}
	writeJSON(w, http.StatusOK, resp)
}

func toResponse(st engine.TaskState) TaskResponse {
	tr := TaskResponse{
		Arn:           st.Def.ARN,
		DesiredStatus: st.DesiredStatus.String(),
		KnownStatus:   st.KnownStatus.Reported(),
		Family:        st.Def.Family,
		Version:       st.Def.Version,
		Containers:    []ContainerResponse{},
	}
	for _, c := range st.Containers {
		id := c.RuntimeID
		cr := ContainerResponse{DockerID: id, DockerName: id, Name: c.Name}
		for _, b := range c.Bindings {
			cr.Ports = append(cr.Ports, PortResponse{ContainerPort: b.ContainerPort, Protocol: b.Protocol, HostPort: b.HostPort})
		}
		if st.Def.NetworkMode == "awsvpc" && st.IPv4 != "" {
			cr.Networks = []NetworkResponse{{NetworkMode: "awsvpc", IPv4Addresses: []string{st.IPv4}}}
		}
		for i := range st.Def.Containers {
			d := &st.Def.Containers[i]
			if d.Name != c.Name {
				continue
			}
			for _, m := range d.Mounts {
				cr.Volumes = append(cr.Volumes, VolumeResponse{DockerName: m.Volume, Source: st.VolumePaths[m.Volume], Destination: m.ContainerPath})
			}
		}
		tr.Containers = append(tr.Containers, cr)
	}
	return tr
}

func (s *server) sortedTasks() []engine.TaskState {
	tasks := s.o.Tasks.Tasks()
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].Def.ARN < tasks[j].Def.ARN })
	return tasks
}

// query parses the request's query. r.URL.Query drops what it cannot
// parse (a pair with a ';', a bad escape), which would turn
// ?tail=1;x into a request for the whole log: such a query is refused.
// false means the request was answered.
func query(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "query: " + err.Error()})
		return nil, false
	}
	return q, true
}

func (s *server) tasks(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r)
	if !ok {
		return
	}
	arn, dockerID := q.Get("taskarn"), q.Get("dockerid")
	switch {
	case arn != "" && dockerID != "":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "request can contain either taskarn or dockerid, not both"})
	case arn != "":
		for _, st := range s.sortedTasks() {
			if st.Def.ARN == arn {
				writeJSON(w, http.StatusOK, toResponse(st))
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "task not found: " + arn})
	case dockerID != "":
		st, ok := s.byDockerID(dockerID)
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no unique task for docker id " + dockerID})
			return
		}
		writeJSON(w, http.StatusOK, toResponse(st))
	default:
		resp := TasksResponse{Tasks: []TaskResponse{}}
		for _, st := range s.sortedTasks() {
			resp.Tasks = append(resp.Tasks, toResponse(st))
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

// byDockerID finds the task of a container by its full ID or, as ECS
// allows, a unique prefix of it.
func (s *server) byDockerID(id string) (engine.TaskState, bool) {
	var found []engine.TaskState
	for _, st := range s.sortedTasks() {
		for _, c := range st.Containers {
			if c.RuntimeID == id {
				return st, true
			}
			if c.RuntimeID != "" && strings.HasPrefix(c.RuntimeID, id) {
				found = append(found, st)
				break
			}
		}
	}
	if len(found) == 1 {
		return found[0], true
	}
	return engine.TaskState{}, false
}

// logs streams one container's log as plain text (Docker's `logs`
// output): ?tail=N keeps the last N lines, ?since= (RFC 3339 or Unix
// seconds) drops older ones, ?follow=true keeps streaming new lines until
// the client goes away.
func (s *server) logs(w http.ResponseWriter, r *http.Request) {
	id, name := r.PathValue("id"), r.PathValue("name")
	path, _ := s.container(id, name)
	if path == "" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no logs for container %s of task %s", name, id)})
		return
	}
	q, ok := query(w, r)
	if !ok {
		return
	}
	opts := logs.ReadOptions{PollInterval: s.o.LogPollInterval}
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "tail must be a non-negative integer"})
			return
		}
		opts.Tail = n
	}
	if v := q.Get("since"); v != "" {
		t, err := parseSince(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		opts.Since = t
	}
	if v := q.Get("follow"); v != "" {
		f, err := strconv.ParseBool(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "follow must be true or false"})
			return
		}
		opts.Follow = f
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	ctx := r.Context()
	if opts.Follow {
		// Like `docker logs -f`, following ends once the container has
		// stopped and its last lines had time to arrive.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.cancelWhenStopped(ctx, cancel, id, name)
		}()
		defer wg.Wait()
	}
	err := logs.Read(ctx, path, opts, func(e logs.Entry) error {
		if _, err := w.Write([]byte(e.Log)); err != nil {
			return err
		}
		if opts.Follow && flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		s.o.Logger.Warn("stream container logs", "task", id, "container", name, "err", err)
	}
}

// container returns a container's log path and whether it has stopped.
func (s *server) container(taskID, name string) (logPath string, stopped bool) {
	for _, st := range s.o.Tasks.Tasks() {
		if engine.TaskID(st.Def.ARN) != taskID && st.Def.ARN != taskID {
			continue
		}
		for _, c := range st.Containers {
			if c.Name == name {
				return c.LogPath, c.KnownStatus == engine.ContainerStopped
			}
		}
	}
	return "", true
}

// cancelWhenStopped cancels a follower once the container has stopped (or
// is gone), after a grace period for its last lines.
func (s *server) cancelWhenStopped(ctx context.Context, cancel context.CancelFunc, taskID, name string) {
	t := time.NewTicker(followCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, stopped := s.container(taskID, name); stopped {
			select {
			case <-ctx.Done():
			case <-time.After(followDrain):
				cancel()
			}
			return
		}
	}
}

// How often a follower checks its container, and how long it keeps reading
// after the container stopped.
const (
	followCheckInterval = 500 * time.Millisecond
	followDrain         = time.Second
)

func parseSince(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("since %q is neither RFC 3339 nor Unix seconds", v)
}

// metrics writes the Prometheus text exposition format (version 0.0.4).
// The handful of series does not justify the client library's dependencies.
func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	counts := map[string]int{"PENDING": 0, "RUNNING": 0, "STOPPED": 0}
	// Operations waiting to be tried again after a failure.
	var retrying, cleanupsRetrying int
	for _, st := range s.o.Tasks.Tasks() {
		counts[st.KnownStatus.Reported()]++
		for _, c := range st.Containers {
			if c.Retries > 0 {
				retrying++
			}
		}
		if st.CleanupRetries > 0 {
			cleanupsRetrying++
		}
	}
	m := s.o.Tasks.Metrics()
	var b strings.Builder
	metric := func(name, typ, help string, samples ...string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, sm := range samples {
			fmt.Fprintf(&b, "%s%s\n", name, sm)
		}
	}
	metric("berth_tasks", "gauge", "Tasks known to the agent, by known status.",
		fmt.Sprintf(`{status="PENDING"} %d`, counts["PENDING"]),
		fmt.Sprintf(`{status="RUNNING"} %d`, counts["RUNNING"]),
		fmt.Sprintf(`{status="STOPPED"} %d`, counts["STOPPED"]))
	metric("berth_image_pulls_total", "counter", "Image pulls started.", fmt.Sprintf(" %d", m.Pulls))
	metric("berth_image_pull_failures_total", "counter", "Image pulls that failed.", fmt.Sprintf(" %d", m.PullFailures))
	metric("berth_container_starts_total", "counter", "Containers started.", fmt.Sprintf(" %d", m.Starts))
	metric("berth_container_failures_total", "counter", "Containers that could not be pulled, created or started.", fmt.Sprintf(" %d", m.Failures))
	metric("berth_retries_total", "counter", "Operations retried with backoff: pulls, creates and starts that could not reach containerd, container stops that failed, task clean-ups that failed.",
		fmt.Sprintf(`{op="runtime"} %d`, m.RuntimeRetries),
		fmt.Sprintf(`{op="stop"} %d`, m.StopRetries),
		fmt.Sprintf(`{op="cleanup"} %d`, m.CleanupRetries))
	metric("berth_retries_pending", "gauge", "Operations waiting to be retried: container operations (pull, create, start, stop) and task clean-ups.",
		fmt.Sprintf(`{op="container"} %d`, retrying),
		fmt.Sprintf(`{op="cleanup"} %d`, cleanupsRetrying))
	if s.o.Pending != nil {
		if n, err := s.o.Pending(); err == nil {
			metric("berth_state_changes_pending", "gauge", "State changes in the outbox, not yet sent.", fmt.Sprintf(" %d", n))
		} else {
			s.o.Logger.Warn("count pending state changes", "err", err)
		}
	}
	for _, x := range s.o.ExtraMetrics {
		if err := x.WritePrometheus(&b); err != nil {
			s.o.Logger.Warn("write metrics", "err", err)
		}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}
