package api

import (
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The Describe and List operations share how they find records and how they
// answer for what they could not find; these helpers keep ECS's reasons and
// pagination in one place.

// maxListResults is the page size of every List operation, and the largest
// maxResults ECS accepts.
const maxListResults = 100

// getRecord reads the record stored under key; ok is false when there is none.
func getRecord[T any](tx store.Tx, b store.Bucket, key string) (rec *T, ok bool, err error) {
	rec = new(T)
	if err := tx.Get(b, key, rec); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return rec, true, nil
}

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

// eachRecord decodes, in key order, every record of b whose key starts with
// prefix and passes it to fn; each call gets a record of its own.
func eachRecord[T any](tx store.Tx, b store.Bucket, prefix string, fn func(rec *T) error) error {
	return tx.ForEach(b, prefix, func(_ string, raw []byte) error {
		rec := new(T)
		if err := decode(raw, rec); err != nil {
			return err
		}
		return fn(rec)
	})
}
