package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// TestServeDeclaredRoles: with [[roles]] in cluster.toml, task definitions
// may name the declared roles and no other.
func TestServeDeclaredRoles(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	addr := freePort(t)
	cfg := filepath.Join(dir, "cluster.toml")
	doc := fmt.Sprintf("listen = %q\ninsecure_http = true\nregion = \"us-test-1\"\naccount_id = \"123456789012\"\ndata_dir = %q\n\n"+
		"[[roles]]\narn = \"arn:aws:iam::123456789012:role/app\"\nsource = \"static\"\naccess_key_id = \"AKIAEXAMPLESTATIC01\"\nsecret_access_key = \"example-secret\"\nduration = \"30m\"\n",
		addr, dataDir)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	startServe(t, cfg, addr)
	out, errOut, code := keysCmd(t, dataDir, "create", "--role", "admin")
	m := credRE.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("keys create: code %d out %q err %q", code, out, errOut)
	}
	client := ecs.New(ecs.Options{Region: "us-test-1", BaseEndpoint: aws.String("http://" + addr),
		Credentials: credentials.NewStaticCredentialsProvider(m[1], m[2], ""), HTTPClient: awshttp.NewBuildableClient(), Retryer: aws.NopRetryer{}})
	register := func(role string) error {
		_, err := client.RegisterTaskDefinition(context.Background(), &ecs.RegisterTaskDefinitionInput{
			Family: aws.String("app"), TaskRoleArn: aws.String(role),
			ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Memory: aws.Int32(64)}},
		})
		return err
	}
	if err := register("arn:aws:iam::123456789012:role/app"); err != nil {
		t.Fatalf("declared role refused: %v", err)
	}
	err := register("arn:aws:iam::123456789012:role/other")
	var ip *types.InvalidParameterException
	if !errors.As(err, &ip) || !strings.Contains(ip.ErrorMessage(), "taskRoleArn arn:aws:iam::123456789012:role/other is not a role declared") {
		t.Fatalf("undeclared role: want InvalidParameterException, got %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "roles-id.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials id key: %v", err)
	}
}

func TestConfigRolesChecked(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cluster.toml")
	doc := "insecure_http = true\naccount_id = \"123456789012\"\ndata_dir = \"/tmp/x\"\n[[roles]]\narn = \"arn:aws:iam::123456789012:role/app\"\nsource = \"static\"\n"
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var outb, errb strings.Builder
	code := run(context.Background(), []string{"serve", "--config", cfg}, &outb, &errb)
	if code == 0 || !strings.Contains(errb.String(), "needs access_key_id and secret_access_key") {
		t.Fatalf("static role without keys: code %d, stderr %q", code, errb.String())
	}
}
