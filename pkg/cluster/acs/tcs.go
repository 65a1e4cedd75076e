package acs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/gorilla/websocket"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// This file is the endpoint's side of the Telemetry Communication Service
// (shared/protocol/tcs-api-2.json): the second websocket an agent holds,
// at DiscoverPollEndpoint's telemetryEndpoint + "/ws", on which it
// publishes its containers' health and metrics. The health lands on the
// task records (DescribeTasks' healthStatus, the service controller's
// replacement of UNHEALTHY tasks); the metrics (PublishMetricsRequest) go
// to Options.Metrics (the AWS/ECS service utilisation). Instance status
// reports are acknowledged and dropped. Frames may carry a signed header
// block (tcsframe.go).

// maxTelemetryFrame bounds one TCS message: a health report of a few
// hundred tasks.
const maxTelemetryFrame = 1 << 20

// Telemetry returns the handler of TCS sessions:
// GET <telemetryEndpoint>/ws?cluster=..&containerInstance=..
func (s *Server) Telemetry() http.Handler { return http.HandlerFunc(s.serveTelemetry) }

func (s *Server) serveTelemetry(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeErr(w, http.StatusMethodNotAllowed, "BadRequestException", "TCS sessions are opened with GET")
		return
	}
	conn, inst, ok := s.accept(w, r, "TCS", "containerInstance", maxTelemetryFrame)
	if !ok {
		return
	}
	instanceArn := aws.ToString(inst.Instance.ContainerInstanceArn)
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	if !s.trackTelemetry(conn, cancel) {
		return
	}
	defer s.untrackTelemetry(conn)
	s.o.Logger.Info("TCS session open", "instance", instanceArn)
	err := s.telemetrySession(ctx, conn, r.URL, inst)
	s.o.Logger.Info("TCS session closed", "instance", instanceArn, "err", err)
}

// trackTelemetry registers a TCS connection so that Close ends it; false
// when the server is closed.
func (s *Server) trackTelemetry(conn *websocket.Conn, cancel context.CancelFunc) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.telemetry == nil {
		s.telemetry = map[*websocket.Conn]context.CancelFunc{}
	}
	s.telemetry[conn] = cancel
	s.wg.Add(1)
	return true
}

func (s *Server) untrackTelemetry(conn *websocket.Conn) {
	s.mu.Lock()
	delete(s.telemetry, conn)
	s.mu.Unlock()
	s.wg.Done()
}

// telemetrySession reads the agent's frames, records health and answers
// each publication, and sends a heartbeat every HeartbeatInterval, until
// the connection fails or ctx ends.
func (s *Server) telemetrySession(ctx context.Context, conn *websocket.Conn, handshake *url.URL, inst *records.Instance) error {
	// One writer at a time (gorilla): the reader's acks and the heartbeats.
	out := make(chan api.Frame, 4)
	readErr := make(chan error, 1)
	go func() {
		readErr <- s.readTelemetry(ctx, conn, handshake, inst, out)
	}()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	heartbeat := time.NewTicker(s.o.HeartbeatInterval)
	defer heartbeat.Stop()
	for {
		var f api.Frame
		select {
		case err := <-readErr:
			return err
		case <-ctx.Done():
			conn.Close()
			<-readErr
			return ctx.Err()
		case <-heartbeat.C:
			f = &api.HeartbeatMessage{Healthy: true, MessageID: newMessageID()}
		case f = <-out:
		}
		b, err := api.EncodeFrame(f)
		if err != nil {
			return err
		}
		_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
			conn.Close()
			<-readErr
			return fmt.Errorf("send %s: %w", f.FrameType(), err)
		}
	}
}

// readTelemetry handles the agent's frames until the connection fails.
// handshake is the session's URL, which signed frames are signed for.
func (s *Server) readTelemetry(ctx context.Context, conn *websocket.Conn, handshake *url.URL, inst *records.Instance, out chan<- api.Frame) error {
	instanceArn := aws.ToString(inst.Instance.ContainerInstanceArn)
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("read TCS frame: %w", err)
		}
		data, err = s.telemetryFrame(handshake, inst, data)
		if err != nil {
			s.o.Logger.Warn("ignore TCS frame", "instance", instanceArn, "err", err)
			continue
		}
		f, err := api.DecodeFrame(data)
		if err != nil {
			s.o.Logger.Warn("ignore malformed TCS frame", "instance", instanceArn, "err", err)
			continue
		}
		var reply api.Frame
		switch m := f.(type) {
		case *api.PublishHealthRequest:
			n, err := recordHealth(s.o.Store, instanceArn, m.Tasks, time.Now())
			if err != nil {
				s.o.Logger.Error("record container health", "instance", instanceArn, "err", err)
				reply = &api.ErrorFrame{Type: api.TypeServerException, Message: "could not record the health report"}
				break
			}
			if n > 0 {
				s.o.Logger.Debug("container health changed", "instance", instanceArn, "tasks", n)
			}
			reply = &api.AckPublishHealth{Message: "ok"}
		case *api.PublishMetricsRequest:
			reply = s.recordMetrics(instanceArn, m)
		case *api.UnknownFrame:
			switch m.Type {
			case api.TypePublishMetricsRequest:
				// pkg/api decodes it once its frame type is registered;
				// until then it arrives raw.
				var p api.PublishMetricsRequest
				if err := json.Unmarshal(m.Message, &p); err != nil {
					s.o.Logger.Warn("ignore malformed PublishMetricsRequest", "instance", instanceArn, "err", err)
					reply = &api.ErrorFrame{Type: api.TypeBadRequestException, Message: "PublishMetricsRequest: " + err.Error()}
					break
				}
				reply = s.recordMetrics(instanceArn, &p)
			case api.TypePublishInstanceStatusRequest:
				// The upstream agent reports its own health checks
				// (container runtime, ...); Berth keeps none of it.
				reply = &api.AckPublishInstanceStatus{Message: "ok"}
			}
		}
		if reply == nil {
			continue // heartbeats and the like need no answer
		}
		select {
		case out <- reply:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// recordHealth writes the reported container health onto the tasks'
// records and derives each task's healthStatus (UNHEALTHY if a container
// is, HEALTHY if all reported ones are, else UNKNOWN). Only tasks placed on
// instanceArn and not yet STOPPED are touched; unknown tasks and containers
// are skipped (a report may race a task's deletion). It returns how many
// tasks changed.
func recordHealth(st store.Store, instanceArn string, tasks []*api.TaskHealth, now time.Time) (int, error) {
	changed := 0
	err := st.Update(func(tx store.Tx) error {
		changed = 0
		for _, th := range tasks {
			if th == nil {
				continue
			}
			t, err := loadTask(tx, th.TaskArn)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("read %w", err)
			}
			if aws.ToString(t.Task.ContainerInstanceArn) != instanceArn || aws.ToString(t.Task.LastStatus) == "STOPPED" {
				continue
			}
			if !applyHealth(&t.Task, th.Containers) {
				continue
			}
			if err := records.Put(tx, t); err != nil {
				return fmt.Errorf("write task %s: %w", th.TaskArn, err)
			}
			changed++
		}
		return nil
	})
	return changed, err
}

// applyHealth sets the reported statuses on t's containers and t's own
// healthStatus, derived from the report (which covers every container with
// a health check): UNHEALTHY if one is, HEALTHY if all are, else UNKNOWN.
// It reports whether anything changed.
func applyHealth(t *types.Task, report []*api.ContainerHealth) bool {
	changed := false
	task, all := types.HealthStatusUnknown, 0
	healthy := 0
	for _, ch := range report {
		if ch == nil {
			continue
		}
		status := types.HealthStatus(ch.HealthStatus)
		switch status {
		case types.HealthStatusHealthy, types.HealthStatusUnhealthy, types.HealthStatusUnknown:
		default:
			continue
		}
		all++
		switch status {
		case types.HealthStatusUnhealthy:
			task = types.HealthStatusUnhealthy
		case types.HealthStatusHealthy:
			healthy++
		}
		for i := range t.Containers {
			c := &t.Containers[i]
			if aws.ToString(c.Name) == ch.ContainerName && c.HealthStatus != status {
				c.HealthStatus = status
				changed = true
			}
		}
	}
	if task != types.HealthStatusUnhealthy && all > 0 && healthy == all {
		task = types.HealthStatusHealthy
	}
	if t.HealthStatus != task {
		t.HealthStatus = task
		changed = true
	}
	return changed
}

// recordMetrics hands one PublishMetricsRequest to the metrics recorder
// and returns the answer: AckPublishMetric, or a ServerException when it
// could not be kept (the agent publishes again next interval).
func (s *Server) recordMetrics(instanceArn string, p *api.PublishMetricsRequest) api.Frame {
	if s.o.Metrics == nil {
		return &api.AckPublishMetric{Message: "ok"}
	}
	n, err := s.o.Metrics.RecordPublish(instanceArn, p)
	if err != nil {
		s.o.Logger.Error("record container metrics", "instance", instanceArn, "err", err)
		return &api.ErrorFrame{Type: api.TypeServerException, Message: "could not record the metrics"}
	}
	s.o.Logger.Debug("container metrics recorded", "instance", instanceArn, "tasks", n)
	return &api.AckPublishMetric{Message: "ok"}
}
