package logstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
)

var _ awsproto.Handler = (*Store)(nil)

// maxHTTPBody bounds a request: a full PutLogEvents batch (1 MiB of text)
// plus its JSON escaping.
const maxHTTPBody = 8 << 20

// API is the CloudWatch Logs API for the endpoint's AWS protocol router.
func (s *Store) API() awsproto.API {
	return awsproto.API{Name: "CloudWatch Logs", Service: Service, Protocol: awsproto.JSON11, TargetPrefix: TargetPrefix,
		MaxBody: maxHTTPBody, InternalError: "ServiceUnavailableException", Handler: s}
}

// Handler serves the store alone on POST / (tests of the log drivers); v
// must accept the "logs" service.
func (s *Store) Handler(v awsproto.Verifier) http.Handler {
	rt, err := awsproto.New(awsproto.Options{Verifier: v, APIs: []awsproto.API{s.API()}})
	if err != nil {
		// New fails only without a verifier or with a malformed API.
		panic(fmt.Sprintf("log store handler: %v", err))
	}
	return rt
}

// agentOps are the operations an agent key may call: what the awslogs
// driver needs, nothing that deletes or reads other streams wholesale.
var agentOps = []string{"CreateLogGroup", "CreateLogStream", "DescribeLogStreams", "PutLogEvents", "GetLogEvents"}

func apiErr(typ, format string, args ...any) error {
	return awsproto.ClientError(typ, format, args...)
}

const (
	errNotFound    = "ResourceNotFoundException"
	errExists      = "ResourceAlreadyExistsException"
	errInvalid     = "InvalidParameterException"
	errDenied      = "AccessDeniedException"
	errUnknownOp   = "UnknownOperationException"
	errSerializat  = "SerializationException"
	errTooManyTags = "TooManyTagsException"
)

// ServeAWS runs one CloudWatch Logs operation for a verified caller.
func (s *Store) ServeAWS(r *awsproto.Request) ([]byte, error) {
	op, body := r.Operation, r.Body
	if r.Key.Role == auth.RoleAgent && !slices.Contains(agentOps, op) {
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
	table, routed := members()[op]
	if !routed {
		return nil, apiErr(errUnknownOp, "operation %s is not served by this endpoint", op)
	}
	if err := checkMembers(op, table, body); err != nil {
		return nil, err
	}
	var out any
	var err error
	switch op {
	case "CreateLogGroup":
		var in createGroupInput
		if err = dec(&in); err == nil {
			out, err = struct{}{}, s.createLogGroup(in)
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
	case "DeleteLogStream":
		var in struct{ LogGroupName, LogStreamName string }
		if err = dec(&in); err == nil {
			out, err = struct{}{}, s.deleteLogStream(in.LogGroupName, in.LogStreamName)
		}
	case "DescribeLogStreams":
		var in describeStreamsInput
		if err = dec(&in); err == nil {
			if in.LogGroupName, err = s.resolveGroup(in.LogGroupName, in.LogGroupIdentifier); err == nil {
				out, err = s.describeLogStreams(in)
			}
		}
	case "PutLogEvents":
		var in putEventsInput
		if err = dec(&in); err == nil {
			out, err = s.PutLogEvents(in.LogGroupName, in.LogStreamName, in.LogEvents)
		}
	case "GetLogEvents":
		var in getEventsInput
		if err = dec(&in); err == nil {
			if in.LogGroupName, err = s.resolveGroup(in.LogGroupName, in.LogGroupIdentifier); err == nil {
				out, err = s.getLogEvents(in)
			}
		}
	case "FilterLogEvents":
		var in filterInput
		if err = dec(&in); err == nil {
			if in.LogGroupName, err = s.resolveGroup(in.LogGroupName, in.LogGroupIdentifier); err == nil {
				out, err = s.filterLogEvents(in)
			}
		}
	case "PutRetentionPolicy":
		var in struct {
			LogGroupName    string
			RetentionInDays *int32
		}
		if err = dec(&in); err == nil {
			if in.RetentionInDays == nil {
				err = apiErr(errInvalid, "1 validation error detected: Value null at 'retentionInDays' failed to satisfy constraint: Member must not be null")
			} else {
				out, err = struct{}{}, s.putRetention(in.LogGroupName, *in.RetentionInDays)
			}
		}
	case "DeleteRetentionPolicy":
		var in struct{ LogGroupName string }
		if err = dec(&in); err == nil {
			out, err = struct{}{}, s.putRetention(in.LogGroupName, 0)
		}
	case "TagResource", "UntagResource", "ListTagsForResource":
		out, err = s.serveTagResource(op, dec)
	case "TagLogGroup", "UntagLogGroup", "ListTagsLogGroup":
		out, err = s.serveTagLogGroup(op, dec)
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
