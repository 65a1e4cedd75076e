// Package acs is the endpoint's side of the Agent Communication Service: the
// websocket (GET /ws) an agent holds open to receive its tasks. It verifies
// the SigV4-signed handshake, binds the session to the agent's container
// instance, delivers PayloadMessages with sequence numbers and resends each
// until the agent's AckRequest, sends heartbeats, rotates connections with a
// CloseMessage ("ConnectionExpired"), refuses deregistered instances with
// InactiveInstanceException, and on every (re)connect sends the instance's
// current tasks and a TaskManifestMessage so that nothing assigned while the
// agent was away is missed; it answers the agent's TaskStopVerificationMessage
// (manifest.go) and records the handshake's agent and runtime versions as the
// instance's versionInfo.
//
// Server.Telemetry serves the Telemetry Communication Service beside it
// (tcs.go): the agents' health reports, written onto the task records; the
// upstream agent's signed frames are verified there (tcsframe.go).
//
// Server is the task notifier of the ECS API and the service controller
// (TasksChanged), so it learns about placed and stopping tasks after their
// transactions commit; it reads the task records then, so it always sends
// a task's latest desired status. It builds each ACS task from the task's
// record and its task definition (payload.go).
//
// pkg/cluster builds and mounts it. It imports pkg/api and, of the
// endpoint, records, store, auth, awsproto and roles; never the ECS API's
// handlers (pkg/cluster/ecsapi).
package acs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/gorilla/websocket"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/roles"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// Verifier authenticates the handshake and says which SigV4 service it
// was signed for. *auth.Verifier implements it.
type Verifier interface {
	VerifyScope(r *http.Request, body []byte) (auth.Key, string, error)
}

var _ Verifier = (*auth.Verifier)(nil)

// sigV4Service is the service the ACS and TCS handshakes (and signed TCS
// frames) are signed for, as the ECS agent signs them.
const sigV4Service = "ecs"

// verify authenticates a handshake or a signed frame: it must be signed
// for ECS, by an admin or agent key. The endpoint's verifier also accepts
// the other APIs' services and the lb and task role keys that may call
// them; without this check an lb key, or a task's role credentials signed
// for SSM, would open a session as any container instance and receive its
// tasks and their credentials.
func (s *Server) verify(r *http.Request, body []byte) (auth.Key, error) {
	key, service, err := s.o.Verifier.VerifyScope(r, body)
	if err != nil {
		return auth.Key{}, err
	}
	if service != sigV4Service {
		return auth.Key{}, &auth.Error{Type: auth.InvalidSignature, Status: http.StatusBadRequest,
			Message: "Credential should be scoped to correct service: '" + sigV4Service + "'. "}
	}
	if key.Role != auth.RoleAdmin && key.Role != auth.RoleAgent {
		return auth.Key{}, &auth.Error{Type: auth.AccessDenied, Status: http.StatusForbidden,
			Message: "User: " + key.AccessKeyID + " (" + string(key.Role) + ") may not open agent sessions"}
	}
	return key, nil
}

// CredentialsBroker issues and refreshes task role credentials
// (pkg/cluster/roles' Broker implements it): ForPayload fills a payload's
// roleCredentials and executionRoleCredentials, Ack records an agent's
// IAMRoleCredentialsAckRequest, ResendInstance resends an instance's
// current credentials when its agent connects. Refreshes reach the agent
// through Server.SendCredentials.
type CredentialsBroker interface {
	ForPayload(ctx context.Context, p roles.Placement) (role, exec *api.IAMRoleCredentials, err error)
	Ack(ack *api.IAMRoleCredentialsAckRequest)
	ResendInstance(containerInstanceArn string)
}

var _ CredentialsBroker = (*roles.Broker)(nil)

// Options configure a Server.
type Options struct {
	Store    store.Store
	Verifier Verifier
	// HeartbeatInterval is how often an idle session gets a HeartbeatMessage;
	// zero means 20 seconds (agents drop a session silent for a minute).
	HeartbeatInterval time.Duration
	// RedeliverAfter is how long an unacknowledged message waits before it
	// is sent again; zero means 5 seconds.
	RedeliverAfter time.Duration
	// ConnectionLifetime is when a session is rotated with a CloseMessage;
	// zero means 30 minutes.
	ConnectionLifetime time.Duration
	// DropAck is a test seam: when it returns true for an AckRequest, the
	// acknowledgement is ignored as if it had been lost on the way.
	DropAck func(instanceArn, messageID string) bool
	// Credentials, when set, issues task role credentials into payloads.
	Credentials CredentialsBroker
	// Replica, set when several replicas share the store, names this one
	// (unique per process): sessions are then recorded per replica
	// (replicas.go) and agentConnected is not reset at start, since other
	// replicas hold sessions. Empty means the only endpoint on its store.
	Replica string
	// Metrics, when set, records the TCS PublishMetricsRequest figures
	// (tcs.go); without it they are acknowledged and dropped.
	Metrics MetricsRecorder
	Logger  *slog.Logger
}

// MetricsRecorder keeps what an agent's TCS PublishMetricsRequest reports
// (*metrics.Store implements it).
type MetricsRecorder interface {
	RecordPublish(instanceArn string, p *api.PublishMetricsRequest) (int, error)
}

// maxAgentFrame bounds one websocket message from an agent; a larger one
// ends the session.
const maxAgentFrame = 64 << 10

// Server serves ACS sessions. Create it with New; it is an http.Handler for
// GET /ws; TasksChanged makes it a task notifier.
type Server struct {
	o        Options
	upgrader websocket.Upgrader

	// flagMu serialises agentConnected writes (see recordConnected).
	flagMu sync.Mutex

	// seqMu guards lastSeq, the last sequence number given out (nextSeq).
	seqMu   sync.Mutex
	lastSeq int64

	// mu guards the fields below.
	mu       sync.Mutex
	sessions map[string]*session // by container instance ARN
	// telemetry holds the open TCS connections (tcs.go).
	telemetry map[*websocket.Conn]context.CancelFunc
	closed    bool
	wg        sync.WaitGroup // every running session
}

var _ http.Handler = (*Server)(nil)

// New returns a Server; Store and Verifier are required.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Verifier == nil {
		return nil, errors.New("ACS server: Store and Verifier are required")
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 20 * time.Second
	}
	if o.RedeliverAfter <= 0 {
		o.RedeliverAfter = 5 * time.Second
	}
	if o.ConnectionLifetime <= 0 {
		o.ConnectionLifetime = 30 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Replica == "" {
		if err := clearAgentConnected(o.Store); err != nil {
			return nil, fmt.Errorf("ACS server: reset agentConnected: %w", err)
		}
	}
	return &Server{
		o:        o,
		sessions: map[string]*session{},
		upgrader: websocket.Upgrader{HandshakeTimeout: 30 * time.Second, CheckOrigin: func(*http.Request) bool { return true }},
	}, nil
}

// Connected reports whether the instance's agent holds a session.
func (s *Server) Connected(instanceArn string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[instanceArn] != nil
}

// Close ends every session and waits for them; later handshakes are refused.
// Agents see their connection drop and reconnect with backoff.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for _, sess := range s.sessions {
		sess.cancel()
	}
	for _, cancel := range s.telemetry {
		cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func writeErr(w http.ResponseWriter, status int, typ, msg string) {
	awsproto.WriteJSONError(w, awsproto.JSON11, status, typ, msg)
}

// ServeHTTP runs one ACS session: GET /ws?clusterArn=..&containerInstanceArn=..
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeErr(w, http.StatusMethodNotAllowed, "BadRequestException", "ACS sessions are opened with GET")
		return
	}
	// Without a limit gorilla/websocket buffers a frame of any size: one
	// agent could exhaust the endpoint's memory. Agents only send
	// acknowledgements, which are a few hundred bytes.
	conn, inst, ok := s.accept(w, r, "ACS", "containerInstanceArn", maxAgentFrame)
	if !ok {
		return
	}
	defer conn.Close()
	instanceArn := aws.ToString(inst.Instance.ContainerInstanceArn)
	// The cluster comes from the instance's ARN, not from what the agent
	// claims in the query.
	clusterArn, _ := records.ClusterArnOfInstance(instanceArn)
	if err := s.recordVersion(instanceArn, r.URL.Query()); err != nil {
		s.o.Logger.Error("ACS handshake: record the agent's version", "instance", instanceArn, "err", err)
	}
	sess := s.register(r.Context(), conn, instanceArn, clusterArn)
	if sess == nil {
		return
	}
	defer s.unregister(sess)
	s.run(sess)
}

// accept authorizes a websocket handshake (ACS or TCS) and upgrades it,
// with readLimit on the agent's frames. A deregistered instance gets an
// InactiveInstanceException frame and a close; then, or when the handshake
// was refused (already answered), ok is false.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, what, param string, readLimit int64) (conn *websocket.Conn, inst *records.Instance, ok bool) {
	instanceArn := r.URL.Query().Get(param)
	inst, ok = s.authorize(w, r, what, param, instanceArn)
	if !ok {
		return nil, nil, false
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return nil, nil, false // the upgrader has answered the client
	}
	conn.SetReadLimit(readLimit)
	if inst.Instance.Status != nil && *inst.Instance.Status == "INACTIVE" {
		b, _ := api.EncodeFrame(&api.ErrorFrame{Type: api.TypeInactiveInstanceException, Message: "Container instance " + instanceArn + " is inactive (deregistered)."})
		_ = conn.WriteMessage(websocket.TextMessage, b)
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "InactiveInstanceException"))
		conn.Close()
		return nil, nil, false
	}
	return conn, inst, true
}

// authorize checks a websocket handshake (ACS or TCS): its SigV4
// signature, the container instance named by the query member param, and,
// for an agent key, that the key registered that instance. On failure it
// has answered with an AWS error shape.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, what, param, instanceArn string) (*records.Instance, bool) {
	key, err := s.verify(r, nil)
	if err != nil {
		var ae *auth.Error
		if errors.As(err, &ae) {
			writeErr(w, ae.Status, ae.Type, ae.Message)
			return nil, false
		}
		s.o.Logger.Error("verify "+what+" handshake", "err", err)
		writeErr(w, http.StatusInternalServerError, "ServerException", "internal error")
		return nil, false
	}
	if instanceArn == "" {
		writeErr(w, http.StatusBadRequest, "BadRequestException", param+" is required")
		return nil, false
	}
	var inst *records.Instance
	err = s.o.Store.View(func(tx store.Tx) error {
		var err error
		inst, err = loadInstance(tx, instanceArn)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		writeErr(w, http.StatusBadRequest, api.TypeInvalidInstanceException, "Container instance "+instanceArn+" is not registered.")
		return nil, false
	}
	if err != nil {
		s.o.Logger.Error(what+" handshake: load instance", "err", err)
		writeErr(w, http.StatusInternalServerError, "ServerException", "internal error")
		return nil, false
	}
	if key.Role == auth.RoleAgent && inst.AgentKeyID != key.AccessKeyID {
		writeErr(w, http.StatusForbidden, auth.AccessDenied, "User: "+key.AccessKeyID+" is not authorized to connect as container instance "+instanceArn)
		return nil, false
	}
	return inst, true
}

// register makes sess the instance's session, ending any older one.
func (s *Server) register(ctx context.Context, conn *websocket.Conn, instanceArn, clusterArn string) *session {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sess := newSession(ctx, cancel, s, conn, instanceArn, clusterArn)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		return nil
	}
	old := s.sessions[instanceArn]
	s.sessions[instanceArn] = sess
	s.wg.Add(1)
	s.mu.Unlock()
	if old != nil {
		old.cancel()
	}
	s.recordConnected(sess, true)
	return sess
}

// recordConnected writes whether the instance has a session now, after
// sess started (connected) or ended. Alone on its store, writes are
// serialised and each reads the current state, so the last one written is
// right even when a session ends while its successor starts; with
// replicas, the session record decides (recordReplicaSession).
func (s *Server) recordConnected(sess *session, connected bool) {
	var err error
	if s.o.Replica != "" {
		err = s.recordReplicaSession(sess, connected)
	} else {
		s.flagMu.Lock()
		err = setAgentConnected(s.o.Store, sess.instanceArn, s.Connected(sess.instanceArn))
		s.flagMu.Unlock()
	}
	if err != nil {
		s.o.Logger.Error("record agentConnected", "instance", sess.instanceArn, "err", err)
	}
}

func (s *Server) unregister(sess *session) {
	sess.cancel()
	s.mu.Lock()
	last := s.sessions[sess.instanceArn] == sess
	if last {
		delete(s.sessions, sess.instanceArn)
	}
	s.mu.Unlock()
	if last {
		s.recordConnected(sess, false)
	}
	s.wg.Done()
}

// run sends the instance's current tasks and manifest, then serves the
// session until it ends.
func (s *Server) run(sess *session) {
	var built []builtTask
	err := s.o.Store.View(func(tx store.Tx) error {
		var err error
		built, err = instanceTasks(tx, sess.instanceArn)
		return err
	})
	if err != nil {
		s.o.Logger.Error("ACS session: load the instance's tasks", "instance", sess.instanceArn, "err", err)
		return
	}
	if len(built) > 0 {
		sess.enqueuePayload(s.withCredentials(sess.ctx, built))
	}
	id := newMessageID()
	sess.enqueueBuilt(id, func() (api.Frame, error) { return s.manifest(sess, id) })
	if s.o.Credentials != nil {
		// After a restart the agent holds the credentials ids, not the
		// secrets: send the current ones again.
		s.o.Credentials.ResendInstance(sess.instanceArn)
	}
	s.o.Logger.Info("ACS session open", "instance", sess.instanceArn, "tasks", len(built))
	sess.serve()
	s.o.Logger.Info("ACS session closed", "instance", sess.instanceArn)
}

// withCredentials returns the ACS tasks with their role credentials filled
// in by the broker. A task whose credentials cannot be issued is sent
// without them (and logged): its containers then get no credentials, which
// is better than holding back the whole payload.
func (s *Server) withCredentials(ctx context.Context, built []builtTask) []*api.Task {
	out := make([]*api.Task, 0, len(built))
	for _, b := range built {
		t := b.task
		if s.o.Credentials != nil && (b.taskRole != "" || b.execRole != "" || t.DesiredStatus == "STOPPED") {
			role, exec, err := s.o.Credentials.ForPayload(ctx, roles.Placement{
				ClusterArn: t.TaskClusterArn, ContainerInstanceArn: b.instanceArn, TaskArn: t.Arn,
				TaskRoleArn: b.taskRole, ExecutionRoleArn: b.execRole, Stopped: t.DesiredStatus == "STOPPED",
			})
			if err != nil {
				s.o.Logger.Error("ACS: issue task role credentials", "task", t.Arn, "err", err)
			}
			t.RoleCredentials, t.ExecutionRoleCredentials = role, exec
		}
		out = append(out, t)
	}
	return out
}

// SendCredentials delivers a refreshed IAMRoleCredentialsMessage to the
// instance's agent (roles.Sender). Without a session it fails; the broker
// retries, and resends everything when the agent connects. For a task that
// is gone or whose desired status is STOPPED it fails with
// roles.ErrTaskEnded, so that the broker stops refreshing it.
func (s *Server) SendCredentials(_ context.Context, containerInstanceArn string, m *api.IAMRoleCredentialsMessage) error {
	ended, err := s.taskEnded(m.TaskArn)
	if err != nil {
		return fmt.Errorf("send credentials for %s: %w", m.TaskArn, err)
	}
	if ended {
		return fmt.Errorf("send credentials for %s: %w", m.TaskArn, roles.ErrTaskEnded)
	}
	s.mu.Lock()
	sess := s.sessions[containerInstanceArn]
	s.mu.Unlock()
	if sess == nil {
		return fmt.Errorf("send credentials: no ACS session for %s", containerInstanceArn)
	}
	sess.enqueueOnce(m)
	return nil
}

// taskEnded reports whether the task is gone from the store or told to stop.
func (s *Server) taskEnded(taskArn string) (bool, error) {
	var t *records.Task
	err := s.o.Store.View(func(tx store.Tx) error {
		var err error
		t, err = loadTask(tx, taskArn)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("load task: %w", err)
	}
	return aws.ToString(t.Task.DesiredStatus) == "STOPPED", nil
}

// nextSeq returns the next sequence number, for a PayloadMessage's seqNum
// or a TaskManifestMessage's timeline. An agent keeps the highest number
// it has seen across sessions and restarts (the upstream agent on disk),
// and discards a manifest whose timeline is not above it, so the numbers
// must grow across sessions, endpoint restarts and replicas, not per
// session. They are the wall clock in milliseconds, or one more than the
// last when that is not larger; a clock stepped back makes a manifest be
// discarded until the clock passes the agent's number, and each resend
// (RedeliverAfter) carries a fresh one.
func (s *Server) nextSeq() int64 {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	s.lastSeq = max(s.lastSeq+1, time.Now().UnixMilli())
	return s.lastSeq
}

// manifest lists the instance's tasks that have not reached STOPPED, read
// from the store when it is sent, with a fresh timeline: the agent takes a
// manifest only when its timeline is above every seqNum and timeline it
// has seen, so a resend (its acknowledgement was lost) must not repeat it.
// The upstream agent compares a task's desiredStatus with "RUNNING" and
// reads taskArn and desiredStatus without checking them for nil, so both
// are always set.
func (s *Server) manifest(sess *session, id string) (api.Frame, error) {
	var built []builtTask
	if err := s.o.Store.View(func(tx store.Tx) error {
		var err error
		built, err = instanceTasks(tx, sess.instanceArn)
		return err
	}); err != nil {
		return nil, fmt.Errorf("build task manifest: %w", err)
	}
	m := &api.TaskManifestMessage{
		MessageID:            id,
		ClusterArn:           sess.clusterArn,
		ContainerInstanceArn: sess.instanceArn,
		GeneratedAt:          time.Now().UnixMilli(),
		Timeline:             s.nextSeq(),
		Tasks:                []*api.TaskIdentifier{},
	}
	for _, b := range built {
		t := b.task
		desired := t.DesiredStatus
		if desired == "" {
			desired = api.StatusRunning
		}
		m.Tasks = append(m.Tasks, &api.TaskIdentifier{TaskArn: t.Arn, TaskClusterArn: t.TaskClusterArn, DesiredStatus: desired})
	}
	return m, nil
}

// TasksChanged is told about committed task changes: every task is sent (with
// its new desired status) to its instance's session, if one is open; an
// instance without a session gets it in the manifest when it reconnects.
func (s *Server) TasksChanged(ctx context.Context, changes []records.TaskChange) {
	byInstance := map[string][]string{}
	var order []string
	for _, c := range changes {
		if c.ContainerInstanceArn == "" {
			continue
		}
		if _, ok := byInstance[c.ContainerInstanceArn]; !ok {
			order = append(order, c.ContainerInstanceArn)
		}
		byInstance[c.ContainerInstanceArn] = append(byInstance[c.ContainerInstanceArn], c.TaskArn)
	}
	for _, instanceArn := range order {
		s.mu.Lock()
		sess := s.sessions[instanceArn]
		s.mu.Unlock()
		if sess == nil {
			continue
		}
		var built []builtTask
		err := s.o.Store.View(func(tx store.Tx) error {
			for _, arn := range byInstance[instanceArn] {
				t, err := loadTask(tx, arn)
				if err != nil {
					return err
				}
				b, err := buildTask(tx, &t.Task)
				if err != nil {
					return err
				}
				built = append(built, b)
			}
			return nil
		})
		if err != nil {
			// The manifest on the next reconnect repairs this; end the
			// session so that it comes soon.
			s.o.Logger.Error("ACS: build payload; closing the session so the agent resyncs", "instance", instanceArn, "err", err)
			sess.cancel()
			continue
		}
		sess.enqueuePayload(s.withCredentials(context.WithoutCancel(ctx), built))
	}
}

func newMessageID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}
