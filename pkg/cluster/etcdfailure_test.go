package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// TestEtcdMemberFailures runs two replicas (two simulated agents each) on
// three etcd members at etcd's default --max-txn-ops as far as the
// replicas know (max_txn_ops unset):
//   - a service jumps from 0 to 100 tasks: the controller places them in
//     passes that each fit 128 operations;
//   - one member killed: RunTask through either replica places and
//     delivers, the service scales, StopTask arrives;
//   - a second member killed (no quorum): writes are refused within the
//     request timeout with ServerException, HTTP 503 and a message naming
//     the lost quorum; reads answer with the stale-read header; the agents
//     keep every task;
//   - both members back: writes work again without the header, the
//     service and the agents agree, and changes made now reach the agents.
func TestEtcdMemberFailures(t *testing.T) {
	etcd := testenv.Etcd(t, 3)
	eo := cluster.EtcdOptions{Endpoints: etcd.Endpoints, Prefix: "/berth/failures/", KEKFile: writeKEK(t, 4),
		LeaseTTL: 2 * time.Second, RequestTimeout: 2 * time.Second}
	reps := []*replica{startReplica(t, "r0", eo), startReplica(t, "r1", eo)}
	ctx := context.Background()
	adminID, adminSecret, err := reps[0].ep.Keys().Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	admins := []*ecs.Client{reps[0].client(adminID, adminSecret), reps[1].client(adminID, adminSecret)}
	if _, err := admins[0].CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("rep")}); err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if _, err := r.fleet.Add(ctx, 2, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admins[0].RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("small"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("c"), Image: aws.String("busybox"), Memory: aws.Int32(16)}}}); err != nil {
		t.Fatal(err)
	}
	onAgents := func() int { return len(runningOnAgents(reps)) }
	if _, err := admins[1].CreateService(ctx, &ecs.CreateServiceInput{Cluster: aws.String("rep"), ServiceName: aws.String("big"),
		TaskDefinition: aws.String("small"), DesiredCount: aws.Int32(100)}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "100 service tasks running on the agents (placed in passes within 128 etcd operations)", func() bool {
		return runningCount(t, ctx, admins[0], "big") == 100 && onAgents() == 100
	})

	runAndSee := func(t *testing.T, admin *ecs.Client) string {
		t.Helper()
		out, err := admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("rep"), TaskDefinition: aws.String("small")})
		if err != nil || len(out.Tasks) != 1 {
			t.Fatalf("RunTask: %v %+v", err, out)
		}
		arn := aws.ToString(out.Tasks[0].TaskArn)
		waitUntil(t, "the RunTask task on an agent", func() bool { return runningOnAgents(reps)[arn] })
		return arn
	}

	t.Run("OneMemberDown", func(t *testing.T) {
		etcd.Kill(t, 0)
		for i, admin := range admins {
			arn := runAndSee(t, admin)
			other := admins[1-i]
			if _, err := other.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("rep"), Task: aws.String(arn)}); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "the stopped task gone from its agent", func() bool { return !runningOnAgents(reps)[arn] })
		}
		if _, err := admins[1].UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("rep"), Service: aws.String("big"), DesiredCount: aws.Int32(102)}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the service at 102 tasks", func() bool { return runningCount(t, ctx, admins[0], "big") == 102 && onAgents() == 102 })
	})

	var held map[string]bool
	t.Run("QuorumLost", func(t *testing.T) {
		held = runningOnAgents(reps)
		etcd.Kill(t, 1)
		noRetry := func(r *replica) *ecs.Client {
			return ecs.New(ecs.Options{Region: testRegion, BaseEndpoint: aws.String(r.url), Retryer: aws.NopRetryer{},
				Credentials: credentials.NewStaticCredentialsProvider(adminID, adminSecret, ""), HTTPClient: awshttp.NewBuildableClient()})
		}
		for _, r := range reps {
			c := noRetry(r)
			start := time.Now()
			_, err := c.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("rep"), TaskDefinition: aws.String("small")})
			took := time.Since(start)
			var ae smithy.APIError
			var re *awshttp.ResponseError
			if !errors.As(err, &ae) || ae.ErrorCode() != "ServerException" || !strings.Contains(ae.ErrorMessage(), "no quorum") ||
				!errors.As(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable {
				t.Fatalf("RunTask without quorum: %v; want ServerException, 503, a message naming the quorum", err)
			}
			t.Logf("RunTask without quorum refused in %v: %s", took.Round(time.Millisecond), ae.ErrorMessage())
			if took > 2*eo.RequestTimeout+time.Second {
				t.Errorf("the refusal took %v; the request timeout is %v", took, eo.RequestTimeout)
			}
			start = time.Now()
			out, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("rep"), Services: []string{"big"}})
			if err != nil || len(out.Services) != 1 || out.Services[0].RunningCount != 102 {
				t.Fatalf("DescribeServices without quorum: %v %+v", err, out)
			}
			raw, _ := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response)
			if raw == nil || raw.Header.Get(cluster.StaleHeader) == "" {
				t.Errorf("a read without quorum lacks the %s header", cluster.StaleHeader)
			}
			t.Logf("DescribeServices without quorum answered in %v, %s: %q", time.Since(start).Round(time.Millisecond),
				cluster.StaleHeader, raw.Header.Get(cluster.StaleHeader))
		}
		// Longer than the replicas' leases: the agents hold their tasks.
		time.Sleep(2*eo.LeaseTTL + time.Second)
		if now := runningOnAgents(reps); fmt.Sprint(now) != fmt.Sprint(held) {
			t.Errorf("without quorum the agents' tasks changed: %d before, %d now", len(held), len(now))
		}
	})

	t.Run("QuorumBack", func(t *testing.T) {
		etcd.Restart(t, 0)
		etcd.Restart(t, 1)
		waitUntil(t, "writes accepted again", func() bool {
			_, err := admins[0].ListClusters(ctx, &ecs.ListClustersInput{})
			if err != nil {
				return false
			}
			_, err = admins[0].TagResource(ctx, &ecs.TagResourceInput{ResourceArn: aws.String("arn:aws:ecs:" + testRegion + ":" + testAccount + ":cluster/rep"),
				Tags: []types.Tag{{Key: aws.String("back"), Value: aws.String("yes")}}})
			return err == nil
		})
		out, err := admins[1].DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("rep"), Services: []string{"big"}})
		if err != nil {
			t.Fatal(err)
		}
		if raw, _ := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); raw == nil || raw.Header.Get(cluster.StaleHeader) != "" {
			t.Errorf("with quorum back a read still carries %s", cluster.StaleHeader)
		}
		for i := range admins {
			runAndSee(t, admins[i])
		}
		if _, err := admins[0].UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("rep"), Service: aws.String("big"), DesiredCount: aws.Int32(90)}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the service scaled in to 90, on the agents too", func() bool {
			return runningCount(t, ctx, admins[1], "big") == 90 && onAgents() == 92
		})
	})
}
