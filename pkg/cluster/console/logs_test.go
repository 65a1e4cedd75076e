package console_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwltypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/chromedp/chromedp"

	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// TestBrowserTaskLogs: a task's page shows its container's log lines from
// the log store, where the agent's awslogs driver puts them, and new lines
// arrive without a reload; a line with markup shows as text.
func TestBrowserTaskLogs(t *testing.T) {
	path := requireBrowser(t)
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("logged"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("web"), Image: aws.String("busybox"), Memory: aws.Int32(64),
			LogConfiguration: &types.LogConfiguration{LogDriver: types.LogDriverAwslogs, Options: map[string]string{
				"awslogs-group": "/ecs/logged", "awslogs-region": testRegion, "awslogs-stream-prefix": "logged"}}}}}); err != nil {
		t.Fatalf("RegisterTaskDefinition: %v", err)
	}
	run, err := f.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("web"), TaskDefinition: aws.String("logged")})
	if err != nil || len(run.Tasks) != 1 {
		t.Fatalf("RunTask: %v %+v", err, run)
	}
	arn := aws.ToString(run.Tasks[0].TaskArn)
	taskID := arn[strings.LastIndex(arn, "/")+1:]

	// The agent's awslogs driver: group, stream <prefix>/<container>/<task id>, lines.
	group, stream := "/ecs/logged", "logged/web/"+taskID
	put := func(lines ...string) { f.putLogs(t, group, stream, lines...) }
	put("listening on :8080", `<script>window.pwned=1</script>`)

	bctx := browser(t, path)
	signIn(t, bctx, f.url, f.adminID, f.adminKey)
	if err := chromedp.Do(bctx, chromedp.Navigate(f.url+"/console/clusters/web/tasks/"+taskID),
		chromedp.WaitVisible(chromedp.CSS(`pre.log[data-container="web"]`))); err != nil {
		t.Fatalf("open the task page: %v", err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.berthNoReload = true`)); err != nil {
		t.Fatal(err)
	}
	if err := waitContains(bctx, `pre.log[data-container="web"]`, "listening on :8080", `<script>window.pwned=1</script>`); err != nil {
		t.Fatal(err)
	}
	put("GET /healthz 200")
	if err := waitContains(bctx, `pre.log[data-container="web"]`, "GET /healthz 200"); err != nil {
		t.Fatal(err)
	}
	state, err := chromedp.Run(bctx, chromedp.Evaluate[string](`String(window.berthNoReload) + " " + String(window.pwned)`))
	if err != nil || state != "true undefined" {
		t.Errorf("after the new line: reload marker and injected script = %q (%v), want \"true undefined\"", state, err)
	}
}

// putLogs puts lines into a log stream as the agent's awslogs driver
// does, with an agent key, creating the group and stream the first time.
func (f *fixture) putLogs(t *testing.T, group, stream string, lines ...string) {
	t.Helper()
	ctx := context.Background()
	if f.logs == nil {
		agentID, agentSecret := f.newKey(t, auth.RoleAgent)
		f.logs = cloudwatchlogs.New(cloudwatchlogs.Options{Region: testRegion, BaseEndpoint: aws.String(f.url),
			Credentials: credentials.NewStaticCredentialsProvider(agentID, agentSecret, ""),
			HTTPClient:  awshttp.NewBuildableClient(), Retryer: aws.NopRetryer{}})
	}
	var exists *cwltypes.ResourceAlreadyExistsException
	if _, err := f.logs.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)}); err != nil && !errors.As(err, &exists) {
		t.Fatalf("CreateLogGroup: %v", err)
	}
	if _, err := f.logs.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group),
		LogStreamName: aws.String(stream)}); err != nil && !errors.As(err, &exists) {
		t.Fatalf("CreateLogStream: %v", err)
	}
	var evs []cwltypes.InputLogEvent
	for _, l := range lines {
		evs = append(evs, cwltypes.InputLogEvent{Message: aws.String(l), Timestamp: aws.Int64(time.Now().UnixMilli())})
	}
	if _, err := f.logs.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream),
		LogEvents: evs}); err != nil {
		t.Fatalf("PutLogEvents: %v", err)
	}
}
