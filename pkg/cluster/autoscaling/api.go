// Package autoscaling is the cluster endpoint's Application Auto Scaling:
// the API (AWS JSON 1.1, target prefix AnyScaleFrontendService., SigV4
// service application-autoscaling) for scalable targets, scaling policies,
// scheduled actions and scaling activities of ECS services
// (ecs:service:DesiredCount), and the scaler that runs them on the elected
// leader: target tracking policies own the CloudWatch alarms they create
// (pkg/cluster/metrics evaluates them and calls RunAlarmActions), step
// scaling policies run on users' alarms, scheduled actions set the minimum
// and maximum capacity on their schedule. Desired counts change through
// records.Service.SetDesiredCount, as UpdateService changes them, in one
// store transaction with the target's cooldowns and the activity, so a
// restart never repeats or loses a scaling action.
//
// pkg/cluster imports it; it imports awsproto, auth, metrics, records and
// store.
package autoscaling

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/metrics"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The API's names on the wire.
const (
	Service      = "application-autoscaling"
	TargetPrefix = "AnyScaleFrontendService."
)

// Waker asks the service controller for a pass soon.
type Waker interface{ Wake() }

// Options configure a Server.
type Options struct {
	Store     store.Store
	Metrics   *metrics.Store
	Region    string
	AccountID string
	// Services is woken after a desired count changed.
	Services Waker
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server serves the Application Auto Scaling API and runs the scaler.
type Server struct {
	o Options
}

var (
	_ awsproto.Handler     = (*Server)(nil)
	_ metrics.ActionRunner = (*Server)(nil)
)

// New returns a Server; Store, Metrics, Region and AccountID are required.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Metrics == nil || o.Region == "" || o.AccountID == "" {
		return nil, errors.New("application auto scaling: Store, Metrics, Region and AccountID are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{o: o}, nil
}

// API is the Application Auto Scaling API for the AWS protocol router.
func (s *Server) API() awsproto.API {
	return awsproto.API{Name: "Application Auto Scaling", Service: Service, Protocol: awsproto.JSON11, TargetPrefix: TargetPrefix,
		InternalError: "InternalServiceException", Handler: s}
}

// AWS's errors of the API.
func validation(format string, args ...any) error {
	return awsproto.ClientError("ValidationException", format, args...)
}

func notFound(format string, args ...any) error {
	return awsproto.ClientError("ObjectNotFoundException", format, args...)
}

func limitExceeded(format string, args ...any) error {
	return awsproto.ClientError("LimitExceededException", format, args...)
}

func invalidToken(format string, args ...any) error {
	return awsproto.ClientError("InvalidNextTokenException", format, args...)
}

type operation func(s *Server, r *awsproto.Request) (smithy.Serializable, error)

func operations() map[string]operation {
	return map[string]operation{
		"RegisterScalableTarget":    awsproto.Op(registerScalableTarget),
		"DescribeScalableTargets":   awsproto.Op(describeScalableTargets),
		"DeregisterScalableTarget":  awsproto.Op(deregisterScalableTarget),
		"PutScalingPolicy":          awsproto.Op(putScalingPolicy),
		"DescribeScalingPolicies":   awsproto.Op(describeScalingPolicies),
		"DeleteScalingPolicy":       awsproto.Op(deleteScalingPolicy),
		"PutScheduledAction":        awsproto.Op(putScheduledAction),
		"DescribeScheduledActions":  awsproto.Op(describeScheduledActions),
		"DeleteScheduledAction":     awsproto.Op(deleteScheduledAction),
		"DescribeScalingActivities": awsproto.Op(describeScalingActivities),
	}
}

// ServeAWS runs one operation for a verified caller: admin keys, and
// viewer keys (which the web console calls it with) for the Describe
// operations.
func (s *Server) ServeAWS(r *awsproto.Request) ([]byte, error) {
	op, ok := operations()[r.Operation]
	if !ok {
		return nil, awsproto.ClientError("UnknownOperationException", "Unknown operation %s", r.Operation)
	}
	if r.Key.Role != auth.RoleAdmin && (r.Key.Role != auth.RoleViewer || !strings.HasPrefix(r.Operation, "Describe")) {
		return nil, &awsproto.Error{Type: auth.AccessDenied, Status: http.StatusBadRequest,
			Message: fmt.Sprintf("%s keys may not call Application Auto Scaling's %s", r.Key.Role, r.Operation)}
	}
	out, err := op(s, r)
	if err != nil {
		return nil, err
	}
	return awsproto.EncodeOutput(r.Context, r, codec, out)
}

// ref is a scalable target's identity as requests name it.
type ref struct {
	Namespace types.ServiceNamespace
	Resource  string
	Dimension types.ScalableDimension
}

// checkRef refuses anything but an ECS service's desired count.
func checkRef(ns types.ServiceNamespace, resource *string, dim types.ScalableDimension) (ref, error) {
	if ns == "" {
		return ref{}, validation("1 validation error detected: Value null at 'serviceNamespace' failed to satisfy constraint: Member must not be null")
	}
	if ns != types.ServiceNamespaceEcs {
		return ref{}, validation("Unsupported service namespace %s: this endpoint scales ECS services (ecs) only", ns)
	}
	r := ref{Namespace: ns, Dimension: dim}
	if resource != nil {
		r.Resource = *resource
		if _, _, ok := serviceOf(r.Resource); !ok {
			return ref{}, validation("Unsupported resource ID %s for namespace ecs: it must be service/<cluster>/<service>", r.Resource)
		}
	}
	if dim != "" && dim != types.ScalableDimensionECSServiceDesiredCount {
		return ref{}, validation("Unsupported scalable dimension %s for namespace ecs: ecs:service:DesiredCount is", dim)
	}
	return r, nil
}

// requireRef is checkRef with the resource and dimension required.
func requireRef(ns types.ServiceNamespace, resource *string, dim types.ScalableDimension) (ref, error) {
	if resource == nil {
		return ref{}, validation("1 validation error detected: Value null at 'resourceId' failed to satisfy constraint: Member must not be null")
	}
	if dim == "" {
		return ref{}, validation("1 validation error detected: Value null at 'scalableDimension' failed to satisfy constraint: Member must not be null")
	}
	return checkRef(ns, resource, dim)
}
