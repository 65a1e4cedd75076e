package roles

import (
	"crypto/subtle"
	"fmt"
	"strings"
)

// Secret grants: a role declaration's `secrets` list names the SSM
// parameters and Secrets Manager secrets that credentials of the role (a
// task's role or execution role) may read from the endpoint:
//
//	[[roles]]
//	arn = "arn:aws:iam::123456789012:role/app-exec"
//	source = "static"
//	access_key_id = "AKIA..."
//	secret_access_key = "..."
//	secrets = ["arn:aws:ssm:us-east-1:123456789012:parameter/app/*",
//	           "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-*"]
//
// Each entry is a resource ARN in which `*` matches any run of characters
// (slashes too) and `?` one character, as in an IAM policy's Resource. A
// role without the list may read nothing.

// GrantProblem checks one `secrets` entry: an SSM parameter or Secrets
// Manager secret ARN pattern of this endpoint's region and account (either
// may be `*`). It returns what is wrong, or "".
func GrantProblem(pattern, region, accountID string) string {
	parts := strings.SplitN(pattern, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] != "aws" {
		return fmt.Sprintf("%q is not an ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME or arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)", pattern)
	}
	switch {
	case parts[2] == "ssm" && strings.HasPrefix(parts[5], "parameter/") && len(parts[5]) > len("parameter/"):
	case parts[2] == "secretsmanager" && strings.HasPrefix(parts[5], "secret:") && len(parts[5]) > len("secret:"):
	default:
		return fmt.Sprintf("%q names neither SSM parameters (arn:aws:ssm:...:parameter/NAME) nor Secrets Manager secrets (arn:aws:secretsmanager:...:secret:NAME)", pattern)
	}
	if parts[3] != "*" && region != "" && parts[3] != region {
		return fmt.Sprintf("%q names region %q; this endpoint's is %q", pattern, parts[3], region)
	}
	if parts[4] != "*" && accountID != "" && parts[4] != accountID {
		return fmt.Sprintf("%q names account %q; this endpoint's is %q", pattern, parts[4], accountID)
	}
	return ""
}

// GrantAllows reports whether one of the patterns matches the resource
// ARN.
func GrantAllows(patterns []string, resourceArn string) bool {
	for _, p := range patterns {
		if globMatch(p, resourceArn) {
			return true
		}
	}
	return false
}

// globMatch matches s against p, where `*` is any run of characters and
// `?` one character (IAM's Resource wildcards).
func globMatch(p, s string) bool {
	// Iterative matching with one backtrack point: linear in practice.
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// SecretsAllowed reports whether credentials of the declared role may read
// the SSM parameter or secret with ARN resourceArn.
func (is *Issuer) SecretsAllowed(roleArn, resourceArn string) bool {
	r, ok := is.roles[roleArn]
	return ok && GrantAllows(r.cfg.Secrets, resourceArn)
}

// RoleKey is a role's credentials as the endpoint recognises them when they
// sign a request.
type RoleKey struct {
	RoleArn         string
	SecretAccessKey string
	// SessionToken is what X-Amz-Security-Token must be; empty means the
	// request must carry none.
	SessionToken string
}

// staticKey finds the static role whose access_key_id is id. New refuses
// two roles with one key pair when either has grants, so the answer is
// the one role the key stands for.
func (is *Issuer) staticKey(id string) (RoleKey, bool) {
	for _, r := range is.roles {
		if r.sts == nil && subtle.ConstantTimeCompare([]byte(r.cfg.AccessKeyID), []byte(id)) == 1 {
			return RoleKey{RoleArn: r.cfg.Arn, SecretAccessKey: r.cfg.SecretAccessKey, SessionToken: r.cfg.SessionToken}, true
		}
	}
	return RoleKey{}, false
}

// LookupRoleKey finds the role whose credentials have access key id id:
// a static role's key pair, or assume-role credentials this broker issued
// and still tracks (running tasks). auth.Verifier uses it to verify
// requests signed with a task's role or execution role credentials.
func (b *Broker) LookupRoleKey(id string) (roleArn, secret, sessionToken string, ok bool) {
	if k, ok := b.issuer.staticKey(id); ok {
		return k.RoleArn, k.SecretAccessKey, k.SessionToken, true
	}
	if c := b.Refresher.byAccessKey(id); c != nil {
		return c.RoleArn, c.SecretAccessKey, c.SessionToken, true
	}
	return "", "", "", false
}

// SecretsAllowed reports whether the declared role's grants allow reading
// resourceArn (see Issuer.SecretsAllowed).
func (b *Broker) SecretsAllowed(roleArn, resourceArn string) bool {
	return b.issuer.SecretsAllowed(roleArn, resourceArn)
}
