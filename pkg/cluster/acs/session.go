package acs

import (
	"context"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// outgoing is one message that waits for the agent's acknowledgement.
type outgoing struct {
	id    string
	frame api.Frame
	// build, when set, makes the frame afresh for every (re)send: a
	// manifest must list the tasks as they are when it is sent, or a stale
	// copy would make the agent stop tasks placed since.
	build  func() (api.Frame, error)
	sentAt time.Time // zero until first sent
}

// session is one agent's websocket. The handler goroutine reads; the
// writer goroutine, owned by serve, sends queued messages, redeliveries,
// heartbeats and the rotation CloseMessage.
type session struct {
	srv                     *Server
	id                      string // unique, for the replicas' session records
	conn                    *websocket.Conn
	instanceArn, clusterArn string
	ctx                     context.Context
	cancel                  context.CancelFunc
	kick                    chan struct{}

	// mu guards the fields below.
	mu      sync.Mutex
	pending []*outgoing // in send order; removed when acknowledged
	once    []api.Frame // sent once, then dropped
}

func newSession(ctx context.Context, cancel context.CancelFunc, srv *Server, conn *websocket.Conn, instanceArn, clusterArn string) *session {
	return &session{srv: srv, id: newMessageID(), conn: conn, instanceArn: instanceArn, clusterArn: clusterArn,
		ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1)}
}

// enqueuePayload queues a PayloadMessage with the next sequence number.
func (s *session) enqueuePayload(tasks []*api.Task) {
	s.mu.Lock()
	p := &api.PayloadMessage{
		MessageID:            newMessageID(),
		ClusterArn:           s.clusterArn,
		ContainerInstanceArn: s.instanceArn,
		GeneratedAt:          time.Now().UnixMilli(),
		SeqNum:               s.srv.nextSeq(), // under mu: queue order is seqNum order
		Tasks:                tasks,
	}
	s.pending = append(s.pending, &outgoing{id: p.MessageID, frame: p})
	s.mu.Unlock()
	s.poke()
}

// enqueueBuilt queues a message, built at each send, that the agent
// acknowledges with AckRequest.
func (s *session) enqueueBuilt(id string, build func() (api.Frame, error)) {
	s.mu.Lock()
	s.pending = append(s.pending, &outgoing{id: id, build: build})
	s.mu.Unlock()
	s.poke()
}

// enqueueOnce queues a frame that is sent once and not redelivered here
// (its sender tracks the acknowledgement itself).
func (s *session) enqueueOnce(f api.Frame) {
	s.mu.Lock()
	s.once = append(s.once, f)
	s.mu.Unlock()
	s.poke()
}

func (s *session) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *session) acked(id string) {
	if drop := s.srv.o.DropAck; drop != nil && drop(s.instanceArn, id) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.pending {
		if o.id == id {
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			return
		}
	}
}

// serve runs the writer and reads until the connection or the session ends.
func (s *session) serve() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.write()
	}()
	stop := context.AfterFunc(s.ctx, func() { s.conn.Close() })
	defer stop()
	for {
		_, data, err := s.conn.ReadMessage()
		if err != nil {
			break
		}
		f, err := api.DecodeFrame(data)
		if err != nil {
			s.srv.o.Logger.Warn("ACS: malformed frame from agent", "instance", s.instanceArn, "err", err)
			continue
		}
		switch m := f.(type) {
		case *api.AckRequest:
			s.acked(m.MessageID)
		case *api.IAMRoleCredentialsAckRequest:
			if c := s.srv.o.Credentials; c != nil {
				c.Ack(m)
			}
		case *api.HeartbeatAckRequest:
		case *api.NackRequest:
			s.acked(m.MessageID)
		case *api.TaskStopVerificationMessage:
			s.verifyStop(m)
		default:
			s.srv.o.Logger.Debug("ACS: ignore frame from agent", "type", f.FrameType())
		}
	}
	s.cancel()
	wg.Wait()
}

func (s *session) send(f api.Frame) error {
	b, err := api.EncodeFrame(f)
	if err != nil {
		return err
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return s.conn.WriteMessage(websocket.TextMessage, b)
}

// write is the only writer of the connection.
func (s *session) write() {
	o := s.srv.o
	tick := time.NewTicker(min(o.RedeliverAfter/2, time.Second))
	defer tick.Stop()
	heartbeat := time.NewTicker(o.HeartbeatInterval)
	defer heartbeat.Stop()
	rotate := time.NewTimer(o.ConnectionLifetime)
	defer rotate.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		case <-tick.C:
		case <-heartbeat.C:
			// An instance deregistered while its agent is connected is
			// told so at the next heartbeat, as at a handshake.
			if s.inactive() {
				_ = s.send(&api.ErrorFrame{Type: api.TypeInactiveInstanceException, Message: "Container instance " + s.instanceArn + " is inactive (deregistered)."})
				_ = s.conn.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "InactiveInstanceException"), time.Now().Add(time.Second))
				s.cancel()
				return
			}
			if err := s.send(&api.HeartbeatMessage{Healthy: true, MessageID: newMessageID()}); err != nil {
				s.cancel()
				return
			}
		case <-rotate.C:
			_ = s.send(&api.CloseMessage{Message: "ConnectionExpired: Reconnect to continue"})
			_ = s.conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, "ConnectionExpired"), time.Now().Add(time.Second))
			s.cancel()
			return
		}
		if err := s.flush(); err != nil {
			s.srv.o.Logger.Warn("ACS: send failed; closing the session", "instance", s.instanceArn, "err", err)
			s.cancel()
			return
		}
	}
}

// inactive reports whether the instance has been deregistered.
func (s *session) inactive() bool {
	var inst *records.Instance
	err := s.srv.o.Store.View(func(tx store.Tx) error {
		var err error
		inst, err = loadInstance(tx, s.instanceArn)
		return err
	})
	return err == nil && inst.Instance.Status != nil && *inst.Instance.Status == "INACTIVE"
}

// flush sends what was never sent and resends what waited too long for its
// acknowledgement, in queue order.
func (s *session) flush() error {
	now := time.Now()
	s.mu.Lock()
	once := s.once
	s.once = nil
	var due []*outgoing
	for _, m := range s.pending {
		if m.sentAt.IsZero() || now.Sub(m.sentAt) >= s.srv.o.RedeliverAfter {
			m.sentAt = now
			due = append(due, m)
		}
	}
	s.mu.Unlock()
	for _, f := range once {
		if err := s.send(f); err != nil {
			return err
		}
	}
	for _, m := range due {
		f := m.frame
		if m.build != nil {
			var err error
			if f, err = m.build(); err != nil {
				return err
			}
		}
		if err := s.send(f); err != nil {
			return err
		}
	}
	return nil
}
