package testenv

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// AWSCLI returns a runner of the AWS CLI (`aws`, on PATH or where pyenv
// installs it) against the endpoint at url with one access key, as an
// operator's script runs it: `--output json`, one attempt, a private HOME
// and config so that nothing of the host's AWS configuration leaks in. The
// runner fails the test when the command's success is not wantOK; it
// returns the decoded JSON output, or {"error": <output>} for a failure.
// A missing CLI skips the test (fails it under CI=true).
func AWSCLI(t testing.TB, url, region, keyID, secret string) func(t testing.TB, wantOK bool, args ...string) map[string]any {
	t.Helper()
	path, err := exec.LookPath("aws")
	if err != nil {
		if path, err = exec.LookPath("/root/.pyenv/shims/aws"); err != nil {
			missing(t, "the AWS CLI (aws)")
		}
	}
	home := t.TempDir()
	env := []string{"AWS_ACCESS_KEY_ID=" + keyID, "AWS_SECRET_ACCESS_KEY=" + secret, "AWS_DEFAULT_REGION=" + region,
		"AWS_CONFIG_FILE=" + home + "/config", "AWS_SHARED_CREDENTIALS_FILE=" + home + "/credentials", "AWS_MAX_ATTEMPTS=1", "HOME=" + home}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "AWS_") && !strings.HasPrefix(e, "HOME=") {
			env = append(env, e)
		}
	}
	return func(t testing.TB, wantOK bool, args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command(path, append([]string{"--endpoint-url", url, "--output", "json"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if !wantOK {
			return map[string]any{"error": string(out)}
		}
		m := map[string]any{}
		if len(strings.TrimSpace(string(out))) > 0 {
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatalf("aws %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		return m
	}
}
