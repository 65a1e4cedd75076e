package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRotatingSharedCredentials: with ECS_EXTERNAL the agent's credentials
// come from the shared credentials file's profile, and a rewritten file is
// read again once the credentials expire (here at once).
func TestRotatingSharedCredentials(t *testing.T) {
	file := filepath.Join(t.TempDir(), "credentials")
	write := func(key string) {
		t.Helper()
		content := "[default]\naws_access_key_id = WRONG\naws_secret_access_key = x\n\n[ecs]\naws_access_key_id = " + key + "\naws_secret_access_key = s3cret\n"
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("AKIAFIRST")
	p := rotatingSharedCredentials(file, "ecs", 0)
	c, err := p.Retrieve(t.Context())
	if err != nil || c.AccessKeyID != "AKIAFIRST" {
		t.Fatalf("first read: %+v (%v), want AKIAFIRST from profile ecs", c, err)
	}
	write("AKIASECOND")
	if c, err = p.Retrieve(t.Context()); err != nil || c.AccessKeyID != "AKIASECOND" {
		t.Fatalf("after the file changed: %+v (%v), want AKIASECOND", c, err)
	}
	if _, err := rotatingSharedCredentials(file, "missing", 0).Retrieve(t.Context()); err == nil {
		t.Error("a missing profile gave credentials")
	}

	// The configuration chooses it: static keys win; ECS_EXTERNAL or an
	// explicit profile selects the file; neither means the SDK's chain.
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
	for _, tt := range []struct {
		env  []string
		want string
	}{
		{[]string{"AWS_REGION=us-east-1", "ECS_EXTERNAL=true", "ECS_ALTERNATE_CREDENTIAL_PROFILE=ecs"}, "AKIASECOND"},
		{[]string{"AWS_REGION=us-east-1", "ECS_ALTERNATE_CREDENTIAL_PROFILE=ecs"}, "AKIASECOND"},
		{[]string{"AWS_REGION=us-east-1", "ECS_EXTERNAL=true"}, "WRONG"},
		{[]string{"AWS_REGION=us-east-1", "ECS_EXTERNAL=true", "AWS_ACCESS_KEY_ID=AKIASTATIC", "AWS_SECRET_ACCESS_KEY=x"}, "AKIASTATIC"},
		{[]string{"AWS_REGION=us-east-1"}, ""},
	} {
		cfg, err := ConfigFromEnv(tt.env)
		if err != nil {
			t.Fatal(err)
		}
		p := InstanceCredentials(cfg)
		if tt.want == "" {
			if p != nil {
				t.Errorf("%q: a provider, want nil (the SDK's chain)", tt.env)
			}
			continue
		}
		if c, err := p.Retrieve(t.Context()); err != nil || c.AccessKeyID != tt.want {
			t.Errorf("%q: %+v (%v), want %s", tt.env, c, err, tt.want)
		}
	}
}
