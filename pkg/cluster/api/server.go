// Package api serves the ECS JSON 1.1 API of the cluster endpoint: it reads
// and size-limits the request, verifies its SigV4 signature, checks the key's
// role, decodes the operation's input, runs the operation in one store
// transaction and answers with the ECS response or an AWS error shape. It is
// imported by pkg/cluster, which wires it to a listener.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	smithy "github.com/aws/smithy-go"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// MaxRequestBody is the largest request body accepted. ECS task definitions
// are limited to 64 KiB; an agent's state change with many containers stays
// far below this.
const MaxRequestBody = 1 << 20

// TaskChange tells a TaskNotifier about one task whose delivery to its agent
// is due: it was just placed (Placed) or its desired status changed.
type TaskChange struct {
	ClusterArn           string
	ContainerInstanceArn string
	TaskArn              string
	DesiredStatus        string
	Placed               bool
}

// TaskNotifier is told, after the transaction that placed tasks or changed
// their desired status has committed, which tasks an agent must now be sent.
// The ACS session server implements it to push PayloadMessages; it must not
// block (queue and return). Until then the endpoint uses NopNotifier.
type TaskNotifier interface {
	TasksChanged(ctx context.Context, changes []TaskChange)
}

// NopNotifier drops every change.
type NopNotifier struct{}

var _ TaskNotifier = NopNotifier{}

// TasksChanged does nothing.
func (NopNotifier) TasksChanged(context.Context, []TaskChange) {}

// Verifier authenticates a request whose body has been read and says which
// SigV4 service it was signed for. *auth.Verifier implements it.
type Verifier interface {
	VerifyScope(r *http.Request, body []byte) (auth.Key, string, error)
}

// ECSService is the SigV4 service name of the ECS API.
const ECSService = "ecs"

// Target serves another AWS JSON API on POST / beside ECS, chosen by its
// X-Amz-Target prefix: CloudWatch Logs ("Logs_20140328.", service "logs")
// is the one planned.
type Target struct {
	// Prefix is the X-Amz-Target prefix including the dot.
	Prefix string
	// Service is the SigV4 service requests must be signed for; the
	// Verifier must accept it.
	Service string
	Handler TargetHandler
	// MaxBody is the largest request body this API accepts; zero means
	// MaxRequestBody. CloudWatch Logs batches of 1 MiB of text exceed 1 MiB
	// once JSON-encoded, so that target allows more.
	MaxBody int
}

// TargetHandler runs one operation of a Target's API for a verified caller
// (of either role: the handler decides what an agent key may do). It returns
// the JSON response body, or an error; an *Error gives its AWS type, any
// other error is a ServerException.
type TargetHandler interface {
	ServeTarget(ctx context.Context, key auth.Key, operation string, body []byte) ([]byte, error)
}

// Error is an AWS error with its type, for TargetHandlers.
type Error struct {
	Type    string
	Status  int // zero means 400
	Message string
}

// Error returns "Type: message".
func (e *Error) Error() string { return e.Type + ": " + e.Message }

var _ Verifier = (*auth.Verifier)(nil)

// Options configure a Server.
type Options struct {
	Store    store.Store
	Verifier Verifier
	// Region and AccountID appear in every ARN.
	Region    string
	AccountID string
	// PollEndpoint is returned by DiscoverPollEndpoint; empty means the
	// scheme and host the request came to.
	PollEndpoint string
	// Notifier is told about placed and stopping tasks; nil means NopNotifier.
	Notifier TaskNotifier
	// Websocket serves GET /ws (the ACS session); nil answers 404.
	Websocket http.Handler
	// Telemetry serves GET /tcs/ws (the TCS session, at the
	// telemetryEndpoint DiscoverPollEndpoint returns); nil answers 404.
	Telemetry http.Handler
	// Targets are other JSON APIs served on POST / by X-Amz-Target prefix.
	Targets []Target
	// RequireConnectedAgent makes RunTask and StartTask skip instances
	// whose agent holds no ACS session (failure reason AGENT), as ECS does.
	// Set it when a session server maintains agentConnected.
	RequireConnectedAgent bool
	Logger                *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand breaks placement ties. It is used only inside write
	// transactions, which the store serializes; nil means a randomly seeded
	// one. Tests inject a seeded one.
	Rand *rand.Rand
	// Services tune the service controller.
	Services ServiceOptions
	// Roles, when set, checks that a task definition's taskRoleArn and
	// executionRoleArn name declared roles (roles.Broker); nil accepts any.
	Roles RoleValidator
}

// RoleValidator checks the roles a task definition names; its error is
// answered as InvalidParameterException.
type RoleValidator interface {
	ValidateTaskDefinition(taskRoleArn, executionRoleArn string) error
}

// Server is the ECS JSON API handler.
type Server struct {
	opts Options
	ops  map[string]operation
	// wake asks the service controller for a pass; buffered, never blocks.
	wake chan struct{}
}

var _ http.Handler = (*Server)(nil)

// New returns a Server; Store, Verifier, Region and AccountID are required.
func New(opts Options) (*Server, error) {
	if opts.Store == nil || opts.Verifier == nil || opts.Region == "" || opts.AccountID == "" {
		return nil, errors.New("cluster api: Store, Verifier, Region and AccountID are required")
	}
	if opts.Notifier == nil {
		opts.Notifier = NopNotifier{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	opts.Services = opts.Services.withDefaults()
	s := &Server{opts: opts, wake: make(chan struct{}, 1)}
	s.ops = s.operations()
	return s, nil
}

// ServeHTTP routes POST / by X-Amz-Target, GET /ws to the ACS websocket
// handler and GET /tcs/ws to the TCS one.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/ws" && r.Method == http.MethodGet && s.opts.Websocket != nil:
		s.opts.Websocket.ServeHTTP(w, r)
	case r.URL.Path == TelemetryPath+"/ws" && r.Method == http.MethodGet && s.opts.Telemetry != nil:
		s.opts.Telemetry.ServeHTTP(w, r)
	case r.URL.Path == "/" && r.Method == http.MethodPost:
		s.serveJSON(w, r)
	default:
		http.NotFound(w, r)
	}
}

// call is one API request being served.
type call struct {
	ctx      context.Context
	key      auth.Key
	op       string
	now      time.Time
	notifies []TaskChange
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
			return nil, &apiError{typ: "SerializationException", status: http.StatusBadRequest, msg: err.Error()}
		}
		return fn(c, in)
	}}
}

// bodyLimit is the request body limit for an X-Amz-Target: a Target's own
// MaxBody, else MaxRequestBody.
func (s *Server) bodyLimit(target string) int {
	for _, t := range s.opts.Targets {
		if t.MaxBody > 0 && strings.HasPrefix(target, t.Prefix) {
			return t.MaxBody
		}
	}
	return MaxRequestBody
}

func (s *Server) serveJSON(w http.ResponseWriter, r *http.Request) {
	limit := s.bodyLimit(r.Header.Get("X-Amz-Target"))
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		s.writeError(w, "", clientErr("SerializationException", "read request body: %v", err))
		return
	}
	if len(body) > limit {
		s.writeError(w, "", &apiError{typ: "RequestEntityTooLargeException", status: http.StatusRequestEntityTooLarge,
			msg: fmt.Sprintf("request body exceeds %d bytes", limit)})
		return
	}
	key, service, err := s.opts.Verifier.VerifyScope(r, body)
	if err != nil {
		var authE *auth.Error
		if errors.As(err, &authE) {
			s.opts.Logger.Info("request refused", "remote", r.RemoteAddr, "error", authE.Type, "reason", authE.Message)
		}
		s.writeError(w, "", err)
		return
	}
	target := r.Header.Get("X-Amz-Target")
	name, ok := strings.CutPrefix(target, TargetPrefix)
	if !ok {
		s.serveTarget(w, r, key, service, target, body)
		return
	}
	if service != ECSService {
		s.writeError(w, target, wrongService(ECSService))
		return
	}
	o, known := s.ops[name]
	if !known {
		s.writeError(w, target, unknownOperation(target))
		return
	}
	if key.Role == auth.RoleAgent && !o.agent {
		s.writeError(w, name, &apiError{typ: auth.AccessDenied, status: http.StatusBadRequest,
			msg: fmt.Sprintf("User: %s is not authorized to perform: ecs:%s (agent keys may only call agent operations)", key.AccessKeyID, name)})
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	start := s.opts.Now()
	c := &call{ctx: r.Context(), key: key, op: name, now: s.opts.Now().UTC(), baseURL: scheme + "://" + r.Host, bodyLen: len(body)}
	out, err := o.run(c, body)
	// Access key ids are not secret; secrets never reach this point.
	defer func() {
		s.opts.Logger.Debug("ECS request", "operation", name, "accessKeyId", key.AccessKeyID, "err", err, "duration", s.opts.Now().Sub(start))
	}()
	if err != nil {
		s.writeError(w, name, err)
		return
	}
	resp, err := EncodeOutput(r.Context(), out)
	if err != nil {
		s.writeError(w, name, err)
		return
	}
	if len(c.notifies) > 0 {
		s.opts.Notifier.TasksChanged(r.Context(), c.notifies)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusOK)
	w.Write(resp)
}

func unknownOperation(target string) *apiError {
	return &apiError{typ: "UnknownOperationException", status: http.StatusBadRequest, msg: fmt.Sprintf("Unknown operation %q", target)}
}

func wrongService(want string) *auth.Error {
	return &auth.Error{Type: auth.InvalidSignature, Status: http.StatusBadRequest,
		Message: fmt.Sprintf("Credential should be scoped to correct service: '%s'. ", want)}
}

// serveTarget routes a request whose target is not ECS's to its Target.
func (s *Server) serveTarget(w http.ResponseWriter, r *http.Request, key auth.Key, service, target string, body []byte) {
	for _, t := range s.opts.Targets {
		op, ok := strings.CutPrefix(target, t.Prefix)
		if !ok || op == "" {
			continue
		}
		if service != t.Service {
			s.writeError(w, target, wrongService(t.Service))
			return
		}
		resp, err := t.Handler.ServeTarget(r.Context(), key, op, body)
		if err != nil {
			s.writeError(w, target, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusOK)
		w.Write(resp)
		return
	}
	s.writeError(w, target, unknownOperation(target))
}

// apiError is an error the client sees with its AWS type.
type apiError struct {
	typ    string
	status int
	msg    string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func clientErr(typ, format string, args ...any) *apiError {
	return &apiError{typ: typ, status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// Shorthands for the ECS error types used most.
func invalidParam(format string, args ...any) *apiError {
	return clientErr("InvalidParameterException", format, args...)
}

func clientException(format string, args ...any) *apiError {
	return clientErr("ClientException", format, args...)
}

func clusterNotFound() *apiError {
	return clientErr("ClusterNotFoundException", "Cluster not found.")
}

func (s *Server) writeError(w http.ResponseWriter, op string, err error) {
	var (
		ae    *apiError
		te    *Error
		authE *auth.Error
		typ   string
		code  int
		msg   string
	)
	switch {
	case errors.As(err, &ae):
		typ, code, msg = ae.typ, ae.status, ae.msg
	case errors.As(err, &te):
		typ, code, msg = te.Type, te.Status, te.Message
		if code == 0 {
			code = http.StatusBadRequest
		}
	case errors.As(err, &authE):
		typ, code, msg = authE.Type, authE.Status, authE.Message
	default:
		// Internal details go to the log, not to the client.
		s.opts.Logger.Error("request failed", "operation", op, "err", err)
		typ, code, msg = "ServerException", http.StatusInternalServerError, "internal error"
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(code)
	w.Write(encodeError(typ, msg))
}
