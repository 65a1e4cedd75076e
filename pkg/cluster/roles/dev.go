package roles

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// DevRole is the static role dev mode declares for `--dev-role NAME`:
// arn:aws:iam::<account>:role/<name> with a generated key pair, so that a
// lab can try task roles without a cloud account. Its credentials may read
// every SSM parameter and Secrets Manager secret of the account (the
// endpoint's own, in any region): as a task's execution role it fetches
// the task's `secrets`, which a lab creates on dev mode's endpoint with
// its admin key.
func DevRole(accountID, name string) (RoleConfig, error) {
	if name == "" || strings.ContainsAny(name, ":/ ") {
		return RoleConfig{}, fmt.Errorf("dev role name %q: want a plain role name", name)
	}
	keyID, err := randomString("ASIA", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
	if err != nil {
		return RoleConfig{}, err
	}
	secret, err := randomString("", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40)
	if err != nil {
		return RoleConfig{}, err
	}
	return RoleConfig{
		Arn:             "arn:aws:iam::" + accountID + ":role/" + name,
		Source:          SourceStatic,
		AccessKeyID:     keyID,
		SecretAccessKey: secret,
		Secrets: []string{
			"arn:aws:ssm:*:" + accountID + ":parameter/*",
			"arn:aws:secretsmanager:*:" + accountID + ":secret:*",
		},
	}, nil
}

func randomString(prefix, alphabet string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate dev role key: %w", err)
	}
	var sb strings.Builder
	sb.WriteString(prefix)
	for _, x := range b {
		sb.WriteByte(alphabet[int(x)%len(alphabet)])
	}
	return sb.String(), nil
}
