package acs_test

import (
	"errors"
	"testing"

	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// TestRefreshSessionsMendsASweptLiveReplica: the leader's sweep clears the
// sessions of a replica missing from the live list, which a live replica
// whose etcd lease lapsed for a moment also is; RefreshSessions records its
// sessions again, so its agents do not read disconnected until they next
// reconnect (seen in CI: TestReplicaProcesses, "every agent connected").
// A session another replica holds is left alone.
func TestRefreshSessionsMendsASweptLiveReplica(t *testing.T) {
	f := newFixtureOpts(t, func(o *acs.Options) { o.Replica = "r1" })
	if n, err := f.acs.RefreshSessions(); n != 0 || err != nil {
		t.Fatalf("RefreshSessions with no session = %d, %v; want 0, nil", n, err)
	}
	conn, _, err := f.dial(t, &f.keyA, f.instanceArn)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if _, _, err := conn.ReadMessage(); err != nil { // the manifest: the session is recorded
		t.Fatal(err)
	}
	if !f.connected(t) || sessionRecord(t, f.st, f.instanceArn) != "r1" {
		t.Fatalf("after the handshake: agentConnected %v, session record %q; want true, r1", f.connected(t), sessionRecord(t, f.st, f.instanceArn))
	}
	if n, err := f.acs.RefreshSessions(); n != 0 || err != nil {
		t.Fatalf("RefreshSessions with the session recorded = %d, %v; want 0, nil", n, err)
	}

	// The leader sees r1 missing for a moment and sweeps its sessions.
	if n, err := f.acs.SweepSessions([]string{"r2"}); n != 1 || err != nil {
		t.Fatalf("SweepSessions = %d, %v; want 1, nil", n, err)
	}
	if f.connected(t) || sessionRecord(t, f.st, f.instanceArn) != "" {
		t.Fatal("the sweep left the session recorded")
	}
	if n, err := f.acs.RefreshSessions(); n != 1 || err != nil {
		t.Fatalf("RefreshSessions after the sweep = %d, %v; want 1, nil", n, err)
	}
	if !f.connected(t) || sessionRecord(t, f.st, f.instanceArn) != "r1" {
		t.Fatalf("after the refresh: agentConnected %v, session record %q; want true, r1", f.connected(t), sessionRecord(t, f.st, f.instanceArn))
	}

	// The agent moved to r2 (its record says so): r1 leaves it alone.
	err = f.st.Update(func(tx store.Tx) error {
		return tx.Put(acs.SessionsBucket, f.instanceArn, map[string]string{"replica": "r2", "session": "other"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f.acs.RefreshSessions(); n != 0 || err != nil {
		t.Fatalf("RefreshSessions with another replica's record = %d, %v; want 0, nil", n, err)
	}
	if got := sessionRecord(t, f.st, f.instanceArn); got != "r2" {
		t.Fatalf("session record = %q after the refresh, want r2's kept", got)
	}
}

// sessionRecord reads which replica holds the instance's session ("" when
// none is recorded).
func sessionRecord(t *testing.T, st store.Store, instanceArn string) string {
	t.Helper()
	var rec struct {
		Replica string `json:"replica"`
	}
	err := st.View(func(tx store.Tx) error { return tx.Get(acs.SessionsBucket, instanceArn, &rec) })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return rec.Replica
}
