package cluster_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

func TestBadInputChangesNothing(t *testing.T) {
	re := startEndpoint(t, t.TempDir())
	l := buildLab(t, re)
	before := snapshot(t, re)

	container := func(extra string) string {
		return `{"family":"bad","containerDefinitions":[{"name":"a","image":"busybox","memory":64` + extra + `}]}`
	}
	cases := []struct {
		name, target, body string
		wantStatus         int
		want               string
	}{
		{"malformed JSON", "CreateCluster", `{"clusterName":`, 400, "SerializationException"},
		{"not an object", "ListClusters", `[1,2]`, 400, "SerializationException"},
		{"wrong member type", "RunTask", `{"cluster":"lab","taskDefinition":"web","count":"three"}`, 400, "SerializationException"},
		{"unknown target", "FrobnicateCluster", `{}`, 400, "UnknownOperationException"},
		{"missing containerDefinitions", "RegisterTaskDefinition", `{"family":"bad"}`, 400, "ClientException"},
		{"missing family", "RegisterTaskDefinition", `{"containerDefinitions":[{"name":"a","image":"busybox","memory":64}]}`, 400, "ClientException"},
		{"missing image", "RegisterTaskDefinition", `{"family":"bad","containerDefinitions":[{"name":"a","memory":64}]}`, 400, "ClientException"},
		{"missing taskDefinition", "RunTask", `{"cluster":"lab"}`, 400, "InvalidParameterException"},
		{"missing totalResources", "RegisterContainerInstance", `{"cluster":"lab"}`, 400, "InvalidParameterException"},
		{"invalid task cpu", "RegisterTaskDefinition", `{"family":"bad","cpu":"lots","containerDefinitions":[{"name":"a","image":"busybox","memory":64}]}`, 400, "ClientException"},
		{"task cpu too large", "RegisterTaskDefinition", `{"family":"bad","cpu":"1000000","containerDefinitions":[{"name":"a","image":"busybox","memory":64}]}`, 400, "ClientException"},
		{"invalid task memory", "RegisterTaskDefinition", `{"family":"bad","memory":"1 TB","containerDefinitions":[{"name":"a","image":"busybox"}]}`, 400, "ClientException"},
		{"container memory below 6 MiB", "RegisterTaskDefinition", `{"family":"bad","containerDefinitions":[{"name":"a","image":"busybox","memory":4}]}`, 400, "ClientException"},
		{"no memory at all", "RegisterTaskDefinition", `{"family":"bad","containerDefinitions":[{"name":"a","image":"busybox"}]}`, 400, "ClientException"},
		{"reservation above limit", "RegisterTaskDefinition", container(`,"memoryReservation":128`), 400, "ClientException"},
		{"no essential container", "RegisterTaskDefinition", container(`,"essential":false`), 400, "ClientException"},
		{"dependsOn cycle", "RegisterTaskDefinition", `{"family":"bad","containerDefinitions":[
			{"name":"a","image":"busybox","memory":64,"dependsOn":[{"containerName":"b","condition":"START"}]},
			{"name":"b","image":"busybox","memory":64,"dependsOn":[{"containerName":"c","condition":"START"}]},
			{"name":"c","image":"busybox","memory":64,"dependsOn":[{"containerName":"a","condition":"START"}]}]}`, 400, "ClientException"},
		{"dependsOn unknown container", "RegisterTaskDefinition", container(`,"dependsOn":[{"containerName":"zz","condition":"START"}]`), 400, "ClientException"},
		{"mount point without volume", "RegisterTaskDefinition", container(`,"mountPoints":[{"sourceVolume":"data","containerPath":"/data"}]`), 400, "ClientException"},
		{"awsvpc host port differs", "RegisterTaskDefinition", `{"family":"bad","networkMode":"awsvpc","containerDefinitions":[{"name":"a","image":"busybox","memory":64,"portMappings":[{"containerPort":80,"hostPort":8080}]}]}`, 400, "ClientException"},
		{"RunTask on unknown cluster", "RunTask", `{"cluster":"nope","taskDefinition":"web"}`, 400, "ClusterNotFoundException"},
		{"RunTask count 11", "RunTask", `{"cluster":"lab","taskDefinition":"web","count":11}`, 400, "InvalidParameterException"},
		{"RunTask unknown task definition", "RunTask", `{"cluster":"lab","taskDefinition":"nope:3"}`, 400, "InvalidParameterException"},
		{"RunTask override of unknown container", "RunTask", `{"cluster":"lab","taskDefinition":"web","overrides":{"containerOverrides":[{"name":"zz"}]}}`, 400, "InvalidParameterException"},
		{"StopTask unknown task", "StopTask", `{"cluster":"lab","task":"0123456789abcdef0123456789abcdef"}`, 400, "InvalidParameterException"},
		{"invalid cluster name", "CreateCluster", `{"clusterName":"no spaces"}`, 400, "InvalidParameterException"},
		{"task definition over 64 KiB", "RegisterTaskDefinition", container(`,"command":["` + strings.Repeat("x", 70000) + `"]`), 400, "ClientException"},
	}
	for _, c := range cases {
		status, typ := re.do(t, rawRequest{target: c.target, body: c.body, id: re.adminID, secret: re.adminSecret})
		if status != c.wantStatus || typ != c.want {
			t.Errorf("%s: HTTP %d %s, want %d %s", c.name, status, typ, c.wantStatus, c.want)
		}
	}
	// A request that fails part-way (the second instance is unknown) changes nothing either.
	if _, err := l.admin.UpdateContainerInstancesState(context.Background(), &ecs.UpdateContainerInstancesStateInput{
		Cluster: aws.String("lab"), ContainerInstances: []string{l.instA}, Status: types.ContainerInstanceStatus("INACTIVE"),
	}); errorCode(err) != "InvalidParameterException" {
		t.Errorf("UpdateContainerInstancesState INACTIVE: %v", err)
	}
	if _, err := l.admin.PutAttributes(context.Background(), &ecs.PutAttributesInput{Cluster: aws.String("lab"), Attributes: []types.Attribute{
		{Name: aws.String("ok"), Value: aws.String("1"), TargetId: aws.String(l.instA)},
		{Name: aws.String("ok"), Value: aws.String("1"), TargetId: aws.String("0123456789abcdef0123456789abcdef")},
	}}); errorCode(err) != "TargetNotFoundException" {
		t.Errorf("PutAttributes on an unknown target: %v", err)
	}
	if after := snapshot(t, re); !reflect.DeepEqual(before, after) {
		for b := range after {
			if !reflect.DeepEqual(before[b], after[b]) {
				t.Errorf("bucket %s changed by refused requests", b)
			}
		}
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	re := startEndpoint(t, dir)
	l := buildLab(t, re)
	ctx := context.Background()
	if _, err := l.agentA.SubmitTaskStateChange(ctx, &ecs.SubmitTaskStateChangeInput{Cluster: aws.String("lab"), Task: l.tasks[0].TaskArn, Status: aws.String("RUNNING")}); err != nil {
		t.Fatal(err)
	}
	describe := func(c *ecs.Client) (any, any, any, any) {
		t.Helper()
		// This test is about what survives a restart, not about error
		// shapes: retry as every SDK client does by default. Under load a
		// fresh connection to the restarted endpoint is now and then reset
		// while its answer is read ("use of closed network connection",
		// which the SDK's standard retryer retries by design).
		c = ecs.New(c.Options(), func(o *ecs.Options) { o.Retryer = retry.NewStandard() })
		arns := []string{*l.tasks[0].TaskArn, *l.tasks[1].TaskArn, *l.tasks[2].TaskArn}
		dt, err := c.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("lab"), Tasks: arns})
		if err != nil {
			t.Fatalf("DescribeTasks: %v", err)
		}
		td, err := c.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("web")})
		if err != nil {
			t.Fatalf("DescribeTaskDefinition: %v", err)
		}
		ci, err := c.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("lab"), ContainerInstances: []string{l.instA, l.instB}})
		if err != nil {
			t.Fatalf("DescribeContainerInstances: %v", err)
		}
		cl, err := c.DescribeClusters(ctx, &ecs.DescribeClustersInput{Clusters: []string{"lab"}})
		if err != nil {
			t.Fatalf("DescribeClusters: %v", err)
		}
		return dt.Tasks, td.TaskDefinition, ci.ContainerInstances, cl.Clusters
	}
	t1, td1, ci1, cl1 := describe(l.admin)
	re.stop()

	re2 := startEndpoint(t, dir)
	re2.adminID, re2.adminSecret = re.adminID, re.adminSecret
	admin2 := re2.admin()
	t2, td2, ci2, cl2 := describe(admin2)
	for _, c := range []struct {
		what          string
		before, after any
	}{{"tasks", t1, t2}, {"task definition", td1, td2}, {"container instances", ci1, ci2}, {"clusters", cl1, cl2}} {
		if !reflect.DeepEqual(c.before, c.after) {
			t.Errorf("%s differ after restart:\nbefore %+v\nafter  %+v", c.what, c.before, c.after)
		}
	}
	// Revisions continue, and agent keys (sealed with the master key) still work.
	rtd, err := admin2.RegisterTaskDefinition(ctx, loadTaskDefinition(t))
	if err != nil || rtd.TaskDefinition.Revision != 2 {
		t.Fatalf("RegisterTaskDefinition after restart = %v, %v; want revision 2", rtd, err)
	}
	keys, err := re2.ep.Keys().List()
	if err != nil || len(keys) != 3 {
		t.Fatalf("keys after restart = %v, %v; want admin and two agents", keys, err)
	}
	if _, err := re2.client(l.agentAKey, l.agentASecret).SubmitTaskStateChange(ctx, &ecs.SubmitTaskStateChangeInput{
		Cluster: aws.String("lab"), Task: l.tasks[1].TaskArn, Status: aws.String("RUNNING")}); err != nil {
		t.Fatalf("agent key after restart: %v", err)
	}
}
