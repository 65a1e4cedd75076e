package registration_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/registration"
	"github.com/berth-dev/berth/pkg/state"
)

// startSession runs an ACS session for id until the test ends and returns
// it with a channel that delivers Run's result.
func (l *lab) startSession(t *testing.T, id state.InstanceIdentity, rec *recorder, heartbeat time.Duration, messages ...registration.MessageLog) (*registration.Session, <-chan error) {
	t.Helper()
	var log registration.MessageLog
	if len(messages) > 0 {
		log = messages[0]
	}
	sess, err := registration.NewSession(registration.SessionOptions{
		Messages: log,
		API:      l.agentECS.ECS, Credentials: l.agentECS.Credentials, Region: testRegion,
		ClusterArn: id.ClusterArn, ContainerInstanceArn: id.ContainerInstanceArn,
		Handler: rec, Tasks: rec, AgentVersion: "test", AgentHash: "abc",
		HeartbeatTimeout: heartbeat,
		Backoff:          registration.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		Logger:           testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); done <- sess.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return sess, done
}

func (l *lab) agentConnected(t *testing.T, arn string) bool {
	t.Helper()
	out, err := l.admin.DescribeContainerInstances(context.Background(), &ecs.DescribeContainerInstancesInput{
		Cluster: aws.String("lab"), ContainerInstances: []string{arn}})
	if err != nil || len(out.ContainerInstances) != 1 {
		t.Fatalf("DescribeContainerInstances: %v", err)
	}
	return out.ContainerInstances[0].AgentConnected
}

func TestSessionDeliversTasksAndStops(t *testing.T) {
	l := newLab(t, acs.Options{RedeliverAfter: 200 * time.Millisecond})
	id := l.register(t, openState(t))
	rec := newRecorder()
	sess, _ := l.startSession(t, id, rec, time.Minute)
	eventually(t, "session connected and agentConnected shown", 10*time.Second, func() bool {
		return sess.Connected() && l.agentConnected(t, id.ContainerInstanceArn)
	})

	td := l.taskDef(t, "web")
	task := l.runTask(t, td)
	eventually(t, "RUNNING payload", 10*time.Second, func() bool {
		byTask, _ := rec.deliveries()
		return len(byTask[task]) >= 1
	})
	if _, err := l.admin.StopTask(context.Background(), &ecs.StopTaskInput{Cluster: aws.String("lab"), Task: aws.String(task)}); err != nil {
		t.Fatalf("StopTask: %v", err)
	}
	eventually(t, "STOPPED payload", 10*time.Second, func() bool {
		byTask, _ := rec.deliveries()
		return slices.Contains(byTask[task], "STOPPED")
	})
	byTask, byMsg := rec.deliveries()
	if got := byTask[task]; !slices.Equal(got, []string{"RUNNING", "STOPPED"}) {
		t.Errorf("desired statuses delivered = %v, want [RUNNING STOPPED]", got)
	}
	// Acknowledged payloads are not redelivered.
	time.Sleep(600 * time.Millisecond)
	_, after := rec.deliveries()
	for id, n := range after {
		if n != 1 || byMsg[id] != 1 {
			t.Errorf("message %s delivered %d times, want once (it was acknowledged)", id, n)
		}
	}
	p := rec.payloads[0]
	if p.SeqNum < 1 || p.Tasks[0].Containers[0].Name != "app" || p.ClusterArn != id.ClusterArn {
		t.Errorf("payload = %+v, want seqNum, cluster and the task's container", p)
	}
}

func TestSessionRedeliversUntilAcknowledged(t *testing.T) {
	var mu sync.Mutex
	dropped := map[string]int{}
	l := newLab(t, acs.Options{RedeliverAfter: 200 * time.Millisecond, DropAck: func(_, id string) bool {
		mu.Lock()
		defer mu.Unlock()
		dropped[id]++
		return dropped[id] == 1 // lose the first ack of every message
	}})
	id := l.register(t, openState(t))
	rec := newRecorder()
	rec.fail = 1 // and refuse the first payload outright
	sess, _ := l.startSession(t, id, rec, time.Minute)
	eventually(t, "connected", 10*time.Second, func() bool { return sess.Connected() && l.agentConnected(t, id.ContainerInstanceArn) })
	task := l.runTask(t, l.taskDef(t, "web"))
	eventually(t, "payload accepted twice (first ack lost)", 10*time.Second, func() bool {
		byTask, _ := rec.deliveries()
		return len(byTask[task]) >= 2
	})
	time.Sleep(700 * time.Millisecond)
	_, byMsg := rec.deliveries()
	mu.Lock()
	defer mu.Unlock()
	for msg, n := range byMsg {
		if dropped[msg] >= 2 && n != 2 {
			t.Errorf("message %s handled %d times, want 2 (once lost ack, then acknowledged and never again)", msg, n)
		}
	}
}

// TestSessionRemembersHandledPayloads: with a message log, a payload whose
// ack was lost is acknowledged again without reaching the engine twice.
func TestSessionRemembersHandledPayloads(t *testing.T) {
	var mu sync.Mutex
	acks := map[string]int{}
	l := newLab(t, acs.Options{RedeliverAfter: 200 * time.Millisecond, DropAck: func(_, id string) bool {
		mu.Lock()
		defer mu.Unlock()
		acks[id]++
		return acks[id] == 1
	}})
	db := openState(t)
	id := l.register(t, db)
	rec := newRecorder()
	sess, _ := l.startSession(t, id, rec, time.Minute, db)
	eventually(t, "connected", 10*time.Second, func() bool { return sess.Connected() && l.agentConnected(t, id.ContainerInstanceArn) })
	task := l.runTask(t, l.taskDef(t, "web"))
	var payloadID string
	eventually(t, "the payload's redelivery acknowledged", 10*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range rec.payloads {
			if len(p.Tasks) == 1 && p.Tasks[0].Arn == task {
				payloadID = p.MessageID
			}
		}
		return payloadID != "" && acks[payloadID] >= 2
	})
	if _, byMsg := rec.deliveries(); byMsg[payloadID] != 1 {
		t.Errorf("payload handed to the engine %d times, want once (the redelivery is recognised)", byMsg[payloadID])
	}
	if ok, err := db.MessageProcessed(payloadID); !ok || err != nil {
		t.Errorf("MessageProcessed(%s) = %v, %v; want recorded", payloadID, ok, err)
	}
	if n, err := db.ACSSeqNum(); n < 1 || err != nil {
		t.Errorf("ACSSeqNum = %d, %v; want the payload's seqNum", n, err)
	}
}

func TestSessionHeartbeatRotationAndManifest(t *testing.T) {
	l := newLab(t, acs.Options{ConnectionLifetime: 700 * time.Millisecond})
	id := l.register(t, openState(t))
	rec := newRecorder()
	rec.active = []string{"arn:aws:ecs:us-test-1:123456789012:task/lab/gone"}
	// The agent's silence timeout (1 minute) is far above the lifetime, so
	// every reconnect is a rotation by the endpoint.
	sess, _ := l.startSession(t, id, rec, time.Minute)
	eventually(t, "connected", 10*time.Second, func() bool { return sess.Connected() && l.agentConnected(t, id.ContainerInstanceArn) })
	task := l.runTask(t, l.taskDef(t, "web"))
	rec.mu.Lock()
	rec.active = append(rec.active, task)
	rec.mu.Unlock()
	eventually(t, "two rotations", 10*time.Second, func() bool { return sess.Connects() >= 3 })
	byTask, _ := rec.deliveries()
	if n := len(byTask[task]); n < 2 || byTask[task][0] != "RUNNING" {
		t.Errorf("task deliveries %v, want it pushed when placed and sent again on every reconnect", byTask[task])
	}
	if got := byTask["arn:aws:ecs:us-test-1:123456789012:task/lab/gone"]; len(got) == 0 || got[0] != "STOPPED" {
		t.Errorf("task missing from the manifest: deliveries %v, want it stopped", got)
	}
	if got := byTask[task]; len(got) > 0 && got[len(got)-1] != "RUNNING" {
		t.Errorf("a listed task was stopped by the manifest: deliveries %v", got)
	}
}

func TestSessionKeptAliveByHeartbeats(t *testing.T) {
	// Heartbeats every 100 ms keep a session whose silence timeout is
	// one second open: over three seconds it is never dropped.
	l := newLab(t, acs.Options{HeartbeatInterval: 100 * time.Millisecond})
	id := l.register(t, openState(t))
	sess, _ := l.startSession(t, id, newRecorder(), time.Second)
	eventually(t, "connected", 10*time.Second, sess.Connected)
	time.Sleep(3 * time.Second)
	if n := sess.Connects(); n != 1 || !sess.Connected() {
		t.Fatalf("connects = %d (connected %v), want one session kept open by heartbeats", n, sess.Connected())
	}
}

func TestSessionDropsSilentConnection(t *testing.T) {
	// The endpoint's heartbeat (1 minute) is slower than the agent's
	// timeout, so the agent must drop and reopen the session itself.
	l := newLab(t, acs.Options{HeartbeatInterval: time.Minute})
	id := l.register(t, openState(t))
	sess, _ := l.startSession(t, id, newRecorder(), 200*time.Millisecond)
	eventually(t, "reconnect after silence", 10*time.Second, func() bool { return sess.Connects() >= 2 })
}

func TestSessionStopsForInactiveInstance(t *testing.T) {
	l := newLab(t, acs.Options{})
	id := l.register(t, openState(t))
	if _, err := l.admin.DeregisterContainerInstance(context.Background(), &ecs.DeregisterContainerInstanceInput{
		Cluster: aws.String("lab"), ContainerInstance: aws.String(id.ContainerInstanceArn), Force: aws.Bool(true)}); err != nil {
		t.Fatalf("DeregisterContainerInstance: %v", err)
	}
	_, done := l.startSession(t, id, newRecorder(), time.Minute)
	select {
	case err := <-done:
		var te *registration.TerminalError
		if !errors.Is(err, registration.ErrInactiveInstance) || !errors.As(err, &te) {
			t.Fatalf("Run = %v, want a terminal ErrInactiveInstance", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session kept reconnecting for a deregistered instance")
	}
}

func TestSessionToldWhenDeregisteredWhileConnected(t *testing.T) {
	l := newLab(t, acs.Options{HeartbeatInterval: 100 * time.Millisecond})
	id := l.register(t, openState(t))
	sess, done := l.startSession(t, id, newRecorder(), time.Minute)
	eventually(t, "connected", 10*time.Second, sess.Connected)
	if _, err := l.admin.DeregisterContainerInstance(context.Background(), &ecs.DeregisterContainerInstanceInput{
		Cluster: aws.String("lab"), ContainerInstance: aws.String(id.ContainerInstanceArn), Force: aws.Bool(true)}); err != nil {
		t.Fatalf("DeregisterContainerInstance: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, registration.ErrInactiveInstance) {
			t.Fatalf("Run = %v, want ErrInactiveInstance", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connected agent was not told that its instance was deregistered")
	}
}

func TestSessionReconnectsAfterEndpointRestart(t *testing.T) {
	l := newLab(t, acs.Options{})
	id := l.register(t, openState(t))
	sess, _ := l.startSession(t, id, newRecorder(), time.Minute)
	eventually(t, "connected", 10*time.Second, sess.Connected)
	addr := l.ep.Addr
	l.ep.Close()
	eventually(t, "disconnected", 10*time.Second, func() bool { return !sess.Connected() })
	ep2, err := devmodeRestart(l, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep2.Close() })
	eventually(t, "reconnected", 10*time.Second, func() bool { return sess.Connected() && sess.Connects() >= 2 })
}
