package records

import "testing"

// TestARNs pins how references resolve: this endpoint's ARNs and bare names
// or ids do, other regions, accounts, types and clusters do not.
func TestARNs(t *testing.T) {
	a := ARNs{Region: "us-test-1", AccountID: "123456789012"}
	if got := a.Task("lab", "abc"); got != "arn:aws:ecs:us-test-1:123456789012:task/lab/abc" {
		t.Errorf("Task ARN = %s", got)
	}
	if got := a.IAMUser("BKX"); got != "arn:aws:iam::123456789012:user/BKX" {
		t.Errorf("IAMUser = %s", got)
	}
	clusters := []struct {
		ref, want string
		ok        bool
	}{
		{"lab", "lab", true},
		{"arn:aws:ecs:us-test-1:123456789012:cluster/lab", "lab", true},
		{"arn:aws:ecs:us-east-1:123456789012:cluster/lab", "", false},
		{"arn:aws:ecs:us-test-1:999999999999:cluster/lab", "", false},
		{"arn:aws:ecs:us-test-1:123456789012:service/lab", "", false},
		{"arn:aws:ecs:us-test-1", "", false},
		{"bad name!", "bad name!", false},
	}
	for _, c := range clusters {
		if got, ok := a.ClusterName(c.ref); ok != c.ok || (ok && got != c.want) {
			t.Errorf("ClusterName(%q) = %q %v, want %q %v", c.ref, got, ok, c.want, c.ok)
		}
	}
	ids := []struct {
		typ, ref, want string
		ok             bool
	}{
		{"task", "abc", "abc", true},
		{"task", "a/b", "", false},
		{"task", "", "", false},
		{"task", "arn:aws:ecs:us-test-1:123456789012:task/lab/abc", "abc", true},
		{"task", "arn:aws:ecs:us-test-1:123456789012:task/abc", "abc", true}, // old style
		{"task", "arn:aws:ecs:us-test-1:123456789012:task/other/abc", "", false},
		{"task", "arn:aws:ecs:us-test-1:123456789012:container-instance/lab/abc", "", false},
		{"task", "arn:aws:ecs:eu-west-1:123456789012:task/lab/abc", "", false},
		{"service", "arn:aws:ecs:us-test-1:123456789012:service/lab/web", "web", true},
	}
	for _, c := range ids {
		if got, ok := a.ResourceID(c.typ, "lab", c.ref); ok != c.ok || (ok && got != c.want) {
			t.Errorf("ResourceID(%s, lab, %q) = %q %v, want %q %v", c.typ, c.ref, got, ok, c.want, c.ok)
		}
	}
	tds := []struct {
		ref    string
		family string
		rev    int32
		ok     bool
	}{
		{"web", "web", 0, true},
		{"web:3", "web", 3, true},
		{"web:0", "", 0, false},
		{"web:x", "", 0, false},
		{"arn:aws:ecs:us-test-1:123456789012:task-definition/web:3", "web", 3, true},
		{"arn:aws:ecs:us-test-1:123456789012:task-definition/web", "", 0, false},
		{"arn:aws:ecs:us-east-1:123456789012:task-definition/web:3", "", 0, false},
	}
	for _, c := range tds {
		if family, rev, ok := a.TaskDefinitionRef(c.ref); ok != c.ok || family != c.family || rev != c.rev {
			t.Errorf("TaskDefinitionRef(%q) = %q %d %v, want %q %d %v", c.ref, family, rev, ok, c.family, c.rev, c.ok)
		}
	}
	if key, ok := TaskKeyOf("arn:aws:ecs:eu-west-1:111111111111:task/lab/abc"); !ok || key != "lab/abc" {
		t.Errorf("TaskKeyOf = %q %v", key, ok)
	}
	if arn, ok := ClusterArnOfInstance("arn:aws:ecs:us-test-1:123456789012:container-instance/lab/ci"); !ok || arn != "arn:aws:ecs:us-test-1:123456789012:cluster/lab" {
		t.Errorf("ClusterArnOfInstance = %q %v", arn, ok)
	}
	if key, ok := TaskDefinitionKeyOf("arn:aws:ecs:us-test-1:123456789012:task-definition/web:12"); !ok || key != "web:0000000012" {
		t.Errorf("TaskDefinitionKeyOf = %q %v", key, ok)
	}
}
