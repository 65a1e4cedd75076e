package registration_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/registration"
	"github.com/berth-dev/berth/pkg/state"
)

// fakeSubmitAPI records submissions and fails on demand.
type fakeSubmitAPI struct {
	mu        sync.Mutex
	down      int             // fail this many calls with a server error
	reject    map[string]bool // task ARNs refused as unknown
	accepted  []string        // "task/status" or "task/container/status"
	attempted int
}

func (f *fakeSubmitAPI) result(key, task string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempted++
	if f.down > 0 {
		f.down--
		return &smithy.GenericAPIError{Code: "ServerException", Message: "endpoint restarting"}
	}
	if f.reject[task] {
		return &smithy.GenericAPIError{Code: "InvalidParameterException", Message: "The referenced task was not found."}
	}
	f.accepted = append(f.accepted, key)
	return nil
}

func (f *fakeSubmitAPI) SubmitTaskStateChange(_ context.Context, in *ecs.SubmitTaskStateChangeInput, _ ...func(*ecs.Options)) (*ecs.SubmitTaskStateChangeOutput, error) {
	return &ecs.SubmitTaskStateChangeOutput{}, f.result(aws.ToString(in.Task)+"/"+aws.ToString(in.Status), aws.ToString(in.Task))
}

func (f *fakeSubmitAPI) SubmitContainerStateChange(_ context.Context, in *ecs.SubmitContainerStateChangeInput, _ ...func(*ecs.Options)) (*ecs.SubmitContainerStateChangeOutput, error) {
	return &ecs.SubmitContainerStateChangeOutput{}, f.result(aws.ToString(in.Task)+"/"+aws.ToString(in.ContainerName)+"/"+aws.ToString(in.Status), aws.ToString(in.Task))
}

func (f *fakeSubmitAPI) snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.accepted)
}

func appendChanges(t *testing.T, db *state.DB, changes ...api.StateChange) {
	t.Helper()
	if err := db.Update(func(tx *state.Tx) error {
		for i := range changes {
			if _, err := tx.AppendStateChange(&changes[i]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func runSubmitter(t *testing.T, o registration.SubmitterOptions) *registration.Submitter {
	t.Helper()
	o.Logger = testLogger(t)
	if o.Poll == 0 {
		o.Poll = 20 * time.Millisecond
	}
	sub, err := registration.NewSubmitter(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); sub.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return sub
}

func TestSubmitterDeliversInOrderThroughOutages(t *testing.T) {
	db := openState(t)
	fake := &fakeSubmitAPI{down: 3, reject: map[string]bool{"bad": true}}
	var want []string
	for i := 0; i < 3; i++ {
		task := fmt.Sprintf("t%d", i)
		appendChanges(t, db,
			api.StateChange{Kind: api.ChangeContainer, TaskARN: task, ContainerName: "app", Status: "RUNNING",
				NetworkBindings: []api.NetworkBinding{{ContainerPort: 80, HostPort: 32768, Protocol: "tcp"}}},
			api.StateChange{Kind: api.ChangeTask, TaskARN: task, Status: "RUNNING"},
		)
		want = append(want, task+"/app/RUNNING", task+"/RUNNING")
	}
	appendChanges(t, db, api.StateChange{Kind: api.ChangeTask, TaskARN: "bad", Status: "RUNNING"},
		api.StateChange{Kind: api.ChangeTask, TaskARN: "t0", Status: "STOPPED"})
	want = append(want, "t0/STOPPED")

	runSubmitter(t, registration.SubmitterOptions{Outbox: db, API: fake, Cluster: "c",
		Backoff: registration.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}})
	eventually(t, "outbox drained", 10*time.Second, func() bool {
		n, _ := db.StateChangeCount()
		return n == 0
	})
	if got := fake.snapshot(); !slices.Equal(got, want) {
		t.Fatalf("accepted = %v\nwant       %v (in outbox order, none twice, the rejected one dropped)", got, want)
	}
	if fake.attempted != len(want)+1+3 {
		t.Errorf("attempts = %d, want %d (each accepted once, one rejection, three failures)", fake.attempted, len(want)+4)
	}
}

func TestSubmitterKeepsEntriesUntilAccepted(t *testing.T) {
	db := openState(t)
	fake := &fakeSubmitAPI{down: 1 << 30}
	appendChanges(t, db, api.StateChange{Kind: api.ChangeTask, TaskARN: "t", Status: "RUNNING"})
	ctx, cancel := context.WithCancel(context.Background())
	sub, _ := registration.NewSubmitter(registration.SubmitterOptions{Outbox: db, API: fake, Logger: testLogger(t),
		Backoff: registration.Backoff{Min: 5 * time.Millisecond, Max: 5 * time.Millisecond}})
	done := make(chan struct{})
	go func() { defer close(done); sub.Run(ctx) }()
	eventually(t, "several failed attempts", 10*time.Second, func() bool { fake.mu.Lock(); defer fake.mu.Unlock(); return fake.attempted > 3 })
	cancel()
	<-done
	if n, _ := db.StateChangeCount(); n != 1 {
		t.Fatalf("outbox holds %d entries after failed submissions, want the 1 unsent", n)
	}
}

func TestSubmitterUpdatesTheEndpoint(t *testing.T) {
	l := newLab(t, acs.Options{})
	db := openState(t)
	id := l.register(t, db)
	sess, _ := l.startSession(t, id, newRecorder(), time.Minute) // tasks are placed only on connected instances
	eventually(t, "connected", 10*time.Second, func() bool { return sess.Connected() && l.agentConnected(t, id.ContainerInstanceArn) })
	task := l.runTask(t, l.taskDef(t, "web"))
	exit := 3
	appendChanges(t, db,
		api.StateChange{Kind: api.ChangeContainer, TaskARN: task, ContainerName: "app", Status: "RUNNING", RuntimeID: "rt-1",
			NetworkBindings: []api.NetworkBinding{{ContainerPort: 80, HostPort: 32800, Protocol: "tcp", BindIP: "0.0.0.0"}}},
		api.StateChange{Kind: api.ChangeTask, TaskARN: task, Status: "RUNNING"},
		api.StateChange{Kind: api.ChangeContainer, TaskARN: task, ContainerName: "app", Status: "STOPPED", ExitCode: &exit, Reason: "exited"},
		api.StateChange{Kind: api.ChangeTask, TaskARN: task, Status: "STOPPED", Reason: "Essential container in task exited"},
	)
	runSubmitter(t, registration.SubmitterOptions{Outbox: db, API: l.agentECS.ECS, Cluster: id.ClusterArn})
	eventually(t, "outbox drained", 10*time.Second, func() bool { n, _ := db.StateChangeCount(); return n == 0 })
	out, err := l.admin.DescribeTasks(context.Background(), &ecs.DescribeTasksInput{Cluster: aws.String("lab"), Tasks: []string{task}})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatalf("DescribeTasks: %v", err)
	}
	got := out.Tasks[0]
	c := got.Containers[0]
	if aws.ToString(got.LastStatus) != "STOPPED" || aws.ToInt32(c.ExitCode) != 3 || len(c.NetworkBindings) != 1 ||
		aws.ToInt32(c.NetworkBindings[0].HostPort) != 32800 || aws.ToString(c.RuntimeId) != "rt-1" {
		t.Fatalf("task = %s, container exit %d bindings %+v runtime %s; want STOPPED, exit 3, host port 32800, rt-1",
			aws.ToString(got.LastStatus), aws.ToInt32(c.ExitCode), c.NetworkBindings, aws.ToString(c.RuntimeId))
	}
}

// TestSubmitterFlush is the shutdown path: Flush sends everything pending in
// order and returns; with the endpoint down it stops at the first failure
// and keeps the entries for the next start.
func TestSubmitterFlush(t *testing.T) {
	db := openState(t)
	var want []string
	for i := 0; i < 100; i++ { // more than one batch of 64
		task := fmt.Sprintf("t%d", i)
		appendChanges(t, db, api.StateChange{Kind: api.ChangeTask, TaskARN: task, Status: "STOPPED"})
		want = append(want, task+"/STOPPED")
	}
	fake := &fakeSubmitAPI{}
	sub, err := registration.NewSubmitter(registration.SubmitterOptions{Outbox: db, API: fake, Cluster: "c", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got := fake.snapshot(); !slices.Equal(got, want) {
		t.Fatalf("flushed %d changes %v..., want %d in order", len(got), got[:min(3, len(got))], len(want))
	}
	if n, _ := db.StateChangeCount(); n != 0 {
		t.Fatalf("outbox holds %d after Flush, want 0", n)
	}

	appendChanges(t, db, api.StateChange{Kind: api.ChangeTask, TaskARN: "late", Status: "STOPPED"})
	down := &fakeSubmitAPI{down: 1 << 30}
	sub, err = registration.NewSubmitter(registration.SubmitterOptions{Outbox: db, API: down, Cluster: "c", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := sub.Flush(ctx); err == nil {
		t.Fatal("Flush with the endpoint down returned nil, want the submit error")
	}
	if n, _ := db.StateChangeCount(); n != 1 {
		t.Fatalf("outbox holds %d after a failed Flush, want the 1 unsent change kept", n)
	}
}
