package registration

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/gorilla/websocket"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/state"
)

// DiscoverAPI finds the ACS endpoint. *ecs.Client implements it.
type DiscoverAPI interface {
	DiscoverPollEndpoint(ctx context.Context, in *ecs.DiscoverPollEndpointInput, optFns ...func(*ecs.Options)) (*ecs.DiscoverPollEndpointOutput, error)
}

var _ DiscoverAPI = (*ecs.Client)(nil)

// PayloadHandler accepts the tasks of a payload. It returns once they are
// durably stored; only then is the payload acknowledged. pkg/agent's Agent
// implements it.
type PayloadHandler interface {
	HandlePayload(ctx context.Context, p *api.PayloadMessage) error
}

// CredentialsHandler is optional on the PayloadHandler: it stores the
// task role credentials of an IAMRoleCredentialsMessage and returns the
// acknowledgement to send.
type CredentialsHandler interface {
	HandleCredentials(ctx context.Context, m *api.IAMRoleCredentialsMessage) (*api.IAMRoleCredentialsAckRequest, error)
}

// TaskLister is optional: it lists the tasks the agent runs, so that tasks
// missing from the endpoint's manifest can be stopped.
type TaskLister interface {
	// ActiveTaskARNs returns the ARNs of tasks whose desired status is not
	// STOPPED.
	ActiveTaskARNs() []string
}

// MessageLog is optional: it remembers which payloads were handled, so
// that a redelivery (the ack was lost) is acknowledged without handing the
// tasks to the engine again, and records the highest sequence number seen.
// *state.DB implements it.
type MessageLog interface {
	MessageProcessed(id string) (bool, error)
	MarkMessageProcessed(id string, at time.Time) error
	PruneProcessedMessages(before time.Time) (int, error)
	SetACSSeqNum(n int64) error
}

var _ MessageLog = (*state.DB)(nil)

// messageRetention is how long handled message ids are remembered; the
// endpoint redelivers only while a session lives, far shorter than this.
const messageRetention = 24 * time.Hour

// SessionOptions configure an ACS Session.
type SessionOptions struct {
	API         DiscoverAPI
	Credentials aws.CredentialsProvider
	Region      string
	// ClusterArn and ContainerInstanceArn come from registration.
	ClusterArn, ContainerInstanceArn string
	Handler                          PayloadHandler
	// Tasks is optional; see TaskLister.
	Tasks TaskLister
	// Messages is optional; see MessageLog.
	Messages                MessageLog
	AgentVersion, AgentHash string
	// TLSConfig is used for wss:// endpoints (nil: system roots).
	TLSConfig *tls.Config
	// HeartbeatTimeout is how long a silent connection is kept; a random
	// extra of up to a quarter of it is added. Zero means 1 minute.
	HeartbeatTimeout time.Duration
	// Backoff paces reconnects (default 250 ms to 2 minutes, 20% jitter).
	Backoff Backoff
	Clock   Clock
	Logger  *slog.Logger
}

// Session keeps one ACS websocket open to the endpoint, reconnecting with
// backoff, and hands payloads to the PayloadHandler.
type Session struct {
	o         SessionOptions
	connected atomic.Bool
	connects  atomic.Int64
}

// errConnectionExpired means the endpoint closed the session on purpose
// (CloseMessage); the agent reconnects at once.
var errConnectionExpired = errors.New("endpoint closed the session")

// NewSession checks the options and returns a Session; Run starts it.
func NewSession(o SessionOptions) (*Session, error) {
	if o.API == nil || o.Credentials == nil || o.Handler == nil || o.Region == "" || o.ContainerInstanceArn == "" {
		return nil, errors.New("ACS session: API, Credentials, Handler, Region and ContainerInstanceArn are required")
	}
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = time.Minute
	}
	if o.Backoff.Min == 0 {
		o.Backoff = Backoff{Min: 250 * time.Millisecond, Max: 2 * time.Minute, Jitter: 0.2}
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Session{o: o}, nil
}

// Connected reports whether a websocket is open right now.
func (s *Session) Connected() bool { return s.connected.Load() }

// Connects returns how many times a websocket was opened.
func (s *Session) Connects() int64 { return s.connects.Load() }

// Run connects and reconnects until ctx ends (returning ctx's error) or the
// endpoint says the instance is inactive (a *TerminalError wrapping
// ErrInactiveInstance).
func (s *Session) Run(ctx context.Context) error {
	return reconnectLoop(ctx, "ACS session",
		"the container instance was deregistered from the cluster; move ECS_DATADIR aside to register a new instance",
		s.o.Clock, s.o.Backoff, s.o.Logger, func(err error) bool { return errors.Is(err, errConnectionExpired) }, s.once)
}

// once runs one websocket connection to its end.
func (s *Session) once(ctx context.Context) error {
	out, err := s.o.API.DiscoverPollEndpoint(ctx, &ecs.DiscoverPollEndpointInput{
		Cluster:           aws.String(s.o.ClusterArn),
		ContainerInstance: aws.String(s.o.ContainerInstanceArn),
	})
	if err != nil {
		return fmt.Errorf("discover poll endpoint: %w", err)
	}
	q := url.Values{}
	q.Set("clusterArn", s.o.ClusterArn)
	q.Set("containerInstanceArn", s.o.ContainerInstanceArn)
	q.Set("agentHash", s.o.AgentHash)
	q.Set("agentVersion", s.o.AgentVersion)
	q.Set("seqNum", "1")
	q.Set("protocolVersion", "2")
	q.Set("dockerVersion", "containerd")
	q.Set("sendCredentials", "true")
	conn, httpURL, err := dialSigned(ctx, wsTarget{name: "ACS", endpoint: aws.ToString(out.Endpoint), query: q,
		creds: s.o.Credentials, region: s.o.Region, clock: s.o.Clock, tls: s.o.TLSConfig})
	if err != nil {
		return err
	}
	s.connected.Store(true)
	s.connects.Add(1)
	if s.o.Messages != nil {
		if _, err := s.o.Messages.PruneProcessedMessages(s.o.Clock.Now().Add(-messageRetention)); err != nil {
			s.o.Logger.Warn("prune processed ACS messages", "err", err)
		}
	}
	defer s.connected.Store(false)
	s.o.Logger.Info("ACS session connected", "endpoint", httpURL)

	// When ctx ends (the agent stops, or a part of it failed) the agent
	// says goodbye with a close frame, so the endpoint ends the session and
	// marks the instance disconnected at once; closing the connection is
	// what ends a blocked read.
	stop := context.AfterFunc(ctx, func() {
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "agent stopping"),
			time.Now().Add(time.Second))
		conn.Close()
	})
	defer stop()
	defer conn.Close()
	c := &wsConn{conn: conn}
	return s.serve(ctx, c)
}

// wsConn serialises writes: gorilla allows one writer at a time.
type wsConn struct {
	conn *websocket.Conn
	// mu guards writes on conn.
	mu sync.Mutex
}

func (c *wsConn) send(f api.Frame) error {
	b, err := api.EncodeFrame(f)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		return fmt.Errorf("send %s: %w", f.FrameType(), err)
	}
	return nil
}

// serve reads frames until the connection ends.
func (s *Session) serve(ctx context.Context, c *wsConn) error {
	for {
		// A connection that stays silent longer than the heartbeat timeout
		// (plus jitter, so that a fleet does not reconnect in step) is dead.
		timeout := s.o.HeartbeatTimeout + time.Duration(rand.Float64()*float64(s.o.HeartbeatTimeout)/4)
		_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read ACS frame: %w", err)
		}
		f, err := api.DecodeFrame(data)
		if err != nil {
			s.o.Logger.Warn("ignore malformed ACS frame", "err", err)
			continue
		}
		if err := s.handle(ctx, c, f); err != nil {
			return err
		}
	}
}

func (s *Session) ack(c *wsConn, id string) error {
	return c.send(&api.AckRequest{Cluster: s.o.ClusterArn, ContainerInstance: s.o.ContainerInstanceArn, MessageID: id})
}

// handle acts on one frame; an error ends the connection.
func (s *Session) handle(ctx context.Context, c *wsConn, f api.Frame) error {
	switch m := f.(type) {
	case *api.PayloadMessage:
		if s.processed(m.MessageID) {
			s.o.Logger.Debug("payload already handled; acknowledging the redelivery", "messageId", m.MessageID)
			return s.ack(c, m.MessageID)
		}
		if err := s.o.Handler.HandlePayload(ctx, m); err != nil {
			// Not acknowledged: the endpoint redelivers it.
			s.o.Logger.Error("payload not accepted; leaving it unacknowledged", "messageId", m.MessageID, "err", err)
			return nil
		}
		s.markProcessed(m)
		return s.ack(c, m.MessageID)
	case *api.HeartbeatMessage:
		return c.send(&api.HeartbeatAckRequest{MessageID: m.MessageID})
	case *api.TaskManifestMessage:
		if err := s.reconcile(ctx, m); err != nil {
			s.o.Logger.Error("task manifest not applied; leaving it unacknowledged", "messageId", m.MessageID, "err", err)
			return nil
		}
		return s.ack(c, m.MessageID)
	case *api.CloseMessage:
		return fmt.Errorf("%w: %s", errConnectionExpired, m.Message)
	case *api.ErrorFrame:
		if m.Type == api.TypeInactiveInstanceException {
			return fmt.Errorf("%w: %s", ErrInactiveInstance, m.Message)
		}
		return fmt.Errorf("endpoint sent %s: %s", m.Type, m.Message)
	case *api.IAMRoleCredentialsMessage:
		if h, ok := s.o.Handler.(CredentialsHandler); ok {
			ack, err := h.HandleCredentials(ctx, m)
			if err != nil {
				// Not acknowledged: the endpoint sends them again.
				s.o.Logger.Error("task role credentials not applied; leaving them unacknowledged", "task", m.TaskArn, "err", err)
				return nil
			}
			return c.send(ack)
		}
		// Without a handler task IAM roles are not served; acknowledge so
		// that the endpoint does not resend forever.
		s.o.Logger.Warn("ignoring task role credentials (task IAM roles are not enabled)", "task", m.TaskArn)
		return c.send(&api.IAMRoleCredentialsAckRequest{MessageID: m.MessageID})
	case *api.AttachTaskNetworkInterfacesMessage:
		return s.ack(c, m.MessageID)
	case *api.AttachInstanceNetworkInterfacesMessage:
		return s.ack(c, m.MessageID)
	case *api.ConfirmAttachmentMessage:
		return s.ack(c, m.MessageID)
	case *api.PerformUpdateMessage:
		return c.send(&api.NackRequest{Cluster: s.o.ClusterArn, ContainerInstance: s.o.ContainerInstanceArn, MessageID: m.MessageID, Reason: "Berth does not update itself"})
	case *api.StageUpdateMessage:
		return c.send(&api.NackRequest{Cluster: s.o.ClusterArn, ContainerInstance: s.o.ContainerInstanceArn, MessageID: m.MessageID, Reason: "Berth does not update itself"})
	default:
		s.o.Logger.Debug("ignore ACS frame", "type", f.FrameType())
		return nil
	}
}

func (s *Session) processed(id string) bool {
	if s.o.Messages == nil || id == "" {
		return false
	}
	ok, err := s.o.Messages.MessageProcessed(id)
	if err != nil {
		s.o.Logger.Warn("read processed ACS messages", "err", err)
	}
	return ok
}

// markProcessed records a handled payload. Failing to record only means a
// redelivery is applied again, which the engine treats idempotently.
func (s *Session) markProcessed(m *api.PayloadMessage) {
	if s.o.Messages == nil || m.MessageID == "" {
		return
	}
	if err := s.o.Messages.MarkMessageProcessed(m.MessageID, s.o.Clock.Now()); err != nil {
		s.o.Logger.Warn("record processed ACS message", "messageId", m.MessageID, "err", err)
	}
	if m.SeqNum > 0 {
		if err := s.o.Messages.SetACSSeqNum(m.SeqNum); err != nil {
			s.o.Logger.Warn("record ACS seqNum", "err", err)
		}
	}
}

// reconcile stops the tasks the agent runs that the endpoint's manifest no
// longer lists: they were stopped or removed while the agent was away.
func (s *Session) reconcile(ctx context.Context, m *api.TaskManifestMessage) error {
	if s.o.Tasks == nil {
		return nil
	}
	listed := map[string]bool{}
	for _, t := range m.Tasks {
		if t != nil {
			listed[t.TaskArn] = true
		}
	}
	var stop []*api.Task
	for _, arn := range s.o.Tasks.ActiveTaskARNs() {
		if !listed[arn] {
			stop = append(stop, &api.Task{Arn: arn, DesiredStatus: "STOPPED"})
		}
	}
	if len(stop) == 0 {
		return nil
	}
	s.o.Logger.Info("stopping tasks the endpoint no longer has", "count", len(stop))
	return s.o.Handler.HandlePayload(ctx, &api.PayloadMessage{
		MessageID: m.MessageID, ClusterArn: s.o.ClusterArn, ContainerInstanceArn: s.o.ContainerInstanceArn, Tasks: stop,
	})
}
