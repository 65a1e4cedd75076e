package state

import (
	"time"

	"github.com/berth-dev/berth/pkg/api"
)

// This file holds one-transaction shorthands on DB for the common calls.

// SaveTask writes the record of the task arn and appends changes to the
// outbox in one transaction, setting each change's Seq. With DeleteTask
// and TaskRecords it makes *DB the engine's Store (pkg/engine) as it is.
// Concurrent calls share a transaction (group commit, group.go): each
// returns once its writes are durable.
func (db *DB) SaveTask(arn string, record []byte, changes []api.StateChange) error {
	return db.updateGrouped(func(tx *Tx) error {
		if err := tx.PutTask(arn, record); err != nil {
			return err
		}
		for i := range changes {
			if _, err := tx.AppendStateChange(&changes[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteTask removes the record of the task arn; its outbox entries stay.
func (db *DB) DeleteTask(arn string) error {
	return db.Update(func(tx *Tx) error { return tx.DeleteTask(arn) })
}

// Tasks returns every task record, ordered by ARN.
func (db *DB) Tasks() ([]TaskEntry, error) {
	var out []TaskEntry
	err := db.View(func(tx *Tx) error {
		var err error
		out, err = tx.Tasks()
		return err
	})
	return out, err
}

// TaskRecords returns every task record, ordered by ARN (pkg/engine's
// Store.TaskRecords).
func (db *DB) TaskRecords() ([][]byte, error) {
	tasks, err := db.Tasks()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(tasks))
	for _, t := range tasks {
		out = append(out, t.Record)
	}
	return out, nil
}

// PendingStateChanges returns up to limit outbox entries, oldest first
// (limit <= 0 means all).
func (db *DB) PendingStateChanges(limit int) ([]api.StateChange, error) {
	var out []api.StateChange
	err := db.View(func(tx *Tx) error {
		var err error
		out, err = tx.PendingStateChanges(limit)
		return err
	})
	return out, err
}

// DeleteStateChange removes the outbox entries seqs in one transaction.
func (db *DB) DeleteStateChange(seqs ...uint64) error {
	return db.Update(func(tx *Tx) error {
		for _, s := range seqs {
			if err := tx.DeleteStateChange(s); err != nil {
				return err
			}
		}
		return nil
	})
}

// StateChangeCount returns the number of entries in the outbox (for the
// "state changes pending" metric).
func (db *DB) StateChangeCount() (int, error) {
	var n int
	err := db.View(func(tx *Tx) error {
		var err error
		n, err = tx.StateChangeCount()
		return err
	})
	return n, err
}

// Instance returns the stored instance identity (ErrNotFound before the
// first registration).
func (db *DB) Instance() (InstanceIdentity, error) {
	var id InstanceIdentity
	err := db.View(func(tx *Tx) error {
		var err error
		id, err = tx.Instance()
		return err
	})
	return id, err
}

// PutInstance stores the instance identity.
func (db *DB) PutInstance(id InstanceIdentity) error {
	return db.Update(func(tx *Tx) error { return tx.PutInstance(id) })
}

// ACSSeqNum returns the recorded ACS sequence number (0 when none).
func (db *DB) ACSSeqNum() (int64, error) {
	var n int64
	err := db.View(func(tx *Tx) error {
		var err error
		n, err = tx.ACSSeqNum()
		return err
	})
	return n, err
}

// MessageProcessed reports whether the ACS message id was recorded.
func (db *DB) MessageProcessed(id string) (bool, error) {
	var ok bool
	err := db.View(func(tx *Tx) error { ok = tx.MessageProcessed(id); return nil })
	return ok, err
}

// PruneProcessedMessages forgets message ids processed before the time
// given and returns how many it removed.
func (db *DB) PruneProcessedMessages(before time.Time) (int, error) {
	var n int
	err := db.Update(func(tx *Tx) error {
		var err error
		n, err = tx.PruneProcessedMessages(before)
		return err
	})
	return n, err
}

// MarkMessageProcessed records the ACS message id as handled at the given
// time. Prefer Tx.MarkMessageProcessed in the transaction that applies the
// message when there is one.
func (db *DB) MarkMessageProcessed(id string, at time.Time) error {
	return db.Update(func(tx *Tx) error { return tx.MarkMessageProcessed(id, at) })
}

// SetACSSeqNum records the ACS sequence number.
func (db *DB) SetACSSeqNum(n int64) error {
	return db.Update(func(tx *Tx) error { return tx.SetACSSeqNum(n) })
}
