package ecsapi

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	wire "github.com/berth-dev/berth/pkg/api"
)

func TestEncodeOutputUsesECSNamesAndEpochSeconds(t *testing.T) {
	out := &ecs.DescribeTasksOutput{Tasks: []types.Task{{
		TaskArn:   aws.String("arn:aws:ecs:us-east-1:1:task/c/abc"),
		CreatedAt: aws.Time(time.Unix(1700000000, 500000000)),
		Containers: []types.Container{{Name: aws.String("web"), NetworkBindings: []types.NetworkBinding{
			{HostPort: aws.Int32(32768), BindIP: aws.String("0.0.0.0")},
		}}},
	}}, Failures: []types.Failure{}}
	b, err := EncodeOutput(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"taskArn":"arn:aws:ecs:us-east-1:1:task/c/abc"`, `"createdAt":1700000000.5`, `"hostPort":32768`, `"bindIP":"0.0.0.0"`, `"failures":[]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("response %s lacks %s", b, want)
		}
	}
}

func TestDecodeInput(t *testing.T) {
	var in ecs.RunTaskInput
	if err := decodeInput([]byte(`{"cluster":"lab","taskDefinition":"web:1","count":3,"overrides":{"containerOverrides":[{"name":"web","environment":[{"name":"A","value":"b"}]}]}}`), &in); err != nil {
		t.Fatal(err)
	}
	if aws.ToString(in.Cluster) != "lab" || aws.ToInt32(in.Count) != 3 || aws.ToString(in.Overrides.ContainerOverrides[0].Environment[0].Value) != "b" {
		t.Fatalf("decoded %+v", in)
	}
	for _, bad := range []string{`{"count":"x"}`, `[]`, `{"cluster":"a"} {}`, `{"cluster":`} {
		if err := decodeInput([]byte(bad), &in); !errors.Is(err, errSerialization) {
			t.Errorf("decodeInput(%s) = %v, want errSerialization", bad, err)
		}
	}
	var ts struct {
		At *wire.ECSEpochTime `json:"at"`
	}
	if err := decodeInput([]byte(`{"at":1700000000.25}`), &ts); err != nil || !ts.At.Time.Equal(time.Unix(1700000000, 250000000)) {
		t.Fatalf("epoch time = %v, %v", ts.At, err)
	}
}

func TestEncodeOutputKeepsZeroCounters(t *testing.T) {
	out := &ecs.DescribeClustersOutput{Clusters: []types.Cluster{{ClusterName: aws.String("lab"), RunningTasksCount: 2}}}
	b, err := EncodeOutput(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"runningTasksCount":2`, `"pendingTasksCount":0`, `"registeredContainerInstancesCount":0`, `"clusterName":"lab"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("response %s lacks %s", b, want)
		}
	}
	ci := &ecs.DescribeContainerInstancesOutput{ContainerInstances: []types.ContainerInstance{{RegisteredAt: aws.Time(time.Unix(1700000000, 250000000))}}}
	b, err = EncodeOutput(context.Background(), ci)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"agentConnected":false`, `"runningTasksCount":0`, `"registeredAt":1700000000.25`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("response %s lacks %s", b, want)
		}
	}
}
