package roles

import (
	"context"
	"testing"

	"github.com/berth-dev/berth/pkg/api"
)

func TestBrokerForPayload(t *testing.T) {
	ctx := context.Background()
	is, err := New(Options{Roles: []RoleConfig{staticRole(appRole), staticRole(execRole)}})
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("endpoint secret")
	b, err := NewBroker(BrokerOptions{Issuer: is, Sender: &recordingSender{}, IDKey: key})
	if err != nil {
		t.Fatal(err)
	}
	p := Placement{ClusterArn: "cl", ContainerInstanceArn: "ci-1", TaskArn: taskArn, TaskRoleArn: appRole, ExecutionRoleArn: execRole}
	role, exec, err := b.ForPayload(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if role == nil || exec == nil || role.RoleArn != appRole || exec.RoleArn != execRole || role.CredentialsID == exec.CredentialsID {
		t.Fatalf("payload credentials: %+v %+v", role, exec)
	}
	if role.CredentialsID != DeriveCredentialsID(key, taskArn, api.RoleTypeTaskApplication) {
		t.Fatalf("id %s is not the derived one", role.CredentialsID)
	}
	again, _, _ := b.ForPayload(ctx, p)
	if again != role {
		t.Fatal("a redelivery issued new credentials instead of the current ones")
	}
	// An endpoint restart: a new broker derives the same id for the task.
	b2, _ := NewBroker(BrokerOptions{Issuer: is, Sender: &recordingSender{}, IDKey: key})
	r2, _, _ := b2.ForPayload(ctx, p)
	if r2.CredentialsID != role.CredentialsID {
		t.Fatalf("id changed across a restart: %s -> %s", role.CredentialsID, r2.CredentialsID)
	}
	if other := DeriveCredentialsID(key, taskArn+"x", api.RoleTypeTaskApplication); other == role.CredentialsID {
		t.Fatal("two tasks share a credentials id")
	}
	p.Stopped = true
	if r, e, err := b.ForPayload(ctx, p); r != nil || e != nil || err != nil || b.Current(taskArn, api.RoleTypeTaskApplication) != nil {
		t.Fatalf("stopped task: want nothing and untracked, got %v %v %v", r, e, err)
	}
	if _, _, err := b.ForPayload(ctx, Placement{TaskArn: taskArn, TaskRoleArn: "arn:aws:iam::1:role/undeclared"}); err == nil {
		t.Fatal("undeclared role issued")
	}
}

func TestDevRole(t *testing.T) {
	a, err := DevRole("123456789012", "lab")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DevRole("123456789012", "lab")
	if a.Arn != "arn:aws:iam::123456789012:role/lab" || a.Source != SourceStatic || len(a.AccessKeyID) != 20 ||
		len(a.SecretAccessKey) != 40 || a.AccessKeyID == b.AccessKeyID {
		t.Fatalf("dev role: %+v", a)
	}
	if _, err := New(Options{Roles: []RoleConfig{a}}); err != nil {
		t.Fatalf("dev role is not a valid role: %v", err)
	}
	for _, g := range a.Secrets {
		if p := GrantProblem(g, "eu-west-1", "123456789012"); p != "" {
			t.Errorf("dev role grant: %s", p)
		}
	}
	for arn, want := range map[string]bool{
		"arn:aws:ssm:us-east-1:123456789012:parameter/app/db":            true,
		"arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf": true,
		"arn:aws:ssm:us-east-1:999999999999:parameter/app/db":            false,
		"arn:aws:secretsmanager:eu-west-1:999999999999:secret:db-AbCdEf": false,
	} {
		if got := GrantAllows(a.Secrets, arn); got != want {
			t.Errorf("dev role may read %s: %v, want %v", arn, got, want)
		}
	}
	if _, err := DevRole("1", "a/b"); err == nil {
		t.Fatal("name with a slash accepted")
	}
}
