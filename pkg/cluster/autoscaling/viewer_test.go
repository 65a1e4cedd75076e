package autoscaling

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/metrics"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
)

// TestViewerOnlyDescribes: the web console calls the handler with its
// operator's key; a viewer key may describe (the service page's scaling)
// and nothing else, an agent key nothing at all.
func TestViewerOnlyDescribes(t *testing.T) {
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "db"), boltstore.Options{Buckets: append(append(Buckets(), metrics.Buckets()...), records.Buckets()...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ms, err := metrics.New(metrics.Options{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Store: db, Metrics: ms, Region: "us-test-1", AccountID: "123456789012"})
	if err != nil {
		t.Fatal(err)
	}
	call := func(role auth.Role, op, body string) error {
		_, err := s.ServeAWS(&awsproto.Request{Context: context.Background(), Key: auth.Key{AccessKeyID: "AKIDTEST", Role: role},
			Operation: op, Protocol: awsproto.JSON11, Body: []byte(body)})
		return err
	}
	describe := `{"ServiceNamespace":"ecs"}`
	register := `{"ServiceNamespace":"ecs","ResourceId":"service/web/api","ScalableDimension":"ecs:service:DesiredCount","MinCapacity":1,"MaxCapacity":2}`
	for _, c := range []struct {
		role   auth.Role
		op     string
		body   string
		denied bool
	}{
		{auth.RoleViewer, "DescribeScalableTargets", describe, false},
		{auth.RoleViewer, "DescribeScalingActivities", describe, false},
		{auth.RoleViewer, "RegisterScalableTarget", register, true},
		{auth.RoleViewer, "DeleteScalingPolicy", `{"ServiceNamespace":"ecs","ResourceId":"service/web/api","ScalableDimension":"ecs:service:DesiredCount","PolicyName":"p"}`, true},
		{auth.RoleAgent, "DescribeScalableTargets", describe, true},
		{auth.RoleAdmin, "RegisterScalableTarget", register, false},
	} {
		err := call(c.role, c.op, c.body)
		var ae *awsproto.Error
		denied := errors.As(err, &ae) && ae.Type == auth.AccessDenied
		// A key let through may still be refused on the request's merits
		// (the admin's service does not exist here).
		if denied != c.denied || (c.role == auth.RoleViewer && !c.denied && err != nil) {
			t.Errorf("%s key %s: %v, want denied %v", c.role, c.op, err, c.denied)
		}
	}
}
