package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// TestUnavailableErrors: every error etcd's client returns when the
// cluster cannot serve (as EtcdError values, which carry a gRPC code but
// are no gRPC status) maps to store.ErrUnavailable, so the endpoint
// answers 503 naming the quorum rather than 500. A member being stopped
// answered "etcdserver: server stopped", which was missed
// (TestEtcdMemberFailures/QuorumLost then saw a 500 now and then); so was
// etcd 3.4's answer to a read that waited out its deadline for a quorum:
// code Unknown, "context deadline exceeded".
func TestUnavailableErrors(t *testing.T) {
	for _, err := range []error{rpctypes.ErrNoLeader, rpctypes.ErrStopped, rpctypes.ErrNotCapable, rpctypes.ErrUnhealthy,
		rpctypes.ErrTimeout, rpctypes.ErrTimeoutWaitAppliedIndex, rpctypes.ErrLeaderChanged, rpctypes.Error(rpctypes.ErrGRPCStopped),
		status.Error(codes.Unknown, context.DeadlineExceeded.Error()), status.Error(codes.Unavailable, "connection reset by peer")} {
		wrapped := fmt.Errorf("range: %w", err)
		if got := mapErr(wrapped); !errors.Is(got, store.ErrUnavailable) {
			t.Errorf("%v: mapped to %v, want store.ErrUnavailable", err, got)
		}
	}
	for _, err := range []error{rpctypes.ErrCompacted, rpctypes.ErrTooManyOps, rpctypes.ErrPermissionDenied, errors.New("other"),
		status.Error(codes.Unknown, "other"), status.Error(codes.Unknown, context.Canceled.Error())} {
		if got := mapErr(err); errors.Is(got, store.ErrUnavailable) {
			t.Errorf("%v: mapped to store.ErrUnavailable", err)
		}
	}
}

// timerLate is a request context whose deadline has passed but whose
// timer has not run yet: Err is still nil, as it can be for a moment when
// the member's answer arrives right at the deadline.
type timerLate struct{ context.Context }

func (timerLate) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }
func (timerLate) Err() error                  { return nil }

// TestRequestPastDeadline: a request whose deadline has passed is etcd
// unavailable whatever the error says and whether or not the context's
// timer has run yet; before its deadline an unknown error stays what it is.
func TestRequestPastDeadline(t *testing.T) {
	odd := errors.New("an answer etcd gave at the deadline")
	if got := mapReqErr(timerLate{context.Background()}, odd); !errors.Is(got, store.ErrUnavailable) || !errors.Is(got, odd) {
		t.Errorf("past the deadline (timer not run): %v, want store.ErrUnavailable wrapping the error", got)
	}
	expired, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	if got := mapReqErr(expired, odd); !errors.Is(got, store.ErrUnavailable) {
		t.Errorf("past the deadline: %v, want store.ErrUnavailable", got)
	}
	inTime, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if got := mapReqErr(inTime, odd); errors.Is(got, store.ErrUnavailable) {
		t.Errorf("within the deadline: %v mapped to store.ErrUnavailable", got)
	}
}
