package registration

import (
	"encoding/json"
	"testing"

	"github.com/berth-dev/berth/pkg/container"
)

// TestWireHealth: the engine's neutral health becomes PublishHealthRequest's
// tasks field by field, with the ECS names of the statuses.
func TestWireHealth(t *testing.T) {
	in := []container.TaskHealth{{TaskARN: "arn:task/a", Cluster: "arn:cluster/c", Family: "web", Version: "3",
		Containers: []container.ContainerHealth{{Name: "app", Status: container.HealthHealthy}, {Name: "side", Status: container.HealthUnhealthy}, {Name: "new", Status: container.HealthUnknown}}}}
	got, err := json.Marshal(wireHealth(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"taskArn":"arn:task/a","clusterArn":"arn:cluster/c","taskDefinitionFamily":"web","taskDefinitionVersion":"3","containers":[` +
		`{"containerName":"app","healthStatus":"HEALTHY"},{"containerName":"side","healthStatus":"UNHEALTHY"},{"containerName":"new","healthStatus":"UNKNOWN"}]}]`
	if string(got) != want {
		t.Errorf("wire health\n got %s\nwant %s", got, want)
	}
	if w := wireHealth(nil); w != nil {
		t.Errorf("no tasks: %v, want nil (the frame omits tasks)", w)
	}
}
