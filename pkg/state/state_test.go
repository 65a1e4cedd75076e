package state

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/pkg/container"
)

func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := OpenDir(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestOpenCreatesSchema(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenDir(filepath.Join(dir, "sub"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if db.Path() != filepath.Join(dir, "sub", FileName) {
		t.Fatalf("path %s", db.Path())
	}
	v, err := db.SchemaVersion()
	if err != nil || v != SchemaVersion {
		t.Fatalf("schema version %d, %v; want %d", v, err, SchemaVersion)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening keeps the version and the data.
	db, err = OpenDir(filepath.Join(dir, "sub"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.SchemaVersion(); v != SchemaVersion {
		t.Fatalf("schema version after reopen %d", v)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{schemaVersion: SchemaVersion + 1, migrations: []Migration{{From: SchemaVersion, Apply: func(*bolt.Tx) error { return nil }}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SaveTask("arn:t", []byte(`{"a":1}`), nil); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(path, Options{})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema = %v; want ErrSchemaTooNew", err)
	}
	want := fmt.Sprintf("schema version %d, this agent supports up to %d", SchemaVersion+1, SchemaVersion)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	// The refused database is untouched: the newer agent still reads it.
	db, err = Open(path, Options{schemaVersion: SchemaVersion + 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if tasks, err := db.Tasks(); err != nil || len(tasks) != 1 {
		t.Fatalf("tasks after refused open: %v, %v", tasks, err)
	}
}

func TestOpenRunsMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	var ran []int
	migs := []Migration{
		{From: SchemaVersion, Apply: func(tx *bolt.Tx) error {
			ran = append(ran, SchemaVersion)
			_, err := tx.CreateBucket([]byte("added-in-2"))
			return err
		}},
		{From: SchemaVersion + 1, Apply: func(*bolt.Tx) error { ran = append(ran, SchemaVersion+1); return nil }},
	}
	db, err = Open(path, Options{schemaVersion: SchemaVersion + 2, migrations: migs})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ran, []int{SchemaVersion, SchemaVersion + 1}) {
		t.Fatalf("migrations ran %v", ran)
	}
	if v, _ := db.SchemaVersion(); v != SchemaVersion+2 {
		t.Fatalf("version after migration %d", v)
	}
	db.Close()

	// A failing migration leaves the file at its old version.
	path2 := filepath.Join(t.TempDir(), FileName)
	db, _ = Open(path2, Options{})
	db.Close()
	_, err = Open(path2, Options{schemaVersion: SchemaVersion + 1, migrations: []Migration{{From: SchemaVersion, Apply: func(*bolt.Tx) error { return errors.New("boom") }}}})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failing migration: %v", err)
	}
	_, err = Open(path2, Options{schemaVersion: SchemaVersion + 1})
	if err == nil || !strings.Contains(err.Error(), "no migration") {
		t.Fatalf("missing migration: %v", err)
	}
	db, err = Open(path2, Options{})
	if err != nil {
		t.Fatalf("reopen at the old version: %v", err)
	}
	db.Close()
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenDir(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// bbolt's lock is a flock on the file, per open file description, so a
	// second Open in the same process contends like a second agent would.
	_, err = OpenDir(dir, Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open = %v; want ErrLocked", err)
	}
}

func TestTasks(t *testing.T) {
	db := openTest(t)
	err := db.Update(func(tx *Tx) error {
		if err := tx.PutTask("arn:b", []byte(`{"n":2}`)); err != nil {
			return err
		}
		return tx.PutTaskJSON("arn:a", map[string]int{"n": 1})
	})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := db.Tasks()
	if err != nil {
		t.Fatal(err)
	}
	want := []TaskEntry{{ARN: "arn:a", Record: []byte(`{"n":1}`)}, {ARN: "arn:b", Record: []byte(`{"n":2}`)}}
	if !reflect.DeepEqual(tasks, want) {
		t.Fatalf("tasks %q, want %q", tasks, want)
	}
	err = db.View(func(tx *Tx) error {
		var v struct{ N int }
		if err := tx.TaskJSON("arn:b", &v); err != nil || v.N != 2 {
			return fmt.Errorf("TaskJSON = %+v, %v", v, err)
		}
		if _, err := tx.Task("arn:nope"); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("missing task: %v", err)
		}
		if n := tx.TaskCount(); n != 2 {
			return fmt.Errorf("TaskCount %d", n)
		}
		if err := tx.PutTask("arn:c", []byte("{}")); err == nil {
			return errors.New("write in a View transaction succeeded")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error { return tx.PutTask("", []byte("{}")) }); err == nil {
		t.Fatal("empty ARN accepted")
	}
	if err := db.Update(func(tx *Tx) error { return tx.PutTask("arn:x", nil) }); err == nil {
		t.Fatal("empty record accepted")
	}
	if err := db.DeleteTask("arn:a"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteTask("arn:a"); err != nil {
		t.Fatalf("deleting a missing task: %v", err)
	}
	if tasks, _ := db.Tasks(); len(tasks) != 1 || tasks[0].ARN != "arn:b" {
		t.Fatalf("after delete: %q", tasks)
	}
}

func TestInstanceSeqNumMessages(t *testing.T) {
	db := openTest(t)
	if _, err := db.Instance(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("instance before registration: %v", err)
	}
	id := InstanceIdentity{ContainerInstanceArn: "arn:ci", ClusterArn: "arn:cl", Cluster: "lab",
		RegisteredAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Attributes: map[string]string{"a": "b"}}
	if err := db.PutInstance(id); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Instance(); err != nil || !reflect.DeepEqual(got, id) {
		t.Fatalf("instance %+v, %v", got, err)
	}
	if n, err := db.ACSSeqNum(); err != nil || n != 0 {
		t.Fatalf("seqNum before set: %d, %v", n, err)
	}
	now := time.Now()
	err := db.Update(func(tx *Tx) error {
		if err := tx.SetACSSeqNum(42); err != nil {
			return err
		}
		if err := tx.MarkMessageProcessed("old", now.Add(-2*time.Hour)); err != nil {
			return err
		}
		return tx.MarkMessageProcessed("new", now)
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := db.ACSSeqNum(); n != 42 {
		t.Fatalf("seqNum %d", n)
	}
	if err := db.SetACSSeqNum(43); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.ACSSeqNum(); n != 43 {
		t.Fatalf("seqNum %d after DB.SetACSSeqNum", n)
	}
	if err := db.MarkMessageProcessed("", now); err == nil {
		t.Fatal("empty message id accepted")
	}
	if err := db.MarkMessageProcessed("viaDB", now); err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.MessageProcessed("viaDB"); !ok {
		t.Fatal("message marked through DB not recorded")
	}
	for id, want := range map[string]bool{"old": true, "new": true, "other": false} {
		if got, _ := db.MessageProcessed(id); got != want {
			t.Fatalf("MessageProcessed(%q) = %v", id, got)
		}
	}
	if n, err := db.PruneProcessedMessages(now.Add(-time.Hour)); err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want 1", n, err)
	}
	if ok, _ := db.MessageProcessed("old"); ok {
		t.Fatal("old message survived the prune")
	}
	if ok, _ := db.MessageProcessed("new"); !ok {
		t.Fatal("new message was pruned")
	}
	if err := db.Update(func(tx *Tx) error { return tx.DeleteInstance() }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Instance(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("instance after delete: %v", err)
	}
}

// TestPortAllocationsOnDisk pins the ports bucket's format, which data
// directories written before container.PortAllocation (when pkg/state had its
// own PortAllocation) hold: key "<protocol>/%05d", value the JSON
// {"owner","protocol","hostPort"}. Such a record loads, and saving writes the
// same bytes back.
func TestPortAllocationsOnDisk(t *testing.T) {
	db := openTest(t)
	old := map[string]string{
		"tcp/08080": `{"owner":"t2","protocol":"tcp","hostPort":8080}`,
		"udp/49153": `{"owner":"t1","protocol":"udp","hostPort":49153}`,
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for k, v := range old {
			if err := tx.Bucket([]byte("ports")).Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.LoadPorts()
	if err != nil {
		t.Fatal(err)
	}
	want := []container.PortAllocation{{Owner: "t2", Protocol: "tcp", HostPort: 8080}, {Owner: "t1", Protocol: "udp", HostPort: 49153}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded %+v, want %+v", got, want)
	}
	if err := db.SavePorts(got); err != nil {
		t.Fatal(err)
	}
	raw := map[string]string{}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("ports")).ForEach(func(k, v []byte) error { raw[string(k)] = string(v); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(raw, old) {
		t.Fatalf("saved records %q, want %q", raw, old)
	}
}

func TestPortAllocations(t *testing.T) {
	db := openTest(t)
	allocs := []container.PortAllocation{{Owner: "t1", Protocol: "udp", HostPort: 9090}, {Owner: "t1", Protocol: "tcp", HostPort: 49153}, {Owner: "t2", Protocol: "tcp", HostPort: 8080}}
	if err := db.SavePorts(allocs); err != nil {
		t.Fatal(err)
	}
	got, err := db.LoadPorts()
	if err != nil {
		t.Fatal(err)
	}
	want := []container.PortAllocation{allocs[2], allocs[1], allocs[0]} // by protocol, then port
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ports %+v, want %+v", got, want)
	}
	if err := db.SavePorts(allocs[:1]); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.LoadPorts(); !reflect.DeepEqual(got, allocs[:1]) {
		t.Fatalf("after replace %+v", got)
	}
	err = db.Update(func(tx *Tx) error {
		if err := tx.DeletePortAllocation("udp", 9090); err != nil {
			return err
		}
		return tx.PutPortAllocation(container.PortAllocation{Owner: "x", Protocol: "tcp"})
	})
	if err == nil {
		t.Fatal("allocation without port accepted")
	}
	// The failed transaction rolled back the delete too.
	if got, _ := db.LoadPorts(); len(got) != 1 {
		t.Fatalf("rolled-back delete took effect: %+v", got)
	}
	if err := db.SavePorts(nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.LoadPorts(); len(got) != 0 {
		t.Fatalf("after clearing %+v", got)
	}

}
