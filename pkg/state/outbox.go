package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/berth-dev/berth/pkg/api"
)

// AppendStateChange adds c to the end of the outbox and returns its
// sequence number (also set in c.Seq). Call it in the transaction that
// writes the state the change describes.
func (tx *Tx) AppendStateChange(c *api.StateChange) (uint64, error) {
	if c == nil || c.TaskARN == "" {
		return 0, errors.New("append state change: no task ARN")
	}
	b := tx.bucket(bucketOutbox)
	seq, err := b.NextSequence()
	if err != nil {
		return 0, fmt.Errorf("append state change for %s: %w", c.TaskARN, err)
	}
	c.Seq = seq
	v, err := json.Marshal(c)
	if err != nil {
		return 0, fmt.Errorf("append state change for %s: encode: %w", c.TaskARN, err)
	}
	if err := b.Put(u64key(seq), v); err != nil {
		return 0, fmt.Errorf("append state change for %s: %w", c.TaskARN, err)
	}
	if err := tx.addOutboxCount(1); err != nil {
		return 0, err
	}
	return seq, nil
}

// PendingStateChanges returns up to limit outbox entries, oldest first
// (limit <= 0 means all). Entries of one task come in the order they were
// appended.
func (tx *Tx) PendingStateChanges(limit int) ([]api.StateChange, error) {
	return tx.scanOutbox(limit, func(*api.StateChange) bool { return true })
}

// PendingStateChangesForTask returns the outbox entries of one task, oldest
// first.
func (tx *Tx) PendingStateChangesForTask(arn string) ([]api.StateChange, error) {
	return tx.scanOutbox(0, func(c *api.StateChange) bool { return c.TaskARN == arn })
}

func (tx *Tx) scanOutbox(limit int, keep func(*api.StateChange) bool) ([]api.StateChange, error) {
	var out []api.StateChange
	cur := tx.bucket(bucketOutbox).Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		var c api.StateChange
		if err := json.Unmarshal(v, &c); err != nil {
			return nil, fmt.Errorf("read outbox entry %d: %w", binary.BigEndian.Uint64(k), err)
		}
		c.Seq = binary.BigEndian.Uint64(k)
		if !keep(&c) {
			continue
		}
		out = append(out, c)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// DeleteStateChange removes the outbox entry seq once the endpoint has
// accepted it. Deleting an entry that is not there is not an error.
func (tx *Tx) DeleteStateChange(seq uint64) error {
	b := tx.bucket(bucketOutbox)
	k := u64key(seq)
	if b.Get(k) == nil {
		return nil
	}
	if err := b.Delete(k); err != nil {
		return fmt.Errorf("delete state change %d: %w", seq, err)
	}
	return tx.addOutboxCount(-1)
}

// StateChangeCount returns the number of entries in the outbox.
func (tx *Tx) StateChangeCount() (int, error) {
	v := tx.bucket(bucketMeta).Get([]byte(keyOutboxCount))
	if v == nil {
		return 0, nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, fmt.Errorf("outbox count %q: %w", v, err)
	}
	return n, nil
}

func (tx *Tx) addOutboxCount(delta int) error {
	n, err := tx.StateChangeCount()
	if err != nil {
		return err
	}
	n += delta
	if n < 0 {
		n = 0
	}
	if err := tx.bucket(bucketMeta).Put([]byte(keyOutboxCount), []byte(strconv.Itoa(n))); err != nil {
		return fmt.Errorf("update outbox count: %w", err)
	}
	return nil
}
