// Package ecsapi serves the ECS API of the cluster endpoint (AWS JSON 1.1,
// X-Amz-Target "AmazonEC2ContainerServiceV20141113.<Operation>", SigV4
// service "ecs"): it decodes each operation's input into the AWS SDK's
// input struct, checks the caller's key role, validates the input as ECS
// does, runs the operation in one store transaction over the records of
// pkg/cluster/records and encodes the SDK's output with the SDK's own
// serializer. Tasks are placed through pkg/cluster/launch.
//
// It is mounted by pkg/cluster on the AWS protocol router (pkg/cluster/awsproto)
// as an awsproto.API, tells a TaskNotifier (the ACS session server) which
// tasks to deliver or stop after each transaction commits, and wakes a
// ServiceWaker (the service controller) when a call may change what a
// service needs. Nothing but pkg/cluster (and tests) imports it: the
// session server, the log store and the service controller never do.
package ecsapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/launch"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// Service is the SigV4 service name of the ECS API.
const Service = "ecs"

// TaskNotifier is told, after the transaction that placed tasks or changed
// their desired status has committed, which tasks an agent must now be
// sent. The ACS session server implements it; it must not block.
type TaskNotifier interface {
	TasksChanged(ctx context.Context, changes []records.TaskChange)
}

// ServiceWaker asks the service controller for a pass soon; it must not
// block. *servicectl.Controller implements it.
type ServiceWaker interface {
	Wake()
}

// RoleValidator checks the roles a task definition names; its error is
// answered as InvalidParameterException. *roles.Broker implements it.
type RoleValidator interface {
	ValidateTaskDefinition(taskRoleArn, executionRoleArn string) error
}

// Options configure a Server.
type Options struct {
	Store store.Store
	// Launcher places tasks and names every ARN (its ARNs hold the region
	// and account).
	Launcher *launch.Launcher
	// PollEndpoint is returned by DiscoverPollEndpoint; empty means the
	// scheme and host the request came to.
	PollEndpoint string
	// Notifier is told about placed and stopping tasks; nil drops them.
	Notifier TaskNotifier
	// Services is woken after calls that may change what a service needs;
	// nil wakes nothing.
	Services ServiceWaker
	// Roles, when set, checks that a task definition's taskRoleArn and
	// executionRoleArn name declared roles; nil accepts any.
	Roles RoleValidator
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server runs the ECS operations: an awsproto.Handler.
type Server struct {
	opts Options
	arns records.ARNs
	ops  map[string]operation
	// members is Members(): the refused ones are answered before decoding.
	members map[string][]Member
}

var _ awsproto.Handler = (*Server)(nil)

// New returns a Server; Store and Launcher (with its ARNs) are required.
func New(opts Options) (*Server, error) {
	if opts.Store == nil || opts.Launcher == nil || opts.Launcher.ARNs.Region == "" || opts.Launcher.ARNs.AccountID == "" {
		return nil, errors.New("ECS API: Store and a Launcher with Region and AccountID are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, arns: opts.Launcher.ARNs}
	s.ops = s.operations()
	s.members = Members()
	return s, nil
}

// API is the ECS API for the AWS protocol router.
func (s *Server) API() awsproto.API {
	return awsproto.API{Name: "ECS", Service: Service, Protocol: awsproto.JSON11, TargetPrefix: TargetPrefix,
		InternalError: "ServerException", Handler: s}
}

// call is one API request being served.
type call struct {
	ctx      context.Context
	key      auth.Key
	now      time.Time
	notifies []records.TaskChange
	// wake is set by operations that may change what a service needs.
	wake bool
	// baseURL is the scheme and host the request came to.
	baseURL string
	// bodyLen is the request body's size in bytes.
	bodyLen int
}

// isAgent reports whether the caller holds an agent key.
func (c *call) isAgent() bool { return c.key.Role == auth.RoleAgent }

// operation is one ECS operation: whether an agent key may call it and how to
// run it on the raw body.
type operation struct {
	agent bool
	run   func(c *call, body []byte) (smithy.Serializable, error)
}

// op adapts a typed handler: it decodes the body into a new In and runs fn.
func op[In any](agent bool, fn func(c *call, in *In) (smithy.Serializable, error)) operation {
	return operation{agent: agent, run: func(c *call, body []byte) (smithy.Serializable, error) {
		in := new(In)
		if err := decodeInput(body, in); err != nil {
			return nil, awsproto.ClientError("SerializationException", "%s", err)
		}
		return fn(c, in)
	}}
}

// readOnly reports whether op only reads: the ECS API's Describe and List
// operations.
func readOnly(op string) bool {
	return strings.HasPrefix(op, "Describe") || strings.HasPrefix(op, "List")
}

// ServeAWS runs one ECS operation; after the output is encoded, the
// notifier learns about the tasks it placed or stopped and the service
// controller is woken if it may have work.
func (s *Server) ServeAWS(r *awsproto.Request) ([]byte, error) {
	o, known := s.ops[r.Operation]
	if !known {
		return nil, awsproto.ClientError("UnknownOperationException", "Unknown operation %q", TargetPrefix+r.Operation)
	}
	if r.Key.Role == auth.RoleAgent && !o.agent {
		return nil, awsproto.ClientError(auth.AccessDenied,
			"User: %s is not authorized to perform: ecs:%s (agent keys may only call agent operations)", r.Key.AccessKeyID, r.Operation)
	}
	if r.Key.Role == auth.RoleViewer && !readOnly(r.Operation) {
		// The web console calls this handler with its operator's key; a
		// viewer's may only read.
		return nil, awsproto.ClientError(auth.AccessDenied,
			"User: %s is not authorized to perform: ecs:%s (viewer keys may only read)", r.Key.AccessKeyID, r.Operation)
	}
	if err := refuseMembers(r.Operation, s.members[r.Operation], r.Body); err != nil {
		return nil, err
	}
	if err := validateTagsMember(r.Body); err != nil {
		return nil, err
	}
	if err := validateOverridesSize(r.Body); err != nil {
		return nil, err
	}
	c := &call{ctx: r.Context, key: r.Key, now: s.opts.Now().UTC(), baseURL: r.BaseURL, bodyLen: len(r.Body)}
	out, err := o.run(c, r.Body)
	if err != nil {
		return nil, err
	}
	resp, err := EncodeOutput(r.Context, out)
	if err != nil {
		return nil, err
	}
	if len(c.notifies) > 0 && s.opts.Notifier != nil {
		s.opts.Notifier.TasksChanged(r.Context, c.notifies)
	}
	if c.wake && s.opts.Services != nil {
		s.opts.Services.Wake()
	}
	return resp, nil
}

// Shorthands for the ECS error types used most.
func clientErr(typ, format string, args ...any) *awsproto.Error {
	return awsproto.ClientError(typ, format, args...)
}

func invalidParam(format string, args ...any) *awsproto.Error {
	return clientErr("InvalidParameterException", format, args...)
}

func clientException(format string, args ...any) *awsproto.Error {
	return clientErr("ClientException", format, args...)
}

func clusterNotFound() *awsproto.Error {
	return clientErr("ClusterNotFoundException", "Cluster not found.")
}

func isAPIError(err error) bool {
	var ae *awsproto.Error
	return errors.As(err, &ae)
}

// accessDenied is how ECS refuses an agent key acting on another's instance.
func accessDenied(format string, args ...any) *awsproto.Error {
	return &awsproto.Error{Type: auth.AccessDenied, Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}
