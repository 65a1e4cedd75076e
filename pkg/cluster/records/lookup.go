package records

import (
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
	var latest *TaskDefinition
	err = Each(tx, TaskDefinitions, family+":", func(r *TaskDefinition) error {
		if r.TaskDefinition.Status == types.TaskDefinitionStatusActive {
			latest = r
		}
		return nil
	})
	return latest, latest != nil, err
}
