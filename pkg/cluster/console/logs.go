package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// logLines is how many of a container's last log lines the task page
// shows.
const logLines = 200

// logTarget is where a container's awslogs driver sends its lines: the
// endpoint's CloudWatch Logs-compatible store.
type logTarget struct{ Group, Stream string }

// awslogsTarget returns the log group and stream of a container of task
// id, as the agent's awslogs driver names them (pkg/logship.StreamName:
// awslogs-stream, else <awslogs-stream-prefix>/<container>/<task id>);
// ok is false for another driver, or without a group or a stream the
// console can name (the container id of a driver without prefix is not
// in the task record).
func awslogsTarget(cd *types.ContainerDefinition, taskID string) (logTarget, bool) {
	lc := cd.LogConfiguration
	if lc == nil || lc.LogDriver != types.LogDriverAwslogs || lc.Options["awslogs-group"] == "" {
		return logTarget{}, false
	}
	t := logTarget{Group: lc.Options["awslogs-group"], Stream: lc.Options["awslogs-stream"]}
	if p := lc.Options["awslogs-stream-prefix"]; t.Stream == "" && p != "" {
		t.Stream = p + "/" + aws.ToString(cd.Name) + "/" + taskID
	}
	return t, t.Stream != ""
}

// taskLogTargets reads the task's definition and returns the log target
// of each container that has one, by container name.
func taskLogTargets(tx store.Tx, t *records.Task, taskID string) (map[string]logTarget, error) {
	key, ok := records.TaskDefinitionKeyOf(aws.ToString(t.Task.TaskDefinitionArn))
	if !ok {
		return nil, nil
	}
	td, ok, err := records.Get[records.TaskDefinition](tx, records.TaskDefinitions, key)
	if err != nil || !ok {
		return nil, err
	}
	out := map[string]logTarget{}
	for i := range td.TaskDefinition.ContainerDefinitions {
		cd := &td.TaskDefinition.ContainerDefinitions[i]
		if lt, ok := awslogsTarget(cd, taskID); ok {
			out[aws.ToString(cd.Name)] = lt
		}
	}
	return out, nil
}

type logLine struct {
	Time    *time.Time
	Message string
}

type logsData struct {
	Container string
	logTarget
	Lines []logLine
	// Error is the log store's refusal (no such stream yet, ...).
	Error string
}

// containerLogs answers the last lines of a container's log stream, the
// fragment the task page polls: GetLogEvents on the log store's API
// handler with the session's key, as `aws logs get-log-events` would.
func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	cluster, id, container := r.PathValue("cluster"), r.PathValue("task"), r.URL.Query().Get("container")
	if s.o.Logs == nil {
		http.NotFound(w, r)
		return
	}
	var target logTarget
	err := s.o.Store.View(func(tx store.Tx) error {
		t, err := getTask(tx, cluster, id)
		if err != nil {
			return err
		}
		targets, err := taskLogTargets(tx, t, id)
		if err != nil {
			return err
		}
		var ok bool
		if target, ok = targets[container]; !ok {
			return fmt.Errorf("%w: container %q of task %s has no awslogs log stream", errNotFound, container, id)
		}
		return nil
	})
	if s.viewFailed(w, r, "container logs", err) {
		return
	}
	d := logsData{Container: container, logTarget: target}
	body, err := json.Marshal(map[string]any{"logGroupName": target.Group, "logStreamName": target.Stream,
		"startFromHead": false, "limit": logLines})
	if err != nil {
		s.internalError(w, err)
		return
	}
	out, err := s.o.Logs.ServeAWS(&awsproto.Request{Context: r.Context(), Key: sessionOf(r).Key, Operation: "GetLogEvents",
		Protocol: awsproto.JSON11, Body: body})
	var ae *awsproto.Error
	switch {
	case errors.As(err, &ae):
		d.Error = ae.Type + ": " + ae.Message
	case err != nil:
		s.internalError(w, fmt.Errorf("container logs: %w", err))
		return
	default:
		var res struct {
			Events []struct {
				Timestamp int64  `json:"timestamp"`
				Message   string `json:"message"`
			} `json:"events"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			s.internalError(w, fmt.Errorf("container logs: decode GetLogEvents: %w", err))
			return
		}
		for _, e := range res.Events {
			at := time.UnixMilli(e.Timestamp)
			d.Lines = append(d.Lines, logLine{Time: &at, Message: e.Message})
		}
	}
	s.renderPolled(w, r, "task", "logs", &page{Session: sessionOf(r), Data: &d})
}
