package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// TaskEntry is one stored task record: the engine's JSON blob for a task,
// keyed by task ARN.
type TaskEntry struct {
	ARN    string
	Record []byte
}

// PutTask stores (or replaces) the record of the task arn. The record is
// opaque to this package; it must be non-empty.
func (tx *Tx) PutTask(arn string, record []byte) error {
	if arn == "" {
		return errors.New("put task: empty ARN")
	}
	if len(record) == 0 {
		return fmt.Errorf("put task %s: empty record", arn)
	}
	if err := tx.bucket(bucketTasks).Put([]byte(arn), clone(record)); err != nil {
		return fmt.Errorf("put task %s: %w", arn, err)
	}
	return nil
}

// PutTaskJSON marshals v and stores it as the record of the task arn.
func (tx *Tx) PutTaskJSON(arn string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("put task %s: encode: %w", arn, err)
	}
	return tx.PutTask(arn, b)
}

// Task returns a copy of the record of the task arn, or an error wrapping
// ErrNotFound.
func (tx *Tx) Task(arn string) ([]byte, error) {
	v := tx.bucket(bucketTasks).Get([]byte(arn))
	if v == nil {
		return nil, fmt.Errorf("task %s: %w", arn, ErrNotFound)
	}
	return clone(v), nil
}

// TaskJSON unmarshals the record of the task arn into v; a missing task is
// an error wrapping ErrNotFound.
func (tx *Tx) TaskJSON(arn string, v any) error {
	b, err := tx.Task(arn)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("task %s: decode: %w", arn, err)
	}
	return nil
}

// Tasks returns every task record, ordered by ARN.
func (tx *Tx) Tasks() ([]TaskEntry, error) {
	var out []TaskEntry
	err := tx.bucket(bucketTasks).ForEach(func(k, v []byte) error {
		out = append(out, TaskEntry{ARN: string(k), Record: clone(v)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	return out, nil
}

// TaskCount returns the number of stored task records.
func (tx *Tx) TaskCount() int {
	return tx.bucket(bucketTasks).Stats().KeyN
}

// DeleteTask removes the record of the task arn; a missing record is not an
// error. The task's outbox entries are kept: they still have to be sent.
func (tx *Tx) DeleteTask(arn string) error {
	if err := tx.bucket(bucketTasks).Delete([]byte(arn)); err != nil {
		return fmt.Errorf("delete task %s: %w", arn, err)
	}
	return nil
}

// InstanceIdentity is who this agent is in its cluster, as registration
// learnt it.
type InstanceIdentity struct {
	ContainerInstanceArn string            `json:"containerInstanceArn"`
	ClusterArn           string            `json:"clusterArn,omitempty"`
	Cluster              string            `json:"cluster,omitempty"`
	Region               string            `json:"region,omitempty"`
	RegisteredAt         time.Time         `json:"registeredAt,omitzero"`
	Attributes           map[string]string `json:"attributes,omitempty"`
}

// PutInstance stores the instance identity, replacing any previous one.
func (tx *Tx) PutInstance(id InstanceIdentity) error {
	b, err := json.Marshal(id)
	if err != nil {
		return fmt.Errorf("put instance identity: %w", err)
	}
	if err := tx.bucket(bucketMeta).Put([]byte(keyInstance), b); err != nil {
		return fmt.Errorf("put instance identity: %w", err)
	}
	return nil
}

// Instance returns the stored instance identity, or an error wrapping
// ErrNotFound before the first registration.
func (tx *Tx) Instance() (InstanceIdentity, error) {
	var id InstanceIdentity
	v := tx.bucket(bucketMeta).Get([]byte(keyInstance))
	if v == nil {
		return id, fmt.Errorf("instance identity: %w", ErrNotFound)
	}
	if err := json.Unmarshal(v, &id); err != nil {
		return id, fmt.Errorf("instance identity: decode: %w", err)
	}
	return id, nil
}

// DeleteInstance forgets the instance identity (deregistration).
func (tx *Tx) DeleteInstance() error {
	if err := tx.bucket(bucketMeta).Delete([]byte(keyInstance)); err != nil {
		return fmt.Errorf("delete instance identity: %w", err)
	}
	return nil
}

// SetACSSeqNum records the sequence number of the last ACS payload handled,
// which the agent sends as seqNum when it reconnects.
func (tx *Tx) SetACSSeqNum(n int64) error {
	if err := tx.bucket(bucketMeta).Put([]byte(keyACSSeqNum), []byte(strconv.FormatInt(n, 10))); err != nil {
		return fmt.Errorf("put ACS seqNum: %w", err)
	}
	return nil
}

// ACSSeqNum returns the recorded ACS sequence number, 0 when none.
func (tx *Tx) ACSSeqNum() (int64, error) {
	v := tx.bucket(bucketMeta).Get([]byte(keyACSSeqNum))
	if v == nil {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("ACS seqNum %q: %w", v, err)
	}
	return n, nil
}

// MarkMessageProcessed records that the ACS message id was handled at the
// given time, so that a redelivery of it can be acknowledged without being
// applied twice. Write it in the same transaction as the effects of the
// message.
func (tx *Tx) MarkMessageProcessed(id string, at time.Time) error {
	if id == "" {
		return errors.New("mark message processed: empty id")
	}
	if err := tx.bucket(bucketMessages).Put([]byte(id), u64key(uint64(at.UnixNano()))); err != nil {
		return fmt.Errorf("mark message %s processed: %w", id, err)
	}
	return nil
}

// MessageProcessed reports whether the ACS message id was recorded by
// MarkMessageProcessed (and not pruned since).
func (tx *Tx) MessageProcessed(id string) bool {
	return tx.bucket(bucketMessages).Get([]byte(id)) != nil
}

// PruneProcessedMessages forgets message ids processed before the given
// time and returns how many it removed. The endpoint redelivers only
// recent messages, so old ids need not be kept forever.
func (tx *Tx) PruneProcessedMessages(before time.Time) (int, error) {
	b := tx.bucket(bucketMessages)
	var stale [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) < before.UnixNano() {
			stale = append(stale, clone(k))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune processed messages: %w", err)
	}
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return 0, fmt.Errorf("prune processed message %s: %w", k, err)
		}
	}
	return len(stale), nil
}
