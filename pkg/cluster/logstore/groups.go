package logstore

import (
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// CreateLogGroup creates a group; ResourceAlreadyExistsException if it exists.
func (s *Store) CreateLogGroup(name string) error {
	return s.createLogGroup(createGroupInput{LogGroupName: name})
}

type createGroupInput struct {
	LogGroupName  string
	LogGroupClass string
	Tags          map[string]string
}

// logGroupClasses are CloudWatch Logs' classes; every group here is
// STANDARD (all features, no lower price for rarely read logs).
var logGroupClasses = []string{"STANDARD", "INFREQUENT_ACCESS", "DELIVERY"}

// validClass checks a logGroupClass value (empty: not given).
func validClass(c string) error {
	if c != "" && !slices.Contains(logGroupClasses, c) {
		return apiErr(errInvalid, "1 validation error detected: Value '%s' at 'logGroupClass' failed to satisfy constraint: Member must satisfy enum value set: [%s]", c, strings.Join(logGroupClasses, ", "))
	}
	return nil
}

func (s *Store) createLogGroup(in createGroupInput) error {
	name := in.LogGroupName
	if err := validName("logGroup", name); err != nil {
		return err
	}
	if !groupNameRE.MatchString(name) {
		return apiErr(errInvalid, "1 validation error detected: Value '%s' at 'logGroupName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+", name)
	}
	if err := validClass(in.LogGroupClass); err != nil {
		return err
	}
	if in.LogGroupClass != "" && in.LogGroupClass != "STANDARD" {
		return apiErr(errInvalid, "logGroupClass %s is not supported by this endpoint: every log group is STANDARD.", in.LogGroupClass)
	}
	if err := validTags("tags", in.Tags); err != nil {
		return err
	}
	if len(in.Tags) > maxTags {
		return apiErr(errInvalid, "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to %d", maxTags)
	}
	return s.st.Update(func(tx store.Tx) error {
		if ok, err := getRecord(tx, groupsBucket, name, &groupRecord{}); err != nil || ok {
			if ok {
				return apiErr(errExists, "The specified log group already exists")
			}
			return err
		}
		var tags map[string]string
		if len(in.Tags) > 0 {
			tags = in.Tags
		}
		return tx.Put(groupsBucket, name, groupRecord{Name: name, CreationTime: s.now().UnixMilli(), Tags: tags})
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
		for _, b := range []store.Bucket{streamsBucket, eventsBucket} {
			if err := deletePrefix(tx, b, streamsPrefix(name)); err != nil {
				return err
			}
		}
		return nil
	})
}

// retentionDays are the retentionInDays values CloudWatch Logs allows.
var retentionDays = []int32{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// putRetention sets a group's retention; 0 removes it
// (DeleteRetentionPolicy). Events older than it are no longer accepted and
// the retention sweep deletes those stored.
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
	LogGroupNamePrefix  string
	LogGroupNamePattern string
	LogGroupIdentifiers []string
	LogGroupClass       string
	Limit               *int
	NextToken           string
}

type logGroupOut struct {
	LogGroupName      string `json:"logGroupName"`
	Arn               string `json:"arn"`
	LogGroupArn       string `json:"logGroupArn"`
	LogGroupClass     string `json:"logGroupClass"`
	CreationTime      int64  `json:"creationTime"`
	RetentionInDays   *int32 `json:"retentionInDays,omitempty"`
	StoredBytes       int64  `json:"storedBytes"`
	MetricFilterCount int32  `json:"metricFilterCount"`
}

// namePatternRE is CloudWatch Logs' pattern for logGroupNamePrefix (which
// must not be empty) and logGroupNamePattern.
var namePatternRE = regexp.MustCompile(`^[\.\-_/#A-Za-z0-9]*$`)

// groupFilter checks DescribeLogGroups' filters as CloudWatch Logs does
// (the prefix, the pattern and the identifiers exclude each other) and
// returns what selects a group, and the key range to scan.
func (s *Store) groupFilter(in describeGroupsInput) (func(string) bool, string, error) {
	set := 0
	for _, v := range []bool{in.LogGroupNamePrefix != "", in.LogGroupNamePattern != "", in.LogGroupIdentifiers != nil} {
		if v {
			set++
		}
	}
	if set > 1 {
		return nil, "", apiErr(errInvalid, "logGroupNamePrefix, logGroupNamePattern and logGroupIdentifiers are mutually exclusive parameters: give at most one.")
	}
	if err := validClass(in.LogGroupClass); err != nil {
		return nil, "", err
	}
	class := func(string) bool { return in.LogGroupClass == "" || in.LogGroupClass == "STANDARD" }
	for _, m := range []struct{ name, v string }{{"logGroupNamePrefix", in.LogGroupNamePrefix}, {"logGroupNamePattern", in.LogGroupNamePattern}} {
		if len(m.v) > 512 || !namePatternRE.MatchString(m.v) {
			return nil, "", apiErr(errInvalid, "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must have length less than or equal to 512 and satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]*", m.v, m.name)
		}
	}
	switch {
	case in.LogGroupIdentifiers != nil:
		if n := len(in.LogGroupIdentifiers); n < 1 || n > 50 {
			return nil, "", apiErr(errInvalid, "1 validation error detected: Value at 'logGroupIdentifiers' failed to satisfy constraint: Member must have length between 1 and 50")
		}
		want := map[string]bool{}
		for _, id := range in.LogGroupIdentifiers {
			name, err := s.groupOfIdentifier("logGroupIdentifiers", id)
			var ae *awsproto.Error
			if errors.As(err, &ae) && ae.Type == errNotFound {
				continue // another account's or region's group: not here
			}
			if err != nil {
				return nil, "", err
			}
			want[name] = true
		}
		return func(n string) bool { return want[n] && class(n) }, "", nil
	case in.LogGroupNamePattern != "":
		return func(n string) bool { return strings.Contains(n, in.LogGroupNamePattern) && class(n) }, "", nil
	}
	return class, in.LogGroupNamePrefix, nil
}

func (s *Store) describeLogGroups(in describeGroupsInput) (any, error) {
	limit := 50
	if in.Limit != nil {
		if *in.Limit < 1 || *in.Limit > 50 {
			return nil, apiErr(errInvalid, "1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and 50", *in.Limit)
		}
		limit = *in.Limit
	}
	match, prefix, err := s.groupFilter(in)
	if err != nil {
		return nil, err
	}
	var out []logGroupOut
	next := ""
	err = s.st.View(func(tx store.Tx) error {
		out, next = nil, ""
		r := store.Range{Prefix: prefix, From: in.NextToken}
		return tx.Scan(groupsBucket, r, func(k string, raw []byte) error {
			if !match(k) {
				return nil
			}
			if len(out) == limit {
				next = k
				return store.ErrStopScan
			}
			var g groupRecord
			if json.Unmarshal(raw, &g) != nil {
				return nil
			}
			arn := s.groupARN(g.Name)
			o := logGroupOut{LogGroupName: g.Name, Arn: arn, LogGroupArn: strings.TrimSuffix(arn, ":*"), LogGroupClass: "STANDARD", CreationTime: g.CreationTime}
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

// deleteLogStream deletes a stream and its events.
func (s *Store) deleteLogStream(group, stream string) error {
	return s.st.Update(func(tx store.Tx) error {
		if _, _, err := loadStream(tx, group, stream); err != nil {
			return err
		}
		if err := tx.Delete(streamsBucket, streamKey(group, stream)); err != nil {
			return err
		}
		return deletePrefix(tx, eventsBucket, eventsPrefix(group, stream))
	})
}

// deletePrefix deletes every key of b under prefix.
func deletePrefix(tx store.Tx, b store.Bucket, prefix string) error {
	// Collect first: a store does not allow writes during a walk.
	var keys []string
	if err := store.ForEach(tx, b, prefix, func(k string, _ []byte) error {
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
	return nil
}

type describeStreamsInput struct {
	LogGroupIdentifier  string
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
