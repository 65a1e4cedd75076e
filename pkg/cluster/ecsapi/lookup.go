package ecsapi

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The Describe and List operations share how they find records and how they
// answer for what they could not find; these helpers keep ECS's reasons and
// pagination in one place.

// maxListResults is the page size of every List operation, and the largest
// maxResults ECS accepts.
const maxListResults = 100

// missingFailure is how ECS reports a resource a call names that does not
// exist.
func missingFailure(arn string) types.Failure {
	return types.Failure{Arn: aws.String(arn), Reason: aws.String("MISSING")}
}

// asGiven names a failure by the reference the caller gave, as ECS does for
// most resources.
func asGiven(ref string) string { return ref }

// lookupEach looks up refs in order with load and passes each record found
// to found. A ref that names nothing becomes a MISSING failure naming
// failureArn(ref). The failures are never nil: ECS always sends the list.
func lookupEach[R any](refs []string, load func(ref string) (*R, bool, error), failureArn func(ref string) string,
	found func(rec *R) error) ([]types.Failure, error) {
	failures := []types.Failure{}
	for _, ref := range refs {
		rec, ok, err := load(ref)
		if err != nil {
			return nil, err
		}
		if !ok {
			failures = append(failures, missingFailure(failureArn(ref)))
			continue
		}
		if err := found(rec); err != nil {
			return nil, err
		}
	}
	return failures, nil
}

// listPage gathers a List operation's items with collect in one read
// transaction and returns the page maxResults and nextToken ask for, never
// nil. Errors of collect come before those of the paging arguments.
func (s *Server) listPage(maxResults *int32, nextToken *string, collect func(tx store.Tx) ([]string, error)) ([]string, *string, error) {
	var items []string
	err := s.opts.Store.View(func(tx store.Tx) error {
		var err error
		items, err = collect(tx)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	page, next, err := paginate(items, maxResults, nextToken, maxListResults)
	if err != nil {
		return nil, nil, err
	}
	return nonNil(page), next, nil
}

// clusterName resolves a cluster name or ARN (nil or empty: "default").
func (s *Server) clusterName(ref *string) (string, error) {
	if ref == nil || *ref == "" {
		return "default", nil
	}
	name, ok := s.arns.ClusterName(*ref)
	if !ok {
		return "", clusterNotFound()
	}
	return name, nil
}

// activeCluster loads an ACTIVE cluster or fails with ClusterNotFoundException.
func activeCluster(tx store.Tx, name string) (*records.Cluster, error) {
	rec, ok, err := records.Get[records.Cluster](tx, records.Clusters, name)
	if err != nil {
		return nil, err
	}
	if !ok || aws.ToString(rec.Cluster.Status) != "ACTIVE" {
		return nil, clusterNotFound()
	}
	return rec, nil
}

// paginate pages a list in a stable order; nextToken is the opaque offset of
// the next item.
func paginate(items []string, maxResults *int32, nextToken *string, limit int32) ([]string, *string, error) {
	n := limit
	if maxResults != nil {
		if *maxResults < 1 || *maxResults > limit {
			return nil, nil, invalidParam("maxResults must be between 1 and %d.", limit)
		}
		n = *maxResults
	}
	start := 0
	if nextToken != nil && *nextToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(*nextToken)
		if err != nil {
			return nil, nil, invalidParam("Invalid nextToken.")
		}
		off, err := strconv.Atoi(strings.TrimPrefix(string(raw), "offset:"))
		if err != nil || off < 0 || !strings.HasPrefix(string(raw), "offset:") {
			return nil, nil, invalidParam("Invalid nextToken.")
		}
		start = min(off, len(items))
	}
	end := start + int(n)
	if end >= len(items) {
		return items[start:], nil, nil
	}
	tok := base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(end)))
	return items[start:end], &tok, nil
}
