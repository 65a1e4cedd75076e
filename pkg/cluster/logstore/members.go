package logstore

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/berth-dev/berth/pkg/cluster/awsproto"
)

// The endpoint's rule is that every input member of every operation it
// serves is honoured or refused with the AWS error naming it; none is
// silently dropped. members is that rule for the Logs API, one entry per
// member of the SDK's input shape (TestEveryMemberListed derives them from
// aws-sdk-go-v2's cloudwatchlogs types, so a member a new SDK brings fails
// the test until it is listed here). ServeAWS checks a request against it
// before decoding: a refused member that is set, or a member the table does
// not know, is answered with InvalidParameterException naming it. The ECS
// API's table (pkg/cluster/ecsapi) is the same idea with ECS's errors and
// nested members; the two are separate because neither package may import
// the other.

// member is one input member of an operation; why is set when it is
// refused, and says why.
type member struct {
	name string
	why  string
}

func ok(names ...string) []member {
	out := make([]member, len(names))
	for i, n := range names {
		out[i] = member{name: n}
	}
	return out
}

func no(name, why string) member { return member{name: name, why: why} }

const (
	whyKMS           = "KMS is not served; events are kept in the endpoint's logs.db"
	whyCrossAccount  = "cross-account observability needs AWS Organizations and monitoring accounts"
	whyEntity        = "entities link telemetry in CloudWatch's explore views, which are not served"
	whyDeleteProtect = "deletion protection is not served; say deletionProtectionEnabled false or leave it out"
)

// members lists every input member of every routed operation.
func members() map[string][]member {
	return map[string][]member{
		"CreateLogGroup": append(ok("logGroupName", "tags", "logGroupClass"),
			no("kmsKeyId", whyKMS), no("deletionProtectionEnabled", whyDeleteProtect)),
		"DeleteLogGroup": ok("logGroupName"),
		"DescribeLogGroups": append(ok("limit", "logGroupClass", "logGroupIdentifiers", "logGroupNamePattern", "logGroupNamePrefix", "nextToken"),
			no("accountIdentifiers", whyCrossAccount), no("includeLinkedAccounts", whyCrossAccount)),
		"CreateLogStream":    ok("logGroupName", "logStreamName"),
		"DeleteLogStream":    ok("logGroupName", "logStreamName"),
		"DescribeLogStreams": ok("descending", "limit", "logGroupIdentifier", "logGroupName", "logStreamNamePrefix", "nextToken", "orderBy"),
		"PutLogEvents": append(ok("logEvents", "logGroupName", "logStreamName", "sequenceToken"),
			no("entity", whyEntity)),
		"GetLogEvents": ok("logStreamName", "endTime", "limit", "logGroupIdentifier", "logGroupName", "nextToken",
			"startFromHead", "startTime", "unmask"),
		"FilterLogEvents": ok("endTime", "filterPattern", "interleaved", "limit", "logGroupIdentifier", "logGroupName",
			"logStreamNamePrefix", "logStreamNames", "nextToken", "startFromHead", "startTime", "unmask"),
		"PutRetentionPolicy":    ok("logGroupName", "retentionInDays"),
		"DeleteRetentionPolicy": ok("logGroupName"),
		"TagResource":           ok("resourceArn", "tags"),
		"UntagResource":         ok("resourceArn", "tagKeys"),
		"ListTagsForResource":   ok("resourceArn"),
		"TagLogGroup":           ok("logGroupName", "tags"),
		"UntagLogGroup":         ok("logGroupName", "tags"),
		"ListTagsLogGroup":      ok("logGroupName"),
	}
}

// checkMembers refuses a request that sets a refused member or names one
// the operation does not have. A member that is null, false, 0, "", [] or
// {} is not set: clients send empty values for what they do not use.
func checkMembers(op string, table []member, body []byte) error {
	var top map[string]json.RawMessage
	if len(bytes.TrimSpace(body)) == 0 || json.Unmarshal(body, &top) != nil {
		return nil // the decoder answers a malformed body
	}
	for k, raw := range top {
		i := -1
		for j, m := range table {
			if m.name == k {
				i = j
				break
			}
		}
		switch {
		case i < 0:
			return apiErr(errInvalid, "%s has no member %s (this endpoint serves: %s)", op, k, names(table))
		case table[i].why != "" && !awsproto.EmptyJSON(raw):
			return apiErr(errInvalid, "%s is not supported by this endpoint: %s.", k, table[i].why)
		}
	}
	return nil
}

func names(table []member) string {
	out := make([]string, len(table))
	for i, m := range table {
		out[i] = m.name
	}
	return strings.Join(out, ", ")
}
