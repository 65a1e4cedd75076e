package autoscaling

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/schemas"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// codec is what answers are encoded with.
var codec = awsproto.Codec{Service: schemas.AnyScaleFrontendService,
	Operation: smithy.NewOperationSchema(schemas.DescribeScalableTargets, schemas.DescribeScalableTargetsRequest, schemas.DescribeScalableTargetsResponse)}

// The buckets of Application Auto Scaling. Keys start with the target's
// resource id ("service/<cluster>/<service>"), then "#".
const (
	// TargetsBucket holds a Target under its resource id.
	TargetsBucket store.Bucket = "as-targets"
	// PoliciesBucket holds a Policy under "<resource>#<policy name>".
	PoliciesBucket store.Bucket = "as-policies"
	// ScheduledBucket holds a Scheduled under "<resource>#<action name>".
	ScheduledBucket store.Bucket = "as-scheduled"
	// ActivitiesBucket holds an activity under "<resource>#<unix ns>".
	ActivitiesBucket store.Bucket = "as-activities"
)

// Buckets lists the buckets of Application Auto Scaling.
func Buckets() []store.Bucket {
	return []store.Bucket{TargetsBucket, PoliciesBucket, ScheduledBucket, ActivitiesBucket}
}

// Limits, as AWS's.
const (
	maxPoliciesPerTarget  = 50
	maxScheduledPerTarget = 200
	// maxActivities is how many activities a target keeps (AWS keeps six
	// weeks; a count keeps the store bounded).
	maxActivities = 100
)

// Target is stored in TargetsBucket: the SDK's ScalableTarget and what the
// scaler must remember across restarts.
type Target struct {
	Target types.ScalableTarget
	Tags   map[string]string `json:",omitempty"`
	// LastScaleOut and LastScaleIn are when the target last scaled (unix
	// seconds), for the cooldowns; by policy name.
	LastScaleOut map[string]int64 `json:",omitempty"`
	LastScaleIn  map[string]int64 `json:",omitempty"`
	// Handled is, by "<policy>/<alarm>", the last alarm evaluation minute
	// (unix seconds) acted on: an evaluation is acted on once.
	Handled map[string]int64 `json:",omitempty"`
}

// Policy is stored in PoliciesBucket: the SDK's ScalingPolicy (with the
// alarms a target tracking policy owns).
type Policy struct {
	Policy types.ScalingPolicy
}

// Scheduled is stored in ScheduledBucket: the SDK's ScheduledAction and
// when it last ran (unix seconds, 0: never).
type Scheduled struct {
	Action  types.ScheduledAction
	LastRun int64 `json:",omitempty"`
}

func childKey(resource, name string) string { return resource + "#" + name }

// serviceOf parses "service/<cluster>/<service>".
func serviceOf(resource string) (cluster, service string, ok bool) {
	rest, ok := strings.CutPrefix(resource, "service/")
	if !ok {
		return "", "", false
	}
	cluster, service, ok = strings.Cut(rest, "/")
	if !ok || cluster == "" || service == "" || strings.Contains(service, "/") {
		return "", "", false
	}
	return cluster, service, true
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// policyARN is AWS's policy ARN, which alarms name as their action.
func (s *Server) policyARN(id, resource, name string) string {
	return fmt.Sprintf("arn:aws:autoscaling:%s:%s:scalingPolicy:%s:resource/ecs/%s:policyName/%s", s.o.Region, s.o.AccountID, id, resource, name)
}

// policyOfARN returns the resource and policy name an ARN names.
func policyOfARN(arn string) (resource, name string, ok bool) {
	_, rest, ok := strings.Cut(arn, ":resource/ecs/")
	if !ok {
		return "", "", false
	}
	resource, name, ok = strings.Cut(rest, ":policyName/")
	return resource, name, ok && resource != "" && name != ""
}

func (s *Server) targetARN(id string) string {
	return fmt.Sprintf("arn:aws:application-autoscaling:%s:%s:scalable-target/%s", s.o.Region, s.o.AccountID, id)
}

func (s *Server) scheduledARN(id, resource, name string) string {
	return fmt.Sprintf("arn:aws:autoscaling:%s:%s:scheduledAction:%s:resource/ecs/%s:scheduledActionName/%s", s.o.Region, s.o.AccountID, id, resource, name)
}

// getTarget reads a target; false when it is not registered.
func getTarget(tx store.Tx, resource string) (*Target, bool, error) {
	var t Target
	err := tx.Get(TargetsBucket, resource, &t)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read scalable target %s: %w", resource, err)
	}
	return &t, true, nil
}

// mustTarget reads a registered target or answers ObjectNotFound.
func mustTarget(tx store.Tx, resource string) (*Target, error) {
	t, ok, err := getTarget(tx, resource)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound("No scalable target registered for service namespace: ecs, resource ID: %s, scalable dimension: ecs:service:DesiredCount", resource)
	}
	return t, nil
}

// children returns the records of b under a target, decoded by fn.
func children(tx store.Tx, b store.Bucket, resource string, fn func(key string, raw []byte) error) error {
	return store.ForEach(tx, b, resource+"#", fn)
}

// addActivity writes an activity of the target and drops the oldest
// beyond maxActivities.
func addActivity(tx store.Tx, act types.ScalingActivity) error {
	resource := aws.ToString(act.ResourceId)
	var keys []string
	if err := children(tx, ActivitiesBucket, resource, func(k string, _ []byte) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		return fmt.Errorf("read scaling activities: %w", err)
	}
	for len(keys) >= maxActivities {
		if err := tx.Delete(ActivitiesBucket, keys[0]); err != nil {
			return err
		}
		keys = keys[1:]
	}
	// Two activities of one instant (a scheduled action and the change
	// of desired count it causes) get consecutive keys.
	ns := aws.ToTime(act.StartTime).UnixNano()
	if n := len(keys); n > 0 {
		_, last, _ := strings.Cut(keys[n-1], "#")
		if prev, err := strconv.ParseInt(last, 10, 64); err == nil && prev >= ns {
			ns = prev + 1
		}
	}
	key := childKey(resource, fmt.Sprintf("%020d", ns))
	if err := tx.Put(ActivitiesBucket, key, &act); err != nil {
		return fmt.Errorf("write scaling activity: %w", err)
	}
	return nil
}

// activity is a successful change of a target, in AWS's words.
func activity(resource, description, cause, message string, at time.Time) types.ScalingActivity {
	return types.ScalingActivity{ActivityId: aws.String(newID()), ResourceId: aws.String(resource),
		ScalableDimension: types.ScalableDimensionECSServiceDesiredCount, ServiceNamespace: types.ServiceNamespaceEcs,
		Description: aws.String(description), Cause: aws.String(cause), StartTime: aws.Time(at), EndTime: aws.Time(at),
		StatusCode: types.ScalingActivityStatusCodeSuccessful, StatusMessage: aws.String(message)}
}

// loadService reads the ECS service a resource id names.
func loadService(tx store.Tx, resource string) (*records.Service, bool, error) {
	cluster, service, _ := serviceOf(resource)
	return records.Get[records.Service](tx, records.Services, records.ServiceKey(cluster, service))
}

// setDesired changes the service's desired count as UpdateService does,
// in the caller's transaction.
func setDesired(tx store.Tx, svc *records.Service, n int32) error {
	svc.SetDesiredCount(n)
	return records.Put(tx, svc)
}

// clampToTarget moves the service's desired count into the target's
// range, recording the activity; it reports whether it changed.
func clampToTarget(tx store.Tx, t *Target, cause string, at time.Time) (bool, error) {
	resource := aws.ToString(t.Target.ResourceId)
	svc, ok, err := loadService(tx, resource)
	if err != nil || !ok {
		return false, err
	}
	cur := svc.Service.DesiredCount
	next := min(max(cur, aws.ToInt32(t.Target.MinCapacity)), aws.ToInt32(t.Target.MaxCapacity))
	if next == cur {
		return false, nil
	}
	if err := setDesired(tx, svc, next); err != nil {
		return false, err
	}
	return true, addActivity(tx, activity(resource, fmt.Sprintf("Setting desired count to %d.", next), cause,
		fmt.Sprintf("Successfully set desired count to %d. Change successfully fulfilled by ecs.", next), at))
}

func decode[T any](raw []byte) (*T, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return &v, nil
}
