package logstore

import (
	"encoding/json"
	"slices"
	"sort"
	"strconv"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// CreateLogGroup creates a group; ResourceAlreadyExistsException if it exists.
func (s *Store) CreateLogGroup(name string) error {
	if err := validName("logGroup", name); err != nil {
		return err
	}
	return s.st.Update(func(tx store.Tx) error {
		if ok, err := getRecord(tx, groupsBucket, name, &groupRecord{}); err != nil || ok {
			if ok {
				return apiErr(errExists, "The specified log group already exists")
			}
			return err
		}
		return tx.Put(groupsBucket, name, groupRecord{Name: name, CreationTime: s.now().UnixMilli()})
	})
}

// deleteLogGroup deletes a group with its streams and events.
func (s *Store) deleteLogGroup(name string) error {
	return s.st.Update(func(tx store.Tx) error {
		if _, err := loadGroup(tx, name); err != nil {
			return err
		}
		if err := tx.Delete(groupsBucket, name); err != nil {
			return err
		}
		// Collect first: a store does not allow writes during a walk.
		for _, b := range []store.Bucket{streamsBucket, eventsBucket} {
			var keys []string
			if err := store.ForEach(tx, b, streamsPrefix(name), func(k string, _ []byte) error {
				keys = append(keys, k)
				return nil
			}); err != nil {
				return err
			}
			for _, k := range keys {
				if err := tx.Delete(b, k); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

var retentionDays = []int32{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

func (s *Store) putRetention(name string, days int32) error {
	if days != 0 && !slices.Contains(retentionDays, days) {
		return apiErr(errInvalid, "1 validation error detected: Value '%d' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: %v", days, retentionDays)
	}
	return s.st.Update(func(tx store.Tx) error {
		rec, err := loadGroup(tx, name)
		if err != nil {
			return err
		}
		rec.RetentionDays = days
		return tx.Put(groupsBucket, name, rec)
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
	err := s.st.View(func(tx store.Tx) error {
		out, next = nil, ""
		r := store.Range{Prefix: in.LogGroupNamePrefix, From: in.NextToken}
		return tx.Scan(groupsBucket, r, func(k string, raw []byte) error {
			if len(out) == limit {
				next = k
				return store.ErrStopScan
			}
			var g groupRecord
			if json.Unmarshal(raw, &g) != nil {
				return nil
			}
			o := logGroupOut{LogGroupName: g.Name, Arn: s.groupARN(g.Name), CreationTime: g.CreationTime}
			if g.RetentionDays > 0 {
				d := g.RetentionDays
				o.RetentionInDays = &d
			}
			out = append(out, o)
			return nil
		})
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
	return s.st.Update(func(tx store.Tx) error {
		if _, err := loadGroup(tx, group); err != nil {
			return err
		}
		if ok, err := getRecord(tx, streamsBucket, streamKey(group, stream), &streamRecord{}); err != nil || ok {
			if ok {
				return apiErr(errExists, "The specified log stream already exists")
			}
			return err
		}
		return tx.Put(streamsBucket, streamKey(group, stream), streamRecord{Name: stream, CreationTime: s.now().UnixMilli()})
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

// streamsOf calls fn for each stream of group whose name starts with
// prefix, in name order; ResourceNotFoundException if the group is missing.
func streamsOf(tx store.Tx, group, prefix string, fn func(st *streamRecord) error) error {
	if _, err := loadGroup(tx, group); err != nil {
		return err
	}
	return store.ForEach(tx, streamsBucket, streamsPrefix(group)+prefix, func(_ string, raw []byte) error {
		var st streamRecord
		if err := json.Unmarshal(raw, &st); err != nil {
			return err
		}
		return fn(&st)
	})
}

func (s *Store) describeLogStreams(in describeStreamsInput) (any, error) {
	if in.OrderBy == "LastEventTime" && in.LogStreamNamePrefix != "" {
		return nil, apiErr(errInvalid, "Cannot order by LastEventTime with a logStreamNamePrefix.")
	}
	var all []logStreamOut
	err := s.st.View(func(tx store.Tx) error {
		all = nil
		return streamsOf(tx, in.LogGroupName, in.LogStreamNamePrefix, func(st *streamRecord) error {
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
