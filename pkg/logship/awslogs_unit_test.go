package logship

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go"
)

// fakeCWL is a CloudWatchLogsAPI for the driver's pure logic: it records
// requests, checks CloudWatch's limits on each, and plays scripted errors.
type fakeCWL struct {
	mu       sync.Mutex
	t        *testing.T
	puts     [][]types.InputLogEvent
	streams  int
	script   []error // errors returned by successive PutLogEvents calls
	rejected *types.RejectedLogEventsInfo
}

var _ CloudWatchLogsAPI = (*fakeCWL)(nil)

func (f *fakeCWL) CreateLogGroup(context.Context, *cloudwatchlogs.CreateLogGroupInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogGroupOutput, error) {
	return &cloudwatchlogs.CreateLogGroupOutput{}, nil
}

func (f *fakeCWL) CreateLogStream(context.Context, *cloudwatchlogs.CreateLogStreamInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogStreamOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streams++
	return &cloudwatchlogs.CreateLogStreamOutput{}, nil
}

func (f *fakeCWL) PutLogEvents(_ context.Context, in *cloudwatchlogs.PutLogEventsInput, _ ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutLogEventsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.script) > 0 {
		err := f.script[0]
		f.script = f.script[1:]
		if err != nil {
			return nil, err
		}
	}
	size := 0
	for i, e := range in.LogEvents {
		size += len(aws.ToString(e.Message)) + 26
		if len(aws.ToString(e.Message))+26 > 262144 {
			f.t.Errorf("event of %d bytes", len(aws.ToString(e.Message)))
		}
		if i > 0 && aws.ToInt64(e.Timestamp) < aws.ToInt64(in.LogEvents[i-1].Timestamp) {
			f.t.Errorf("events out of time order")
		}
	}
	if len(in.LogEvents) > 10000 || size > 1048576 {
		f.t.Errorf("request of %d events, %d bytes", len(in.LogEvents), size)
	}
	f.puts = append(f.puts, in.LogEvents)
	return &cloudwatchlogs.PutLogEventsOutput{RejectedLogEventsInfo: f.rejected}, nil
}

func (f *fakeCWL) GetLogEvents(context.Context, *cloudwatchlogs.GetLogEventsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error) {
	return &cloudwatchlogs.GetLogEventsOutput{}, nil
}

func (f *fakeCWL) messages() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.puts {
		for _, e := range p {
			out = append(out, aws.ToString(e.Message))
		}
	}
	return out
}

// Throttling and a deleted stream are retried (the stream recreated)
// without losing or repeating messages; requests respect the limits and
// keep time order even when stderr was stamped before earlier stdout.
func TestAWSLogsRetriesThrottlingAndRecreatesStream(t *testing.T) {
	throttle := &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}
	f := &fakeCWL{t: t, script: []error{throttle, throttle, &types.ResourceNotFoundException{Message: aws.String("gone")}}}
	d, err := NewAWSLogs(AWSLogsOptions{Group: "g", Stream: "s", Client: f})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var msgs []Message
	for i := 0; i < 25000; i++ {
		ts := now.Add(time.Duration(i) * time.Millisecond)
		if i%7 == 3 {
			ts = ts.Add(-5 * time.Millisecond) // stamped a little before its predecessor
		}
		msgs = append(msgs, Message{Line: []byte(fmt.Sprintf("line %07d %s", i, strings.Repeat("x", 40))), Time: ts})
	}
	done := 0
	for attempts := 0; done < len(msgs); attempts++ {
		if attempts > 10 {
			t.Fatal("no progress")
		}
		n, err := d.Ship(context.Background(), msgs[done:])
		done += n
		if err == nil && done != len(msgs) {
			t.Fatalf("Ship returned no error after delivering %d of %d", done, len(msgs))
		}
	}
	got := f.messages()
	if len(got) != len(msgs) {
		t.Fatalf("%d messages delivered, want %d", len(got), len(msgs))
	}
	for i := range got {
		if got[i] != string(msgs[i].Line) {
			t.Fatalf("message %d: %q, want %q", i, got[i], msgs[i].Line)
		}
	}
	if f.streams != 2 {
		t.Fatalf("stream created %d times, want 2 (again after ResourceNotFound)", f.streams)
	}
}

// Events CloudWatch rejects as too old or too new are logged, not retried.
func TestAWSLogsRejectedEventsAreLogged(t *testing.T) {
	var buf strings.Builder
	f := &fakeCWL{t: t, rejected: &types.RejectedLogEventsInfo{TooOldLogEventEndIndex: aws.Int32(1)}}
	d, _ := NewAWSLogs(AWSLogsOptions{Group: "g", Stream: "s", Client: f, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	n, err := d.Ship(context.Background(), []Message{{Line: []byte("a"), Time: time.Now()}, {Line: []byte("b"), Time: time.Now()}})
	if n != 2 || err != nil {
		t.Fatalf("Ship = %d, %v", n, err)
	}
	if !strings.Contains(buf.String(), "rejected events") || !strings.Contains(buf.String(), "tooOldEnd=1") {
		t.Fatalf("log lacks the rejection:\n%s", buf.String())
	}
}
