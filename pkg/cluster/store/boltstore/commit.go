package boltstore

import (
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// maxGroup bounds how many Update functions share one bbolt transaction,
// so that one commit's dirty pages (and the wait of its first member) stay
// small.
const maxGroup = 128

// commitQueue is group commit for Update: a caller that finds no
// transaction being committed becomes the leader and commits its function
// alone at once (one client waits no longer than with plain bbolt); the
// functions that arrive while the leader's transaction runs and fsyncs
// queue up, and the next leader runs them all in one transaction with one
// fsync. No member is answered before the transaction that holds its
// writes is durable.
//
// A member that returns an error (or panics) after writing is taken out
// and run again alone, in its own transaction, by its caller, and the
// group's transaction is rolled back and rerun without it: a failing
// member never fails the others, and never commits a partial write. A
// member that fails without writing changed nothing, so the group's
// transaction goes on; its error is handed back only once the others'
// commit succeeded (it read their writes, so it must not be answered from
// a state that then failed to commit: if the commit fails, it runs again
// alone, and the members that succeeded get the commit's error). This
// reruns functions, as store.Store allows (etcdstore reruns on conflict
// too).
//
// There is no goroutine: each leader hands leadership to the first caller
// still queued when its transaction is done.
type commitQueue struct {
	db *bolt.DB

	// mu guards the fields below.
	mu      sync.Mutex
	pending []*commitCall
	leading bool
}

// commitCall is one Update waiting in the queue. done receives exactly
// one value: its result, errLead (the caller is now the leader) or
// errSolo (the caller must run its function alone).
type commitCall struct {
	fn   func(store.Tx) error
	done chan error
}

var (
	errLead = errors.New("boltstore: lead the next group")
	errSolo = errors.New("boltstore: run alone")
	// errNoWrites rolls back a group transaction whose members all failed
	// without writing: there is nothing to make durable.
	errNoWrites = errors.New("boltstore: no member wrote")
)

func (q *commitQueue) update(fn func(store.Tx) error) error {
	c := &commitCall{fn: fn, done: make(chan error, 1)}
	q.mu.Lock()
	q.pending = append(q.pending, c)
	if q.leading {
		q.mu.Unlock()
		switch err := <-c.done; err {
		case errLead:
			q.mu.Lock()
		case errSolo:
			return q.solo(fn)
		default:
			return err
		}
	}
	// The leader (q.mu held) takes what is queued, its own call first
	// among them, and commits it.
	q.leading = true
	n := min(len(q.pending), maxGroup)
	group := q.pending[:n:n]
	q.pending = q.pending[n:]
	q.mu.Unlock()

	q.commit(group)

	q.mu.Lock()
	if len(q.pending) > 0 {
		q.pending[0].done <- errLead
	} else {
		q.leading = false
		q.pending = nil
	}
	q.mu.Unlock()
	if err := <-c.done; err != errSolo {
		return err
	}
	return q.solo(fn)
}

// solo runs fn in a transaction of its own, as plain bbolt would; a panic
// in fn reaches its caller.
func (q *commitQueue) solo(fn func(store.Tx) error) error {
	return q.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

// commit runs group's functions in one transaction and answers each.
func (q *commitQueue) commit(group []*commitCall) {
	for len(group) > 0 {
		results := make([]error, len(group))
		failed, panicked := -1, false
		err := q.db.Update(func(tx *bolt.Tx) error {
			wrote := false
			for i, c := range group {
				t := &groupTx{boltTx: boltTx{tx}}
				err := t.call(c.fn)
				if err != nil && (t.wrote || t.panicked) {
					failed, panicked = i, t.panicked
					return err
				}
				results[i] = err
				wrote = wrote || t.wrote
			}
			if !wrote {
				return errNoWrites
			}
			return nil
		})
		if failed >= 0 && len(group) == 1 && !panicked {
			// Alone already: its rolled-back transaction is its answer.
			group[0].done <- err
			return
		}
		if failed >= 0 {
			group[failed].done <- errSolo
			group = append(group[:failed:failed], group[failed+1:]...)
			continue
		}
		if errors.Is(err, errNoWrites) {
			err = nil
		}
		for i, c := range group {
			switch {
			case err == nil:
				c.done <- results[i]
			case results[i] != nil:
				c.done <- errSolo
			default:
				c.done <- err
			}
		}
		return
	}
}

// groupTx is a member's view of the group's transaction: it notes whether
// the member wrote, so that its failure can be undone.
type groupTx struct {
	boltTx
	wrote, panicked bool
}

func (t *groupTx) Put(b store.Bucket, key string, v any) error {
	t.wrote = true
	return t.boltTx.Put(b, key, v)
}

func (t *groupTx) Delete(b store.Bucket, key string) error {
	t.wrote = true
	return t.boltTx.Delete(b, key)
}

// call runs fn, turning a panic into an error (the member then runs alone,
// where the panic reaches its own caller).
func (t *groupTx) call(fn func(store.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			t.panicked = true
			err = fmt.Errorf("update function panicked: %v", p)
		}
	}()
	return fn(t)
}
