package etcdstore

import (
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// TestUnavailableErrors: every error etcd's client returns when the
// cluster cannot serve (as EtcdError values, which carry a gRPC code but
// are no gRPC status) maps to store.ErrUnavailable, so the endpoint
// answers 503 naming the quorum rather than 500. A member being stopped
// answered "etcdserver: server stopped", which was missed
// (TestEtcdMemberFailures/QuorumLost then saw a 500 now and then).
func TestUnavailableErrors(t *testing.T) {
	for _, err := range []error{rpctypes.ErrNoLeader, rpctypes.ErrStopped, rpctypes.ErrNotCapable, rpctypes.ErrUnhealthy,
		rpctypes.ErrTimeout, rpctypes.ErrTimeoutWaitAppliedIndex, rpctypes.ErrLeaderChanged, rpctypes.Error(rpctypes.ErrGRPCStopped)} {
		wrapped := fmt.Errorf("range: %w", err)
		if got := mapErr(wrapped); !errors.Is(got, store.ErrUnavailable) {
			t.Errorf("%v: mapped to %v, want store.ErrUnavailable", err, got)
		}
	}
	for _, err := range []error{rpctypes.ErrCompacted, rpctypes.ErrTooManyOps, rpctypes.ErrPermissionDenied, errors.New("other")} {
		if got := mapErr(err); errors.Is(got, store.ErrUnavailable) {
			t.Errorf("%v: mapped to store.ErrUnavailable", err)
		}
	}
}
