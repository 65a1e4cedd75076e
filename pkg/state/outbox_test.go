package state

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/api"
)

func TestOutboxOrdering(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenDir(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	code := 137
	at := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	changes := []api.StateChange{
		{Kind: api.ChangeContainer, TaskARN: "t1", ContainerName: "app", Status: "RUNNING", RuntimeID: "r1",
			NetworkBindings: []api.NetworkBinding{{ContainerPort: 8080, HostPort: 49153, Protocol: "tcp", BindIP: "0.0.0.0"}}, At: at},
		{Kind: api.ChangeTask, TaskARN: "t1", Status: "RUNNING", PullStartedAt: at, PullStoppedAt: at.Add(time.Second), At: at},
	}
	if err := db.SaveTask("t1", []byte(`{"v":1}`), changes); err != nil {
		t.Fatal(err)
	}
	if changes[0].Seq != 1 || changes[1].Seq != 2 {
		t.Fatalf("assigned seqs %d %d", changes[0].Seq, changes[1].Seq)
	}
	if err := db.SaveTask("t2", []byte(`{"v":1}`), []api.StateChange{{Kind: api.ChangeTask, TaskARN: "t2", Status: "PENDING"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveTask("t1", []byte(`{"v":2}`), []api.StateChange{{Kind: api.ChangeContainer, TaskARN: "t1", ContainerName: "app", Status: "STOPPED", ExitCode: &code, Reason: "killed"}}); err != nil {
		t.Fatal(err)
	}
	all, err := db.PendingStateChanges(0)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, c := range all {
		seqs = append(seqs, c.Seq)
	}
	if fmt.Sprint(seqs) != "[1 2 3 4]" {
		t.Fatalf("seqs %v", seqs)
	}
	if all[0].NetworkBindings[0].HostPort != 49153 || !all[1].PullStoppedAt.Equal(at.Add(time.Second)) || *all[3].ExitCode != 137 {
		t.Fatalf("entries did not keep their fields: %+v", all)
	}
	if got, _ := db.PendingStateChanges(2); len(got) != 2 || got[1].Seq != 2 {
		t.Fatalf("limit 2 gave %+v", got)
	}
	var forT1 []api.StateChange
	_ = db.View(func(tx *Tx) error { forT1, err = tx.PendingStateChangesForTask("t1"); return err })
	if len(forT1) != 3 || forT1[0].Seq != 1 || forT1[2].Seq != 4 || forT1[2].Status != "STOPPED" {
		t.Fatalf("t1 changes %+v", forT1)
	}
	if n, _ := db.StateChangeCount(); n != 4 {
		t.Fatalf("count %d", n)
	}
	if err := db.DeleteStateChange(2, 2, 99); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.StateChangeCount(); n != 3 {
		t.Fatalf("count after delete %d (a repeated or unknown seq must not count)", n)
	}
	// Deleting every entry and restarting never reuses a sequence number.
	if err := db.DeleteStateChange(1, 3, 4); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = OpenDir(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, _ := db.StateChangeCount(); n != 0 {
		t.Fatalf("count after deleting all %d", n)
	}
	next := []api.StateChange{{Kind: api.ChangeTask, TaskARN: "t3", Status: "PENDING"}}
	if err := db.SaveTask("t3", []byte(`{}`), next); err != nil {
		t.Fatal(err)
	}
	if next[0].Seq != 5 {
		t.Fatalf("seq after restart %d, want 5", next[0].Seq)
	}
	if err := db.Update(func(tx *Tx) error { _, err := tx.AppendStateChange(&api.StateChange{Status: "X"}); return err }); err == nil {
		t.Fatal("state change without task ARN accepted")
	}
}

func TestUpdateRollsBackTaskAndOutboxTogether(t *testing.T) {
	db := openTest(t)
	boom := errors.New("boom")
	err := db.Update(func(tx *Tx) error {
		if err := tx.PutTask("t1", []byte(`{}`)); err != nil {
			return err
		}
		if _, err := tx.AppendStateChange(&api.StateChange{TaskARN: "t1", Kind: api.ChangeTask, Status: "RUNNING"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v", err)
	}
	tasks, _ := db.Tasks()
	pending, _ := db.PendingStateChanges(0)
	n, _ := db.StateChangeCount()
	if len(tasks) != 0 || len(pending) != 0 || n != 0 {
		t.Fatalf("a failed transaction left tasks=%v outbox=%v count=%d", tasks, pending, n)
	}
	// The rolled-back append did not consume a sequence number.
	c := []api.StateChange{{TaskARN: "t1", Kind: api.ChangeTask, Status: "RUNNING"}}
	if err := db.SaveTask("t1", []byte(`{}`), c); err != nil || c[0].Seq != 1 {
		t.Fatalf("seq %d, %v", c[0].Seq, err)
	}
}

// crashRecord is what the crash writer stores: the number of changes
// appended for the task in the same transaction.
type crashRecord struct {
	Changes int `json:"changes"`
}

const crashEnv = "BERTH_STATE_CRASH_CHILD_DIR"

// TestCrashWriterChild is not a test on its own: TestCrashSafety runs the
// test binary again with crashEnv set, and this writes until it is killed.
func TestCrashWriterChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashSafety")
	}
	db, err := OpenDir(dir, Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		arn := "task-" + strconv.Itoa(i%7)
		err := db.Update(func(tx *Tx) error {
			var rec crashRecord
			if err := tx.TaskJSON(arn, &rec); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			// Several changes per transaction, so a torn write would show.
			for j := 0; j < 3; j++ {
				if _, err := tx.AppendStateChange(&api.StateChange{Kind: api.ChangeTask, TaskARN: arn, Status: "RUNNING", Reason: strconv.Itoa(rec.Changes)}); err != nil {
					return err
				}
				rec.Changes++
			}
			if i%5 == 4 {
				// Delete the oldest entry now and then, like a sender would.
				old, err := tx.PendingStateChanges(1)
				if err != nil || len(old) == 0 {
					return err
				}
				if err := tx.DeleteStateChange(old[0].Seq); err != nil {
					return err
				}
			}
			return tx.PutTaskJSON(arn, rec)
		})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("committed", i)
	}
}

// TestCrashSafety kills a writer with SIGKILL in the middle of its loop,
// several times, and checks after each kill that the database opens and that
// every task record agrees with the outbox entries written beside it.
func TestCrashSafety(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("running as the crash writer")
	}
	dir := t.TempDir()
	deleted := 0
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWriterChild$", "-test.v")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a number of commits that varies with the round, so the
		// kill lands at different points of the loop.
		want := 40 + 37*round
		sc := bufio.NewScanner(out)
		seen := 0
		for sc.Scan() {
			line := sc.Text()
			if len(line) > 6 && line[:6] == "error " {
				_ = cmd.Process.Kill()
				t.Fatalf("writer failed: %s", line)
			}
			if len(line) > 10 && line[:10] == "committed " {
				seen++
				if seen == want {
					break
				}
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if seen < want {
			t.Fatalf("writer ended after %d commits, before the kill", seen)
		}

		db, err := OpenDir(dir, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		err = db.View(func(tx *Tx) error {
			pending, err := tx.PendingStateChanges(0)
			if err != nil {
				return err
			}
			n, err := tx.StateChangeCount()
			if err != nil {
				return err
			}
			if n != len(pending) {
				return fmt.Errorf("outbox count %d but %d entries", n, len(pending))
			}
			perTask := map[string][]api.StateChange{}
			var last uint64
			for _, c := range pending {
				if c.Seq <= last {
					return fmt.Errorf("outbox out of order: %d after %d", c.Seq, last)
				}
				last = c.Seq
				perTask[c.TaskARN] = append(perTask[c.TaskARN], c)
			}
			tasks, err := tx.Tasks()
			if err != nil {
				return err
			}
			total := 0
			for _, te := range tasks {
				var rec crashRecord
				if err := tx.TaskJSON(te.ARN, &rec); err != nil {
					return err
				}
				total += rec.Changes
				// The entries still pending for a task are the newest ones,
				// numbered up to the count in its record.
				cs := perTask[te.ARN]
				if len(cs) > 0 && cs[len(cs)-1].Reason != strconv.Itoa(rec.Changes-1) {
					return fmt.Errorf("task %s record says %d changes but its newest outbox entry is %q", te.ARN, rec.Changes, cs[len(cs)-1].Reason)
				}
				for i := 1; i < len(cs); i++ {
					a, _ := strconv.Atoi(cs[i-1].Reason)
					b, _ := strconv.Atoi(cs[i].Reason)
					if b != a+1 {
						return fmt.Errorf("task %s: outbox entries %d then %d", te.ARN, a, b)
					}
				}
			}
			if len(perTask) > len(tasks) {
				return fmt.Errorf("outbox holds changes of %d tasks but only %d records exist", len(perTask), len(tasks))
			}
			// Every change ever appended is counted in a task record, and
			// the outbox sequence moved exactly as far: no committed
			// append was lost and no lost append left a trace.
			deleted = total - len(pending)
			if deleted < 0 || total != int(tx.tx.Bucket([]byte(bucketOutbox)).Sequence()) {
				return fmt.Errorf("%d changes recorded in tasks, outbox sequence at %d, %d pending",
					total, tx.tx.Bucket([]byte(bucketOutbox)).Sequence(), len(pending))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: after SIGKILL: %v", round, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if deleted == 0 {
		t.Fatal("the writer never deleted an entry; the test did not exercise deletes")
	}
}

// TestConcurrentReaders runs readers beside a writer; every reader's
// snapshot must show a task record and its outbox entries in agreement.
func TestConcurrentReaders(t *testing.T) {
	db := openTest(t)
	const writes = 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := db.View(func(tx *Tx) error {
					var rec crashRecord
					if err := tx.TaskJSON("t", &rec); errors.Is(err, ErrNotFound) {
						return nil
					} else if err != nil {
						return err
					}
					cs, err := tx.PendingStateChangesForTask("t")
					if err != nil {
						return err
					}
					if len(cs) != rec.Changes {
						return fmt.Errorf("snapshot shows record with %d changes and %d outbox entries", rec.Changes, len(cs))
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 1; i <= writes; i++ {
		err := db.Update(func(tx *Tx) error {
			if _, err := tx.AppendStateChange(&api.StateChange{Kind: api.ChangeTask, TaskARN: "t", Status: "RUNNING"}); err != nil {
				return err
			}
			return tx.PutTaskJSON("t", crashRecord{Changes: i})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, _ := db.StateChangeCount(); n != writes {
		t.Fatalf("count %d, want %d", n, writes)
	}
}
