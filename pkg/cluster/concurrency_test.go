package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// TestConcurrentRunTaskNeverOvercommits: 20 clients race for an instance
// with room for exactly 10 tasks; exactly 10 are placed and the rest fail
// with RESOURCE:MEMORY.
func TestConcurrentRunTaskNeverOvercommits(t *testing.T) {
	re := startEndpoint(t, t.TempDir())
	admin := re.admin()
	ctx := context.Background()
	if _, err := admin.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("race")}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("small"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("c"), Image: aws.String("busybox"), Memory: aws.Int32(100)},
	}}); err != nil {
		t.Fatal(err)
	}
	id, secret := newKey(t, re.ep, auth.RoleAgent)
	reg, err := re.client(id, secret).RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("race"), TotalResources: resources(4096, 1000)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	placed, failed := 0, 0
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("race"), TaskDefinition: aws.String("small")})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("RunTask: %v", err)
				return
			}
			placed += len(out.Tasks)
			for _, f := range out.Failures {
				if aws.ToString(f.Reason) == "RESOURCE:MEMORY" {
					failed++
				}
			}
		}()
	}
	wg.Wait()
	if placed != 10 || failed != 10 {
		t.Fatalf("placed %d, failed %d; want 10 and 10", placed, failed)
	}
	d, err := admin.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("race"), ContainerInstances: []string{*reg.ContainerInstance.ContainerInstanceArn}})
	if err != nil || remaining(d.ContainerInstances[0], "MEMORY") != 0 || d.ContainerInstances[0].PendingTasksCount != 10 {
		t.Fatalf("instance after the race = %+v, %v", d, err)
	}
}

// TestConcurrentRunTaskClientTokenIsIdempotent: RunTasks that arrive
// together share store transactions (group commit); those of one client
// token still place one task, and every call with that token answers it,
// while the calls with other tokens (and one whose parameters differ from
// its token's first call, which fails) do not disturb the others.
func TestConcurrentRunTaskClientTokenIsIdempotent(t *testing.T) {
	re := startEndpoint(t, t.TempDir())
	admin := re.admin()
	ctx := context.Background()
	if _, err := admin.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("idem")}); err != nil {
		t.Fatal(err)
	}
	for _, family := range []string{"small", "other"} {
		if _, err := admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String(family), ContainerDefinitions: []types.ContainerDefinition{
			{Name: aws.String("c"), Image: aws.String("busybox"), Memory: aws.Int32(10)},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	id, secret := newKey(t, re.ep, auth.RoleAgent)
	if _, err := re.client(id, secret).RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("idem"), TotalResources: resources(4096, 100000)}); err != nil {
		t.Fatal(err)
	}
	const perToken, tokens = 8, 4
	type answers struct {
		arns      map[string]bool // task ARNs answered to the same-parameter calls
		refused   int             // same-parameter calls refused
		differing error           // the call with other parameters
	}
	var mu sync.Mutex
	got := map[string]*answers{}
	for tok := range tokens {
		got[fmt.Sprintf("token-%d", tok)] = &answers{arns: map[string]bool{}}
	}
	var wg sync.WaitGroup
	for token, a := range got {
		for range perToken {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("idem"), TaskDefinition: aws.String("small"), ClientToken: aws.String(token)})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errorCode(err) == "InvalidParameterException":
					a.refused++
				case err != nil || len(out.Tasks) != 1:
					t.Errorf("RunTask with %s = %v, %v; want one task", token, out, err)
				default:
					a.arns[aws.ToString(out.Tasks[0].TaskArn)] = true
				}
			}()
		}
		// The same token with other parameters: refused, unless it lands
		// first (then the others are refused).
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("idem"), TaskDefinition: aws.String("small"),
				ClientToken: aws.String(token), StartedBy: aws.String("someone-else")})
			mu.Lock()
			a.differing = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	for token, a := range got {
		switch {
		case a.differing == nil && a.refused == perToken && len(a.arns) == 0:
		case errorCode(a.differing) == "InvalidParameterException" && a.refused == 0 && len(a.arns) == 1:
		default:
			t.Errorf("%s: same-parameter calls answered tasks %v and were refused %d times, the differing call got %v; want one task for all %d (or, the differing call first, all refused)",
				token, a.arns, a.refused, a.differing, perToken)
		}
	}
	listed, err := admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("idem")})
	if err != nil {
		t.Fatal(err)
	}
	if len(listed.TaskArns) != tokens {
		t.Errorf("cluster holds %d tasks %v, want %d (one per client token)", len(listed.TaskArns), listed.TaskArns, tokens)
	}
}

// TestPaginationWithSDKPaginators walks ListTasks and ListTaskDefinitions
// pages with the SDK's own paginators.
func TestPaginationWithSDKPaginators(t *testing.T) {
	re := startEndpoint(t, t.TempDir())
	l := buildLab(t, re)
	ctx := context.Background()
	for i := 0; i < 11; i++ {
		if _, err := l.admin.RegisterTaskDefinition(ctx, loadTaskDefinition(t)); err != nil {
			t.Fatal(err)
		}
	}
	var arns []string
	pages := 0
	p := ecs.NewListTaskDefinitionsPaginator(l.admin, &ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String("web"), MaxResults: aws.Int32(5)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		arns = append(arns, out.TaskDefinitionArns...)
	}
	if pages != 3 || len(arns) != 12 || arns[0] != "arn:aws:ecs:us-test-1:123456789012:task-definition/web:1" || arns[11] != "arn:aws:ecs:us-test-1:123456789012:task-definition/web:12" {
		t.Fatalf("%d pages, %d ARNs (%v); want 3 pages of web:1..web:12 in revision order", pages, len(arns), arns)
	}
	tp := ecs.NewListTasksPaginator(l.admin, &ecs.ListTasksInput{Cluster: aws.String("lab"), MaxResults: aws.Int32(2)})
	var tasks []string
	for tp.HasMorePages() {
		out, err := tp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, out.TaskArns...)
	}
	if len(tasks) != 3 {
		t.Fatalf("ListTasks pages gave %d tasks, want 3", len(tasks))
	}
	if _, err := l.admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("lab"), NextToken: aws.String("garbage!")}); errorCode(err) != "InvalidParameterException" {
		t.Errorf("bad nextToken: %v", err)
	}
}
