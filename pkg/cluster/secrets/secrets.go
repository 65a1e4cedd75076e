// Package secrets is the cluster endpoint's store of secrets, served as two
// AWS APIs on POST /: an SSM Parameter Store subset (AWS JSON 1.1, target
// prefix AmazonSSM., SigV4 service ssm; ssm.go) and a Secrets Manager
// subset (AWS JSON 1.1, target prefix secretsmanager., SigV4 service
// secretsmanager; secretsmanager.go), so that `aws ssm`, `aws
// secretsmanager`, the SDKs, Terraform and an agent fetching a task's
// `secrets` work against the endpoint unchanged.
//
// Every value (String and StringList parameters too) is sealed before it
// is stored: AES-256-GCM under the endpoint's master key (the one that
// seals the access keys, shared by etcd replicas through "cluster-keys"),
// a fresh nonce per value and the record's identity (parameter name and
// version, secret ARN and version id) as additional data, so that a
// sealed value cannot be moved to another record. Values are never logged
// and appear in no response but GetParameter(s)/GetParametersByPath with
// WithDecryption (SecureString; String values are plain in AWS too),
// GetParameterHistory with WithDecryption and GetSecretValue.
//
// Access: admin keys may call everything. The credentials of an IAM role
// declared in cluster.toml (auth.RoleIAM: a task's role or execution role)
// may read what the role's `secrets` grants allow (GetParameter,
// GetParameters, GetParametersByPath, GetSecretValue, DescribeSecret); any
// other caller or operation is refused with AccessDeniedException naming
// the ARN. Agent and lb keys may call nothing here.
//
// Requests decode into the AWS SDK's input structs and results are the
// SDK's output structs encoded with its own serializer. Each operation is
// one store transaction, so a request that fails changes nothing.
// pkg/cluster imports it (layout rule: nothing else does); it imports
// awsproto, auth and store.
package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The APIs' SigV4 services and target prefixes.
const (
	SSMService                 = "ssm"
	SSMTargetPrefix            = "AmazonSSM."
	SecretsManagerService      = "secretsmanager"
	SecretsManagerTargetPrefix = "secretsmanager."
)

// The buckets of the records, in the endpoint's store.
const (
	ParametersBucket store.Bucket = "ssm-parameters"
	SecretsBucket    store.Bucket = "secrets"
)

// Buckets lists the package's buckets, for the store to create.
func Buckets() []store.Bucket { return []store.Bucket{ParametersBucket, SecretsBucket} }

// Sealer seals values under the endpoint's master key; *auth.Keyring
// implements it.
type Sealer interface {
	SealValue(aad string, plain []byte) ([]byte, error)
	OpenValue(aad string, sealed []byte) ([]byte, error)
}

var _ Sealer = (*auth.Keyring)(nil)

// Grants decides what a declared role's credentials may read;
// *roles.Broker implements it.
type Grants interface {
	SecretsAllowed(roleArn, resourceArn string) bool
}

// Options configure a Server.
type Options struct {
	Store  store.Store
	Sealer Sealer
	// Grants, when nil, lets no role read anything.
	Grants    Grants
	Region    string
	AccountID string
	// Now is the clock (versions' dates, recovery windows); nil means
	// time.Now.
	Now func() time.Time
}

// Server serves both APIs over one store.
type Server struct {
	o Options
}

// New returns a Server; Store, Sealer, Region and AccountID are required.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Sealer == nil || o.Region == "" || o.AccountID == "" {
		return nil, errors.New("secrets: Store, Sealer, Region and AccountID are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Server{o: o}, nil
}

// SSMAPI is the SSM Parameter Store API for the AWS protocol router.
func (s *Server) SSMAPI() awsproto.API {
	return awsproto.API{Name: "SSM", Service: SSMService, Protocol: awsproto.JSON11, TargetPrefix: SSMTargetPrefix,
		InternalError: "InternalServerError", Handler: ssmAPI{s}}
}

// SecretsManagerAPI is the Secrets Manager API for the AWS protocol router.
func (s *Server) SecretsManagerAPI() awsproto.API {
	return awsproto.API{Name: "SecretsManager", Service: SecretsManagerService, Protocol: awsproto.JSON11,
		TargetPrefix: SecretsManagerTargetPrefix, InternalError: "InternalServiceError", Handler: smAPI{s}}
}

// accessDenied is AWS's refusal of an identity without the permission.
func accessDenied(k auth.Key, action, resourceArn string) error {
	who := k.RoleArn
	if who == "" {
		who = fmt.Sprintf("access key %s (%s)", k.AccessKeyID, k.Role)
	}
	return awsproto.ClientError(auth.AccessDenied, "User: %s is not authorized to perform: %s on resource: %s", who, action, resourceArn)
}

// mayRead checks that k may call the reading action on resourceArn: an
// admin key, or a role whose grants allow the ARN.
func (s *Server) mayRead(k auth.Key, action, resourceArn string) error {
	switch {
	case k.Role == auth.RoleAdmin:
		return nil
	case k.Role == auth.RoleIAM && s.o.Grants != nil && s.o.Grants.SecretsAllowed(k.RoleArn, resourceArn):
		return nil
	}
	return accessDenied(k, action, resourceArn)
}

// mayWrite checks that k may call a writing (or listing) action: admin keys
// only.
func mayWrite(k auth.Key, action, resourceArn string) error {
	if k.Role == auth.RoleAdmin {
		return nil
	}
	return accessDenied(k, action, resourceArn)
}

// decodeInput decodes a JSON 1.1 body into one of the SDK's input structs.
// A member the input shape does not have is refused by name
// (SerializationException), never ignored.
func decodeInput(body []byte, in any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(in); err != nil {
		return awsproto.ClientError("SerializationException", "%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return awsproto.ClientError("SerializationException", "trailing data after the JSON object")
	}
	return nil
}

// pageToken and fromToken make the opaque NextToken of a listing: the key
// of the next record.
func pageToken(key string) *string {
	t := base64.RawURLEncoding.EncodeToString([]byte(key))
	return &t
}

func fromToken(token *string, errType string) (string, error) {
	if token == nil || *token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(*token)
	if err != nil {
		return "", awsproto.ClientError(errType, "The NextToken %q is not valid.", *token)
	}
	return string(b), nil
}

// maxResults checks a MaxResults member against [1, limit]; nil means def.
func maxResults(v *int32, limit, def int, errType string) (int, error) {
	if v == nil {
		return def, nil
	}
	if *v < 1 || int(*v) > limit {
		return 0, awsproto.ClientError(errType, "1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and %d", *v, limit)
	}
	return int(*v), nil
}

// errNotFound is the store's not-found, for errors.Is.
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
