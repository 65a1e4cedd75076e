package ecsapi

import (
	"context"
	"errors"
	"maps"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"
)

// env is the ECS API of a fresh store served over HTTP in-process, driven
// by the real SDK client (no retries, so each answer is seen as sent).
type env struct {
	t   *testing.T
	ctx context.Context
	c   *ecs.Client
	s   *testServer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := newTestServer(t)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	c := ecs.New(ecs.Options{
		Region:       "us-test-1",
		BaseEndpoint: aws.String(hs.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("BKTEST", "secret", ""),
		HTTPClient:   awshttp.NewBuildableClient(),
		Retryer:      aws.NopRetryer{},
	})
	return &env{t: t, ctx: context.Background(), c: c, s: s}
}

// memberChecks gathers the checks of every honoured member (and of the
// refused nested members), keyed "<Operation>.<member>".
func memberChecks() map[string]func(*env) {
	all := map[string]func(*env){}
	for _, part := range []map[string]func(*env){clusterChecks(), taskDefinitionChecks(), instanceChecks(),
		taskChecks(), serviceChecks(), tagChecks(), deploymentChecks(), networkChecks(), loadBalancerChecks()} {
		maps.Copy(all, part)
	}
	return all
}

// ok fails the check on err.
func (e *env) ok(err error, what string) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

// fails asserts err is the AWS error code whose message contains substr.
func (e *env) fails(err error, code, substr string) {
	e.t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code || !strings.Contains(ae.ErrorMessage(), substr) {
		e.t.Fatalf("got %v, want %s containing %q", err, code, substr)
	}
}

// std builds the usual scene: cluster "c" with one instance (1024 CPU,
// 2048 MiB, attribute zone=a) and task definition "web:1".
func (e *env) std() *env {
	e.cluster("c")
	e.instance("c", types.Attribute{Name: aws.String("zone"), Value: aws.String("a")})
	e.taskDef("web", nil)
	return e
}

func (e *env) cluster(name string) {
	e.t.Helper()
	_, err := e.c.CreateCluster(e.ctx, &ecs.CreateClusterInput{ClusterName: aws.String(name)})
	e.ok(err, "CreateCluster")
}

// instance registers an instance with 1024 CPU and 2048 MiB in cluster.
func (e *env) instance(cluster string, attrs ...types.Attribute) string {
	e.t.Helper()
	out, err := e.c.RegisterContainerInstance(e.ctx, &ecs.RegisterContainerInstanceInput{
		Cluster:        aws.String(cluster),
		TotalResources: testResources(1024, 2048),
		Attributes:     attrs,
	})
	e.ok(err, "RegisterContainerInstance")
	return aws.ToString(out.ContainerInstance.ContainerInstanceArn)
}

func testResources(cpu, mem int32) []types.Resource {
	return []types.Resource{
		{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: cpu},
		{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: mem},
		{Name: aws.String("PORTS"), Type: aws.String("STRINGSET"), StringSetValue: []string{"22"}},
	}
}

// tdInput is a valid one-container task definition of family.
func tdInput(family string) *ecs.RegisterTaskDefinitionInput {
	return &ecs.RegisterTaskDefinitionInput{
		Family: aws.String(family),
		ContainerDefinitions: []types.ContainerDefinition{{
			Name: aws.String("app"), Image: aws.String("busybox"), Memory: aws.Int32(64),
		}},
	}
}

// taskDef registers family (edited by edit, if given) and returns its ARN.
func (e *env) taskDef(family string, edit func(*ecs.RegisterTaskDefinitionInput)) string {
	e.t.Helper()
	in := tdInput(family)
	if edit != nil {
		edit(in)
	}
	out, err := e.c.RegisterTaskDefinition(e.ctx, in)
	e.ok(err, "RegisterTaskDefinition")
	return aws.ToString(out.TaskDefinition.TaskDefinitionArn)
}

// run runs one task of web in c (after edit) and returns it.
func (e *env) run(edit func(*ecs.RunTaskInput)) types.Task {
	e.t.Helper()
	in := &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web")}
	if edit != nil {
		edit(in)
	}
	out, err := e.c.RunTask(e.ctx, in)
	e.ok(err, "RunTask")
	if len(out.Tasks) == 0 {
		e.t.Fatalf("RunTask placed nothing: %+v", out.Failures)
	}
	return out.Tasks[0]
}

// describeTask reads a task of c back.
func (e *env) describeTask(arn string, include ...types.TaskField) types.Task {
	e.t.Helper()
	out, err := e.c.DescribeTasks(e.ctx, &ecs.DescribeTasksInput{Cluster: aws.String("c"), Tasks: []string{arn}, Include: include})
	e.ok(err, "DescribeTasks")
	if len(out.Tasks) != 1 {
		e.t.Fatalf("DescribeTasks %s: %+v", arn, out.Failures)
	}
	return out.Tasks[0]
}

// service creates service name of web in c (after edit) and returns it.
func (e *env) service(name string, edit func(*ecs.CreateServiceInput)) types.Service {
	e.t.Helper()
	in := &ecs.CreateServiceInput{Cluster: aws.String("c"), ServiceName: aws.String(name),
		TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(0)}
	if edit != nil {
		edit(in)
	}
	out, err := e.c.CreateService(e.ctx, in)
	e.ok(err, "CreateService")
	return *out.Service
}

// describeService reads a service of c back.
func (e *env) describeService(name string, include ...types.ServiceField) types.Service {
	e.t.Helper()
	out, err := e.c.DescribeServices(e.ctx, &ecs.DescribeServicesInput{Cluster: aws.String("c"), Services: []string{name}, Include: include})
	e.ok(err, "DescribeServices")
	if len(out.Services) != 1 {
		e.t.Fatalf("DescribeServices %s: %+v", name, out.Failures)
	}
	return out.Services[0]
}

// wantEq fails when got != want.
func wantEq[T comparable](e *env, what string, got, want T) {
	e.t.Helper()
	if got != want {
		e.t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// checkPaging proves maxResults and nextToken of a List operation: list
// returns one page for (maxResults, nextToken); there must be at least
// two items.
func checkPaging(e *env, list func(max *int32, next *string) ([]string, *string, error)) {
	e.t.Helper()
	all, next, err := list(nil, nil)
	e.ok(err, "list")
	if len(all) < 2 || next != nil {
		e.t.Fatalf("unpaged list %v (next %v): want at least two items and no token", all, next)
	}
	first, next, err := list(aws.Int32(1), nil)
	e.ok(err, "list maxResults 1")
	if len(first) != 1 || next == nil || first[0] != all[0] {
		e.t.Fatalf("maxResults 1: %v next %v, want [%s] and a token", first, next, all[0])
	}
	second, _, err := list(aws.Int32(1), next)
	e.ok(err, "list with nextToken")
	if len(second) != 1 || second[0] != all[1] {
		e.t.Fatalf("nextToken: %v, want [%s]", second, all[1])
	}
	_, _, err = list(aws.Int32(0), nil)
	e.fails(err, "InvalidParameterException", "maxResults")
	_, _, err = list(nil, aws.String("garbage!"))
	e.fails(err, "InvalidParameterException", "nextToken")
}
