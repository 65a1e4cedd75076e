package roles

import "testing"

// TestGrantAllows matches resource ARNs against grants as IAM matches a
// policy's Resource: `*` any run of characters, slashes included, `?` one.
func TestGrantAllows(t *testing.T) {
	grants := []string{"arn:aws:ssm:us-east-1:123456789012:parameter/app/*", "arn:aws:secretsmanager:*:123456789012:secret:db-??-*"}
	cases := []struct {
		arn  string
		want bool
	}{
		{"arn:aws:ssm:us-east-1:123456789012:parameter/app/db/password", true},
		{"arn:aws:ssm:us-east-1:123456789012:parameter/app", false},
		{"arn:aws:ssm:us-east-1:123456789012:parameter/apps/x", false},
		{"arn:aws:ssm:us-east-1:999999999999:parameter/app/x", false},
		{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-eu-main-AbCdEf", true},
		{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-e-main-AbCdEf", false},
		{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:web-AbCdEf", false},
	}
	for _, c := range cases {
		if got := GrantAllows(grants, c.arn); got != c.want {
			t.Errorf("GrantAllows(%s) = %v, want %v", c.arn, got, c.want)
		}
	}
	if GrantAllows(nil, "arn:aws:ssm:us-east-1:123456789012:parameter/app/x") {
		t.Error("no grants allowed a read")
	}
}
