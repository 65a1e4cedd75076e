package records

import (
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
)

// TestFindTaskDefinitionLatestActive: a bare family resolves to its
// highest ACTIVE revision, past a newer INACTIVE one, across the 9 -> 10
// boundary (keys are zero-padded, so the walk from the newest down is in
// revision order); a family with no ACTIVE revision resolves to none, and
// "family" does not match the revisions of "family-b".
func TestFindTaskDefinitionLatestActive(t *testing.T) {
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "c.db"), boltstore.Options{Buckets: Buckets()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	put := func(family string, rev int32, status types.TaskDefinitionStatus) {
		t.Helper()
		err := db.Update(func(tx store.Tx) error {
			return tx.Put(TaskDefinitions, TaskDefinitionKey(family, rev), &TaskDefinition{TaskDefinition: types.TaskDefinition{
				Family: aws.String(family), Revision: rev, Status: status}})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for rev := int32(1); rev <= 11; rev++ {
		put("web", rev, types.TaskDefinitionStatusActive)
	}
	put("web", 12, types.TaskDefinitionStatusInactive)
	put("web-b", 13, types.TaskDefinitionStatusActive)
	put("gone", 1, types.TaskDefinitionStatusInactive)
	arns := ARNs{Region: "us-test-1", AccountID: "123456789012"}
	for ref, want := range map[string]int32{"web": 11, "web:12": 12, "web:3": 3, "web-b": 13, "gone": 0} {
		err := db.View(func(tx store.Tx) error {
			rec, ok, err := FindTaskDefinition(tx, arns, ref)
			switch {
			case err != nil:
				return err
			case want == 0 && ok:
				t.Errorf("%s resolved to revision %d, want none", ref, rec.TaskDefinition.Revision)
			case want != 0 && (!ok || rec.TaskDefinition.Revision != want):
				t.Errorf("%s resolved to %v (found %v), want revision %d", ref, rec, ok, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
