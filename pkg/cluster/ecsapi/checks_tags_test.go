package ecsapi

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

func tag(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }

// listTags reads a resource's tags with ListTagsForResource.
func (e *env) listTags(arn string) map[string]string {
	e.t.Helper()
	out, err := e.c.ListTagsForResource(e.ctx, &ecs.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	e.ok(err, "ListTagsForResource "+arn)
	return tagMap(out.Tags)
}

// taggableARNs builds one resource of each taggable type and returns their
// ARNs.
func (e *env) taggableARNs() []string {
	e.std()
	inst := e.instance("c")
	task := e.run(nil)
	svc := e.service("svc", nil)
	return []string{"arn:aws:ecs:us-test-1:123456789012:cluster/c", aws.ToString(svc.ServiceArn), aws.ToString(task.TaskArn),
		"arn:aws:ecs:us-test-1:123456789012:task-definition/web:1", inst}
}

func tagChecks() map[string]func(*env) {
	tdTagged := func(e *env) {
		e.cluster("c")
		e.instance("c")
		e.taskDef("web", func(in *ecs.RegisterTaskDefinitionInput) { in.Tags = []types.Tag{tag("from", "td")} })
	}
	return map[string]func(*env){
		"RunTask.enableECSManagedTags": func(e *env) {
			e.std()
			t := e.run(func(in *ecs.RunTaskInput) { in.EnableECSManagedTags = true })
			wantEq(e, "aws:ecs:clusterName", tagMap(e.describeTask(aws.ToString(t.TaskArn), types.TaskFieldTags).Tags)["aws:ecs:clusterName"], "c")
			t = e.run(nil)
			wantEq(e, "without: tags", len(e.describeTask(aws.ToString(t.TaskArn), types.TaskFieldTags).Tags), 0)
		},
		"RunTask.propagateTags": func(e *env) {
			tdTagged(e)
			t := e.run(func(in *ecs.RunTaskInput) {
				in.PropagateTags = types.PropagateTagsTaskDefinition
				in.Tags = []types.Tag{tag("own", "1")}
			})
			got := tagMap(e.describeTask(aws.ToString(t.TaskArn), types.TaskFieldTags).Tags)
			if got["from"] != "td" || got["own"] != "1" {
				e.t.Fatalf("TASK_DEFINITION: task tags %v, want from=td and own=1", got)
			}
			_, err := e.c.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web"), PropagateTags: types.PropagateTagsService})
			e.refusedNaming(err, "propagateTags")
		},
		"StartTask.enableECSManagedTags": func(e *env) {
			e.std()
			t := e.start(e.instance("c"), func(in *ecs.StartTaskInput) { in.EnableECSManagedTags = true })
			wantEq(e, "aws:ecs:clusterName", e.listTags(aws.ToString(t.TaskArn))["aws:ecs:clusterName"], "c")
		},
		"StartTask.propagateTags": func(e *env) {
			tdTagged(e)
			t := e.start(e.instance("c"), func(in *ecs.StartTaskInput) { in.PropagateTags = types.PropagateTagsTaskDefinition })
			wantEq(e, "from", e.listTags(aws.ToString(t.TaskArn))["from"], "td")
			_, err := e.c.StartTask(e.ctx, &ecs.StartTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web"),
				ContainerInstances: []string{e.instance("c")}, PropagateTags: types.PropagateTagsService})
			e.refusedNaming(err, "propagateTags")
		},
		"CreateService.enableECSManagedTags": func(e *env) {
			e.std()
			e.service("svc", func(in *ecs.CreateServiceInput) { in.EnableECSManagedTags = true })
			wantEq(e, "enableECSManagedTags", e.describeService("svc").EnableECSManagedTags, true)
		},
		"CreateService.propagateTags": func(e *env) {
			e.std()
			e.service("a", nil)
			e.service("b", func(in *ecs.CreateServiceInput) { in.PropagateTags = types.PropagateTagsService })
			wantEq(e, "default", e.describeService("a").PropagateTags, types.PropagateTagsNone)
			wantEq(e, "SERVICE", e.describeService("b").PropagateTags, types.PropagateTagsService)
		},
		"UpdateService.enableECSManagedTags": func(e *env) {
			e.std()
			e.service("svc", nil)
			e.updateService(func(in *ecs.UpdateServiceInput) { in.EnableECSManagedTags = aws.Bool(true) })
			wantEq(e, "enableECSManagedTags", e.describeService("svc").EnableECSManagedTags, true)
		},
		"UpdateService.propagateTags": func(e *env) {
			e.std()
			e.service("svc", nil)
			e.updateService(func(in *ecs.UpdateServiceInput) { in.PropagateTags = types.PropagateTagsTaskDefinition })
			wantEq(e, "propagateTags", e.describeService("svc").PropagateTags, types.PropagateTagsTaskDefinition)
		},
		"TagResource.resourceArn": func(e *env) {
			for _, arn := range e.taggableARNs() {
				_, err := e.c.TagResource(e.ctx, &ecs.TagResourceInput{ResourceArn: aws.String(arn), Tags: []types.Tag{tag("env", "prod")}})
				e.ok(err, "TagResource "+arn)
				wantEq(e, "env of "+arn, e.listTags(arn)["env"], "prod")
			}
			_, err := e.c.TagResource(e.ctx, &ecs.TagResourceInput{ResourceArn: aws.String("arn:aws:ecs:us-test-1:123456789012:cluster/nope"), Tags: []types.Tag{tag("a", "b")}})
			e.fails(err, "ResourceNotFoundException", "nope")
			_, err = e.c.TagResource(e.ctx, &ecs.TagResourceInput{ResourceArn: aws.String("not-an-arn"), Tags: []types.Tag{tag("a", "b")}})
			e.refusedNaming(err, "resourceArn")
		},
		"TagResource.tags": func(e *env) {
			e.cluster("c")
			arn := "arn:aws:ecs:us-test-1:123456789012:cluster/c"
			_, err := e.c.TagResource(e.ctx, &ecs.TagResourceInput{ResourceArn: aws.String(arn), Tags: []types.Tag{tag("a", "1"), tag("b", "2")}})
			e.ok(err, "TagResource")
			_, err = e.c.TagResource(e.ctx, &ecs.TagResourceInput{ResourceArn: aws.String(arn), Tags: []types.Tag{tag("a", "3")}})
			e.ok(err, "TagResource again")
			if got := e.listTags(arn); got["a"] != "3" || got["b"] != "2" || len(got) != 2 {
				e.t.Fatalf("tags after overwriting a: %v", got)
			}
			many := make([]types.Tag, 49)
			for i := range many {
				many[i] = tag("k"+strings.Repeat("x", i), "v")
			}
			_, err = e.c.TagResource(e.ctx, &ecs.TagResourceInput{ResourceArn: aws.String(arn), Tags: many})
			e.refusedNaming(err, "tags")
			for _, bad := range [][]types.Tag{{tag(strings.Repeat("k", 129), "v")}, {tag("k", strings.Repeat("v", 257))},
				{tag("aws:x", "v")}, {tag("AWS:x", "v")}, {tag("a\nb", "v")}, {tag("k", "v"), tag("k", "w")}} {
				_, err = e.c.TagResource(e.ctx, &ecs.TagResourceInput{ResourceArn: aws.String(arn), Tags: bad})
				e.refusedNaming(err, "tags")
			}
			// The same limits apply on every create.
			_, err = e.c.CreateCluster(e.ctx, &ecs.CreateClusterInput{ClusterName: aws.String("d"), Tags: []types.Tag{tag("aws:x", "v")}})
			e.refusedNaming(err, "tags")
			in := tdInput("web")
			in.Tags = []types.Tag{tag(strings.Repeat("k", 129), "v")}
			_, err = e.c.RegisterTaskDefinition(e.ctx, in)
			e.refusedNaming(err, "tags")
		},
		"UntagResource.resourceArn": checkUntag,
		"UntagResource.tagKeys":     checkUntag,
		"ListTagsForResource.resourceArn": func(e *env) {
			arns := e.taggableARNs()
			for _, arn := range arns {
				if got := e.listTags(arn); len(got) != 0 {
					e.t.Fatalf("%s has tags %v, want none", arn, got)
				}
			}
			_, err := e.c.ListTagsForResource(e.ctx, &ecs.ListTagsForResourceInput{ResourceArn: aws.String(strings.Replace(arns[2], "/c/", "/other/", 1))})
			e.fails(err, "ResourceNotFoundException", "")
		},
	}
}

func checkUntag(e *env) {
	e.cluster("c")
	arn := "arn:aws:ecs:us-test-1:123456789012:cluster/c"
	_, err := e.c.TagResource(e.ctx, &ecs.TagResourceInput{ResourceArn: aws.String(arn), Tags: []types.Tag{tag("a", "1"), tag("b", "2")}})
	e.ok(err, "TagResource")
	_, err = e.c.UntagResource(e.ctx, &ecs.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"a", "absent"}})
	e.ok(err, "UntagResource")
	if got := e.listTags(arn); len(got) != 1 || got["b"] != "2" {
		e.t.Fatalf("tags after untagging a: %v", got)
	}
	_, err = e.c.UntagResource(e.ctx, &ecs.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"aws:ecs:clusterName"}})
	e.refusedNaming(err, "tagKeys")
}
