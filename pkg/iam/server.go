package iam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Paths and environment variables of the credentials and metadata endpoints.
const (
	// V1CredentialsPath takes the id as the "id" query parameter.
	V1CredentialsPath = "/v1/credentials"
	// V2CredentialsPath takes the id as the last path segment.
	V2CredentialsPath = "/v2/credentials"
	// EndpointBase is how tasks reach the server (routed by pkg/network).
	EndpointBase = "http://169.254.170.2"

	EnvCredentialsRelativeURI = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
	EnvMetadataURIV4          = "ECS_CONTAINER_METADATA_URI_V4"
	EnvMetadataURIV3          = "ECS_CONTAINER_METADATA_URI"
)

// Error codes of the ECS agent's credentials handlers.
const (
	ErrNoIDInRequest            = "NoIdInRequest"
	ErrInvalidIDInRequest       = "InvalidIdInRequest"
	ErrCredentialsUninitialized = "CredentialsUninitialized"
	ErrInternalServer           = "InternalServerError"
)

// Audit event names (the first three are the ECS agent's).
const (
	EventGetCredentials              = "GetCredentials"
	EventGetCredentialsExecutionRole = "GetCredentialsExecutionRole"
	EventGetCredentialsInvalid       = "GetCredentialsInvalidRoleType"
	EventSourceRefused               = "SourceAddressRefused"
	EventRateLimited                 = "RateLimited"
	EventTaskMetadata                = "TaskMetadata"
)

// CredentialsRelativeURI is the value of AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
// for a credentials id.
func CredentialsRelativeURI(id string) string { return V2CredentialsPath + "/" + id }

// ContainerEnv returns the variables the agent adds to a container:
// the credentials URI when the task has a role (credentialsID not empty)
// and the task metadata URIs when metadataID is not empty.
func ContainerEnv(credentialsID, metadataID string) []string {
	var env []string
	if credentialsID != "" {
		env = append(env, EnvCredentialsRelativeURI+"="+CredentialsRelativeURI(credentialsID))
	}
	if metadataID != "" {
		env = append(env,
			EnvMetadataURIV4+"="+EndpointBase+"/v4/"+metadataID,
			EnvMetadataURIV3+"="+EndpointBase+"/v3/"+metadataID)
	}
	return env
}

// TaskLookup resolves a task's network identity for the source address
// check. The agent implements it over the engine's sandboxes.
type TaskLookup interface {
	// TaskAddresses returns the sandbox IPs of a bridge or awsvpc task. ok
	// is false for host-network and unknown tasks, whose callers cannot be
	// told apart from the host itself.
	TaskAddresses(taskArn string) (addrs []netip.Addr, ok bool)
	// TaskByAddress names the task whose sandbox holds ip.
	TaskByAddress(ip netip.Addr) (taskArn string, ok bool)
}

// Options configure a Server.
type Options struct {
	// Store holds the credentials; required.
	Store *Store
	// Tasks enables the source address check; nil disables it (ECS's
	// behaviour: knowing the id is enough).
	Tasks TaskLookup
	// Metadata serves task metadata v3/v4; nil answers 404 to them.
	Metadata MetadataSource
	// RateLimit applies per client IP to every request.
	RateLimit RateLimit
	// Audit receives one line per request; nil discards.
	Audit *AuditLog
	// Logger gets debug lines for refused requests; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is the credentials and task metadata HTTP server.
type Server struct {
	opts    Options
	limiter *ipLimiter
}

var _ http.Handler = (*Server)(nil)

// NewServer returns a Server; serve it with Serve or mount it as a handler.
func NewServer(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("iam server: no credentials store")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, limiter: newIPLimiter(opts.RateLimit, opts.Now)}, nil
}

// Serve answers requests on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve credentials endpoint: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutCtx)
	<-done
	if err != nil {
		return fmt.Errorf("shut down credentials endpoint: %w", err)
	}
	return nil
}

// errorBody is the ECS agent's error JSON.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// credentialsBody is the ECS agent's credentials JSON, which the AWS SDKs'
// container credentials providers parse.
type credentialsBody struct {
	RoleArn         string `json:"RoleArn"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      string `json:"Expiration"`
}

// request carries what the audit line needs through a handler.
type request struct {
	r      *http.Request
	source netip.AddrPort
	path   string
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	src, _ := netip.ParseAddrPort(r.RemoteAddr)
	req := request{r: r, source: src, path: r.URL.Path}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	path := r.URL.Path
	switch {
	case path == V1CredentialsPath:
		req.path = V1CredentialsPath
		if !s.admit(w, req) {
			return
		}
		s.credentials(w, req, "CredentialsV1Request", r.URL.Query().Get("id"))
	case path == V2CredentialsPath || strings.HasPrefix(path, V2CredentialsPath+"/"):
		req.path = V2CredentialsPath
		if !s.admit(w, req) {
			return
		}
		s.credentials(w, req, "CredentialsV2Request", strings.TrimPrefix(strings.TrimPrefix(path, V2CredentialsPath), "/"))
	case strings.HasPrefix(path, "/v4/") || strings.HasPrefix(path, "/v3/"):
		id, rest, _ := strings.Cut(path[len("/v4/"):], "/")
		req.path = path[:len("/v4")] + "/<id>"
		if rest != "" {
			req.path += "/" + rest
		}
		if !s.admit(w, req) {
			return
		}
		s.metadata(w, req, id, rest)
	default:
		http.NotFound(w, r)
	}
}

// admit applies the rate limit; false means the request was answered.
func (s *Server) admit(w http.ResponseWriter, req request) bool {
	if s.limiter.allow(req.source.Addr()) {
		return true
	}
	s.audit(req, http.StatusTooManyRequests, "", "", EventRateLimited)
	http.Error(w, "You have reached maximum request limit.", http.StatusTooManyRequests)
	return false
}

func (s *Server) audit(req request, status int, roleArn, taskArn, event string) {
	source := ""
	if req.source.IsValid() {
		source = req.source.String()
	}
	s.opts.Audit.log(auditRecord{
		at: s.opts.Now(), status: status, source: source, path: req.path,
		userAgent: req.r.UserAgent(), roleArn: roleArn, taskArn: taskArn, event: event,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":"InternalServerError","message":"Internal server error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (s *Server) credentials(w http.ResponseWriter, req request, prefix, id string) {
	fail := func(status int, code, msg, roleArn, taskArn, event string) {
		s.audit(req, status, roleArn, taskArn, event)
		writeJSON(w, status, errorBody{Code: code, Message: prefix + ": " + msg})
	}
	if id == "" {
		fail(http.StatusBadRequest, ErrNoIDInRequest, "No Credential ID in the request", "", "", EventGetCredentialsInvalid)
		return
	}
	e, ok := s.opts.Store.Get(id)
	if !ok {
		fail(http.StatusBadRequest, ErrInvalidIDInRequest, "Credentials not found", "", "", EventGetCredentialsInvalid)
		return
	}
	if !s.sourceAllowed(req.source.Addr(), e.TaskArn) {
		// The answer is the unknown-id one so that a neighbour learns
		// nothing about which ids exist; the audit line says why.
		s.opts.Logger.Debug("credentials request from another task's address refused",
			"source", req.source.String(), "task", e.TaskArn)
		fail(http.StatusBadRequest, ErrInvalidIDInRequest, "Credentials not found",
			e.Credentials.RoleArn, e.TaskArn, EventSourceRefused)
		return
	}
	if !e.Initialized {
		fail(http.StatusServiceUnavailable, ErrCredentialsUninitialized, "Credentials uninitialized for ID",
			"", e.TaskArn, EventGetCredentialsInvalid)
		return
	}
	c := e.Credentials
	event := EventGetCredentials
	if c.RoleType == "TaskExecution" {
		event = EventGetCredentialsExecutionRole
	}
	s.audit(req, http.StatusOK, c.RoleArn, e.TaskArn, event)
	writeJSON(w, http.StatusOK, credentialsBody{
		RoleArn: c.RoleArn, AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey,
		Token: c.SessionToken, Expiration: c.Expiration,
	})
}

// sourceAllowed is the check ECS does not make: a bridge or awsvpc task's
// credentials are served only to that task's addresses, and a host-network
// task's credentials never to another task's sandbox address.
func (s *Server) sourceAllowed(src netip.Addr, owner string) bool {
	if s.opts.Tasks == nil {
		return true
	}
	src = src.Unmap()
	if addrs, ok := s.opts.Tasks.TaskAddresses(owner); ok {
		return slices.Contains(addrs, src)
	}
	if other, ok := s.opts.Tasks.TaskByAddress(src); ok && other != owner {
		return false
	}
	return true
}
