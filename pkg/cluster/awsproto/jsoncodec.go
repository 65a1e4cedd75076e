package awsproto

import (
	"context"
	"fmt"
	"io"

	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
)

// EncodeJSON11 encodes one of an AWS SDK's operation output structs as the
// AWS JSON 1.1 response body with the SDK's own schema-driven serializer,
// so that member names, omitted members and timestamps are the SDK's.
// service is the SDK's service schema (schemas.AmazonSSM, ...); op any of
// its operation schemas (the protocol only needs one to serialize; the
// output names its own shape). ctx is only handed to the serializer.
func EncodeJSON11(ctx context.Context, service *smithy.ServiceSchema, op *smithy.OperationSchema, out smithy.Serializable) ([]byte, error) {
	req := smithyhttp.NewStackRequest().(*smithyhttp.Request)
	if err := awsjson.New11(service).SerializeRequest(ctx, op, out, req); err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	built := req.Build(ctx)
	if built.Body == nil {
		return []byte("{}"), nil
	}
	defer built.Body.Close()
	b, err := io.ReadAll(built.Body)
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	return b, nil
}
