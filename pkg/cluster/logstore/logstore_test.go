package logstore

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/berth-dev/berth/pkg/cluster/auth"
)

const (
	testRegion = "us-east-1"
	testKeyID  = "BKTESTADMIN"
	testSecret = "s3cr3t"
	agentKeyID = "BKTESTAGENT"
)

// staticKeys is a two-key SecretLookup for tests.
type staticKeys struct{}

func (staticKeys) Lookup(id string) (auth.Key, string, error) {
	switch id {
	case testKeyID:
		return auth.Key{AccessKeyID: id, Role: auth.RoleAdmin}, testSecret, nil
	case agentKeyID:
		return auth.Key{AccessKeyID: id, Role: auth.RoleAgent}, testSecret, nil
	}
	return auth.Key{}, "", auth.ErrUnknownKey
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func newStore(t *testing.T, now func() time.Time) (*Store, string) {
	t.Helper()
	st, err := Open(Options{Path: filepath.Join(t.TempDir(), File), Region: testRegion, AccountID: "123456789012", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(st.Handler(&auth.Verifier{Keys: staticKeys{}, Region: testRegion, Services: []string{Service}}))
	t.Cleanup(srv.Close)
	return st, srv.URL
}

func client(url, keyID string) *cloudwatchlogs.Client {
	return cloudwatchlogs.New(cloudwatchlogs.Options{
		Region:       testRegion,
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider(keyID, testSecret, ""),
		HTTPClient:   awshttp.NewBuildableClient(),
	})
}

func events(start time.Time, n int, step time.Duration, prefix string) []types.InputLogEvent {
	out := make([]types.InputLogEvent, n)
	for i := range out {
		out[i] = types.InputLogEvent{Timestamp: aws.Int64(start.Add(time.Duration(i) * step).UnixMilli()), Message: aws.String(fmt.Sprintf("%s %d", prefix, i))}
	}
	return out
}

// The SDK drives the whole API: groups, streams, events read back with the
// GetLogEvents paginator and FilterLogEvents, retention, deletion.
func TestAPIThroughTheSDK(t *testing.T) {
	_, url := newStore(t, nil)
	c := client(url, testKeyID)
	ctx := context.Background()
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("/ecs/app")}); err != nil {
		t.Fatal(err)
	}
	var exists *types.ResourceAlreadyExistsException
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("/ecs/app")}); !errors.As(err, &exists) {
		t.Fatalf("second CreateLogGroup: %v, want ResourceAlreadyExistsException", err)
	}
	var notFound *types.ResourceNotFoundException
	if _, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("/nope"), LogStreamName: aws.String("s")}); !errors.As(err, &notFound) {
		t.Fatalf("CreateLogStream in a missing group: %v, want ResourceNotFoundException", err)
	}
	for _, s := range []string{"web/app/t1", "web/app/t2"} {
		if _, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("/ecs/app"), LogStreamName: aws.String(s)}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now().Add(-time.Hour)
	const n = 25000
	for i := 0; i < n; i += 10000 {
		evs := events(start.Add(time.Duration(i)*time.Millisecond), min(10000, n-i), time.Millisecond, "ok")
		for j := range evs {
			evs[j].Message = aws.String(fmt.Sprintf("line %d", i+j))
		}
		out, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("/ecs/app"), LogStreamName: aws.String("web/app/t1"), LogEvents: evs})
		if err != nil {
			t.Fatal(err)
		}
		if out.RejectedLogEventsInfo != nil {
			t.Fatalf("rejected %+v", out.RejectedLogEventsInfo)
		}
	}
	p := cloudwatchlogs.NewGetLogEventsPaginator(c, &cloudwatchlogs.GetLogEventsInput{
		LogGroupName: aws.String("/ecs/app"), LogStreamName: aws.String("web/app/t1"), StartFromHead: aws.Bool(true)},
		// CloudWatch ends a stream by repeating the forward token.
		func(o *cloudwatchlogs.GetLogEventsPaginatorOptions) { o.StopOnDuplicateToken = true })
	got := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			if want := fmt.Sprintf("line %d", got); aws.ToString(e.Message) != want {
				t.Fatalf("event %d: %q, want %q", got, aws.ToString(e.Message), want)
			}
			got++
		}
	}
	if got != n {
		t.Fatalf("read back %d events, want %d", got, n)
	}
	// The default (no startFromHead) returns the newest events.
	tail, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/ecs/app"), LogStreamName: aws.String("web/app/t1"), Limit: aws.Int32(2)})
	if err != nil || len(tail.Events) != 2 || aws.ToString(tail.Events[1].Message) != fmt.Sprintf("line %d", n-1) {
		t.Fatalf("tail: %v %+v", err, tail)
	}
	// The backward token pages further back, oldest first within a page.
	back, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/ecs/app"), LogStreamName: aws.String("web/app/t1"),
		Limit: aws.Int32(2), NextToken: tail.NextBackwardToken})
	if err != nil || len(back.Events) != 2 || aws.ToString(back.Events[0].Message) != fmt.Sprintf("line %d", n-4) ||
		aws.ToString(back.Events[1].Message) != fmt.Sprintf("line %d", n-3) {
		t.Fatalf("one page back from the tail: %v %+v", err, back)
	}

	fl, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/ecs/app"), FilterPattern: aws.String(`"line 2499" -24990`)})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range fl.Events {
		msgs = append(msgs, aws.ToString(e.Message))
		if aws.ToString(e.LogStreamName) != "web/app/t1" {
			t.Fatalf("filtered event from stream %q", aws.ToString(e.LogStreamName))
		}
	}
	// "line 2499" matches 2499 and 24990..24999; -24990 removes one.
	if len(msgs) != 10 || msgs[0] != "line 2499" {
		t.Fatalf("FilterLogEvents found %d: %v", len(msgs), msgs)
	}

	ds, err := c.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String("/ecs/app"), LogStreamNamePrefix: aws.String("web/app/")})
	if err != nil || len(ds.LogStreams) != 2 || aws.ToString(ds.LogStreams[0].LogStreamName) != "web/app/t1" || aws.ToInt64(ds.LogStreams[0].LastEventTimestamp) == 0 {
		t.Fatalf("DescribeLogStreams: %v %+v", err, ds)
	}
	var invalid *types.InvalidParameterException
	if _, err := c.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: aws.String("/ecs/app"), RetentionInDays: aws.Int32(2)}); !errors.As(err, &invalid) {
		t.Fatalf("retention 2 days: %v, want InvalidParameterException", err)
	}
	if _, err := c.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: aws.String("/ecs/app"), RetentionInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	dg, err := c.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("/ecs/")})
	if err != nil || len(dg.LogGroups) != 1 || aws.ToInt32(dg.LogGroups[0].RetentionInDays) != 7 || !strings.Contains(aws.ToString(dg.LogGroups[0].Arn), ":log-group:/ecs/app") {
		t.Fatalf("DescribeLogGroups: %v %+v", err, dg)
	}
	if _, err := c.DeleteLogGroup(ctx, &cloudwatchlogs.DeleteLogGroupInput{LogGroupName: aws.String("/ecs/app")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/ecs/app"), LogStreamName: aws.String("web/app/t1")}); !errors.As(err, &notFound) {
		t.Fatalf("GetLogEvents after DeleteLogGroup: %v, want ResourceNotFoundException", err)
	}
	// A group created again under the name starts empty: the deletion took
	// its streams and events along.
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("/ecs/app")}); err != nil {
		t.Fatal(err)
	}
	if ds, err := c.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String("/ecs/app")}); err != nil || len(ds.LogStreams) != 0 {
		t.Fatalf("streams of the recreated group: %v %+v", err, ds)
	}
	if _, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("/ecs/app"), LogStreamName: aws.String("web/app/t1")}); err != nil {
		t.Fatal(err)
	}
	if ev, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/ecs/app"), LogStreamName: aws.String("web/app/t1")}); err != nil || len(ev.Events) != 0 {
		t.Fatalf("events of the recreated stream: %v, %d events", err, len(ev.Events))
	}
}

// PutLogEvents enforces CloudWatch's batch rules and reports events too
// old, too new or past retention in rejectedLogEventsInfo.
func TestPutLogEventsValidation(t *testing.T) {
	clk := &clock{t: time.Now()}
	_, url := newStore(t, clk.now)
	c := client(url, agentKeyID)
	ctx := context.Background()
	c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g")})
	c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s")})
	now := clk.now()
	big := strings.Repeat("x", 262144-26)
	cases := []struct {
		name string
		evs  []types.InputLogEvent
		want string // substring of the InvalidParameterException, "" for success
	}{
		{"10,000 events pass", events(now, 10000, 0, "e"), ""},
		{"10,001 events fail", events(now, 10001, 0, "e"), "less than or equal to 10000"},
		{"an event of exactly 256 KiB with overhead passes", []types.InputLogEvent{{Timestamp: aws.Int64(now.UnixMilli()), Message: aws.String(big)}}, ""},
		{"one byte more fails", []types.InputLogEvent{{Timestamp: aws.Int64(now.UnixMilli()), Message: aws.String(big + "x")}}, "too large"},
		{"over 1,048,576 bytes counting 26 per event", func() []types.InputLogEvent {
			e := events(now, 5, 0, "")
			for i := range e {
				e[i].Message = aws.String(big[:209715-26+1])
			}
			return e
		}(), "Upload too large"},
		{"not chronological", []types.InputLogEvent{{Timestamp: aws.Int64(now.UnixMilli()), Message: aws.String("b")}, {Timestamp: aws.Int64(now.UnixMilli() - 1), Message: aws.String("a")}}, "chronological"},
		{"span over 24 h", []types.InputLogEvent{{Timestamp: aws.Int64(now.Add(-25 * time.Hour).UnixMilli()), Message: aws.String("a")}, {Timestamp: aws.Int64(now.UnixMilli()), Message: aws.String("b")}}, "24 hours"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), LogEvents: tc.evs})
			var ip *types.InvalidParameterException
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want success, got %v", err)
			case tc.want != "" && (!errors.As(err, &ip) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want InvalidParameterException containing %q, got %v", tc.want, err)
			}
		})
	}
	// Too old (over 14 days), fine, too new (3 h ahead).
	evs := []types.InputLogEvent{
		{Timestamp: aws.Int64(now.Add(-14*24*time.Hour - time.Hour).UnixMilli()), Message: aws.String("old")},
		{Timestamp: aws.Int64(now.Add(-14*24*time.Hour + time.Hour).UnixMilli()), Message: aws.String("ok")},
	}
	out, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), LogEvents: evs})
	if err != nil || out.RejectedLogEventsInfo == nil || aws.ToInt32(out.RejectedLogEventsInfo.TooOldLogEventEndIndex) != 0 || out.RejectedLogEventsInfo.TooNewLogEventStartIndex != nil {
		t.Fatalf("too old: %v %+v", err, out)
	}
	evs = []types.InputLogEvent{
		{Timestamp: aws.Int64(now.UnixMilli()), Message: aws.String("ok")},
		{Timestamp: aws.Int64(now.Add(3 * time.Hour).UnixMilli()), Message: aws.String("new")},
	}
	out, err = c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), LogEvents: evs})
	if err != nil || out.RejectedLogEventsInfo == nil || aws.ToInt32(out.RejectedLogEventsInfo.TooNewLogEventStartIndex) != 1 {
		t.Fatalf("too new: %v %+v", err, out)
	}
	// Agent keys cannot delete.
	var denied *types.AccessDeniedException
	if _, err := c.DeleteLogGroup(ctx, &cloudwatchlogs.DeleteLogGroupInput{LogGroupName: aws.String("g")}); !errors.As(err, &denied) && !strings.Contains(fmt.Sprint(err), "AccessDenied") {
		t.Fatalf("agent DeleteLogGroup: %v, want AccessDenied", err)
	}
}

// Retention deletes events older than the group's retention; unsigned
// requests are refused.
func TestRetentionAndAuth(t *testing.T) {
	clk := &clock{t: time.Now()}
	st, url := newStore(t, clk.now)
	c := client(url, testKeyID)
	ctx := context.Background()
	c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g")})
	c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s")})
	start := clk.now()
	for i := 0; i < 3; i++ {
		ev := []types.InputLogEvent{{Timestamp: aws.Int64(start.Add(time.Duration(i-2) * 24 * time.Hour).Add(-time.Minute).UnixMilli()), Message: aws.String(fmt.Sprintf("day %d", i))}}
		if _, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), LogEvents: ev}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: aws.String("g"), RetentionInDays: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	n, err := st.SweepRetention()
	if err != nil || n != 2 {
		t.Fatalf("sweep deleted %d (%v), want the 2 events older than a day", n, err)
	}
	out, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), StartFromHead: aws.Bool(true)})
	if err != nil || len(out.Events) != 1 || aws.ToString(out.Events[0].Message) != "day 2" {
		t.Fatalf("after sweep: %v %+v", err, out)
	}
	anon := cloudwatchlogs.New(cloudwatchlogs.Options{Region: testRegion, BaseEndpoint: aws.String(url), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider("BKNOPE", "x", "")})
	if _, err := anon.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{}); err == nil {
		t.Fatal("an unknown key was accepted")
	}
}

// TestFilterLogEventsPagesAcrossStreams pages FilterLogEvents with a small
// limit over three streams whose events interleave and share timestamps:
// the pages, joined, must be every event in time order (ties in stream
// order), each once, although the store holds only what a page needs.
func TestFilterLogEventsPagesAcrossStreams(t *testing.T) {
	_, url := newStore(t, nil)
	c := client(url, testKeyID)
	ctx := context.Background()
	group := aws.String("/ecs/filter")
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: group}); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	streams := []string{"a", "b", "c"}
	type ev struct {
		ts     int64
		stream int
		msg    string
	}
	var want []ev
	for si, s := range streams {
		if _, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: group, LogStreamName: aws.String(s)}); err != nil {
			t.Fatal(err)
		}
		// Stream i has events every (i+1) ms: many timestamps are shared.
		evs := events(start, 40, time.Duration(si+1)*time.Millisecond, s)
		if _, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: group, LogStreamName: aws.String(s), LogEvents: evs}); err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			want = append(want, ev{*e.Timestamp, si, *e.Message})
		}
	}
	sort.SliceStable(want, func(i, j int) bool { return want[i].ts < want[j].ts })
	var got []string
	var token *string
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("FilterLogEvents did not stop paging")
		}
		out, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: group, Limit: aws.Int32(7), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range out.Events {
			got = append(got, aws.ToString(e.Message))
		}
		if token = out.NextToken; token == nil {
			break
		}
	}
	if len(got) != len(want) {
		t.Fatalf("paged %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i].msg {
			t.Fatalf("event %d: %q, want %q (time order, ties in stream order)", i, got[i], want[i].msg)
		}
	}
}
