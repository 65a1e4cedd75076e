package walkthrough_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/internal/testenv"
)

// tfWalk is the operator's configuration, formatted with the region, the
// admin key id and secret, the endpoint (the recording proxy), the two
// secret values, the image and the execution role. The revision is a
// variable, so the second apply rolls a new task definition revision out.
//
// The service runs in dev mode's cluster "default" (its agent is
// registered there; dev mode creates it), read with a data source. The
// cluster with container insights is the configuration's own ("walk"):
// adopting "default" would need an import, and the provider builds the
// imported ARN from an account id it learns only from STS, which the
// endpoint does not serve (skip_requesting_account_id leaves it empty);
// and ECS refuses to delete a cluster an instance is registered in.
const tfWalk = `
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "5.100.0" }
  }
}

provider "aws" {
  region                      = "%[1]s"
  access_key                  = "%[2]s"
  secret_key                  = "%[3]s"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {
    ecs            = "%[4]s"
    ssm            = "%[4]s"
    secretsmanager = "%[4]s"
  }
  default_tags {
    tags = { project = "walk", managed-by = "terraform" }
  }
}

variable "revision" {
  type = string
}

data "aws_ecs_cluster" "dev" {
  cluster_name = "default"
}

resource "aws_ecs_cluster" "walk" {
  name = "walk"
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ssm_parameter" "db" {
  name        = "/walk/db-password"
  description = "the app's database password"
  type        = "SecureString"
  value       = "%[5]s"
}

resource "aws_secretsmanager_secret" "api" {
  name                    = "walk-api"
  description             = "the app's API token"
  recovery_window_in_days = 0
}

resource "aws_secretsmanager_secret_version" "api" {
  secret_id     = aws_secretsmanager_secret.api.id
  secret_string = jsonencode({ token = "%[6]s" })
}

resource "aws_ecs_task_definition" "app" {
  family             = "walk-app"
  network_mode       = "bridge"
  execution_role_arn = "%[8]s"
  container_definitions = jsonencode([{
    name        = "app"
    image       = "%[7]s"
    memory      = 32
    essential   = true
    environment = [{ name = "REVISION", value = var.revision }]
    secrets = [
      { name = "DB_PASSWORD", valueFrom = aws_ssm_parameter.db.arn },
      { name = "API_TOKEN", valueFrom = "${aws_secretsmanager_secret.api.arn}:token::" },
    ]
  }])
  depends_on = [aws_secretsmanager_secret_version.api]
}

resource "aws_ecs_service" "app" {
  name                               = "walk-app"
  cluster                            = data.aws_ecs_cluster.dev.arn
  task_definition                    = aws_ecs_task_definition.app.arn
  desired_count                      = 2
  deployment_minimum_healthy_percent = 50
  deployment_maximum_percent         = 200
  wait_for_steady_state              = true
  propagate_tags                     = "SERVICE"
  enable_ecs_managed_tags            = true
  ordered_placement_strategy {
    type  = "spread"
    field = "instanceId"
  }
  ordered_placement_strategy {
    type  = "binpack"
    field = "memory"
  }
  placement_constraints {
    type       = "memberOf"
    expression = "attribute:ecs.os-type == linux"
  }
}
`

// TestTerraformWalkThrough applies tfWalk against dev mode, checks the
// tasks run with the secrets in their environment, rolls revision 2 out
// with wait_for_steady_state, plans again expecting no changes, destroys,
// and checks that nothing is left and that no value leaked.
func TestTerraformWalkThrough(t *testing.T) {
	if testing.Short() {
		t.Skip("runs terraform and dev mode")
	}
	l := startDevLab(t)
	v := newSecretValues()
	run := testenv.Terraform(t, fmt.Sprintf(tfWalk, region, l.adminID, l.adminSecret, l.proxyURL, v.db, v.token, l.image, execRoleArn))
	run(0, "init", "-input=false", "-no-color")
	run(0, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "revision=1")
	ctx := t.Context()

	tasks := l.waitService(t, "walk-app", "arn:aws:ecs:"+region+":"+account+":task-definition/walk-app:1", 2)
	l.checkSecretsArrived(t, tasks, v, "1")
	cl, err := l.ecs.DescribeClusters(ctx, &ecs.DescribeClustersInput{Clusters: []string{"walk"},
		Include: []ecstypes.ClusterField{ecstypes.ClusterFieldSettings, ecstypes.ClusterFieldTags}})
	if err != nil || len(cl.Clusters) != 1 {
		t.Fatalf("describe cluster walk: %v", err)
	}
	if s := cl.Clusters[0].Settings; len(s) != 1 || s[0].Name != ecstypes.ClusterSettingNameContainerInsights || aws.ToString(s[0].Value) != "enabled" {
		t.Errorf("cluster walk's settings: %+v, want containerInsights enabled", s)
	}
	if !hasTag(cl.Clusters[0].Tags, "project", "walk") {
		t.Errorf("cluster walk's tags %+v lack the provider's default tag project=walk", cl.Clusters[0].Tags)
	}
	svc, err := l.ecs.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("default"), Services: []string{"walk-app"},
		Include: []ecstypes.ServiceField{ecstypes.ServiceFieldTags}})
	if err != nil || len(svc.Services) != 1 {
		t.Fatalf("describe service: %v", err)
	}
	s := svc.Services[0]
	if len(s.PlacementStrategy) != 2 || s.PlacementStrategy[1].Type != ecstypes.PlacementStrategyTypeBinpack ||
		len(s.PlacementConstraints) != 1 || aws.ToString(s.PlacementConstraints[0].Expression) != "attribute:ecs.os-type == linux" {
		t.Errorf("the service's placement: strategies %+v, constraints %+v", s.PlacementStrategy, s.PlacementConstraints)
	}
	if !hasTag(s.Tags, "managed-by", "terraform") {
		t.Errorf("the service's tags %+v lack the provider's default tag managed-by=terraform", s.Tags)
	}

	// Revision 2, rolled out: apply returns once the service is steady.
	out := run(0, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "revision=2")
	if !strings.Contains(out, "aws_ecs_service.app: Modifications complete") {
		t.Errorf("the second apply did not update the service:\n%s", out)
	}
	tasks = l.waitService(t, "walk-app", "arn:aws:ecs:"+region+":"+account+":task-definition/walk-app:2", 2)
	l.checkSecretsArrived(t, tasks, v, "2")

	// A second plan shows no changes (exit code 0 with -detailed-exitcode).
	run(0, "plan", "-detailed-exitcode", "-input=false", "-no-color", "-var", "revision=2")

	run(0, "destroy", "-auto-approve", "-input=false", "-no-color", "-var", "revision=2")
	l.checkNothingLeft(t, "walk-app", "walk-app", "walk", "/walk", "walk-api")
	l.checkAnswers(t, v)
	l.stop(t)
	l.checkLogs(t, v)
}

func hasTag(tags []ecstypes.Tag, key, value string) bool {
	for _, tag := range tags {
		if aws.ToString(tag.Key) == key && aws.ToString(tag.Value) == value {
			return true
		}
	}
	return false
}
