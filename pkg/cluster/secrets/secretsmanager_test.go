package secrets_test

import (
	"context"
	"encoding/base64"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/roles"
)

// TestSecretsManager drives every Secrets Manager operation with the SDK's
// client: creation and its idempotency, versions and stages, lookup by
// name, ARN and partial ARN, listing with filters and paging, tags,
// update, deletion with a recovery window (the clock moved past it),
// restore and forced deletion.
func TestSecretsManager(t *testing.T) {
	l := startLab(t)
	c := l.sm(nil)
	ctx := context.Background()
	v1 := l.secretValue(`{"user":"app","password":"hunter2-v1"}`)
	v2 := l.secretValue("hunter2-v2-rotated")
	v3 := l.secretValue("hunter2-v3-pending")
	bin := []byte{0, 1, 2, 250, 251, 252, 'b', 'i', 'n'}
	token := "11111111-2222-4333-8444-555555555555"

	cr, err := c.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("db-main"), SecretString: aws.String(v1), ClientRequestToken: aws.String(token),
		Description: aws.String("main database"), Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("lab")}}})
	ok(t, "CreateSecret", err)
	arn := aws.ToString(cr.ARN)
	if !regexp.MustCompile(`^arn:aws:secretsmanager:us-test-1:123456789012:secret:db-main-[A-Za-z0-9]{6}$`).MatchString(arn) || aws.ToString(cr.VersionId) != token {
		t.Fatalf("CreateSecret: ARN %s version %s", arn, aws.ToString(cr.VersionId))
	}
	// The same request again (an SDK retry) succeeds and changes nothing;
	// another value under that token, or without it, is refused.
	before := l.rawStore(t)
	again, err := c.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("db-main"), SecretString: aws.String(v1), ClientRequestToken: aws.String(token)})
	ok(t, "CreateSecret retry", err)
	if aws.ToString(again.ARN) != arn || l.rawStore(t) != before {
		t.Errorf("CreateSecret retry: ARN %s, store changed %v", aws.ToString(again.ARN), l.rawStore(t) != before)
	}
	_, err = c.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("db-main"), SecretString: aws.String(v2), ClientRequestToken: aws.String(token)})
	wantCode(t, "CreateSecret same token, other value", err, "ResourceExistsException", "")
	_, err = c.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("db-main"), SecretString: aws.String(v1)})
	wantCode(t, "CreateSecret existing name", err, "ResourceExistsException", "already exists")
	_, err = c.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("bin"), SecretBinary: bin})
	ok(t, "CreateSecret binary", err)
	_, err = c.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("both"), SecretBinary: bin, SecretString: aws.String("x")})
	wantCode(t, "CreateSecret both values", err, "InvalidParameterException", "")
	_, err = c.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("kms"), SecretString: aws.String("x"), KmsKeyId: aws.String("alias/mine")})
	wantCode(t, "CreateSecret KmsKeyId", err, "InvalidParameterException", "KmsKeyId")
	_, err = c.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("bad name!"), SecretString: aws.String("x")})
	wantCode(t, "CreateSecret bad name", err, "InvalidParameterException", "")
	_, err = c.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("repl"), SecretString: aws.String("x"),
		AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String("eu-west-1")}}})
	wantCode(t, "CreateSecret AddReplicaRegions", err, "InvalidParameterException", "AddReplicaRegions")

	// Versions and stages.
	pv, err := c.PutSecretValue(ctx, &sm.PutSecretValueInput{SecretId: aws.String("db-main"), SecretString: aws.String(v2)})
	ok(t, "PutSecretValue", err)
	v2id := aws.ToString(pv.VersionId)
	if !slices.Equal(pv.VersionStages, []string{"AWSCURRENT"}) {
		t.Errorf("PutSecretValue stages %v", pv.VersionStages)
	}
	pv, err = c.PutSecretValue(ctx, &sm.PutSecretValueInput{SecretId: aws.String(arn), SecretString: aws.String(v3), VersionStages: []string{"AWSPENDING", "canary"}})
	ok(t, "PutSecretValue AWSPENDING", err)
	v3id := aws.ToString(pv.VersionId)
	get := func(in *sm.GetSecretValueInput) *sm.GetSecretValueOutput {
		t.Helper()
		out, err := c.GetSecretValue(ctx, in)
		ok(t, "GetSecretValue", err)
		return out
	}
	if g := get(&sm.GetSecretValueInput{SecretId: aws.String("db-main")}); aws.ToString(g.SecretString) != v2 || aws.ToString(g.VersionId) != v2id {
		t.Errorf("AWSCURRENT: %q %s", aws.ToString(g.SecretString), aws.ToString(g.VersionId))
	}
	if g := get(&sm.GetSecretValueInput{SecretId: aws.String("db-main"), VersionStage: aws.String("AWSPREVIOUS")}); aws.ToString(g.SecretString) != v1 || aws.ToString(g.VersionId) != token {
		t.Errorf("AWSPREVIOUS: %q %s", aws.ToString(g.SecretString), aws.ToString(g.VersionId))
	}
	if g := get(&sm.GetSecretValueInput{SecretId: aws.String("db-main"), VersionStage: aws.String("canary")}); aws.ToString(g.SecretString) != v3 {
		t.Errorf("canary: %q", aws.ToString(g.SecretString))
	}
	if g := get(&sm.GetSecretValueInput{SecretId: aws.String("db-main"), VersionId: aws.String(v3id)}); !slices.Equal(g.VersionStages, []string{"AWSPENDING", "canary"}) {
		t.Errorf("by VersionId: stages %v", g.VersionStages)
	}
	_, err = c.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: aws.String("db-main"), VersionId: aws.String(v3id), VersionStage: aws.String("AWSCURRENT")})
	wantCode(t, "VersionId with a stage it lacks", err, "ResourceNotFoundException", "")
	// A partial ARN (no suffix) and the name find it too; a wrong suffix does not.
	if g := get(&sm.GetSecretValueInput{SecretId: aws.String("arn:aws:secretsmanager:us-test-1:123456789012:secret:db-main")}); aws.ToString(g.ARN) != arn {
		t.Errorf("partial ARN: %s", aws.ToString(g.ARN))
	}
	_, err = c.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: aws.String(arn[:len(arn)-6] + "zzzzzz")})
	wantCode(t, "wrong ARN suffix", err, "ResourceNotFoundException", "")
	if g := get(&sm.GetSecretValueInput{SecretId: aws.String("bin")}); string(g.SecretBinary) != string(bin) || g.SecretString != nil {
		t.Errorf("binary: %v %v", g.SecretBinary, g.SecretString)
	}
	// An SDK retry of PutSecretValue (same token, same value) is no new version.
	_, err = c.PutSecretValue(ctx, &sm.PutSecretValueInput{SecretId: aws.String("db-main"), SecretString: aws.String(v2), ClientRequestToken: aws.String(v2id)})
	ok(t, "PutSecretValue retry", err)
	_, err = c.PutSecretValue(ctx, &sm.PutSecretValueInput{SecretId: aws.String("db-main"), SecretString: aws.String("other"), ClientRequestToken: aws.String(v2id)})
	wantCode(t, "PutSecretValue same token, other value", err, "ResourceExistsException", "")

	d, err := c.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: aws.String("db-main")})
	ok(t, "DescribeSecret", err)
	want := map[string][]string{token: {"AWSPREVIOUS"}, v2id: {"AWSCURRENT"}, v3id: {"AWSPENDING", "canary"}}
	if len(d.VersionIdsToStages) != 3 || aws.ToString(d.Description) != "main database" || len(d.Tags) != 1 {
		t.Errorf("DescribeSecret: %+v", d)
	}
	for id, st := range want {
		if !slices.Equal(d.VersionIdsToStages[id], st) {
			t.Errorf("DescribeSecret stages of %s: %v, want %v", id, d.VersionIdsToStages[id], st)
		}
	}
	// No resource policy can be attached here: GetResourcePolicy says so
	// (Terraform reads it back on every refresh).
	rp, err := c.GetResourcePolicy(ctx, &sm.GetResourcePolicyInput{SecretId: aws.String("db-main")})
	ok(t, "GetResourcePolicy", err)
	if aws.ToString(rp.ARN) != aws.ToString(d.ARN) || aws.ToString(rp.Name) != "db-main" || rp.ResourcePolicy != nil {
		t.Errorf("GetResourcePolicy: %+v", rp)
	}
	_, err = c.GetResourcePolicy(ctx, &sm.GetResourcePolicyInput{SecretId: aws.String("no-such")})
	wantCode(t, "GetResourcePolicy of a missing secret", err, "ResourceNotFoundException", "")
	_, err = c.PutResourcePolicy(ctx, &sm.PutResourcePolicyInput{SecretId: aws.String("db-main"), ResourcePolicy: aws.String("{}")})
	wantCode(t, "PutResourcePolicy", err, "InvalidAction", "PutResourcePolicy")

	// UpdateSecret, tags.
	up, err := c.UpdateSecret(ctx, &sm.UpdateSecretInput{SecretId: aws.String("bin"), Description: aws.String("binary blob"), SecretString: aws.String("now text")})
	ok(t, "UpdateSecret", err)
	if up.VersionId == nil || aws.ToString(get(&sm.GetSecretValueInput{SecretId: aws.String("bin")}).SecretString) != "now text" {
		t.Errorf("UpdateSecret did not make a new current version")
	}
	_, err = c.TagResource(ctx, &sm.TagResourceInput{SecretId: aws.String("bin"), Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("data")}}})
	ok(t, "TagResource", err)
	_, err = c.UntagResource(ctx, &sm.UntagResourceInput{SecretId: aws.String("db-main"), TagKeys: []string{"env"}})
	ok(t, "UntagResource", err)

	// Listing: filters and paging.
	for _, n := range []string{"svc-a", "svc-b", "svc-c"} {
		l.clock.Add(time.Second)
		_, err := c.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String(n), SecretString: aws.String("x")})
		ok(t, "CreateSecret "+n, err)
	}
	listNames := func(in *sm.ListSecretsInput) []string {
		t.Helper()
		var out []string
		p := sm.NewListSecretsPaginator(c, in)
		for p.HasMorePages() {
			pg, err := p.NextPage(ctx)
			ok(t, "ListSecrets", err)
			for _, s := range pg.SecretList {
				out = append(out, aws.ToString(s.Name))
			}
		}
		return out
	}
	if got := listNames(&sm.ListSecretsInput{MaxResults: aws.Int32(2), SortBy: types.SortByTypeName}); !slices.Equal(got, []string{"bin", "db-main", "svc-a", "svc-b", "svc-c"}) {
		t.Errorf("ListSecrets by name, paged by 2: %v", got)
	}
	if got := listNames(&sm.ListSecretsInput{Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"svc-"}}}, SortOrder: types.SortOrderTypeDesc}); !slices.Equal(got, []string{"svc-c", "svc-b", "svc-a"}) {
		t.Errorf("ListSecrets name svc- desc: %v", got)
	}
	if got := listNames(&sm.ListSecretsInput{Filters: []types.Filter{{Key: types.FilterNameStringTypeTagKey, Values: []string{"team"}}}}); !slices.Equal(got, []string{"bin"}) {
		t.Errorf("ListSecrets tag-key team: %v", got)
	}
	_, err = c.ListSecrets(ctx, &sm.ListSecretsInput{Filters: []types.Filter{{Key: "colour", Values: []string{"x"}}}})
	wantCode(t, "ListSecrets unknown filter", err, "InvalidParameterException", "")

	// Deletion with a recovery window.
	_, err = c.DeleteSecret(ctx, &sm.DeleteSecretInput{SecretId: aws.String("db-main"), RecoveryWindowInDays: aws.Int64(6)})
	wantCode(t, "window of 6 days", err, "InvalidParameterException", "between 7 and 30")
	_, err = c.DeleteSecret(ctx, &sm.DeleteSecretInput{SecretId: aws.String("db-main"), RecoveryWindowInDays: aws.Int64(7), ForceDeleteWithoutRecovery: aws.Bool(true)})
	wantCode(t, "window and force", err, "InvalidParameterException", "")
	del, err := c.DeleteSecret(ctx, &sm.DeleteSecretInput{SecretId: aws.String("db-main"), RecoveryWindowInDays: aws.Int64(7)})
	ok(t, "DeleteSecret", err)
	if want := l.clock.Now().Add(7 * 24 * time.Hour); !aws.ToTime(del.DeletionDate).Equal(want) {
		t.Errorf("DeletionDate %v, want %v", del.DeletionDate, want)
	}
	_, err = c.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: aws.String("db-main")})
	wantCode(t, "GetSecretValue of a deleted secret", err, "InvalidRequestException", "marked for deletion")
	_, err = c.PutSecretValue(ctx, &sm.PutSecretValueInput{SecretId: aws.String("db-main"), SecretString: aws.String("x")})
	wantCode(t, "PutSecretValue of a deleted secret", err, "InvalidRequestException", "")
	_, err = c.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("db-main"), SecretString: aws.String("x")})
	wantCode(t, "CreateSecret over one scheduled for deletion", err, "InvalidRequestException", "scheduled for deletion")
	if got := listNames(&sm.ListSecretsInput{Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"db-"}}}}); len(got) != 0 {
		t.Errorf("ListSecrets lists a deleted secret: %v", got)
	}
	if got := listNames(&sm.ListSecretsInput{IncludePlannedDeletion: aws.Bool(true), Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"db-"}}}}); len(got) != 1 {
		t.Errorf("ListSecrets IncludePlannedDeletion: %v", got)
	}
	_, err = c.RestoreSecret(ctx, &sm.RestoreSecretInput{SecretId: aws.String(arn)})
	ok(t, "RestoreSecret", err)
	if g := get(&sm.GetSecretValueInput{SecretId: aws.String("db-main")}); aws.ToString(g.SecretString) != v2 {
		t.Errorf("restored secret's value: %q", aws.ToString(g.SecretString))
	}
	_, err = c.DeleteSecret(ctx, &sm.DeleteSecretInput{SecretId: aws.String("db-main"), RecoveryWindowInDays: aws.Int64(7)})
	ok(t, "DeleteSecret again", err)
	l.clock.Add(7*24*time.Hour - time.Second)
	_, err = c.RestoreSecret(ctx, &sm.RestoreSecretInput{SecretId: aws.String("db-main")})
	ok(t, "RestoreSecret a second before the deletion date", err)
	_, err = c.DeleteSecret(ctx, &sm.DeleteSecretInput{SecretId: aws.String("db-main"), RecoveryWindowInDays: aws.Int64(7)})
	ok(t, "DeleteSecret a third time", err)
	l.clock.Add(7 * 24 * time.Hour)
	_, err = c.RestoreSecret(ctx, &sm.RestoreSecretInput{SecretId: aws.String("db-main")})
	wantCode(t, "RestoreSecret after the window", err, "ResourceNotFoundException", "")
	_, err = c.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: aws.String(arn)})
	wantCode(t, "DescribeSecret after the window", err, "ResourceNotFoundException", "")
	cr2, err := c.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("db-main"), SecretString: aws.String("fresh")})
	ok(t, "CreateSecret with the name after the window", err)
	if aws.ToString(cr2.ARN) == arn {
		t.Errorf("the new secret has the old one's ARN %s", arn)
	}
	_, err = c.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: aws.String(arn)})
	wantCode(t, "old ARN after recreation", err, "ResourceNotFoundException", "")

	// Forced deletion leaves nothing; the purge removes what passed its window.
	_, err = c.DeleteSecret(ctx, &sm.DeleteSecretInput{SecretId: aws.String("svc-a"), ForceDeleteWithoutRecovery: aws.Bool(true)})
	ok(t, "DeleteSecret forced", err)
	_, err = c.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: aws.String("svc-a")})
	wantCode(t, "DescribeSecret after forced deletion", err, "ResourceNotFoundException", "")
	_, err = c.DeleteSecret(ctx, &sm.DeleteSecretInput{SecretId: aws.String("svc-b"), RecoveryWindowInDays: aws.Int64(7)})
	ok(t, "DeleteSecret svc-b", err)
	l.clock.Add(8 * 24 * time.Hour)
	srvPurge(t, l)
	if raw := l.rawStore(t); strings.Contains(raw, "svc-b") || strings.Contains(raw, "svc-a") {
		t.Errorf("purged secrets are still stored:\n%s", raw)
	}
}

// srvPurge runs the purge the endpoint runs every minute, through a server
// over the lab's store.
func srvPurge(t *testing.T, l *lab) {
	t.Helper()
	if err := newServer(t, l).Purge(); err != nil {
		t.Fatal(err)
	}
}

// TestEncryptedAtRest reads the raw records: no value, in clear or base64,
// is stored; and a record's sealed value does not open under another
// identity (a value copied onto another parameter fails, it is not served).
func TestEncryptedAtRest(t *testing.T) {
	l := startLab(t)
	ctx := context.Background()
	plain := l.secretValue("plain-string-value-0001")
	secure := l.secretValue("secure-string-value-0002")
	str := l.secretValue("secrets-manager-string-0003")
	binv := []byte("secrets-manager-binary-0004")
	l.secretValue(string(binv))
	_, err := l.ssm(nil).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/a/plain"), Type: ssmtypes.ParameterTypeString, Value: aws.String(plain)})
	ok(t, "put", err)
	_, err = l.ssm(nil).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/a/secure"), Type: ssmtypes.ParameterTypeSecureString, Value: aws.String(secure)})
	ok(t, "put", err)
	_, err = l.sm(nil).CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("s"), SecretString: aws.String(str)})
	ok(t, "create", err)
	_, err = l.sm(nil).CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("b"), SecretBinary: binv})
	ok(t, "create", err)
	raw := l.rawStore(t)
	if !strings.Contains(raw, "/a/secure") || !strings.Contains(raw, "sealed") {
		t.Fatalf("the raw store does not hold the records; the check would prove nothing:\n%s", raw)
	}
	for _, v := range []string{plain, secure, str, string(binv)} {
		if strings.Contains(raw, v) || strings.Contains(raw, base64.StdEncoding.EncodeToString([]byte(v))) {
			t.Errorf("the store holds %q in clear:\n%s", v, raw)
		}
	}
	// Move /a/secure's sealed value onto /a/plain's record: it must not open.
	swapSealed(t, l, "/a/secure", "/a/plain")
	_, err = l.ssm(nil).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/a/plain")})
	if err == nil || errorCode(err) != "InternalServerError" {
		t.Errorf("a sealed value moved to another parameter: error %v, want InternalServerError", err)
	}
}

// TestRoleAccess proves who may read: an admin key everything; the
// credentials of a declared role (as a task's execution role gets them)
// what its grants allow, read operations only; a role without grants, an
// agent key and an lb key nothing, refused with AccessDeniedException
// naming the ARN. Assume-role credentials the broker issued for a running
// task are recognised with their session token, and not without it.
func TestRoleAccess(t *testing.T) {
	l := startLab(t)
	ctx := context.Background()
	appVal := l.secretValue("app-granted-value")
	dbVal := l.secretValue("db-granted-secret")
	hidden := l.secretValue("ops-not-granted")
	for _, p := range [][2]string{{"/app/key", appVal}, {"/ops/key", hidden}} {
		_, err := l.ssm(nil).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(p[0]), Type: ssmtypes.ParameterTypeSecureString, Value: aws.String(p[1])})
		ok(t, "put", err)
	}
	_, err := l.sm(nil).CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("db-pass"), SecretString: aws.String(dbVal)})
	ok(t, "create", err)
	_, err = l.sm(nil).CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("ops-pass"), SecretString: aws.String(hidden)})
	ok(t, "create", err)

	app := l.creds("AKIAAPPEXEC000000001", "app-exec-secret", "")
	g, err := l.ssm(app).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/key"), WithDecryption: aws.Bool(true)})
	ok(t, "role GetParameter granted", err)
	if aws.ToString(g.Parameter.Value) != appVal {
		t.Errorf("role GetParameter: %q", aws.ToString(g.Parameter.Value))
	}
	gs, err := l.ssm(app).GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/app/key"}, WithDecryption: aws.Bool(true)})
	ok(t, "role GetParameters granted", err)
	if len(gs.Parameters) != 1 {
		t.Errorf("role GetParameters: %+v", gs)
	}
	sv, err := l.sm(app).GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: aws.String("db-pass")})
	ok(t, "role GetSecretValue granted", err)
	if aws.ToString(sv.SecretString) != dbVal {
		t.Errorf("role GetSecretValue: %q", aws.ToString(sv.SecretString))
	}
	_, err = l.ssm(app).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/ops/key")})
	wantCode(t, "role GetParameter not granted", err, "AccessDeniedException", "arn:aws:ssm:us-test-1:123456789012:parameter/ops/key")
	_, err = l.ssm(app).GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/app/key", "/ops/key"}})
	wantCode(t, "role GetParameters with one not granted", err, "AccessDeniedException", "parameter/ops/key")
	_, err = l.sm(app).GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: aws.String("ops-pass")})
	wantCode(t, "role GetSecretValue not granted", err, "AccessDeniedException", "secret:ops-pass-")
	_, err = l.ssm(app).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/new"), Type: ssmtypes.ParameterTypeString, Value: aws.String("v")})
	wantCode(t, "role PutParameter", err, "AccessDeniedException", "ssm:PutParameter")
	_, err = l.sm(app).DeleteSecret(ctx, &sm.DeleteSecretInput{SecretId: aws.String("db-pass")})
	wantCode(t, "role DeleteSecret", err, "AccessDeniedException", "secretsmanager:DeleteSecret")
	_, err = l.sm(app).GetResourcePolicy(ctx, &sm.GetResourcePolicyInput{SecretId: aws.String("db-pass")})
	wantCode(t, "role GetResourcePolicy", err, "AccessDeniedException", "secretsmanager:GetResourcePolicy")

	other := l.creds("AKIAOTHER00000000001", "other-secret", "")
	_, err = l.ssm(other).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/key")})
	wantCode(t, "role without grants", err, "AccessDeniedException", "parameter/app/key")
	_, err = l.sm(other).GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: aws.String("db-pass")})
	wantCode(t, "role without grants (secret)", err, "AccessDeniedException", "secret:db-pass-")
	_, err = l.ssm(l.creds("AKIAAPPEXEC000000001", "wrong", "")).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/key")})
	wantCode(t, "role key with a wrong secret", err, "InvalidSignatureException", "")

	agentID, agentSecret, err := l.keys.Create(auth.RoleAgent, time.Now())
	ok(t, "agent key", err)
	_, err = l.ssm(l.creds(agentID, agentSecret, "")).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/key")})
	wantCode(t, "agent key", err, "AccessDeniedException", "parameter/app/key")
	lbID, lbSecret, err := l.keys.Create(auth.RoleLB, time.Now())
	ok(t, "lb key", err)
	_, err = l.sm(l.creds(lbID, lbSecret, "")).GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: aws.String("db-pass")})
	wantCode(t, "lb key", err, "AccessDeniedException", "")

	// Credentials issued to a running task (assume-role's kind, with a
	// session token) as the broker tracks them.
	l.broker.Track(roles.Tracked{TaskArn: "arn:aws:ecs:us-test-1:123456789012:task/c/1", RoleType: api.RoleTypeTaskExecution,
		ContainerInstanceArn: "ci", Credentials: &api.IAMRoleCredentials{CredentialsID: "id", RoleArn: appRole,
			AccessKeyID: "ASIATASKSESSION00001", SecretAccessKey: "task-session-secret", SessionToken: "task-session-token",
			Expiration: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	_, err = l.ssm(l.creds("ASIATASKSESSION00001", "task-session-secret", "task-session-token")).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/key")})
	ok(t, "task session credentials", err)
	_, err = l.ssm(l.creds("ASIATASKSESSION00001", "task-session-secret", "")).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/key")})
	wantCode(t, "task session credentials without the token", err, "UnrecognizedClientException", "")
	l.broker.Untrack("arn:aws:ecs:us-test-1:123456789012:task/c/1")
	_, err = l.ssm(l.creds("ASIATASKSESSION00001", "task-session-secret", "task-session-token")).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/key")})
	wantCode(t, "credentials of a stopped task", err, "UnrecognizedClientException", "")
}
