package records

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// TaskDefinitionKey is "<family>:<revision, 10 digits>", so that a family's
// revisions sort in order.
func TaskDefinitionKey(family string, rev int32) string { return fmt.Sprintf("%s:%010d", family, rev) }

// InstanceKey is "<cluster>/<id>".
func InstanceKey(cluster, id string) string { return cluster + "/" + id }

// TaskKey is "<cluster>/<32-hex id>".
func TaskKey(cluster, id string) string { return cluster + "/" + id }

// ServiceKey is "<cluster>/<name>".
func ServiceKey(cluster, name string) string { return cluster + "/" + name }

// ClusterPrefix is the key prefix of a cluster's instances, tasks and
// services.
func ClusterPrefix(cluster string) string { return cluster + "/" }

// Record is a record that knows where it is stored.
type Record interface {
	Bucket() store.Bucket
	Key() string
}

var (
	_ Record = (*Cluster)(nil)
	_ Record = (*Family)(nil)
	_ Record = (*TaskDefinition)(nil)
	_ Record = (*Instance)(nil)
	_ Record = (*Task)(nil)
	_ Record = (*Service)(nil)
)

// Bucket is Clusters.
func (*Cluster) Bucket() store.Bucket { return Clusters }

// Key is the cluster name.
func (r *Cluster) Key() string { return aws.ToString(r.Cluster.ClusterName) }

// Bucket is Families.
func (*Family) Bucket() store.Bucket { return Families }

// Key is the family name.
func (r *Family) Key() string { return r.Family }

// Bucket is TaskDefinitions.
func (*TaskDefinition) Bucket() store.Bucket { return TaskDefinitions }

// Key is TaskDefinitionKey of the definition's family and revision.
func (r *TaskDefinition) Key() string {
	return TaskDefinitionKey(aws.ToString(r.TaskDefinition.Family), r.TaskDefinition.Revision)
}

// Bucket is Instances.
func (*Instance) Bucket() store.Bucket { return Instances }

// Key is InstanceKey of the instance's cluster and id.
func (r *Instance) Key() string {
	return InstanceKey(r.Cluster, arn.ResourceID(aws.ToString(r.Instance.ContainerInstanceArn)))
}

// Bucket is Tasks.
func (*Task) Bucket() store.Bucket { return Tasks }

// Key is TaskKey of the task's cluster and id.
func (r *Task) Key() string { return TaskKey(r.Cluster, arn.ResourceID(aws.ToString(r.Task.TaskArn))) }

// Bucket is Services.
func (*Service) Bucket() store.Bucket { return Services }

// Key is ServiceKey of the service's cluster and name.
func (r *Service) Key() string { return ServiceKey(r.Cluster, aws.ToString(r.Service.ServiceName)) }

// Put stores rec under its key; a task's indexes follow it in the same
// transaction.
func Put(tx store.Tx, rec Record) error {
	if err := tx.Put(rec.Bucket(), rec.Key(), rec); err != nil {
		return err
	}
	if t, ok := rec.(*Task); ok {
		return indexTask(tx, t)
	}
	return nil
}

// Get reads the record of type T stored in b under key; ok is false when
// there is none.
func Get[T any](tx store.Tx, b store.Bucket, key string) (rec *T, ok bool, err error) {
	rec = new(T)
	if err := tx.Get(b, key, rec); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return rec, true, nil
}

// Each decodes, in key order, every record of b whose key starts with
// prefix and passes it to fn; each call gets a record of its own.
func Each[T any](tx store.Tx, b store.Bucket, prefix string, fn func(rec *T) error) error {
	return store.ForEach(tx, b, prefix, func(key string, raw []byte) error {
		rec := new(T)
		if err := json.Unmarshal(raw, rec); err != nil {
			return fmt.Errorf("decode %s/%s: %w", b, key, err)
		}
		return fn(rec)
	})
}
