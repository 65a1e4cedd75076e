package logstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go"
)

// wantAPIError fails unless err is the AWS error code whose message
// mentions each of words.
func wantAPIError(t *testing.T, what string, err error, code string, words ...string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Errorf("%s: want %s, got %v", what, code, err)
		return
	}
	for _, w := range words {
		if !strings.Contains(ae.ErrorMessage(), w) {
			t.Errorf("%s: message %q does not name %s", what, ae.ErrorMessage(), w)
		}
	}
}

func groupNames(gs []types.LogGroup) []string {
	var out []string
	for _, g := range gs {
		out = append(out, aws.ToString(g.LogGroupName))
	}
	return out
}

// TestDescribeLogGroupsFilters: logGroupNamePrefix, logGroupNamePattern (a
// case-sensitive substring) and logGroupIdentifiers (names and ARNs; other
// accounts' and missing groups are left out) select groups, page with
// limit, and exclude each other as in CloudWatch Logs; logGroupClass
// STANDARD selects every group, the others none; each group carries its
// logGroupArn and retentionInDays.
func TestDescribeLogGroupsFilters(t *testing.T) {
	_, url := newStore(t, nil)
	c := client(url, testKeyID)
	ctx := context.Background()
	for _, g := range []string{"/ecs/app", "/ecs/DataLogs", "aws/DataLogs", "GroupDataLogs", "datalogs", "other"} {
		if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(g)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: aws.String("other"), RetentionInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	arn := "arn:aws:logs:" + testRegion + ":123456789012:log-group:"
	all := func(in *cloudwatchlogs.DescribeLogGroupsInput) []string {
		t.Helper()
		var names []string
		p := cloudwatchlogs.NewDescribeLogGroupsPaginator(c, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("DescribeLogGroups %+v: %v", in, err)
			}
			names = append(names, groupNames(out.LogGroups)...)
		}
		return names
	}
	for _, tc := range []struct {
		name string
		in   cloudwatchlogs.DescribeLogGroupsInput
		want []string
	}{
		{"prefix", cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("/ecs/")}, []string{"/ecs/DataLogs", "/ecs/app"}},
		{"pattern, one per page", cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePattern: aws.String("DataLogs"), Limit: aws.Int32(1)},
			[]string{"/ecs/DataLogs", "GroupDataLogs", "aws/DataLogs"}},
		{"identifiers", cloudwatchlogs.DescribeLogGroupsInput{LogGroupIdentifiers: []string{"other", arn + "/ecs/app",
			"arn:aws:logs:" + testRegion + ":999999999999:log-group:datalogs", "missing"}}, []string{"/ecs/app", "other"}},
		{"class STANDARD", cloudwatchlogs.DescribeLogGroupsInput{LogGroupClass: types.LogGroupClassStandard, LogGroupNamePrefix: aws.String("d")}, []string{"datalogs"}},
		{"class INFREQUENT_ACCESS", cloudwatchlogs.DescribeLogGroupsInput{LogGroupClass: types.LogGroupClassInfrequentAccess}, nil},
	} {
		if got := all(&tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	out, err := c.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupIdentifiers: []string{"other"}})
	if err != nil || len(out.LogGroups) != 1 {
		t.Fatalf("DescribeLogGroups other: %v", err)
	}
	if g := out.LogGroups[0]; aws.ToString(g.LogGroupArn) != arn+"other" || aws.ToString(g.Arn) != arn+"other:*" ||
		aws.ToInt32(g.RetentionInDays) != 7 || g.LogGroupClass != types.LogGroupClassStandard {
		t.Errorf("group other = arn %s logGroupArn %s retention %d class %s", aws.ToString(g.Arn), aws.ToString(g.LogGroupArn), aws.ToInt32(g.RetentionInDays), g.LogGroupClass)
	}
	for _, tc := range []struct {
		name  string
		in    cloudwatchlogs.DescribeLogGroupsInput
		words []string
	}{
		{"prefix and pattern", cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("a"), LogGroupNamePattern: aws.String("b")}, []string{"logGroupNamePrefix", "logGroupNamePattern"}},
		{"identifiers and prefix", cloudwatchlogs.DescribeLogGroupsInput{LogGroupIdentifiers: []string{"other"}, LogGroupNamePrefix: aws.String("o")}, []string{"logGroupIdentifiers"}},
		{"limit over 50", cloudwatchlogs.DescribeLogGroupsInput{Limit: aws.Int32(51)}, []string{"limit"}},
		{"pattern with a space", cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePattern: aws.String("a b")}, []string{"logGroupNamePattern"}},
		{"identifier ARN with :*", cloudwatchlogs.DescribeLogGroupsInput{LogGroupIdentifiers: []string{arn + "other:*"}}, []string{"logGroupIdentifiers"}},
		{"cross-account", cloudwatchlogs.DescribeLogGroupsInput{IncludeLinkedAccounts: aws.Bool(true)}, []string{"includeLinkedAccounts"}},
	} {
		_, err := c.DescribeLogGroups(ctx, &tc.in)
		wantAPIError(t, tc.name, err, errInvalid, tc.words...)
	}
}

// TestLogGroupIdentifier: GetLogEvents, FilterLogEvents and
// DescribeLogStreams take the group as logGroupIdentifier, a name or an
// ARN; with logGroupName as well, or an ARN ending in :*, they are
// refused; another account's ARN names no group here.
func TestLogGroupIdentifier(t *testing.T) {
	_, url := newStore(t, nil)
	c := client(url, testKeyID)
	ctx := context.Background()
	c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("/ecs/app")})
	c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("/ecs/app"), LogStreamName: aws.String("s")})
	if _, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("/ecs/app"), LogStreamName: aws.String("s"),
		LogEvents: events(time.Now(), 3, time.Millisecond, "line")}); err != nil {
		t.Fatal(err)
	}
	arn := "arn:aws:logs:" + testRegion + ":123456789012:log-group:/ecs/app"
	for _, id := range []string{"/ecs/app", arn} {
		ge, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupIdentifier: aws.String(id), LogStreamName: aws.String("s"), StartFromHead: aws.Bool(true)})
		if err != nil || len(ge.Events) != 3 || aws.ToString(ge.Events[2].Message) != "line 2" {
			t.Errorf("GetLogEvents logGroupIdentifier %s: %v, %d events", id, err, len(ge.Events))
		}
		fe, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupIdentifier: aws.String(id), FilterPattern: aws.String("2")})
		if err != nil || len(fe.Events) != 1 {
			t.Errorf("FilterLogEvents logGroupIdentifier %s: %v %+v", id, err, fe)
		}
		ds, err := c.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupIdentifier: aws.String(id)})
		if err != nil || len(ds.LogStreams) != 1 {
			t.Errorf("DescribeLogStreams logGroupIdentifier %s: %v %+v", id, err, ds)
		}
	}
	_, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupIdentifier: aws.String(arn), LogGroupName: aws.String("/ecs/app"), LogStreamName: aws.String("s")})
	wantAPIError(t, "name and identifier", err, errInvalid, "LogGroupName", "LogGroupIdentifier")
	_, err = c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupIdentifier: aws.String(arn + ":*"), LogStreamName: aws.String("s")})
	wantAPIError(t, "ARN with :*", err, errInvalid, "logGroupIdentifier")
	_, err = c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupIdentifier: aws.String(strings.Replace(arn, "123456789012", "999999999999", 1))})
	wantAPIError(t, "another account's ARN", err, errNotFound)
	_, err = c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/ecs/app"), StartFromHead: aws.Bool(false)})
	wantAPIError(t, "FilterLogEvents startFromHead false", err, errInvalid, "startFromHead")
}

// TestDeleteLogStream: the stream and its events go; a stream created
// again under the name is empty; deleting a missing stream is
// ResourceNotFoundException; an agent key may not delete.
func TestDeleteLogStream(t *testing.T) {
	_, url := newStore(t, nil)
	c := client(url, testKeyID)
	ctx := context.Background()
	c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g")})
	for _, s := range []string{"s", "keep"} {
		c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("g"), LogStreamName: aws.String(s)})
		if _, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String(s), LogEvents: events(time.Now(), 5, time.Millisecond, s)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := client(url, agentKeyID).DeleteLogStream(ctx, &cloudwatchlogs.DeleteLogStreamInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s")})
	wantAPIError(t, "agent key", err, errDenied)
	if _, err := c.DeleteLogStream(ctx, &cloudwatchlogs.DeleteLogStreamInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	ds, err := c.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String("g")})
	if err != nil || len(ds.LogStreams) != 1 || aws.ToString(ds.LogStreams[0].LogStreamName) != "keep" {
		t.Fatalf("streams after delete: %v %+v", err, ds)
	}
	_, err = c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s")})
	wantAPIError(t, "GetLogEvents of the deleted stream", err, errNotFound)
	c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s")})
	ge, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s")})
	if err != nil || len(ge.Events) != 0 {
		t.Errorf("a stream created again holds %d old events (%v)", len(ge.Events), err)
	}
	fe, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("g")})
	if err != nil || len(fe.Events) != 5 {
		t.Errorf("the other stream's events: %d (%v), want 5", len(fe.Events), err)
	}
	_, err = c.DeleteLogStream(ctx, &cloudwatchlogs.DeleteLogStreamInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("nope")})
	wantAPIError(t, "missing stream", err, errNotFound)
}

// TestLogGroupTags: tags given at CreateLogGroup, added and removed with
// TagResource/UntagResource by the group's ARN (with or without :*) and
// with the older TagLogGroup/UntagLogGroup by name, read back by both
// List calls; AWS's limits and key rules; tags go with the group.
func TestLogGroupTags(t *testing.T) {
	_, url := newStore(t, nil)
	c := client(url, testKeyID)
	ctx := context.Background()
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("/ecs/app"), Tags: map[string]string{"env": "lab"}}); err != nil {
		t.Fatal(err)
	}
	arn := "arn:aws:logs:" + testRegion + ":123456789012:log-group:/ecs/app"
	tags := func() (map[string]string, map[string]string) {
		t.Helper()
		a, err := c.ListTagsForResource(ctx, &cloudwatchlogs.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.ListTagsLogGroup(ctx, &cloudwatchlogs.ListTagsLogGroupInput{LogGroupName: aws.String("/ecs/app")})
		if err != nil {
			t.Fatal(err)
		}
		return a.Tags, b.Tags
	}
	same := func(step string, want map[string]string) {
		t.Helper()
		a, b := tags()
		if fmt.Sprint(a) != fmt.Sprint(want) || fmt.Sprint(b) != fmt.Sprint(want) {
			t.Fatalf("%s: ListTagsForResource %v, ListTagsLogGroup %v, want %v", step, a, b, want)
		}
	}
	same("created", map[string]string{"env": "lab"})
	if _, err := c.TagResource(ctx, &cloudwatchlogs.TagResourceInput{ResourceArn: aws.String(arn + ":*"), Tags: map[string]string{"team": "a", "env": "prod"}}); err != nil {
		t.Fatal(err)
	}
	same("TagResource", map[string]string{"env": "prod", "team": "a"})
	if _, err := c.UntagResource(ctx, &cloudwatchlogs.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"team", "absent"}}); err != nil {
		t.Fatal(err)
	}
	same("UntagResource", map[string]string{"env": "prod"})
	if _, err := c.TagLogGroup(ctx, &cloudwatchlogs.TagLogGroupInput{LogGroupName: aws.String("/ecs/app"), Tags: map[string]string{"cost": "1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagLogGroup(ctx, &cloudwatchlogs.UntagLogGroupInput{LogGroupName: aws.String("/ecs/app"), Tags: []string{"env"}}); err != nil {
		t.Fatal(err)
	}
	same("TagLogGroup/UntagLogGroup", map[string]string{"cost": "1"})

	many := map[string]string{}
	for i := range 50 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	_, err := c.TagResource(ctx, &cloudwatchlogs.TagResourceInput{ResourceArn: aws.String(arn), Tags: many})
	wantAPIError(t, "51 tags by TagResource", err, errTooManyTags)
	_, err = c.TagLogGroup(ctx, &cloudwatchlogs.TagLogGroupInput{LogGroupName: aws.String("/ecs/app"), Tags: many})
	wantAPIError(t, "51 tags by TagLogGroup", err, errInvalid)
	_, err = c.TagResource(ctx, &cloudwatchlogs.TagResourceInput{ResourceArn: aws.String(arn), Tags: map[string]string{"aws:owner": "x"}})
	wantAPIError(t, "aws: key", err, errInvalid, "aws:")
	_, err = c.TagResource(ctx, &cloudwatchlogs.TagResourceInput{ResourceArn: aws.String(arn), Tags: map[string]string{"k": "bad\x01value"}})
	wantAPIError(t, "bad value", err, errInvalid, "tags")
	_, err = c.TagResource(ctx, &cloudwatchlogs.TagResourceInput{ResourceArn: aws.String(arn + ":log-stream:s"), Tags: map[string]string{"k": "v"}})
	wantAPIError(t, "a stream's ARN", err, errInvalid, "log groups")
	_, err = c.ListTagsForResource(ctx, &cloudwatchlogs.ListTagsForResourceInput{ResourceArn: aws.String(arn + "x")})
	wantAPIError(t, "a missing group's ARN", err, errNotFound)
	_, err = client(url, agentKeyID).TagResource(ctx, &cloudwatchlogs.TagResourceInput{ResourceArn: aws.String(arn), Tags: map[string]string{"k": "v"}})
	wantAPIError(t, "agent key", err, errDenied)
	same("after the refusals", map[string]string{"cost": "1"})

	c.DeleteLogGroup(ctx, &cloudwatchlogs.DeleteLogGroupInput{LogGroupName: aws.String("/ecs/app")})
	c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("/ecs/app")})
	same("group created again", map[string]string{})
	_, err = c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g2"), Tags: many, LogGroupClass: types.LogGroupClassStandard})
	if err != nil {
		t.Errorf("CreateLogGroup with 50 tags and class STANDARD: %v", err)
	}
	_, err = c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g3"), LogGroupClass: types.LogGroupClassInfrequentAccess})
	wantAPIError(t, "class INFREQUENT_ACCESS", err, errInvalid, "logGroupClass")
	_, err = c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g:4")})
	wantAPIError(t, "a name with ':'", err, errInvalid, "logGroupName")
}

// TestRetentionPolicy: only AWS's retentionInDays values are taken; a
// PutRetentionPolicy without one is refused, not taken as "none";
// DeleteRetentionPolicy removes it; the background worker (RunRetention,
// which pkg/cluster runs on every replica) deletes events past it.
func TestRetentionPolicy(t *testing.T) {
	clk := &clock{t: time.Now()}
	st, url := newStore(t, clk.now)
	c := client(url, testKeyID)
	ctx := context.Background()
	c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g")})
	c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s")})
	old := clk.now().Add(-3 * 24 * time.Hour)
	if _, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s"),
		LogEvents: append(events(old, 2, time.Second, "old"), events(clk.now(), 1, time.Second, "new")...)}); err == nil {
		t.Fatal("a batch spanning 3 days was accepted")
	}
	for _, evs := range [][]types.InputLogEvent{events(old, 2, time.Second, "old"), events(clk.now(), 1, time.Second, "new")} {
		if _, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), LogEvents: evs}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: aws.String("g"), RetentionInDays: aws.Int32(2)})
	wantAPIError(t, "2 days", err, errInvalid, "retentionInDays")
	// The SDK checks required members itself; the CLI and raw clients do not.
	if code, msg := rawCall(t, url, "PutRetentionPolicy", `{"logGroupName":"g"}`); code != errInvalid || !strings.Contains(msg, "retentionInDays") {
		t.Errorf("PutRetentionPolicy without retentionInDays: %s %q, want %s naming it", code, msg, errInvalid)
	}
	retention := func() int32 {
		out, err := c.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("g")})
		if err != nil || len(out.LogGroups) != 1 {
			t.Fatalf("DescribeLogGroups: %v", err)
		}
		return aws.ToInt32(out.LogGroups[0].RetentionInDays)
	}
	for _, days := range []int32{1, 3653} {
		if _, err := c.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: aws.String("g"), RetentionInDays: aws.Int32(days)}); err != nil {
			t.Fatal(err)
		}
		if got := retention(); got != days {
			t.Errorf("retentionInDays %d after PutRetentionPolicy %d", got, days)
		}
	}
	if _, err := c.DeleteRetentionPolicy(ctx, &cloudwatchlogs.DeleteRetentionPolicyInput{LogGroupName: aws.String("g")}); err != nil || retention() != 0 {
		t.Fatalf("DeleteRetentionPolicy: %v, retention %d", err, retention())
	}
	if _, err := c.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: aws.String("g"), RetentionInDays: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.RunRetention(wctx, 10*time.Millisecond, func(err error) { t.Error(err) })
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ge, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), StartFromHead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if len(ge.Events) == 1 && aws.ToString(ge.Events[0].Message) == "new 0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the retention worker left %d events, want only the new one", len(ge.Events))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
