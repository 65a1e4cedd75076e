package records

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// TaskChange tells about one task whose delivery to its agent is due, once
// the transaction that made the change has committed: it was just placed
// (Placed) or its desired status changed. The ECS API and the service
// controller produce them; the ACS session server consumes them and reads
// the task's record as it is when it sends it (changes of concurrent
// requests may arrive in any order, and the record has the latest desired
// status).
type TaskChange struct {
	ClusterArn           string
	ContainerInstanceArn string
	TaskArn              string
	DesiredStatus        string
	Placed               bool
}

// PlacedChange is the change of a task just placed, to run.
func PlacedChange(t *Task) TaskChange {
	return TaskChange{ClusterArn: aws.ToString(t.Task.ClusterArn), ContainerInstanceArn: aws.ToString(t.Task.ContainerInstanceArn),
		TaskArn: aws.ToString(t.Task.TaskArn), DesiredStatus: "RUNNING", Placed: true}
}

// StoppingChange is the change of a task told to stop.
func StoppingChange(t *types.Task) TaskChange {
	return TaskChange{ClusterArn: aws.ToString(t.ClusterArn), ContainerInstanceArn: aws.ToString(t.ContainerInstanceArn),
		TaskArn: aws.ToString(t.TaskArn), DesiredStatus: "STOPPED"}
}
