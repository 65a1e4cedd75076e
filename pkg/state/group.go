package state

import (
	"errors"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Group commit: concurrent SaveTask calls (many tasks changing state at
// once, each its own goroutine in the engine) are written in one bbolt
// transaction, so they share its fsyncs instead of queueing for one each.
// The first caller commits at once (no delay is added for a lone caller);
// callers arriving while that commit runs wait and are committed together
// by the first of them, and so on. A caller returns only once its writes
// are durable.

// errGroupAborted is what a call of a group reports if the commit ended
// without a result (a panic in another call's fn).
var errGroupAborted = errors.New("state: group commit aborted")

// groupQueue is the state of the group commit; DB holds one.
type groupQueue struct {
	mu      sync.Mutex
	pending []*groupCall // waiting for the next commit, in arrival order
	leading bool         // a caller is committing
}

// groupCall is one caller's writes.
type groupCall struct {
	fn   func(tx *Tx) error
	err  error
	done chan struct{} // closed once committed (or failed): err is set
	lead chan struct{} // closed when this caller is to commit the next group
}

// updateGrouped runs fn in a read-write transaction, possibly shared with
// the fns of concurrent callers, and returns once the transaction is
// committed. Like Update, fn's writes are committed when it returns nil and
// discarded when it returns an error (returned unchanged); another caller's
// failure never fails fn. fn may run more than once (after a failure in
// its group, each fn of the group runs again alone), so it must only write
// through tx and set what a repeat sets again.
func (db *DB) updateGrouped(fn func(tx *Tx) error) error {
	c := &groupCall{fn: fn, done: make(chan struct{}), lead: make(chan struct{})}
	q := &db.group
	q.mu.Lock()
	q.pending = append(q.pending, c)
	leader := !q.leading
	q.leading = true
	q.mu.Unlock()
	if !leader {
		select {
		case <-c.done:
			return c.err
		case <-c.lead:
		}
	}
	q.mu.Lock()
	group := q.pending
	q.pending = nil
	q.mu.Unlock()
	db.commitGroup(group)
	q.mu.Lock()
	if len(q.pending) > 0 {
		close(q.pending[0].lead) // the first to arrive meanwhile commits the next group
	} else {
		q.leading = false
	}
	q.mu.Unlock()
	return c.err
}

// commitGroup writes the calls of group in one transaction; when that
// fails, each call is written again in a transaction of its own, so that
// only the failing ones fail.
func (db *DB) commitGroup(group []*groupCall) {
	for _, c := range group {
		c.err = errGroupAborted
	}
	defer func() {
		for _, c := range group {
			close(c.done)
		}
	}()
	err := db.bolt.Update(func(btx *bolt.Tx) error {
		tx := &Tx{tx: btx}
		for _, c := range group {
			if err := c.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(group) == 1 {
		for _, c := range group {
			c.err = err
		}
		return
	}
	for _, c := range group {
		c.err = db.Update(c.fn)
	}
}
