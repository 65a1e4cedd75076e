package agent

import "testing"

// TestSecretsEndpoint: secrets are fetched from the cluster endpoint (the
// first of a list), or from AWS when the agent is joined to Amazon ECS.
func TestSecretsEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    "",
		"http://127.0.0.1:8080":               "http://127.0.0.1:8080",
		"https://a:1,https://b:1":             "https://a:1",
		"https://ecs.us-east-1.amazonaws.com": "",
	} {
		if got := secretsEndpoint(in); got != want {
			t.Errorf("secretsEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}
