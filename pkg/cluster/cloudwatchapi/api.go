// Package cloudwatchapi is the cluster endpoint's CloudWatch (metrics) API:
// PutMetricData, GetMetricStatistics, GetMetricData and ListMetrics over
// pkg/cluster/metrics, and the metric alarms (PutMetricAlarm,
// DescribeAlarms, DeleteAlarms, SetAlarmState, DescribeAlarmHistory),
// which the leader evaluates (metrics.Store.RunEvaluator). CloudWatch speaks three
// protocols and so does this API: AWS JSON 1.0 (target prefix
// GraniteServiceVersion20100801., what the AWS CLI sends), Smithy RPC v2
// CBOR (what aws-sdk-go-v2 sends) and AWS Query (version 2010-08-01, older
// SDKs and tools), all signed for the SigV4 service "monitoring". Requests
// decode into the AWS SDK's input structs and answers are the SDK's output
// structs (awsproto.DecodeInput, awsproto.EncodeOutput); errors carry their
// Query code (CloudWatch is "awsQueryCompatible").
//
// pkg/cluster imports it; it imports awsproto, auth and metrics.
package cloudwatchapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/metrics"
)

// The API's names on the wire.
const (
	// Service is the SigV4 service requests are signed for.
	Service = "monitoring"
	// ServiceShape names the API in JSON targets and RPC v2 paths.
	ServiceShape = "GraniteServiceVersion20100801"
	TargetPrefix = ServiceShape + "."
	Version      = "2010-08-01"
	Namespace    = "http://monitoring.amazonaws.com/doc/2010-08-01/"
)

// maxBody bounds a request: a PutMetricData of 1000 datums of 150 values
// stays far below it (AWS allows 1 MB).
const maxBody = 1 << 20

// Options configure a Server.
type Options struct {
	Metrics   *metrics.Store
	Region    string
	AccountID string
	// Actions, when set, runs the actions of an alarm set by SetAlarmState
	// (the evaluation runs them on the leader).
	Actions metrics.ActionRunner
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server serves the CloudWatch API.
type Server struct {
	o Options
}

var _ awsproto.Handler = (*Server)(nil)

// New returns a Server; Metrics, Region and AccountID are required.
func New(o Options) (*Server, error) {
	if o.Metrics == nil || o.Region == "" || o.AccountID == "" {
		return nil, errors.New("cloudwatch API: Metrics, Region and AccountID are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Server{o: o}, nil
}

// APIs are the CloudWatch API for the AWS protocol router: JSON 1.0 and RPC
// v2 CBOR, and Query.
func (s *Server) APIs() []awsproto.API {
	return []awsproto.API{
		{Name: "CloudWatch", Service: Service, Protocol: awsproto.JSON10, TargetPrefix: TargetPrefix, RPCService: ServiceShape,
			MaxBody: maxBody, InternalError: "InternalServiceFault", Handler: s},
		{Name: "CloudWatch", Service: Service, Protocol: awsproto.Query, Version: Version, XMLNamespace: Namespace,
			MaxBody: maxBody, InternalError: "InternalServiceError", Handler: s},
	}
}

// codec is what answers are encoded with.
var codec = awsproto.Codec{Service: schemas.GraniteServiceVersion20100801,
	Operation: smithy.NewOperationSchema(schemas.ListMetrics, schemas.ListMetricsInput, schemas.ListMetricsOutput)}

// CloudWatch's errors: the shape name (JSON and CBOR) and the Query code.
func cwErr(shape, code string, status int, format string, args ...any) error {
	return &awsproto.Error{Type: shape, QueryCode: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

func invalidValue(format string, args ...any) error {
	return cwErr("InvalidParameterValueException", "InvalidParameterValue", http.StatusBadRequest, format, args...)
}

func missing(member string) error {
	return cwErr("MissingRequiredParameterException", "MissingParameter", http.StatusBadRequest,
		"The parameter %s is required.", member)
}

func combination(format string, args ...any) error {
	return cwErr("InvalidParameterCombinationException", "InvalidParameterCombination", http.StatusBadRequest, format, args...)
}

func notFound(format string, args ...any) error {
	return cwErr("ResourceNotFound", "ResourceNotFound", http.StatusNotFound, format, args...)
}

func limitExceeded(format string, args ...any) error {
	return cwErr("LimitExceededFault", "LimitExceeded", http.StatusBadRequest, format, args...)
}

func invalidToken(format string, args ...any) error {
	return cwErr("InvalidNextToken", "InvalidNextToken", http.StatusBadRequest, format, args...)
}

func invalidFormat(format string, args ...any) error {
	return cwErr("InvalidFormatFault", "InvalidFormat", http.StatusBadRequest, format, args...)
}

// operation is one operation: it decodes its input, runs and returns the
// SDK output to encode.
type operation func(s *Server, r *awsproto.Request) (smithy.Serializable, error)

func operations() map[string]operation {
	return map[string]operation{
		"PutMetricData":        awsproto.Op(putMetricData),
		"GetMetricStatistics":  awsproto.Op(getMetricStatistics),
		"GetMetricData":        awsproto.Op(getMetricData),
		"ListMetrics":          awsproto.Op(listMetrics),
		"PutMetricAlarm":       awsproto.Op(putMetricAlarm),
		"DescribeAlarms":       awsproto.Op(describeAlarms),
		"DeleteAlarms":         awsproto.Op(deleteAlarms),
		"SetAlarmState":        awsproto.Op(setAlarmState),
		"DescribeAlarmHistory": awsproto.Op(describeAlarmHistory),
	}
}

// ServeAWS runs one CloudWatch operation for a verified caller: admin keys
// only.
func (s *Server) ServeAWS(r *awsproto.Request) ([]byte, error) {
	op, ok := operations()[r.Operation]
	if !ok {
		return nil, awsproto.ClientError("UnknownOperationException", "Unknown operation %s", r.Operation)
	}
	if r.Key.Role != auth.RoleAdmin {
		return nil, awsproto.ClientError(auth.AccessDenied, "%s keys may not call CloudWatch's %s", r.Key.Role, r.Operation)
	}
	out, err := op(s, r)
	if err != nil {
		return nil, err
	}
	return awsproto.EncodeOutput(r.Context, r, codec, out)
}
