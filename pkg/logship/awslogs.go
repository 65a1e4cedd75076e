package logship

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// CloudWatch Logs limits the awslogs driver respects.
const (
	cwMaxEvents      = 10000
	cwMaxBatchBytes  = 1048576
	cwPerEventBytes  = 26
	cwMaxEventBytes  = 262144 - cwPerEventBytes // message bytes per event
	cwMaxBatchSpan   = 24 * time.Hour
	awslogsFlushDflt = 5 * time.Second
)

// CloudWatchLogsAPI is the part of the CloudWatch Logs client the awslogs
// driver uses; *cloudwatchlogs.Client implements it.
type CloudWatchLogsAPI interface {
	CreateLogGroup(ctx context.Context, in *cloudwatchlogs.CreateLogGroupInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogGroupOutput, error)
	CreateLogStream(ctx context.Context, in *cloudwatchlogs.CreateLogStreamInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogStreamOutput, error)
	PutLogEvents(ctx context.Context, in *cloudwatchlogs.PutLogEventsInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutLogEventsOutput, error)
	GetLogEvents(ctx context.Context, in *cloudwatchlogs.GetLogEventsInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error)
}

var _ CloudWatchLogsAPI = (*cloudwatchlogs.Client)(nil)

// AWSLogsOptions are the awslogs driver's settings, parsed from the
// container's log options by NewAWSLogs.
type AWSLogsOptions struct {
	Group, Stream     string
	CreateGroup       bool
	Multiline         *regexp.Regexp
	FlushInterval     time.Duration
	MaxBufferedEvents int
	// Client talks to CloudWatch Logs.
	Client CloudWatchLogsAPI
	Logger *slog.Logger
}

// awsLogs ships to one CloudWatch Logs stream.
type awsLogs struct {
	o AWSLogsOptions
	// streamReady is set once the group and stream are known to exist.
	streamReady bool
	// lastTS keeps event timestamps non-decreasing in file order, so the
	// destination's order (by timestamp) is the file's order even when
	// stdout and stderr were stamped a little out of step.
	lastTS int64
}

var (
	_ Driver       = (*awsLogs)(nil)
	_ Reconciler   = (*awsLogs)(nil)
	_ BatchLimiter = (*awsLogs)(nil)
)

// NewAWSLogsClient builds a CloudWatch Logs client. endpoint may be empty
// (AWS's own); the HTTP client is the SDK's buildable client because
// AWS_CA_BUNDLE makes the SDK refuse a plain *http.Client.
func NewAWSLogsClient(region, endpoint string, creds aws.CredentialsProvider) *cloudwatchlogs.Client {
	return cloudwatchlogs.New(cloudwatchlogs.Options{
		Region:      region,
		Credentials: creds,
		HTTPClient:  awshttp.NewBuildableClient().WithTimeout(30 * time.Second),
		// The Shipper retries with its own backoff and never drops;
		// one SDK retry covers a dropped connection.
		RetryMaxAttempts: 2,
	}, func(o *cloudwatchlogs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
}

// StreamName is the stream a container's logs go to: awslogs-stream when
// set, else <prefix>/<container name>/<task id> with awslogs-stream-prefix,
// else the container id.
func StreamName(opts map[string]string, info ContainerInfo) string {
	if s := opts["awslogs-stream"]; s != "" {
		return s
	}
	if p := opts["awslogs-stream-prefix"]; p != "" {
		return p + "/" + info.Name + "/" + info.TaskID
	}
	return info.ID
}

// NewAWSLogs returns the awslogs driver for validated options.
func NewAWSLogs(o AWSLogsOptions) (Driver, error) {
	if o.Client == nil || o.Group == "" || o.Stream == "" {
		return nil, errors.New("awslogs: client, group and stream are required")
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = awslogsFlushDflt
	}
	if o.MaxBufferedEvents <= 0 || o.MaxBufferedEvents > cwMaxEvents {
		o.MaxBufferedEvents = cwMaxEvents
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &awsLogs{o: o}, nil
}

// awsLogsOptions parses the validated log options.
func awsLogsOptions(opts map[string]string, info ContainerInfo) (AWSLogsOptions, error) {
	o := AWSLogsOptions{Group: opts["awslogs-group"], Stream: StreamName(opts, info)}
	o.CreateGroup, _ = strconv.ParseBool(opts["awslogs-create-group"])
	if v := opts["awslogs-force-flush-interval-seconds"]; v != "" {
		n, _ := strconv.Atoi(v)
		o.FlushInterval = time.Duration(n) * time.Second
	}
	if v := opts["awslogs-max-buffered-events"]; v != "" {
		o.MaxBufferedEvents, _ = strconv.Atoi(v)
	}
	switch {
	case opts["awslogs-multiline-pattern"] != "":
		re, err := regexp.Compile(opts["awslogs-multiline-pattern"])
		if err != nil {
			return o, fmt.Errorf("awslogs-multiline-pattern: %w", err)
		}
		o.Multiline = re
	case opts["awslogs-datetime-format"] != "":
		re, err := regexp.Compile("^" + strftimeToRegexp(opts["awslogs-datetime-format"]))
		if err != nil {
			return o, fmt.Errorf("awslogs-datetime-format: %w", err)
		}
		o.Multiline = re
	}
	return o, nil
}

// strftimeToRegexp converts the strftime directives Docker's awslogs
// accepts into a regular expression; other text is matched literally.
func strftimeToRegexp(f string) string {
	dirs := map[byte]string{
		'a': `(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)`, 'A': `(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)`,
		'b': `(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)`,
		'B': `(?:January|February|March|April|May|June|July|August|September|October|November|December)`,
		'd': `(?:0[1-9]|[1,2][0-9]|3[0,1])`, 'e': `(?: [1-9]|[1,2][0-9]|3[0,1])`, 'H': `(?:[0,1][0-9]|2[0-3])`,
		'I': `(?:0[0-9]|1[0-2])`, 'j': `(?:0[0-9][1-9]|[1,2][0-9][0-9]|3[0-5][0-9]|36[0-6])`, 'L': `\.\d{3}`,
		'm': `(?:0[1-9]|1[0-2])`, 'M': `[0-5][0-9]`, 'f': `\d{6}`, 'p': `[A,P]M`, 'S': `[0-5][0-9]`,
		'y': `\d{2}`, 'Y': `\d{4}`, 'z': `[+-]\d{4}`, 'Z': `[A-Z]{1,4}T`, 'U': `(?:0[0-9]|[1-4][0-9]|5[0-3])`,
		'w': `[0-6]`, 'W': `(?:0[0-9]|[1-4][0-9]|5[0-3])`, '%': `%`,
	}
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] == '%' && i+1 < len(f) {
			if re, ok := dirs[f[i+1]]; ok {
				b.WriteString(re)
				i++
				continue
			}
		}
		b.WriteString(regexp.QuoteMeta(f[i : i+1]))
	}
	return b.String()
}

// BatchLimits keeps one Ship call within one PutLogEvents request whose
// JSON body (escaping and ~40 bytes of framing per event included) stays
// well under 1 MiB, which endpoints with a 1 MiB body limit accept.
func (a *awsLogs) BatchLimits() (int, int, time.Duration) {
	return a.o.MaxBufferedEvents, cwMaxBatchBytes / 4, a.o.FlushInterval
}

// cwEvent is one CloudWatch event built from messages; last is the index
// of the last message it covers.
type cwEvent struct {
	ts   int64
	msg  []byte
	last int
}

// events turns messages into events: multiline grouping, then splitting of
// events over 256 KiB on a character boundary. A batch end ends a pending
// multiline event, as Docker's flush interval does.
func (a *awsLogs) events(msgs []Message) []cwEvent {
	var out []cwEvent
	var cur *cwEvent
	emit := func(e cwEvent) {
		for len(e.msg) > cwMaxEventBytes {
			cut := cwMaxEventBytes
			for cut > 0 && !utf8.RuneStart(e.msg[cut]) {
				cut--
			}
			out = append(out, cwEvent{ts: e.ts, msg: e.msg[:cut], last: -1})
			e.msg = e.msg[cut:]
		}
		out = append(out, e)
	}
	for i, m := range msgs {
		ts := max(m.Time.UnixMilli(), a.lastTS)
		a.lastTS = ts
		if a.o.Multiline == nil {
			emit(cwEvent{ts: ts, msg: m.Line, last: i})
			continue
		}
		if cur != nil && !a.o.Multiline.Match(m.Line) {
			cur.msg = append(append(cur.msg, '\n'), m.Line...)
			cur.last = i
			continue
		}
		if cur != nil {
			emit(*cur)
		}
		cur = &cwEvent{ts: ts, msg: append([]byte(nil), m.Line...), last: i}
	}
	if cur != nil {
		emit(*cur)
	}
	return out
}

// Ship sends the messages as PutLogEvents requests and reports how many
// messages are fully delivered.
func (a *awsLogs) Ship(ctx context.Context, msgs []Message) (int, error) {
	if err := a.ensureStream(ctx); err != nil {
		return 0, err
	}
	evs := a.events(msgs)
	delivered := 0
	for len(evs) > 0 {
		n, size := 0, 0
		for n < len(evs) && n < cwMaxEvents {
			sz := len(evs[n].msg) + cwPerEventBytes
			if size+sz > cwMaxBatchBytes || time.Duration(evs[n].ts-evs[0].ts)*time.Millisecond >= cwMaxBatchSpan {
				break
			}
			size += sz
			n++
		}
		// Never end a request inside a split event, unless it is all there is.
		for n > 1 && n < len(evs) && evs[n-1].last < 0 {
			n--
		}
		if err := a.put(ctx, evs[:n]); err != nil {
			return delivered, err
		}
		for _, e := range evs[:n] {
			if e.last >= 0 {
				delivered = e.last + 1
			}
		}
		evs = evs[n:]
	}
	return len(msgs), nil
}

func (a *awsLogs) put(ctx context.Context, evs []cwEvent) error {
	in := &cloudwatchlogs.PutLogEventsInput{
		LogGroupName:  aws.String(a.o.Group),
		LogStreamName: aws.String(a.o.Stream),
		LogEvents:     make([]types.InputLogEvent, len(evs)),
	}
	for i, e := range evs {
		in.LogEvents[i] = types.InputLogEvent{Timestamp: aws.Int64(e.ts), Message: aws.String(string(e.msg))}
	}
	out, err := a.o.Client.PutLogEvents(ctx, in)
	if err != nil {
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			a.streamReady = false // deleted under us: recreate on the retry
		}
		var ip *types.InvalidParameterException
		if errors.As(err, &ip) {
			// Retrying cannot fix a request CloudWatch refuses; logging
			// it and moving on keeps one bad batch from wedging the log.
			a.o.Logger.Error("CloudWatch Logs refused a batch; skipping it", "events", len(evs), "err", err)
			return nil
		}
		return fmt.Errorf("awslogs: put %d events to %s/%s: %w", len(evs), a.o.Group, a.o.Stream, err)
	}
	if r := out.RejectedLogEventsInfo; r != nil {
		a.o.Logger.Warn("CloudWatch Logs rejected events (too old, too new or expired)",
			"tooNewStart", aws.ToInt32(r.TooNewLogEventStartIndex), "tooOldEnd", aws.ToInt32(r.TooOldLogEventEndIndex),
			"expiredEnd", aws.ToInt32(r.ExpiredLogEventEndIndex))
	}
	return nil
}

func (a *awsLogs) ensureStream(ctx context.Context) error {
	if a.streamReady {
		return nil
	}
	if a.o.CreateGroup {
		_, err := a.o.Client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(a.o.Group)})
		var exists *types.ResourceAlreadyExistsException
		if err != nil && !errors.As(err, &exists) {
			return fmt.Errorf("awslogs: create log group %s: %w", a.o.Group, err)
		}
	}
	_, err := a.o.Client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(a.o.Group), LogStreamName: aws.String(a.o.Stream)})
	var exists *types.ResourceAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("awslogs: create log stream %s/%s: %w", a.o.Group, a.o.Stream, err)
	}
	a.streamReady = true
	return nil
}

// LastDelivered reads the stream's last event. A message matches when the
// event ends with it (a multiline event) or it ends with the event (the
// last piece of a split line), stamped no earlier than the message.
func (a *awsLogs) LastDelivered(ctx context.Context) (func(Message) bool, error) {
	out, err := a.o.Client.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{
		LogGroupName: aws.String(a.o.Group), LogStreamName: aws.String(a.o.Stream),
		StartFromHead: aws.Bool(false), Limit: aws.Int32(1),
	})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("awslogs: read the end of %s/%s: %w", a.o.Group, a.o.Stream, err)
	}
	if len(out.Events) == 0 {
		return nil, nil
	}
	ev := out.Events[len(out.Events)-1]
	msg, ts := []byte(aws.ToString(ev.Message)), aws.ToInt64(ev.Timestamp)
	// Later messages must not be stamped before this event.
	a.lastTS = max(a.lastTS, ts)
	return func(m Message) bool {
		if m.Time.UnixMilli() > ts {
			return false
		}
		return bytes.HasSuffix(msg, m.Line) || (len(msg) > 0 && bytes.HasSuffix(m.Line, msg))
	}, nil
}

// Close has nothing to release: requests end with their context.
func (a *awsLogs) Close() error { return nil }
