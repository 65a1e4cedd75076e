package devmode

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsureKeysReusesKnownKeys(t *testing.T) {
	dir := t.TempDir()
	start := func(data string) *Endpoint {
		ep, err := StartEndpoint(context.Background(), EndpointOptions{DataDir: data, Region: DefaultRegion, AccountID: DefaultAccount})
		if err != nil {
			t.Fatal(err)
		}
		return ep
	}
	credsFile := filepath.Join(dir, "credentials")
	ep := start(filepath.Join(dir, "cluster"))
	admin1, agent1, err := ensureKeys(ep, credsFile)
	if err != nil {
		t.Fatal(err)
	}
	ep.Close()
	ep = start(filepath.Join(dir, "cluster"))
	admin2, agent2, err := ensureKeys(ep, credsFile)
	ep.Close()
	if err != nil {
		t.Fatal(err)
	}
	if admin2 != admin1 || agent2 != agent1 {
		t.Errorf("restart changed the keys (admin %s -> %s, agent %s -> %s); the agent's instance is bound to its key",
			admin1.AccessKeyID, admin2.AccessKeyID, agent1.AccessKeyID, agent2.AccessKeyID)
	}
	b, err := os.ReadFile(credsFile)
	if err != nil || !strings.Contains(string(b), "["+Profile+"]") || !strings.Contains(string(b), admin1.SecretAccessKey) {
		t.Fatalf("credentials file %q (%v), want profile %s with the admin key", b, err, Profile)
	}

	// An endpoint with fresh data does not know the old keys: new ones.
	ep = start(filepath.Join(dir, "other"))
	defer ep.Close()
	admin3, agent3, err := ensureKeys(ep, credsFile)
	if err != nil {
		t.Fatal(err)
	}
	if admin3 == admin1 || agent3 == agent1 {
		t.Error("keys unknown to the endpoint were reused")
	}
	if _, _, err := ep.Keys.Lookup(admin3.AccessKeyID); err != nil {
		t.Errorf("new admin key unknown to the endpoint: %v", err)
	}
}
