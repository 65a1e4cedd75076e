// Package roles is the endpoint side of task IAM roles: the roles declared
// in cluster.toml, credentials issued per task at placement (static key
// pairs for labs, or STS AssumeRole with the endpoint's own credentials),
// validation of taskRoleArn/executionRoleArn, and a Refresher that sends
// IAMRoleCredentialsMessage frames before the credentials expire until the
// agent acknowledges them.
//
// pkg/cluster builds the Broker from the declared roles and wires it to the
// ECS API (role validation) and the ACS session server (credentials in
// payloads, refreshes); pkg/cluster/config and dev mode import it for
// RoleConfig and DevRole. It imports no agent package except pkg/api.
package roles

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/berth-dev/berth/pkg/api"
)

// Role sources.
const (
	SourceStatic     = "static"
	SourceAssumeRole = "assume-role"
)

// Defaults.
const (
	// DefaultDuration is how long issued credentials last (STS's default).
	DefaultDuration = time.Hour
	// DefaultRegion signs STS requests when a role names no region.
	DefaultRegion = "us-east-1"
)

// RoleConfig is one [[roles]] entry of cluster.toml:
//
//	[[roles]]
//	arn = "arn:aws:iam::123456789012:role/app"
//	source = "static"                 # or "assume-role"
//	access_key_id = "AKIA..."         # static only
//	secret_access_key = "..."         # static only
//	session_token = ""                # static, optional
//	sts_endpoint = "https://sts.us-east-1.amazonaws.com"  # assume-role, optional
//	region = "us-east-1"              # assume-role, optional
//	duration = "1h"                   # lifetime of issued credentials
//	external_id = ""                  # assume-role, optional
//	session_name = ""                 # assume-role, optional (default berth-<task id>)
//	secrets = ["arn:aws:ssm:us-east-1:123456789012:parameter/app/*"]  # optional (grants.go)
type RoleConfig struct {
	Arn             string `toml:"arn"`
	Source          string `toml:"source"`
	AccessKeyID     string `toml:"access_key_id"`
	SecretAccessKey string `toml:"secret_access_key"`
	SessionToken    string `toml:"session_token"`
	STSEndpoint     string `toml:"sts_endpoint"`
	Region          string `toml:"region"`
	// Duration is a Go duration ("1h", "15m"); empty means DefaultDuration.
	Duration    string `toml:"duration"`
	ExternalID  string `toml:"external_id"`
	SessionName string `toml:"session_name"`
	// Secrets are the SSM parameter and Secrets Manager secret ARN
	// patterns the role's credentials may read from the endpoint
	// (grants.go); none means none.
	Secrets []string `toml:"secrets"`
}

// Options configure an Issuer.
type Options struct {
	Roles []RoleConfig
	// BaseCredentials sign AssumeRole calls: the endpoint's own
	// credentials. Required when a role uses assume-role.
	BaseCredentials aws.CredentialsProvider
	// HTTPClient carries STS calls; nil means the SDK's default. (With
	// AWS_CA_BUNDLE set the SDK wants an awshttp.BuildableClient.)
	HTTPClient sts.HTTPClient
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Region and AccountID, when set, are those secrets grants must name
	// (or `*`).
	Region, AccountID string
}

// role is a validated RoleConfig.
type role struct {
	cfg      RoleConfig
	duration time.Duration
	sts      *sts.Client
}

// Issuer issues credentials for declared roles.
type Issuer struct {
	roles map[string]*role
	now   func() time.Time
}

// InvalidParameterError is a task definition naming a role that is not
// declared; the ECS API answers it as InvalidParameterException with
// Error() as the message.
type InvalidParameterError struct{ Message string }

// Error returns the message the API answers with.
func (e *InvalidParameterError) Error() string { return e.Message }

// ErrUnknownRole is wrapped by Issue for a role that is not declared.
var ErrUnknownRole = errors.New("role not declared")

// Problem is one thing wrong with a role declaration: roles[Index].Field.
type Problem struct {
	Index   int
	Field   string
	Message string
}

// DeclarationError lists every problem of the declared roles; config turns
// each into a file:line error.
type DeclarationError struct{ Problems []Problem }

// Error returns "roles: roles[i].field: message; ...".
func (e *DeclarationError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = fmt.Sprintf("roles[%d].%s: %s", p.Index, p.Field, p.Message)
	}
	return "roles: " + strings.Join(msgs, "; ")
}

// New validates the roles and returns an Issuer. Every problem is reported
// in a *DeclarationError.
func New(opts Options) (*Issuer, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	is := &Issuer{roles: make(map[string]*role), now: opts.Now}
	var problems []Problem
	bad := func(i int, field, format string, args ...any) {
		problems = append(problems, Problem{Index: i, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	for i, rc := range opts.Roles {
		if !validRoleArn(rc.Arn) {
			bad(i, "arn", "%q is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)", rc.Arn)
			continue
		}
		if _, dup := is.roles[rc.Arn]; dup {
			bad(i, "arn", "role %s declared twice", rc.Arn)
			continue
		}
		r := &role{cfg: rc, duration: DefaultDuration}
		if rc.Duration != "" {
			d, err := time.ParseDuration(rc.Duration)
			if err != nil || d < time.Minute || d > 12*time.Hour {
				bad(i, "duration", "%q must be between 1m and 12h", rc.Duration)
				continue
			}
			r.duration = d
		}
		granted := len(problems)
		for _, g := range rc.Secrets {
			if msg := GrantProblem(g, opts.Region, opts.AccountID); msg != "" {
				bad(i, "secrets", "%s", msg)
			}
		}
		if len(problems) > granted {
			continue
		}
		switch rc.Source {
		case SourceStatic:
			if rc.AccessKeyID == "" || rc.SecretAccessKey == "" {
				bad(i, "access_key_id", "static role %s needs access_key_id and secret_access_key", rc.Arn)
				continue
			}
		case SourceAssumeRole:
			if opts.BaseCredentials == nil {
				bad(i, "source", "assume-role role %s needs the endpoint's own AWS credentials", rc.Arn)
				continue
			}
			region := rc.Region
			if region == "" {
				region = DefaultRegion
			}
			so := sts.Options{Region: region, Credentials: opts.BaseCredentials, HTTPClient: opts.HTTPClient}
			if rc.STSEndpoint != "" {
				so.BaseEndpoint = aws.String(rc.STSEndpoint)
			}
			r.sts = sts.New(so)
		default:
			bad(i, "source", "source %q of %s must be %q or %q", rc.Source, rc.Arn, SourceStatic, SourceAssumeRole)
			continue
		}
		is.roles[rc.Arn] = r
	}
	problems = append(problems, sharedKeyProblems(opts.Roles)...)
	if len(problems) > 0 {
		return nil, &DeclarationError{Problems: problems}
	}
	return is, nil
}

// sharedKeyProblems reports static roles that share a key pair when one of
// them has secret grants: a request signed with that key could not be
// told to come from one role rather than the other.
func sharedKeyProblems(rs []RoleConfig) []Problem {
	var problems []Problem
	first := map[string]int{}
	for i, rc := range rs {
		if rc.Source != SourceStatic || rc.AccessKeyID == "" {
			continue
		}
		j, seen := first[rc.AccessKeyID]
		if !seen {
			first[rc.AccessKeyID] = i
			continue
		}
		if len(rc.Secrets) > 0 || len(rs[j].Secrets) > 0 {
			problems = append(problems, Problem{Index: i, Field: "access_key_id", Message: fmt.Sprintf(
				"the key pair of %s is also that of roles[%d] (%s): roles with secrets grants need their own key pair", rc.Arn, j, rs[j].Arn)})
		}
	}
	return problems
}

func validRoleArn(arn string) bool {
	parts := strings.SplitN(arn, ":", 6)
	return len(parts) == 6 && parts[0] == "arn" && parts[2] == "iam" && parts[4] != "" &&
		strings.HasPrefix(parts[5], "role/") && len(parts[5]) > len("role/")
}

// Declared reports whether arn is a declared role.
func (is *Issuer) Declared(arn string) bool {
	_, ok := is.roles[arn]
	return ok
}

// ValidateTaskDefinition checks that taskRoleArn and executionRoleArn
// (either may be empty) name declared roles. The error is an
// *InvalidParameterError.
func (is *Issuer) ValidateTaskDefinition(taskRoleArn, executionRoleArn string) error {
	for _, f := range []struct{ name, arn string }{{"taskRoleArn", taskRoleArn}, {"executionRoleArn", executionRoleArn}} {
		if f.arn == "" || is.Declared(f.arn) {
			continue
		}
		return &InvalidParameterError{Message: fmt.Sprintf(
			"%s %s is not a role declared on this cluster endpoint (cluster.toml [[roles]]).", f.name, f.arn)}
	}
	return nil
}

// NewCredentialsID returns a fresh credentials id (a random version 4
// UUID). One is made per task and role at placement and kept across
// refreshes, because containers hold it in their environment.
func NewCredentialsID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate credentials id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// Request asks for credentials for one task's role.
type Request struct {
	RoleArn string
	// CredentialsID is kept in the result; empty makes a fresh one
	// (placement). A refresh passes the id issued at placement.
	CredentialsID string
	// TaskArn names the session of assume-role credentials.
	TaskArn string
}

// Issue obtains credentials for a declared role.
func (is *Issuer) Issue(ctx context.Context, req Request) (*api.IAMRoleCredentials, error) {
	r, ok := is.roles[req.RoleArn]
	if !ok {
		return nil, fmt.Errorf("issue credentials for %s: %w", req.RoleArn, ErrUnknownRole)
	}
	id := req.CredentialsID
	if id == "" {
		var err error
		if id, err = NewCredentialsID(); err != nil {
			return nil, err
		}
	}
	out := &api.IAMRoleCredentials{CredentialsID: id, RoleArn: req.RoleArn}
	if r.sts == nil {
		// Static keys do not expire; the expiration still drives the
		// agent's and SDKs' refresh cycle as with real role credentials.
		out.AccessKeyID = r.cfg.AccessKeyID
		out.SecretAccessKey = r.cfg.SecretAccessKey
		out.SessionToken = r.cfg.SessionToken
		out.Expiration = is.now().Add(r.duration).UTC().Format(time.RFC3339)
		return out, nil
	}
	in := &sts.AssumeRoleInput{
		RoleArn:         aws.String(req.RoleArn),
		RoleSessionName: aws.String(sessionName(r.cfg.SessionName, req.TaskArn)),
		DurationSeconds: aws.Int32(int32(r.duration / time.Second)),
	}
	if r.cfg.ExternalID != "" {
		in.ExternalId = aws.String(r.cfg.ExternalID)
	}
	res, err := r.sts.AssumeRole(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("assume role %s: %w", req.RoleArn, err)
	}
	c := res.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.Expiration == nil {
		return nil, fmt.Errorf("assume role %s: STS answered without credentials", req.RoleArn)
	}
	out.AccessKeyID = *c.AccessKeyId
	out.SecretAccessKey = *c.SecretAccessKey
	out.SessionToken = aws.ToString(c.SessionToken)
	out.Expiration = c.Expiration.UTC().Format(time.RFC3339)
	return out, nil
}

// sessionName is the RoleSessionName: the configured one or berth-<task
// id>, cut to STS's 64 characters.
func sessionName(configured, taskArn string) string {
	if configured != "" {
		return configured
	}
	n := "berth-" + taskArn[strings.LastIndexByte(taskArn, '/')+1:]
	if len(n) > 64 {
		n = n[:64]
	}
	return n
}

// Validate checks role declarations as New does, without needing the
// endpoint's own credentials (for configuration checks).
func Validate(rs []RoleConfig, region, accountID string) error {
	_, err := New(Options{Roles: rs, BaseCredentials: aws.AnonymousCredentials{}, Region: region, AccountID: accountID})
	return err
}
