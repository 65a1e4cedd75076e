package logstore

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

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
	var res *PutResult
	err := s.st.Update(func(tx store.Tx) error {
		res = &PutResult{}
		g, st, err := loadStream(tx, group, stream)
		if err != nil {
			return err
		}
		prefix := eventsPrefix(group, stream)
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
			rec := eventRecord{Ingestion: ingest, Message: e.Message}
			raw, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			st.Seq++
			if err := tx.Put(eventsBucket, prefix+string(eventKey(e.Timestamp, st.Seq)), rec); err != nil {
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
		return tx.Put(streamsBucket, streamKey(group, stream), st)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

type getEventsInput struct {
	LogGroupIdentifier string
	LogGroupName       string
	LogStreamName      string
	// Unmask asks for data that data protection policies mask; there are
	// none here, so events come back as stored either way.
	Unmask        bool
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
	err := s.st.View(func(tx store.Tx) error {
		events = nil
		if _, _, err := loadStream(tx, in.LogGroupName, in.LogStreamName); err != nil {
			return err
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
		prefix := eventsPrefix(in.LogGroupName, in.LogStreamName)
		r := store.Range{Prefix: prefix, Reverse: !forward}
		switch {
		case after != nil:
			r.From = prefix + string(after) + "\x00" // the first key past after
		case before != nil:
			r.From = prefix + string(before)
		}
		var keys [][]byte
		err := tx.Scan(eventsBucket, r, func(key string, raw []byte) error {
			if len(keys) == limit {
				return store.ErrStopScan
			}
			k := eventKeyOf(key)
			if !inRange(k) {
				return nil
			}
			keys = append(keys, k)
			events = append(events, decodeEvent(k, raw))
			return nil
		})
		if err != nil {
			return err
		}
		if !forward {
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
	LogGroupIdentifier string
	LogGroupName       string
	// Interleaved is deprecated in CloudWatch Logs: events of several
	// streams always come interleaved, as here.
	Interleaved         *bool
	StartFromHead       *bool
	Unmask              bool // see getEventsInput
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
	if in.StartFromHead != nil && !*in.StartFromHead {
		return nil, apiErr(errInvalid, "startFromHead false (the latest events first) is not supported by this endpoint: FilterLogEvents returns the earliest events first.")
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
	err = s.st.View(func(tx store.Tx) error {
		all, searched = nil, nil
		err := streamsOf(tx, in.LogGroupName, in.LogStreamNamePrefix, func(st *streamRecord) error {
			if len(in.LogStreamNames) == 0 || slices.Contains(in.LogStreamNames, st.Name) {
				searched = append(searched, st.Name)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, sn := range searched {
			r := store.Range{Prefix: eventsPrefix(in.LogGroupName, sn)}
			if in.StartTime != nil {
				r.From = r.Prefix + string(eventKey(*in.StartTime, 0))
			}
			found := 0
			err := tx.Scan(eventsBucket, r, func(key string, raw []byte) error {
				k := eventKeyOf(key)
				if found == keep || in.EndTime != nil && keyTime(k) >= *in.EndTime {
					return store.ErrStopScan
				}
				e := decodeEvent(k, raw)
				if !match(e.Message) {
					return nil
				}
				found++
				all = append(all, filteredEvent{LogStreamName: sn, Timestamp: e.Timestamp, Message: e.Message,
					IngestionTime: e.IngestionTime, EventID: fmt.Sprintf("%x", k)})
				return nil
			})
			if err != nil {
				return err
			}
			if len(all) > 2*keep {
				// Stable, so that events with equal timestamps keep the
				// stream order the final sort gives them.
				sort.SliceStable(all, func(i, j int) bool { return all[i].Timestamp < all[j].Timestamp })
				all = all[:keep]
			}
		}
		return nil
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
