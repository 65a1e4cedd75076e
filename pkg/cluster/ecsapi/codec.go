package ecsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/schemas"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/awsproto"
)

// TargetPrefix is the X-Amz-Target prefix of the ECS JSON 1.1 API.
const TargetPrefix = "AmazonEC2ContainerServiceV20141113."

// The ECS API shapes are those of github.com/aws/aws-sdk-go-v2/service/ecs
// and its types package: the endpoint decodes requests into the SDK's *Input
// structs and encodes the SDK's *Output structs with the SDK's own schemas,
// so member names, omitted members and timestamp encoding are exactly the
// ones the SDK (and so the ECS API) uses.

// errSerialization marks a request body that is not valid JSON for the
// operation's input shape; the endpoint answers it with SerializationException.
var errSerialization = errors.New("invalid ECS request body")

// decodeInput decodes an ECS JSON 1.1 request body into in, a pointer to
// one of the SDK's operation input structs (for example
// *ecs.RunTaskInput). Member names match the SDK's Go field names without
// regard to case, which is how the ECS model names them. An empty body is an
// empty input. Errors wrap errSerialization.
func decodeInput(body []byte, in any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	if body[0] != '{' {
		return fmt.Errorf("%w: request body must be a JSON object", errSerialization)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(in); err != nil {
		return fmt.Errorf("%w: %v", errSerialization, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after the JSON object", errSerialization)
	}
	return nil
}

// EncodeOutput encodes one of the SDK's operation output structs (for
// example *ecs.RunTaskOutput) as the JSON 1.1 response body, using the SDK's
// own schema-driven serializer. ctx is only handed to the serializer.
func EncodeOutput(ctx context.Context, out smithy.Serializable) ([]byte, error) {
	// The protocol only needs a non-nil input schema to serialize; the
	// output's Serialize method names its own shape.
	op := smithy.NewOperationSchema(schemas.ListClusters, schemas.ListClustersResponse, schemas.ListClustersResponse)
	b, err := awsproto.EncodeOutput(ctx, &awsproto.Request{Protocol: awsproto.JSON11, Operation: "ECS"},
		awsproto.Codec{Service: schemas.AmazonEC2ContainerServiceV20141113, Operation: op}, out)
	if err != nil {
		return nil, err
	}
	if !needsZeroMembers(out) {
		return b, nil
	}
	return addZeroMembers(b)
}

// The SDK's serializer leaves out members whose value is 0 or false, but
// ECS sends the counters and flags below, and scripts read them (aws ecs
// describe-clusters --query 'clusters[0].runningTasksCount'). They are put
// back for the outputs that carry clusters, container instances and task
// definitions; other outputs (DescribeTasks, the hot path) are left as the
// SDK wrote them.
func zeroMemberDefaults() map[string]map[string]any {
	return map[string]map[string]any{
		"cluster":              {"registeredContainerInstancesCount": 0, "runningTasksCount": 0, "pendingTasksCount": 0, "activeServicesCount": 0},
		"clusters":             {"registeredContainerInstancesCount": 0, "runningTasksCount": 0, "pendingTasksCount": 0, "activeServicesCount": 0},
		"containerInstance":    {"runningTasksCount": 0, "pendingTasksCount": 0, "agentConnected": false},
		"containerInstances":   {"runningTasksCount": 0, "pendingTasksCount": 0, "agentConnected": false},
		"containerDefinitions": {"cpu": 0},
		// Services as DescribeServices returns them: a client that reads
		// back what it wrote sees false and 0 rather than nothing.
		"service":                  serviceZeros(),
		"services":                 serviceZeros(),
		"deployments":              {"desiredCount": 0, "pendingCount": 0, "runningCount": 0, "failedTasks": 0},
		"deploymentCircuitBreaker": {"enable": false, "rollback": false},
	}
}

func serviceZeros() map[string]any {
	return map[string]any{"desiredCount": 0, "runningCount": 0, "pendingCount": 0,
		"enableECSManagedTags": false, "enableExecuteCommand": false}
}

func needsZeroMembers(out smithy.Serializable) bool {
	switch out.(type) {
	case *ecs.CreateClusterOutput, *ecs.DeleteClusterOutput, *ecs.DescribeClustersOutput,
		*ecs.RegisterContainerInstanceOutput, *ecs.DeregisterContainerInstanceOutput,
		*ecs.DescribeContainerInstancesOutput, *ecs.UpdateContainerInstancesStateOutput,
		*ecs.RegisterTaskDefinitionOutput, *ecs.DeregisterTaskDefinitionOutput, *ecs.DescribeTaskDefinitionOutput,
		*ecs.CreateServiceOutput, *ecs.UpdateServiceOutput, *ecs.DeleteServiceOutput, *ecs.DescribeServicesOutput:
		return true
	}
	return false
}

// addZeroMembers re-encodes body with the zeroMembers defaults filled in.
func addZeroMembers(body []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // keep every number's text (epoch seconds with fractions)
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("encode ECS response: %w", err)
	}
	fillZeroMembers(doc, zeroMemberDefaults())
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode ECS response: %w", err)
	}
	return b, nil
}

func fillZeroMembers(v any, zeroMembers map[string]map[string]any) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if defaults, ok := zeroMembers[k]; ok {
				forEachObject(child, func(obj map[string]any) {
					for name, zero := range defaults {
						if _, set := obj[name]; !set {
							obj[name] = zero
						}
					}
				})
			}
			fillZeroMembers(child, zeroMembers)
		}
	case []any:
		for _, child := range v {
			fillZeroMembers(child, zeroMembers)
		}
	}
}

// forEachObject calls fn for v if it is an object, or for each object in v
// if it is a list.
func forEachObject(v any, fn func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		fn(v)
	case []any:
		for _, item := range v {
			if obj, ok := item.(map[string]any); ok {
				fn(obj)
			}
		}
	}
}
