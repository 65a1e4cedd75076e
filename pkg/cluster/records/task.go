package records

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// StatusRank orders task and container statuses, so that state changes only
// move forward and resubmitting one is harmless; ok is false for a status
// ECS does not have.
func StatusRank(status string) (rank int, ok bool) {
	for i, s := range []string{"PROVISIONING", "PENDING", "MANIFEST_PULLED", "ACTIVATING", "RUNNING",
		"DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"} {
		if s == status {
			return i, true
		}
	}
	return 0, false
}

// Advances reports whether status to comes after from.
func Advances(from *string, to string) bool {
	a, _ := StatusRank(to)
	b, _ := StatusRank(aws.ToString(from))
	return a > b
}

// Unstopped reports whether the task still holds (or will hold) its place:
// neither stopped nor told to stop.
func (t *Task) Unstopped() bool {
	return aws.ToString(t.Task.LastStatus) != "STOPPED" && aws.ToString(t.Task.DesiredStatus) != "STOPPED"
}

// ApplyStatus moves the task's lastStatus forward to status and, when it
// has stopped, releases its resources on inst (the task's instance) once.
// A status that does not advance changes nothing.
func (t *Task) ApplyStatus(inst *Instance, status string, reason *string, now time.Time) {
	if !Advances(t.Task.LastStatus, status) {
		return
	}
	t.Task.LastStatus = aws.String(status)
	t.Task.Version++
	t.moveAttachments(status)
	switch status {
	case "RUNNING":
		if t.Task.StartedAt == nil {
			t.Task.StartedAt = aws.Time(now)
		}
		t.Task.Connectivity = types.ConnectivityConnected
		t.Task.ConnectivityAt = aws.Time(now)
	case "STOPPED":
		t.Task.StoppedAt = aws.Time(now)
		t.Task.DesiredStatus = aws.String("STOPPED")
		if t.Task.StoppedReason == nil {
			if reason != nil && *reason != "" {
				t.Task.StoppedReason = reason
			} else {
				t.Task.StoppedReason = aws.String("Essential container in task exited")
			}
			t.Task.StopCode = types.TaskStopCodeEssentialContainerExited
		}
		if !t.Released {
			inst.Release(t.Demand)
			t.Released = true
		}
	}
}

// RequestStop sets the task's desired status to STOPPED with the stop code
// and reason ECS shows. A task on a deregistered (INACTIVE) instance has no
// agent left to report its stop: it is STOPPED at once and its resources
// are released; stoppedNow says so, and inst must then be stored too.
func (t *Task) RequestStop(inst *Instance, code types.TaskStopCode, reason string, now time.Time) (stoppedNow bool) {
	t.Task.DesiredStatus = aws.String("STOPPED")
	t.Task.StopCode = code
	t.Task.StoppedReason = aws.String(reason)
	t.Task.StoppingAt = aws.Time(now)
	t.Task.Version++
	if inst == nil || inst.Status() != "INACTIVE" {
		return false
	}
	t.ApplyStatus(inst, "STOPPED", nil, now)
	return true
}

// AttachmentENI is the type of the network interface attachment of an
// awsvpc task.
const AttachmentENI = "ElasticNetworkInterface"

// moveAttachments moves the task's network interface attachments along
// with the task's status, as ECS shows them: ATTACHED once it runs,
// DELETED once it stopped.
func (t *Task) moveAttachments(status string) {
	next := ""
	switch status {
	case "RUNNING":
		next = "ATTACHED"
	case "STOPPED":
		next = "DELETED"
	default:
		return
	}
	for i := range t.Task.Attachments {
		if aws.ToString(t.Task.Attachments[i].Type) == AttachmentENI {
			t.Task.Attachments[i].Status = aws.String(next)
		}
	}
}
