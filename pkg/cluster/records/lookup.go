package records

import (
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// FindTaskDefinition resolves "family", "family:revision" or an ARN of
// this endpoint. A bare family means its latest ACTIVE revision; ok is false
// when the reference names no revision.
func FindTaskDefinition(tx store.Tx, arns ARNs, ref string) (rec *TaskDefinition, ok bool, err error) {
	family, rev, ok := arns.TaskDefinitionRef(ref)
	if !ok {
		return nil, false, nil
	}
	if rev > 0 {
		return Get[TaskDefinition](tx, TaskDefinitions, TaskDefinitionKey(family, rev))
	}
	// Revisions are zero-padded in the key: walk down from the newest and
	// stop at the first ACTIVE one, rather than decoding every revision.
	var latest *TaskDefinition
	err = tx.Scan(TaskDefinitions, store.Range{Prefix: family + ":", Reverse: true}, func(key string, raw []byte) error {
		r := new(TaskDefinition)
		if err := json.Unmarshal(raw, r); err != nil {
			return fmt.Errorf("decode %s/%s: %w", TaskDefinitions, key, err)
		}
		if r.TaskDefinition.Status != types.TaskDefinitionStatusActive {
			return nil
		}
		latest = r
		return store.ErrStopScan
	})
	return latest, latest != nil, err
}
