package launch

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
)

// TestServiceTaskTags proves what a service's tasks are tagged with:
// propagateTags SERVICE or TASK_DEFINITION copies those tags, and
// enableECSManagedTags adds ECS's aws:ecs:clusterName and
// aws:ecs:serviceName.
func TestServiceTaskTags(t *testing.T) {
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "s.db"), boltstore.Options{Buckets: records.Buckets()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := &Launcher{ARNs: records.ARNs{Region: "us-test-1", AccountID: "123456789012"}}
	td := types.TaskDefinition{TaskDefinitionArn: aws.String(l.ARNs.TaskDefinition("web", 1)), Family: aws.String("web"), Revision: 1,
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox")}}}
	tag := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }
	cases := []struct {
		name      string
		propagate types.PropagateTags
		managed   bool
		want      map[string]string
	}{
		{"NONE", types.PropagateTagsNone, false, map[string]string{}},
		{"SERVICE", types.PropagateTagsService, false, map[string]string{"from": "svc"}},
		{"TASK_DEFINITION", types.PropagateTagsTaskDefinition, false, map[string]string{"from": "td"}},
		{"managed", types.PropagateTagsNone, true, map[string]string{"aws:ecs:clusterName": "c", "aws:ecs:serviceName": "svc"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			svc := &records.Service{Cluster: "c", Service: types.Service{ServiceName: aws.String("svc"), PropagateTags: c.propagate,
				EnableECSManagedTags: c.managed, Tags: []types.Tag{tag("from", "svc")}, Deployments: []types.Deployment{{Id: aws.String("ecs-svc/1")}}}}
			var task *records.Task
			err := db.Update(func(tx store.Tx) error {
				if err := records.Put(tx, &records.TaskDefinition{TaskDefinition: td, Tags: []types.Tag{tag("from", "td")}}); err != nil {
					return err
				}
				inst := &records.Instance{Cluster: "c", Instance: types.ContainerInstance{ContainerInstanceArn: aws.String(l.ARNs.Instance("c", "i1"))}}
				var err error
				task, err = l.Place(tx, ServiceParams(svc, &td), inst, Demand(&td, nil), time.Now())
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, tg := range task.Task.Tags {
				got[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
			}
			if len(got) != len(c.want) {
				t.Fatalf("tags %v, want %v", got, c.want)
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Fatalf("tags %v, want %v", got, c.want)
				}
			}
			if aws.ToString(task.Task.Group) != "service:svc" || aws.ToString(task.Task.StartedBy) != "ecs-svc/1" {
				t.Errorf("group %q startedBy %q", aws.ToString(task.Task.Group), aws.ToString(task.Task.StartedBy))
			}
		})
	}
}
