package logstore_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// Mounted on the cluster endpoint, the log store serves the CloudWatch
// Logs API beside ECS on the same port, with keys from the endpoint's
// keyring.
func TestMountedOnTheClusterEndpoint(t *testing.T) {
	dir := t.TempDir()
	ep, err := cluster.Open(context.Background(), cluster.Options{Region: "lab", AccountID: "000000000000", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	srv := httptest.NewServer(ep.Handler())
	defer srv.Close()
	id, secret, err := ep.Keys().Create(auth.RoleAgent, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := cloudwatchlogs.New(cloudwatchlogs.Options{Region: "lab", BaseEndpoint: aws.String(srv.URL), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")})
	ctx := context.Background()
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("p/web/t1")}); err != nil {
		t.Fatal(err)
	}
	evs := make([]types.InputLogEvent, 2000)
	for i := range evs {
		evs[i] = types.InputLogEvent{Timestamp: aws.Int64(time.Now().UnixMilli()), Message: aws.String(fmt.Sprintf("line %d", i))}
	}
	if _, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("p/web/t1"), LogEvents: evs}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("p/web/t1"), StartFromHead: aws.Bool(true)})
	if err != nil || len(out.Events) != 2000 || aws.ToString(out.Events[1999].Message) != "line 1999" {
		t.Fatalf("read back: %v, %d events", err, len(out.Events))
	}
}
