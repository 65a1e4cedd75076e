package execrole

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/iam"
)

// Secrets is the engine's SecretSource: it fetches a task's secrets
// as the ECS agent does, signed with the task's execution role
// credentials, from SSM Parameter Store (GetParameters with decryption, up
// to 10 names a call) and Secrets Manager (GetSecretValue, with the
// json-key, version-stage and version-id suffixes of valueFrom). The
// service is SecretsOptions.Endpoint (the agent passes its cluster
// endpoint), or AWS's own endpoints. Errors name the secret and never carry
// a value; nothing here logs.
type Secrets struct {
	// store holds the execution role credentials the payloads brought;
	// nil when task roles are off (they then never reach the agent).
	store    *iam.Store
	region   string
	endpoint string // "" means AWS's endpoints
	http     aws.HTTPClient
}

// SecretsOptions configure Secrets.
type SecretsOptions struct {
	// Roles holds the tasks' execution role credentials; nil when task
	// roles are off, and every fetch then fails naming the setting.
	Roles *iam.Store
	// Region is the agent's, for secrets whose reference names none.
	Region string
	// Endpoint is the SSM and Secrets Manager endpoint; "" means AWS's.
	Endpoint string
	// HTTPClient makes the calls; nil means one with a 30 s timeout.
	HTTPClient aws.HTTPClient
}

// secretsTimeout bounds one call to SSM or Secrets Manager.
const secretsTimeout = 30 * time.Second

// NewSecrets returns the secret source of the tasks whose execution role
// credentials o.Roles holds.
func NewSecrets(o SecretsOptions) *Secrets {
	s := &Secrets{store: o.Roles, region: o.Region, endpoint: o.Endpoint, http: o.HTTPClient}
	if s.http == nil {
		s.http = awshttp.NewBuildableClient().WithTimeout(secretsTimeout)
	}
	return s
}

// Fetch implements the engine's SecretSource.
func (s *Secrets) Fetch(ctx context.Context, taskARN string, refs []container.SecretRef) ([]string, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	if s.store == nil {
		return nil, fmt.Errorf("secret %s: the task's execution role credentials do not reach this agent with ECS_ENABLE_TASK_IAM_ROLE=false", refs[0].Name)
	}
	c, ok := s.store.TaskCredentials(taskARN, api.RoleTypeTaskExecution)
	if !ok {
		return nil, fmt.Errorf("secret %s: the task has no execution role credentials (executionRoleArn)", refs[0].Name)
	}
	creds := credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
	out := make([]string, len(refs))
	ssmByRegion := map[string][]int{}
	for i, ref := range refs {
		region := s.refRegion(ref)
		if !isSecretsManager(ref.ValueFrom) {
			ssmByRegion[region] = append(ssmByRegion[region], i)
			continue
		}
		v, err := s.secretValue(ctx, creds, region, ref)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	for region, idx := range ssmByRegion {
		if err := s.parameters(ctx, creds, region, refs, idx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func isSecretsManager(valueFrom string) bool {
	a, err := arn.Parse(valueFrom)
	return err == nil && a.Service == "secretsmanager"
}

// refRegion is the region of a secret: the payload's, else its ARN's,
// else the agent's.
func (s *Secrets) refRegion(ref container.SecretRef) string {
	if ref.Region != "" {
		return ref.Region
	}
	if a, err := arn.Parse(ref.ValueFrom); err == nil && a.Region != "" {
		return a.Region
	}
	return s.region
}

// parameterName is the SSM name a valueFrom names: the name itself, or
// the resource after "parameter" of an ARN (parameter/app/db → /app/db).
func parameterName(valueFrom string) string {
	a, err := arn.Parse(valueFrom)
	if err != nil {
		return valueFrom
	}
	return strings.TrimPrefix(a.Resource, "parameter")
}

// parameters fetches the SSM parameters refs[idx] name, 10 a call, into
// out.
func (s *Secrets) parameters(ctx context.Context, creds aws.CredentialsProvider, region string, refs []container.SecretRef, idx []int, out []string) error {
	client := ssm.New(ssm.Options{Region: region, Credentials: creds, HTTPClient: s.http, BaseEndpoint: s.base()})
	for start := 0; start < len(idx); start += 10 {
		batch := idx[start:min(start+10, len(idx))]
		var names []string
		for _, i := range batch {
			names = append(names, parameterName(refs[i].ValueFrom))
		}
		res, err := client.GetParameters(ctx, &ssm.GetParametersInput{Names: names, WithDecryption: aws.Bool(true)})
		if err != nil {
			return fmt.Errorf("secret %s: unable to retrieve secrets from ssm: %w", refs[batch[0]].Name, serviceError(err))
		}
		got := map[string]string{}
		for _, p := range res.Parameters {
			got[aws.ToString(p.Name)+aws.ToString(p.Selector)] = aws.ToString(p.Value)
			if p.ARN != nil {
				got[aws.ToString(p.ARN)+aws.ToString(p.Selector)] = aws.ToString(p.Value)
			}
		}
		for j, i := range batch {
			v, ok := got[names[j]]
			if !ok {
				return fmt.Errorf("secret %s: unable to retrieve secrets from ssm: parameter %s: not found or not allowed (InvalidParameters)", refs[i].Name, refs[i].ValueFrom)
			}
			out[i] = v
		}
	}
	return nil
}

func (s *Secrets) base() *string {
	if s.endpoint == "" {
		return nil
	}
	return aws.String(s.endpoint)
}

// secretValue fetches one Secrets Manager secret. valueFrom is the
// secret's ARN, or the ARN followed by :json-key:version-stage:version-id
// (each possibly empty), as ECS takes it.
func (s *Secrets) secretValue(ctx context.Context, creds aws.CredentialsProvider, region string, ref container.SecretRef) (string, error) {
	a, err := arn.Parse(ref.ValueFrom)
	if err != nil {
		return "", fmt.Errorf("secret %s: valueFrom %s: %w", ref.Name, ref.ValueFrom, err)
	}
	// The resource is secret:<name>, possibly followed by the suffixes.
	parts := strings.Split(a.Resource, ":")
	var jsonKey, stage, versionID string
	switch len(parts) {
	case 2:
	case 5:
		jsonKey, stage, versionID = parts[2], parts[3], parts[4]
	default:
		return "", fmt.Errorf("secret %s: valueFrom %s is neither a Secrets Manager secret's ARN nor one followed by :json-key:version-stage:version-id", ref.Name, ref.ValueFrom)
	}
	a.Resource = strings.Join(parts[:2], ":")
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(a.String())}
	if stage != "" {
		in.VersionStage = aws.String(stage)
	}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	client := secretsmanager.New(secretsmanager.Options{Region: region, Credentials: creds, HTTPClient: s.http, BaseEndpoint: s.base()})
	res, err := client.GetSecretValue(ctx, in)
	if err != nil {
		return "", fmt.Errorf("secret %s: unable to retrieve secret from asm: %s: %w", ref.Name, aws.ToString(in.SecretId), serviceError(err))
	}
	if res.SecretString == nil {
		return "", fmt.Errorf("secret %s: %s holds a binary value (SecretBinary), which cannot become an environment variable or log option", ref.Name, aws.ToString(in.SecretId))
	}
	if jsonKey == "" {
		return *res.SecretString, nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(*res.SecretString), &obj) != nil {
		return "", fmt.Errorf("secret %s: json key %s: the value of %s is not a JSON object", ref.Name, jsonKey, aws.ToString(in.SecretId))
	}
	raw, ok := obj[jsonKey]
	if !ok {
		return "", fmt.Errorf("secret %s: json key %s is not in the value of %s", ref.Name, jsonKey, aws.ToString(in.SecretId))
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return str, nil
	}
	return string(raw), nil // a number, boolean, object or list as its JSON text
}

// serviceError is the service's error as ECS's reasons quote it (code:
// message), without the SDK's operation and request-id wrapping; other
// errors (the endpoint cannot be reached) as they are.
func serviceError(err error) error {
	var ae interface {
		ErrorCode() string
		ErrorMessage() string
	}
	if errors.As(err, &ae) {
		return errors.New(ae.ErrorCode() + ": " + ae.ErrorMessage())
	}
	return err
}
