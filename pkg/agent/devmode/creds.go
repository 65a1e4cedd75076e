package devmode

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// ensureKeys returns the admin and agent keys, reusing those in the
// credentials file when the endpoint still knows them (the agent's
// instance is bound to its key, so a restart must keep it) and creating
// and writing new ones otherwise.
func ensureKeys(ep *Endpoint, credsFile string) (admin, agentKey aws.Credentials, err error) {
	profiles, err := readCredentials(credsFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return admin, agentKey, err
	}
	valid := func(c aws.Credentials, role auth.Role) bool {
		if c.AccessKeyID == "" {
			return false
		}
		k, secret, err := ep.Keys.Lookup(c.AccessKeyID)
		return err == nil && !k.Revoked && k.Role == role && secret == c.SecretAccessKey
	}
	admin, agentKey = profiles[Profile], profiles[AgentProfile]
	changed := false
	if !valid(admin, auth.RoleAdmin) {
		id, secret, err := ep.Keys.Create(auth.RoleAdmin, time.Now())
		if err != nil {
			return admin, agentKey, fmt.Errorf("create admin key: %w", err)
		}
		admin, changed = aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, true
	}
	if !valid(agentKey, auth.RoleAgent) {
		id, secret, err := ep.Keys.Create(auth.RoleAgent, time.Now())
		if err != nil {
			return admin, agentKey, fmt.Errorf("create agent key: %w", err)
		}
		agentKey, changed = aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, true
	}
	if changed {
		content := fmt.Sprintf("[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n\n[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
			Profile, admin.AccessKeyID, admin.SecretAccessKey, AgentProfile, agentKey.AccessKeyID, agentKey.SecretAccessKey)
		if err := writeFile(credsFile, content); err != nil {
			return admin, agentKey, err
		}
	}
	return admin, agentKey, nil
}

// readCredentials parses the profiles of an AWS shared-credentials file.
func readCredentials(path string) (map[string]aws.Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]aws.Credentials{}
	profile := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			profile = strings.TrimSpace(line[1 : len(line)-1])
		case profile != "":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			c := out[profile]
			switch strings.TrimSpace(k) {
			case "aws_access_key_id":
				c.AccessKeyID = strings.TrimSpace(v)
			case "aws_secret_access_key":
				c.SecretAccessKey = strings.TrimSpace(v)
			}
			out[profile] = c
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// writeFile replaces path atomically with mode 0600 (it may hold secrets).
func writeFile(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
