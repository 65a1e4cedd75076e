package secrets_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

func ok(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestSSMParameters drives every SSM operation with the SDK's client:
// types, versions, selectors, overwrite, paths and paging, filters,
// history, tags, deletion and the errors AWS names.
func TestSSMParameters(t *testing.T) {
	l := startLab(t)
	c := l.ssm(nil)
	ctx := context.Background()
	dbPass := l.secretValue("s3cr3t-db-password-v1")
	dbPass2 := l.secretValue("s3cr3t-db-password-v2")

	put := func(in *ssm.PutParameterInput) *ssm.PutParameterOutput {
		t.Helper()
		out, err := c.PutParameter(ctx, in)
		ok(t, "PutParameter "+aws.ToString(in.Name), err)
		return out
	}
	out := put(&ssm.PutParameterInput{Name: aws.String("/app/db/password"), Type: types.ParameterTypeSecureString, Value: aws.String(dbPass),
		Description: aws.String("database password"), Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("core")}}})
	if out.Version != 1 || out.Tier != types.ParameterTierStandard {
		t.Errorf("first put: version %d tier %s, want 1 Standard", out.Version, out.Tier)
	}
	put(&ssm.PutParameterInput{Name: aws.String("/app/db/host"), Type: types.ParameterTypeString, Value: aws.String("db.internal")})
	put(&ssm.PutParameterInput{Name: aws.String("/app/hosts"), Type: types.ParameterTypeStringList, Value: aws.String("a,b,c")})
	put(&ssm.PutParameterInput{Name: aws.String("/other/x"), Type: types.ParameterTypeString, Value: aws.String("x")})
	put(&ssm.PutParameterInput{Name: aws.String("plain"), Type: types.ParameterTypeString, Value: aws.String("root-level")})

	_, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/db/password"), Type: types.ParameterTypeSecureString, Value: aws.String(dbPass2)})
	wantCode(t, "put without Overwrite", err, "ParameterAlreadyExists", "")
	out = put(&ssm.PutParameterInput{Name: aws.String("/app/db/password"), Value: aws.String(dbPass2), Overwrite: aws.Bool(true)})
	if out.Version != 2 {
		t.Errorf("overwrite: version %d, want 2", out.Version)
	}

	// SecureString: ciphertext without decryption, the value with it.
	g, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/db/password")})
	ok(t, "GetParameter", err)
	if v := aws.ToString(g.Parameter.Value); v == dbPass2 || v == "" || strings.Contains(v, dbPass2) {
		t.Errorf("GetParameter without WithDecryption returned %q: must not be the value", v)
	}
	g, err = c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/db/password"), WithDecryption: aws.Bool(true)})
	ok(t, "GetParameter WithDecryption", err)
	p := g.Parameter
	if aws.ToString(p.Value) != dbPass2 || p.Version != 2 || p.Type != types.ParameterTypeSecureString ||
		aws.ToString(p.ARN) != "arn:aws:ssm:us-test-1:123456789012:parameter/app/db/password" || aws.ToString(p.DataType) != "text" || p.LastModifiedDate == nil {
		t.Errorf("GetParameter: %+v", p)
	}
	g, err = c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/db/password:1"), WithDecryption: aws.Bool(true)})
	ok(t, "GetParameter :1", err)
	if aws.ToString(g.Parameter.Value) != dbPass || g.Parameter.Version != 1 || aws.ToString(g.Parameter.Selector) != ":1" {
		t.Errorf("GetParameter :1: %+v", g.Parameter)
	}
	g, err = c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("arn:aws:ssm:us-test-1:123456789012:parameter/app/db/host")})
	ok(t, "GetParameter by ARN", err)
	if aws.ToString(g.Parameter.Value) != "db.internal" {
		t.Errorf("GetParameter by ARN: %+v", g.Parameter)
	}
	_, err = c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/db/password:7")})
	wantCode(t, "GetParameter :7", err, "ParameterVersionNotFound", "version 7")
	_, err = c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/db/password:prod")})
	wantCode(t, "GetParameter :label", err, "ValidationException", "labels")
	_, err = c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/nope")})
	wantCode(t, "GetParameter missing", err, "ParameterNotFound", "")

	gs, err := c.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/app/db/host", "/nope", "/app/hosts", "/app/db/password:9"}})
	ok(t, "GetParameters", err)
	if len(gs.Parameters) != 2 || !slices.Equal(gs.InvalidParameters, []string{"/nope", "/app/db/password:9"}) {
		t.Errorf("GetParameters: %d parameters, invalid %v", len(gs.Parameters), gs.InvalidParameters)
	}

	// Paths: one level, recursive, paged one by one.
	names := func(ps []types.Parameter) []string {
		var n []string
		for _, p := range ps {
			n = append(n, aws.ToString(p.Name))
		}
		return n
	}
	bp, err := c.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/app")})
	ok(t, "GetParametersByPath", err)
	if got := names(bp.Parameters); !slices.Equal(got, []string{"/app/hosts"}) {
		t.Errorf("one level under /app: %v", got)
	}
	var all []string
	pager := ssm.NewGetParametersByPathPaginator(c, &ssm.GetParametersByPathInput{Path: aws.String("/app/"), Recursive: aws.Bool(true),
		WithDecryption: aws.Bool(true), MaxResults: aws.Int32(1)})
	pages := 0
	for pager.HasMorePages() {
		pg, err := pager.NextPage(ctx)
		ok(t, "GetParametersByPath page", err)
		pages++
		all = append(all, names(pg.Parameters)...)
	}
	if want := []string{"/app/db/host", "/app/db/password", "/app/hosts"}; !slices.Equal(all, want) || pages < 3 {
		t.Errorf("recursive /app in %d pages: %v, want %v", pages, all, want)
	}
	_, err = c.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/app"),
		ParameterFilters: []types.ParameterStringFilter{{Key: aws.String("Type"), Values: []string{"String"}}}})
	wantCode(t, "GetParametersByPath ParameterFilters", err, "ValidationException", "ParameterFilters")
	_, err = c.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("app")})
	wantCode(t, "GetParametersByPath relative", err, "ValidationException", "")

	// DescribeParameters with filters; never a value.
	d, err := c.DescribeParameters(ctx, &ssm.DescribeParametersInput{ParameterFilters: []types.ParameterStringFilter{
		{Key: aws.String("Type"), Values: []string{"SecureString"}}}})
	ok(t, "DescribeParameters Type", err)
	if len(d.Parameters) != 1 || aws.ToString(d.Parameters[0].Name) != "/app/db/password" || aws.ToString(d.Parameters[0].KeyId) != "alias/aws/ssm" ||
		aws.ToString(d.Parameters[0].Description) != "" && d.Parameters[0].Version != 2 {
		t.Errorf("DescribeParameters Type=SecureString: %+v", d.Parameters)
	}
	d, err = c.DescribeParameters(ctx, &ssm.DescribeParametersInput{ParameterFilters: []types.ParameterStringFilter{
		{Key: aws.String("Path"), Option: aws.String("Recursive"), Values: []string{"/app"}},
		{Key: aws.String("Name"), Option: aws.String("Contains"), Values: []string{"db"}}}})
	ok(t, "DescribeParameters Path", err)
	if len(d.Parameters) != 2 {
		t.Errorf("DescribeParameters Path /app recursive, Name contains db: %d parameters", len(d.Parameters))
	}
	d, err = c.DescribeParameters(ctx, &ssm.DescribeParametersInput{ParameterFilters: []types.ParameterStringFilter{
		{Key: aws.String("tag:team"), Values: []string{"core"}}}})
	ok(t, "DescribeParameters tag", err)
	if len(d.Parameters) != 1 {
		t.Errorf("DescribeParameters tag:team=core: %d parameters", len(d.Parameters))
	}
	d, err = c.DescribeParameters(ctx, &ssm.DescribeParametersInput{MaxResults: aws.Int32(2)})
	ok(t, "DescribeParameters page", err)
	if len(d.Parameters) != 2 || d.NextToken == nil {
		t.Errorf("DescribeParameters MaxResults 2: %d parameters, next %v", len(d.Parameters), d.NextToken)
	}
	_, err = c.DescribeParameters(ctx, &ssm.DescribeParametersInput{ParameterFilters: []types.ParameterStringFilter{{Key: aws.String("Label"), Values: []string{"x"}}}})
	wantCode(t, "DescribeParameters Label", err, "InvalidFilterKey", "") // the SDK shape of InvalidFilterKey has no message
	_, err = c.DescribeParameters(ctx, &ssm.DescribeParametersInput{ParameterFilters: []types.ParameterStringFilter{{Key: aws.String("Tier"), Option: aws.String("Contains"), Values: []string{"x"}}}})
	wantCode(t, "DescribeParameters Tier Contains", err, "InvalidFilterOption", "")

	h, err := c.GetParameterHistory(ctx, &ssm.GetParameterHistoryInput{Name: aws.String("/app/db/password"), WithDecryption: aws.Bool(true)})
	ok(t, "GetParameterHistory", err)
	if len(h.Parameters) != 2 || aws.ToString(h.Parameters[0].Value) != dbPass || aws.ToString(h.Parameters[1].Value) != dbPass2 {
		t.Errorf("GetParameterHistory: %+v", h.Parameters)
	}

	// Tags.
	_, err = c.AddTagsToResource(ctx, &ssm.AddTagsToResourceInput{ResourceType: types.ResourceTypeForTaggingParameter, ResourceId: aws.String("/app/db/host"),
		Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("lab")}}})
	ok(t, "AddTagsToResource", err)
	lt, err := c.ListTagsForResource(ctx, &ssm.ListTagsForResourceInput{ResourceType: types.ResourceTypeForTaggingParameter, ResourceId: aws.String("/app/db/host")})
	ok(t, "ListTagsForResource", err)
	if len(lt.TagList) != 1 || aws.ToString(lt.TagList[0].Key) != "env" {
		t.Errorf("ListTagsForResource: %+v", lt.TagList)
	}
	_, err = c.RemoveTagsFromResource(ctx, &ssm.RemoveTagsFromResourceInput{ResourceType: types.ResourceTypeForTaggingParameter, ResourceId: aws.String("/app/db/host"), TagKeys: []string{"env"}})
	ok(t, "RemoveTagsFromResource", err)
	_, err = c.ListTagsForResource(ctx, &ssm.ListTagsForResourceInput{ResourceType: types.ResourceTypeForTaggingDocument, ResourceId: aws.String("x")})
	wantCode(t, "ListTagsForResource Document", err, "InvalidResourceType", "")

	// Deletion.
	_, err = c.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/other/x")})
	ok(t, "DeleteParameter", err)
	_, err = c.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/other/x")})
	wantCode(t, "DeleteParameter twice", err, "ParameterNotFound", "")
	dp, err := c.DeleteParameters(ctx, &ssm.DeleteParametersInput{Names: []string{"plain", "/gone"}})
	ok(t, "DeleteParameters", err)
	if !slices.Equal(dp.DeletedParameters, []string{"plain"}) || !slices.Equal(dp.InvalidParameters, []string{"/gone"}) {
		t.Errorf("DeleteParameters: deleted %v invalid %v", dp.DeletedParameters, dp.InvalidParameters)
	}
	// A recreated parameter starts again at version 1.
	out = put(&ssm.PutParameterInput{Name: aws.String("plain"), Type: types.ParameterTypeString, Value: aws.String("again")})
	if out.Version != 1 {
		t.Errorf("recreated parameter: version %d, want 1", out.Version)
	}
}

// TestSSMRefusals proves AWS's name rules and the refused members: each
// answers the error AWS names, and the store is unchanged.
func TestSSMRefusals(t *testing.T) {
	l := startLab(t)
	c := l.ssm(nil)
	ctx := context.Background()
	deep := strings.Repeat("/l", 16)
	cases := []struct {
		name      string
		in        ssm.PutParameterInput
		code, msg string
	}{
		{"reserved aws prefix", ssm.PutParameterInput{Name: aws.String("/aws/x"), Type: types.ParameterTypeString, Value: aws.String("v")}, "ValidationException", "reserved"},
		{"reserved ssm prefix", ssm.PutParameterInput{Name: aws.String("SSM-thing"), Type: types.ParameterTypeString, Value: aws.String("v")}, "ValidationException", "reserved"},
		{"slash without leading slash", ssm.PutParameterInput{Name: aws.String("a/b"), Type: types.ParameterTypeString, Value: aws.String("v")}, "ValidationException", "fully qualified"},
		{"bad character", ssm.PutParameterInput{Name: aws.String("/a b"), Type: types.ParameterTypeString, Value: aws.String("v")}, "ValidationException", ""},
		{"too long", ssm.PutParameterInput{Name: aws.String("/" + strings.Repeat("n", 1011)), Type: types.ParameterTypeString, Value: aws.String("v")}, "ValidationException", "1011"},
		{"16 levels", ssm.PutParameterInput{Name: aws.String(deep), Type: types.ParameterTypeString, Value: aws.String("v")}, "HierarchyLevelLimitExceededException", "15"},
		{"no type", ssm.PutParameterInput{Name: aws.String("/t"), Value: aws.String("v")}, "ValidationException", "type"},
		{"other KMS key", ssm.PutParameterInput{Name: aws.String("/k"), Type: types.ParameterTypeSecureString, Value: aws.String("v"), KeyId: aws.String("alias/mine")}, "InvalidKeyId", "alias/aws/ssm"},
		{"KeyId on String", ssm.PutParameterInput{Name: aws.String("/k"), Type: types.ParameterTypeString, Value: aws.String("v"), KeyId: aws.String("alias/aws/ssm")}, "ValidationException", "KeyId"},
		{"pattern mismatch", ssm.PutParameterInput{Name: aws.String("/p"), Type: types.ParameterTypeString, Value: aws.String("abc"), AllowedPattern: aws.String("^[0-9]+$")}, "ParameterPatternMismatchException", ""},
		{"policies", ssm.PutParameterInput{Name: aws.String("/p"), Type: types.ParameterTypeString, Value: aws.String("1"), Policies: aws.String("[]")}, "ValidationException", "Policies"},
		{"data type", ssm.PutParameterInput{Name: aws.String("/p"), Type: types.ParameterTypeString, Value: aws.String("ami-1"), DataType: aws.String("aws:ec2:image")}, "ValidationException", "DataType"},
		{"value too big", ssm.PutParameterInput{Name: aws.String("/p"), Type: types.ParameterTypeString, Value: aws.String(strings.Repeat("v", 4097))}, "ValidationException", "4096"},
		{"tags with overwrite", ssm.PutParameterInput{Name: aws.String("/p"), Type: types.ParameterTypeString, Value: aws.String("1"), Overwrite: aws.Bool(true),
			Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}}, "ValidationException", "overwrite"},
	}
	before := l.rawStore(t)
	for _, tc := range cases {
		_, err := c.PutParameter(ctx, &tc.in)
		wantCode(t, tc.name, err, tc.code, tc.msg)
	}
	if after := l.rawStore(t); after != before {
		t.Errorf("refused requests changed the store:\n%s", after)
	}
	// The limits' edges are accepted.
	_, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(strings.Repeat("/l", 15)), Type: types.ParameterTypeString, Value: aws.String("v")})
	ok(t, "15 levels", err)
	_, err = c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/adv"), Type: types.ParameterTypeString, Value: aws.String(strings.Repeat("v", 5000)), Tier: types.ParameterTierAdvanced})
	ok(t, "Advanced tier value", err)
	_, err = c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/num"), Type: types.ParameterTypeString, Value: aws.String("42"), AllowedPattern: aws.String("^[0-9]+$")})
	ok(t, "pattern match", err)
	_, err = c.GetParameters(ctx, &ssm.GetParametersInput{Names: make([]string, 11)})
	wantCode(t, "GetParameters 11 names", err, "ValidationException", "")
}

// TestSSMVersionLimit keeps the last 100 versions, as AWS does.
func TestSSMVersionLimit(t *testing.T) {
	l := startLab(t)
	c := l.ssm(nil)
	ctx := context.Background()
	for i := 1; i <= 101; i++ {
		_, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/v"), Type: types.ParameterTypeString, Value: aws.String(fmt.Sprint(i)), Overwrite: aws.Bool(true)})
		ok(t, "put", err)
	}
	_, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/v:1")})
	wantCode(t, "version 1 of 101", err, "ParameterVersionNotFound", "")
	g, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/v:2")})
	ok(t, "version 2 of 101", err)
	if aws.ToString(g.Parameter.Value) != "2" {
		t.Errorf("version 2: %q", aws.ToString(g.Parameter.Value))
	}
}
