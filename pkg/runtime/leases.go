package runtime

// The containerd leases of the Runtime's own operations. containerd's
// client takes a lease of its own (24 h, no labels) inside Fetch, Unpack
// and NewContainer unless ctx already holds one, and drops it when the
// call returns: an agent killed in between, or containerd down at that
// moment, left the lease behind with everything it protects. So the
// Runtime takes the lease itself, labelled with its owner (the state
// directory; leases are per namespace already) and the process and
// Runtime that hold it, with a bounded expiry; it retries a release that
// containerd did not answer, and New removes the owner's leases whose
// holder is gone.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/leases"
	"github.com/containerd/log"
)

const (
	// leaseOwnerLabel names the state directory of the Runtime that took a
	// lease: runtimes of one namespace and state directory own it together.
	leaseOwnerLabel = "berth.dev/lease.owner"
	// leaseHolderLabel is "<pid>:<process start>:<runtime instance>".
	leaseHolderLabel = "berth.dev/lease.holder"
	// leaseExpiry bounds a lease nobody released (containerd's GC removes
	// it then); a pull with a longer timeout gets that timeout plus
	// leaseMargin.
	leaseExpiry = time.Hour
	leaseMargin = 10 * time.Minute
	// leaseReleaseTimeout bounds one attempt to delete a lease.
	leaseReleaseTimeout = 10 * time.Second
)

// leaseHolder identifies this process (pid and start time, so that a
// reused pid is not taken for it) and one Runtime in it.
type leaseHolder struct {
	process  string // "<pid>:<start>"
	instance string
}

func (h leaseHolder) String() string { return h.process + ":" + h.instance }

// newLeaseHolder identifies the calling process and a new Runtime in it.
func newLeaseHolder() (leaseHolder, error) {
	start, err := processStart(os.Getpid())
	if err != nil {
		return leaseHolder{}, err
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return leaseHolder{}, fmt.Errorf("lease holder ID: %w", err)
	}
	return leaseHolder{process: strconv.Itoa(os.Getpid()) + ":" + start, instance: hex.EncodeToString(b[:])}, nil
}

// processStart returns the start time of process pid (field 22 of
// /proc/<pid>/stat, in clock ticks since boot).
func processStart(pid int) (string, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", fmt.Errorf("process start of %d: %w", pid, err)
	}
	s := string(raw)
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("process start of %d: malformed /proc stat %q", pid, s)
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return "", fmt.Errorf("process start of %d: malformed /proc stat %q", pid, s)
	}
	return fields[19], nil
}

// processAlive reports whether the process part of a holder label
// ("<pid>:<start>") is a running process.
func processAlive(process string) bool {
	pid, start, ok := strings.Cut(process, ":")
	if !ok {
		return false
	}
	n, err := strconv.Atoi(pid)
	if err != nil {
		return false
	}
	got, err := processStart(n)
	return err == nil && got == start
}

// leaseTTL is how long the Runtime's leases live unless released.
func (r *Runtime) leaseTTL() time.Duration {
	if r.opts.PullTimeout == 0 {
		return 24 * time.Hour // a pull without a bound: containerd's default
	}
	return max(leaseExpiry, r.opts.PullTimeout+leaseMargin)
}

// withLease returns ctx holding a new lease of the Runtime, for the
// containerd calls that would otherwise take one each, and its release.
// release(true), for a failed operation, has containerd collect what the
// lease protected at once (a failed pull's blobs) rather than at its next
// garbage collection. ctx must be in the Runtime's namespace.
func (r *Runtime) withLease(ctx context.Context) (context.Context, func(failed bool), error) {
	l, err := r.client.LeasesService().Create(ctx,
		leases.WithRandomID(),
		leases.WithExpiration(r.leaseTTL()),
		leases.WithLabels(map[string]string{
			leaseOwnerLabel:  r.opts.StateDir,
			leaseHolderLabel: r.holder.String(),
		}))
	if err != nil {
		return ctx, nil, fmt.Errorf("create lease: %w", err)
	}
	r.mu.Lock()
	r.held[l.ID] = true
	r.mu.Unlock()
	release := func(failed bool) {
		r.mu.Lock()
		delete(r.held, l.ID)
		r.mu.Unlock()
		var opts []leases.DeleteOpt
		if failed {
			opts = append(opts, leases.SynchronousDelete)
		}
		r.releaseLease(l, opts...)
	}
	return leases.WithLease(ctx, l.ID), release, nil
}

// deleteLease makes one attempt to delete l, which is gone afterwards when
// it returns nil.
func (r *Runtime) deleteLease(ctx context.Context, l leases.Lease, opts ...leases.DeleteOpt) error {
	ctx, cancel := context.WithTimeout(r.withNS(context.WithoutCancel(ctx)), leaseReleaseTimeout)
	defer cancel()
	if err := r.client.LeasesService().Delete(ctx, l, opts...); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete lease %s: %w", l.ID, err)
	}
	return nil
}

// releaseLease deletes l, retrying in the background until containerd
// answers or the Runtime closes (which makes one last attempt). A lease
// still left then is removed by the next Runtime of this state directory,
// or by containerd when it expires.
func (r *Runtime) releaseLease(l leases.Lease, opts ...leases.DeleteOpt) {
	err := r.deleteLease(r.ctx, l, opts...)
	if err == nil {
		return
	}
	done, terr := r.track()
	if terr != nil {
		log.G(r.ctx).WithError(err).WithField("lease", l.ID).Warn("lease left for the next start to remove")
		return
	}
	log.G(r.ctx).WithError(err).WithField("lease", l.ID).Info("retrying the release of a lease")
	go func() {
		defer done()
		delay := 100 * time.Millisecond
		for {
			select {
			case <-r.ctx.Done():
				if err := r.deleteLease(r.ctx, l, opts...); err != nil {
					log.G(r.ctx).WithError(err).WithField("lease", l.ID).Warn("lease left for the next start to remove")
				}
				return
			case <-time.After(delay):
			}
			if r.deleteLease(r.ctx, l, opts...) == nil {
				return
			}
			delay = min(delay*2, 5*time.Second)
		}
	}()
}

// sweepLeases removes the leases of this state directory that no
// operation holds: those of a process that is gone (killed with them
// held), and this Runtime's own that nothing holds any more. Leases of
// other state directories (another agent) or of another live process or
// Runtime are left alone.
func (r *Runtime) sweepLeases(ctx context.Context) error {
	ctx = r.withNS(ctx)
	all, err := r.client.LeasesService().List(ctx)
	if err != nil {
		return fmt.Errorf("list leases: %w", err)
	}
	var errs []error
	for _, l := range all {
		if l.Labels[leaseOwnerLabel] != r.opts.StateDir {
			continue
		}
		holder := l.Labels[leaseHolderLabel]
		switch {
		case holder == r.holder.String():
			r.mu.Lock()
			held := r.held[l.ID]
			r.mu.Unlock()
			if held {
				continue
			}
		case strings.HasPrefix(holder, r.holder.process+":"), processAlive(holderProcess(holder)):
			continue
		}
		if err := r.deleteLease(ctx, l, leases.SynchronousDelete); err != nil {
			errs = append(errs, err)
			continue
		}
		log.G(ctx).WithField("lease", l.ID).WithField("holder", holder).Info("removed a lease left by an interrupted operation")
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove leases left behind: %w", errs[0])
	}
	return nil
}

// holderProcess is the "<pid>:<start>" part of a holder label.
func holderProcess(holder string) string {
	if i := strings.LastIndexByte(holder, ':'); i >= 0 {
		return holder[:i]
	}
	return holder
}
