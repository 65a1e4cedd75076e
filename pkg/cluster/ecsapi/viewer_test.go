package ecsapi

import (
	"context"
	"errors"
	"testing"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
)

// TestViewerOnlyReads: a viewer key (the web console's read-only operator,
// whose requests reach this handler from the console) may call the
// Describe and List operations and nothing else.
func TestViewerOnlyReads(t *testing.T) {
	s := newTestServer(t)
	viewer := auth.Key{AccessKeyID: "BKVIEWER", Role: auth.RoleViewer}
	call := func(op, body string) error {
		_, err := s.ServeAWS(&awsproto.Request{Context: context.Background(), Key: viewer, Operation: op, Protocol: awsproto.JSON11, Body: []byte(body)})
		return err
	}
	if err := call("ListClusters", `{}`); err != nil {
		t.Errorf("viewer ListClusters: %v, want it answered", err)
	}
	for _, c := range []struct{ op, body string }{
		{"CreateCluster", `{"clusterName":"x"}`},
		{"UpdateService", `{"service":"s","desiredCount":1}`},
		{"StopTask", `{"task":"t"}`},
	} {
		var ae *awsproto.Error
		if err := call(c.op, c.body); !errors.As(err, &ae) || ae.Type != auth.AccessDenied {
			t.Errorf("viewer %s: %v, want %s", c.op, err, auth.AccessDenied)
		}
	}
}
