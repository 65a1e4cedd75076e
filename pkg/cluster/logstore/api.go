package logstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	clusterapi "github.com/berth-dev/berth/pkg/cluster/api"
	"github.com/berth-dev/berth/pkg/cluster/auth"
)

var _ clusterapi.TargetHandler = (*Store)(nil)

// Target returns the clusterapi.Target that mounts the store on the
// endpoint's POST / beside ECS.
func (s *Store) Target() clusterapi.Target {
	return clusterapi.Target{Prefix: TargetPrefix, Service: Service, Handler: s, MaxBody: maxHTTPBody}
}

// agentOps are the operations an agent key may call: what the awslogs
// driver needs, nothing that deletes or reads other streams wholesale.
var agentOps = []string{"CreateLogGroup", "CreateLogStream", "DescribeLogStreams", "PutLogEvents", "GetLogEvents"}

func apiErr(typ, format string, args ...any) error {
	return &clusterapi.Error{Type: typ, Message: fmt.Sprintf(format, args...)}
}

const (
	errNotFound   = "ResourceNotFoundException"
	errExists     = "ResourceAlreadyExistsException"
	errInvalid    = "InvalidParameterException"
	errDenied     = "AccessDeniedException"
	errUnknownOp  = "UnknownOperationException"
	errSerializat = "SerializationException"
)

// ServeTarget runs one CloudWatch Logs operation for a verified caller.
func (s *Store) ServeTarget(ctx context.Context, key auth.Key, op string, body []byte) ([]byte, error) {
	if key.Role == auth.RoleAgent && !slices.Contains(agentOps, op) {
		return nil, apiErr(errDenied, "agent keys may not call %s", op)
	}
	dec := func(v any) error {
		if len(bytes.TrimSpace(body)) == 0 {
			return nil
		}
		if err := json.Unmarshal(body, v); err != nil {
			return apiErr(errSerializat, "decode %s input: %v", op, err)
		}
		return nil
	}
	var out any
	var err error
	switch op {
	case "CreateLogGroup":
		var in struct{ LogGroupName string }
		if err = dec(&in); err == nil {
			out, err = struct{}{}, s.CreateLogGroup(in.LogGroupName)
		}
	case "DeleteLogGroup":
		var in struct{ LogGroupName string }
		if err = dec(&in); err == nil {
			out, err = struct{}{}, s.deleteLogGroup(in.LogGroupName)
		}
	case "DescribeLogGroups":
		var in describeGroupsInput
		if err = dec(&in); err == nil {
			out, err = s.describeLogGroups(in)
		}
	case "CreateLogStream":
		var in struct{ LogGroupName, LogStreamName string }
		if err = dec(&in); err == nil {
			out, err = struct{}{}, s.CreateLogStream(in.LogGroupName, in.LogStreamName)
		}
	case "DescribeLogStreams":
		var in describeStreamsInput
		if err = dec(&in); err == nil {
			out, err = s.describeLogStreams(in)
		}
	case "PutLogEvents":
		var in putEventsInput
		if err = dec(&in); err == nil {
			out, err = s.PutLogEvents(in.LogGroupName, in.LogStreamName, in.LogEvents)
		}
	case "GetLogEvents":
		var in getEventsInput
		if err = dec(&in); err == nil {
			out, err = s.getLogEvents(in)
		}
	case "FilterLogEvents":
		var in filterInput
		if err = dec(&in); err == nil {
			out, err = s.filterLogEvents(in)
		}
	case "PutRetentionPolicy":
		var in struct {
			LogGroupName    string
			RetentionInDays int32
		}
		if err = dec(&in); err == nil {
			out, err = struct{}{}, s.putRetention(in.LogGroupName, in.RetentionInDays)
		}
	case "DeleteRetentionPolicy":
		var in struct{ LogGroupName string }
		if err = dec(&in); err == nil {
			out, err = struct{}{}, s.putRetention(in.LogGroupName, 0)
		}
	default:
		return nil, apiErr(errUnknownOp, "operation %s is not served by this endpoint", op)
	}
	if err != nil {
		return nil, err
	}
	b, merr := json.Marshal(out)
	if merr != nil {
		return nil, fmt.Errorf("encode %s output: %w", op, merr)
	}
	return b, nil
}

// Verifier authenticates a request; *auth.Verifier implements it.
type Verifier interface {
	Verify(r *http.Request, body []byte) (auth.Key, error)
}

var _ Verifier = (*auth.Verifier)(nil)

// maxHTTPBody bounds a request: a full PutLogEvents batch plus its JSON
// escaping.
const maxHTTPBody = 8 << 20

// Handler serves the store alone on POST / (dev mode and tests); v must
// accept the "logs" service.
func (s *Store) Handler(v Verifier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		// Read one byte past the limit so that an oversized body is
		// refused as such instead of being cut and then failing its
		// signature or JSON check with a misleading error.
		body, err := io.ReadAll(io.LimitReader(r.Body, maxHTTPBody+1))
		if err != nil {
			writeErr(w, apiErr(errSerializat, "read body: %v", err))
			return
		}
		if len(body) > maxHTTPBody {
			writeErr(w, &clusterapi.Error{Type: "RequestEntityTooLargeException", Status: http.StatusRequestEntityTooLarge,
				Message: fmt.Sprintf("request body exceeds %d bytes", maxHTTPBody)})
			return
		}
		key, err := v.Verify(r, body)
		if err != nil {
			writeErr(w, err)
			return
		}
		op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
		if !ok {
			writeErr(w, apiErr(errUnknownOp, "X-Amz-Target %q is not a CloudWatch Logs operation", r.Header.Get("X-Amz-Target")))
			return
		}
		out, err := s.ServeTarget(r.Context(), key, op, body)
		if err != nil {
			writeErr(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Write(out)
	})
}

func writeErr(w http.ResponseWriter, err error) {
	typ, status, msg := "ServiceUnavailableException", http.StatusInternalServerError, err.Error()
	var ce *clusterapi.Error
	var ae *auth.Error
	switch {
	case errors.As(err, &ce):
		typ, status, msg = ce.Type, ce.Status, ce.Message
		if status == 0 {
			status = http.StatusBadRequest
		}
	case errors.As(err, &ae):
		typ, status, msg = ae.Type, ae.Status, ae.Message
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"__type": typ, "message": msg})
	w.Write(b)
}

func validName(kind, name string) error {
	if name == "" || len(name) > 512 {
		return apiErr(errInvalid, "1 validation error detected: Value at '%sName' failed to satisfy constraint: Member must have length between 1 and 512", kind)
	}
	if kind == "logStream" && strings.ContainsAny(name, ":*") {
		return apiErr(errInvalid, "log stream name %q must not contain ':' or '*'", name)
	}
	return nil
}

// CreateLogGroup creates a group; ResourceAlreadyExistsException if it exists.
func (s *Store) CreateLogGroup(name string) error {
	if err := validName("logGroup", name); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		g := tx.Bucket(bucketGroups)
		if g.Get([]byte(name)) != nil {
			return apiErr(errExists, "The specified log group already exists")
		}
		if _, err := tx.Bucket(bucketData).CreateBucketIfNotExists([]byte(name)); err != nil {
			return err
		}
		return putJSON(g, []byte(name), groupRecord{Name: name, CreationTime: s.now().UnixMilli()})
	})
}

func (s *Store) deleteLogGroup(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		g := tx.Bucket(bucketGroups)
		if g.Get([]byte(name)) == nil {
			return apiErr(errNotFound, "The specified log group does not exist.")
		}
		if err := g.Delete([]byte(name)); err != nil {
			return err
		}
		if tx.Bucket(bucketData).Bucket([]byte(name)) != nil {
			return tx.Bucket(bucketData).DeleteBucket([]byte(name))
		}
		return nil
	})
}

var retentionDays = []int32{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

func (s *Store) putRetention(name string, days int32) error {
	if days != 0 && !slices.Contains(retentionDays, days) {
		return apiErr(errInvalid, "1 validation error detected: Value '%d' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: %v", days, retentionDays)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		g := tx.Bucket(bucketGroups)
		var rec groupRecord
		if !getJSON(g, []byte(name), &rec) {
			return apiErr(errNotFound, "The specified log group does not exist.")
		}
		rec.RetentionDays = days
		return putJSON(g, []byte(name), rec)
	})
}

type describeGroupsInput struct {
	LogGroupNamePrefix string
	Limit              int
	NextToken          string
}

type logGroupOut struct {
	LogGroupName      string `json:"logGroupName"`
	Arn               string `json:"arn"`
	CreationTime      int64  `json:"creationTime"`
	RetentionInDays   *int32 `json:"retentionInDays,omitempty"`
	StoredBytes       int64  `json:"storedBytes"`
	MetricFilterCount int32  `json:"metricFilterCount"`
}

func (s *Store) describeLogGroups(in describeGroupsInput) (any, error) {
	limit := clampLimit(in.Limit, 50)
	var out []logGroupOut
	next := ""
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketGroups).Cursor()
		start := in.LogGroupNamePrefix
		if in.NextToken != "" {
			start = in.NextToken
		}
		for k, v := c.Seek([]byte(start)); k != nil && strings.HasPrefix(string(k), in.LogGroupNamePrefix); k, v = c.Next() {
			if len(out) == limit {
				next = string(k)
				break
			}
			var g groupRecord
			if json.Unmarshal(v, &g) != nil {
				continue
			}
			o := logGroupOut{LogGroupName: g.Name, Arn: s.groupARN(g.Name), CreationTime: g.CreationTime}
			if g.RetentionDays > 0 {
				d := g.RetentionDays
				o.RetentionInDays = &d
			}
			out = append(out, o)
		}
		return nil
	})
	if out == nil {
		out = []logGroupOut{}
	}
	return struct {
		LogGroups []logGroupOut `json:"logGroups"`
		NextToken string        `json:"nextToken,omitempty"`
	}{out, next}, err
}

func clampLimit(n, def int) int {
	if n <= 0 || n > def {
		return def
	}
	return n
}

// CreateLogStream creates a stream in an existing group.
func (s *Store) CreateLogStream(group, stream string) error {
	if err := validName("logStream", stream); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		gb := tx.Bucket(bucketData).Bucket([]byte(group))
		if gb == nil {
			return apiErr(errNotFound, "The specified log group does not exist.")
		}
		if gb.Bucket([]byte(stream)) != nil {
			return apiErr(errExists, "The specified log stream already exists")
		}
		sb, err := gb.CreateBucket([]byte(stream))
		if err != nil {
			return err
		}
		return putJSON(sb, keyMeta, streamRecord{Name: stream, CreationTime: s.now().UnixMilli()})
	})
}

type describeStreamsInput struct {
	LogGroupName        string
	LogStreamNamePrefix string
	OrderBy             string
	Descending          bool
	Limit               int
	NextToken           string
}

type logStreamOut struct {
	LogStreamName       string `json:"logStreamName"`
	Arn                 string `json:"arn"`
	CreationTime        int64  `json:"creationTime"`
	FirstEventTimestamp int64  `json:"firstEventTimestamp,omitempty"`
	LastEventTimestamp  int64  `json:"lastEventTimestamp,omitempty"`
	LastIngestionTime   int64  `json:"lastIngestionTime,omitempty"`
	StoredBytes         int64  `json:"storedBytes"`
	UploadSequenceToken string `json:"uploadSequenceToken"`
}

func (s *Store) describeLogStreams(in describeStreamsInput) (any, error) {
	if in.OrderBy == "LastEventTime" && in.LogStreamNamePrefix != "" {
		return nil, apiErr(errInvalid, "Cannot order by LastEventTime with a logStreamNamePrefix.")
	}
	var all []logStreamOut
	err := s.db.View(func(tx *bolt.Tx) error {
		gb := tx.Bucket(bucketData).Bucket([]byte(in.LogGroupName))
		if gb == nil {
			return apiErr(errNotFound, "The specified log group does not exist.")
		}
		return gb.ForEachBucket(func(k []byte) error {
			if !strings.HasPrefix(string(k), in.LogStreamNamePrefix) {
				return nil
			}
			var st streamRecord
			getJSON(gb.Bucket(k), keyMeta, &st)
			all = append(all, logStreamOut{LogStreamName: st.Name, Arn: s.streamARN(in.LogGroupName, st.Name),
				CreationTime: st.CreationTime, FirstEventTimestamp: st.FirstEvent, LastEventTimestamp: st.LastEvent,
				LastIngestionTime: st.LastIngestion, StoredBytes: st.StoredBytes, UploadSequenceToken: strconv.FormatUint(st.UploadSequence+1, 10)})
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if in.OrderBy == "LastEventTime" {
		sort.SliceStable(all, func(i, j int) bool { return all[i].LastEventTimestamp < all[j].LastEventTimestamp })
	}
	if in.Descending {
		slices.Reverse(all)
	}
	start, _ := strconv.Atoi(in.NextToken)
	start = min(max(start, 0), len(all))
	limit := clampLimit(in.Limit, 50)
	end := min(start+limit, len(all))
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	page := all[start:end]
	if page == nil {
		page = []logStreamOut{}
	}
	return struct {
		LogStreams []logStreamOut `json:"logStreams"`
		NextToken  string         `json:"nextToken,omitempty"`
	}{page, next}, nil
}

// InputEvent is one event of a PutLogEvents call.
type InputEvent struct {
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
}

type putEventsInput struct {
	LogGroupName  string
	LogStreamName string
	LogEvents     []InputEvent
	SequenceToken string
}

// RejectedInfo is PutLogEvents' rejectedLogEventsInfo.
type RejectedInfo struct {
	TooNewLogEventStartIndex *int `json:"tooNewLogEventStartIndex,omitempty"`
	TooOldLogEventEndIndex   *int `json:"tooOldLogEventEndIndex,omitempty"`
	ExpiredLogEventEndIndex  *int `json:"expiredLogEventEndIndex,omitempty"`
}

// PutResult is PutLogEvents' output.
type PutResult struct {
	NextSequenceToken     string        `json:"nextSequenceToken"`
	RejectedLogEventsInfo *RejectedInfo `json:"rejectedLogEventsInfo,omitempty"`
}

// PutLogEvents validates a batch as CloudWatch does and stores the events
// it accepts. Batch-level violations (too many events, too many bytes, not
// chronological, span over 24 h, an event over 256 KiB) fail the whole call
// with InvalidParameterException; events too old, too new or past the
// group's retention are skipped and reported in rejectedLogEventsInfo.
func (s *Store) PutLogEvents(group, stream string, events []InputEvent) (*PutResult, error) {
	if len(events) == 0 {
		return nil, apiErr(errInvalid, "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	if len(events) > MaxBatchEvents {
		return nil, apiErr(errInvalid, "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length less than or equal to %d", MaxBatchEvents)
	}
	size := 0
	for i, e := range events {
		n := len(e.Message) + PerEventOverhead
		if n > MaxEventBytes {
			return nil, apiErr(errInvalid, "Log event too large: event %d is %d bytes (maximum %d)", i, n, MaxEventBytes)
		}
		size += n
		if i > 0 && e.Timestamp < events[i-1].Timestamp {
			return nil, apiErr(errInvalid, "Log events in a single PutLogEvents request must be in chronological order.")
		}
	}
	if size > MaxBatchBytes {
		return nil, apiErr(errInvalid, "Upload too large: %d bytes exceeds limit of %d", size, MaxBatchBytes)
	}
	if time.Duration(events[len(events)-1].Timestamp-events[0].Timestamp)*time.Millisecond > MaxBatchSpan {
		return nil, apiErr(errInvalid, "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.")
	}
	now := s.now()
	res := &PutResult{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		var g groupRecord
		if !getJSON(tx.Bucket(bucketGroups), []byte(group), &g) {
			return apiErr(errNotFound, "The specified log group does not exist.")
		}
		sb := tx.Bucket(bucketData).Bucket([]byte(group)).Bucket([]byte(stream))
		if sb == nil {
			return apiErr(errNotFound, "The specified log stream does not exist.")
		}
		var st streamRecord
		getJSON(sb, keyMeta, &st)
		oldest := now.Add(-MaxEventAge).UnixMilli()
		newest := now.Add(MaxEventFuture).UnixMilli()
		expired := int64(-1 << 62)
		if g.RetentionDays > 0 {
			expired = now.Add(-time.Duration(g.RetentionDays) * 24 * time.Hour).UnixMilli()
		}
		ingest := now.UnixMilli()
		info := RejectedInfo{}
		for i, e := range events {
			switch {
			case e.Timestamp > newest:
				if info.TooNewLogEventStartIndex == nil {
					j := i
					info.TooNewLogEventStartIndex = &j
				}
				continue
			case e.Timestamp < expired:
				j := i
				info.ExpiredLogEventEndIndex = &j
				continue
			case e.Timestamp < oldest:
				j := i
				info.TooOldLogEventEndIndex = &j
				continue
			}
			raw, err := json.Marshal(eventRecord{Ingestion: ingest, Message: e.Message})
			if err != nil {
				return err
			}
			st.Seq++
			if err := sb.Put(eventKey(e.Timestamp, st.Seq), raw); err != nil {
				return err
			}
			st.StoredBytes += int64(len(raw))
			if st.FirstEvent == 0 || e.Timestamp < st.FirstEvent {
				st.FirstEvent = e.Timestamp
			}
			st.LastEvent = max(st.LastEvent, e.Timestamp)
			st.LastIngestion = ingest
		}
		st.UploadSequence++
		res.NextSequenceToken = strconv.FormatUint(st.UploadSequence+1, 10)
		if info != (RejectedInfo{}) {
			res.RejectedLogEventsInfo = &info
		}
		return putJSON(sb, keyMeta, st)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

type getEventsInput struct {
	LogGroupName  string
	LogStreamName string
	StartTime     *int64
	EndTime       *int64
	NextToken     string
	Limit         int
	StartFromHead *bool
}

type outputEvent struct {
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
}

// Tokens are "f/<hex key>" (forward: events after key) and "b/<hex key>"
// (backward: events before key).
func token(dir byte, k []byte) string {
	return string(dir) + "/" + base64.RawURLEncoding.EncodeToString(k)
}

func (s *Store) getLogEvents(in getEventsInput) (any, error) {
	limit := clampLimit(in.Limit, 10000)
	var (
		events         []outputEvent
		fwdTok, backTk string
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		gb := tx.Bucket(bucketData).Bucket([]byte(in.LogGroupName))
		if gb == nil {
			return apiErr(errNotFound, "The specified log group does not exist.")
		}
		sb := gb.Bucket([]byte(in.LogStreamName))
		if sb == nil {
			return apiErr(errNotFound, "The specified log stream does not exist.")
		}
		inRange := func(k []byte) bool {
			t := keyTime(k)
			return (in.StartTime == nil || t >= *in.StartTime) && (in.EndTime == nil || t < *in.EndTime)
		}
		forward := in.StartFromHead != nil && *in.StartFromHead
		var after, before []byte
		if in.NextToken != "" {
			dir, enc, ok := strings.Cut(in.NextToken, "/")
			k, err := base64.RawURLEncoding.DecodeString(enc)
			if !ok || err != nil || (dir != "f" && dir != "b") {
				return apiErr(errInvalid, "The specified nextToken is invalid.")
			}
			if forward = dir == "f"; forward {
				after = k
			} else {
				before = k
			}
		}
		c := sb.Cursor()
		var keys [][]byte
		if forward {
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(keys) < limit; k, v = c.Next() {
				if len(k) != 16 || !inRange(k) {
					continue
				}
				keys = append(keys, append([]byte(nil), k...))
				events = append(events, decodeEvent(k, v))
			}
		} else {
			var k, v []byte
			if before != nil {
				if k, _ = c.Seek(before); k == nil {
					k, v = c.Last()
				} else {
					k, v = c.Prev()
				}
			} else {
				k, v = c.Last()
			}
			for ; k != nil && len(keys) < limit; k, v = c.Prev() {
				if len(k) != 16 || !inRange(k) {
					continue
				}
				keys = append(keys, append([]byte(nil), k...))
				events = append(events, decodeEvent(k, v))
			}
			slices.Reverse(keys)
			slices.Reverse(events)
		}
		switch {
		case len(keys) > 0:
			fwdTok, backTk = token('f', keys[len(keys)-1]), token('b', keys[0])
		case after != nil:
			fwdTok, backTk = token('f', after), token('b', after)
		case before != nil:
			fwdTok, backTk = token('f', before), token('b', before)
		default:
			// Empty stream: a forward token from the start.
			fwdTok, backTk = token('f', eventKey(-1<<62, 0)), token('b', eventKey(-1<<62, 0))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if events == nil {
		events = []outputEvent{}
	}
	return struct {
		Events            []outputEvent `json:"events"`
		NextForwardToken  string        `json:"nextForwardToken"`
		NextBackwardToken string        `json:"nextBackwardToken"`
	}{events, fwdTok, backTk}, nil
}

func decodeEvent(k, v []byte) outputEvent {
	var r eventRecord
	json.Unmarshal(v, &r)
	return outputEvent{Timestamp: keyTime(k), Message: r.Message, IngestionTime: r.Ingestion}
}

type filterInput struct {
	LogGroupName        string
	LogStreamNames      []string
	LogStreamNamePrefix string
	StartTime           *int64
	EndTime             *int64
	FilterPattern       string
	NextToken           string
	Limit               int
}

type filteredEvent struct {
	LogStreamName string `json:"logStreamName"`
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
	EventID       string `json:"eventId"`
}

func (s *Store) filterLogEvents(in filterInput) (any, error) {
	if len(in.LogStreamNames) > 0 && in.LogStreamNamePrefix != "" {
		return nil, apiErr(errInvalid, "logStreamNames and logStreamNamePrefix are mutually exclusive")
	}
	match, err := compilePattern(in.FilterPattern)
	if err != nil {
		return nil, err
	}
	limit := clampLimit(in.Limit, 10000)
	skip := 0
	if in.NextToken != "" {
		if skip, err = strconv.Atoi(in.NextToken); err != nil || skip < 0 {
			return nil, apiErr(errInvalid, "The specified nextToken is invalid.")
		}
	}
	// Only the first keep events in time order are ever answered, so no
	// more are held: collecting the whole group made one request's memory
	// grow with everything the group stored. A stream's events are in time
	// order, so an event past its stream's first keep matches cannot be
	// among the first keep overall either.
	keep := skip + limit + 1
	if keep <= skip { // an absurd token overflowed
		return nil, apiErr(errInvalid, "The specified nextToken is invalid.")
	}
	var all []filteredEvent
	var searched []string
	err = s.db.View(func(tx *bolt.Tx) error {
		gb := tx.Bucket(bucketData).Bucket([]byte(in.LogGroupName))
		if gb == nil {
			return apiErr(errNotFound, "The specified log group does not exist.")
		}
		return gb.ForEachBucket(func(name []byte) error {
			sn := string(name)
			if (len(in.LogStreamNames) > 0 && !slices.Contains(in.LogStreamNames, sn)) || !strings.HasPrefix(sn, in.LogStreamNamePrefix) {
				return nil
			}
			searched = append(searched, sn)
			c := gb.Bucket(name).Cursor()
			k, v := c.First()
			if in.StartTime != nil {
				k, v = c.Seek(eventKey(*in.StartTime, 0))
			}
			found := 0
			for ; k != nil && found < keep; k, v = c.Next() {
				if len(k) != 16 {
					continue
				}
				if in.EndTime != nil && keyTime(k) >= *in.EndTime {
					break
				}
				e := decodeEvent(k, v)
				if !match(e.Message) {
					continue
				}
				found++
				all = append(all, filteredEvent{LogStreamName: sn, Timestamp: e.Timestamp, Message: e.Message,
					IngestionTime: e.IngestionTime, EventID: fmt.Sprintf("%x", k)})
			}
			if len(all) > 2*keep {
				// Stable, so that events with equal timestamps keep the
				// stream order the final sort gives them.
				sort.SliceStable(all, func(i, j int) bool { return all[i].Timestamp < all[j].Timestamp })
				all = all[:keep]
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Timestamp < all[j].Timestamp })
	skip = min(skip, len(all))
	end := min(skip+limit, len(all))
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	type searchedStream struct {
		LogStreamName      string `json:"logStreamName"`
		SearchedCompletely bool   `json:"searchedCompletely"`
	}
	ss := make([]searchedStream, len(searched))
	for i, n := range searched {
		ss[i] = searchedStream{n, true}
	}
	page := all[skip:end]
	if page == nil {
		page = []filteredEvent{}
	}
	return struct {
		Events             []filteredEvent  `json:"events"`
		SearchedLogStreams []searchedStream `json:"searchedLogStreams"`
		NextToken          string           `json:"nextToken,omitempty"`
	}{page, ss, next}, nil
}

// compilePattern supports CloudWatch's simple term patterns: terms that
// must all appear (case-sensitive), "quoted phrases", ?term alternatives
// (any of them) and -term exclusions. An empty pattern matches everything;
// JSON and space-delimited patterns ({...}, [...]) are refused.
func compilePattern(p string) (func(string) bool, error) {
	p = strings.TrimSpace(p)
	if p == "" || p == `""` {
		return func(string) bool { return true }, nil
	}
	if strings.HasPrefix(p, "{") || strings.HasPrefix(p, "[") || strings.HasPrefix(p, "%") {
		return nil, apiErr(errInvalid, "filter pattern %q: only term patterns are supported by this endpoint", p)
	}
	var all, anyOf, none []string
	for rest := p; rest != ""; rest = strings.TrimSpace(rest) {
		prefix := byte(0)
		if rest[0] == '?' || rest[0] == '-' {
			prefix, rest = rest[0], rest[1:]
		}
		var term string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return nil, apiErr(errInvalid, "filter pattern %q: unterminated quote", p)
			}
			term, rest = rest[1:1+end], rest[2+end:]
		} else {
			term, rest, _ = strings.Cut(rest, " ")
		}
		switch prefix {
		case '?':
			anyOf = append(anyOf, term)
		case '-':
			none = append(none, term)
		default:
			all = append(all, term)
		}
	}
	return func(m string) bool {
		for _, t := range all {
			if !strings.Contains(m, t) {
				return false
			}
		}
		for _, t := range none {
			if strings.Contains(m, t) {
				return false
			}
		}
		if len(anyOf) == 0 {
			return true
		}
		for _, t := range anyOf {
			if strings.Contains(m, t) {
				return true
			}
		}
		return false
	}, nil
}

// RunRetention sweeps expired events every interval until ctx ends.
func (s *Store) RunRetention(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.SweepRetention(); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}
