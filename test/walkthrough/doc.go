// Package walkthrough holds the operator walk-throughs of issue 18 as
// tests: Terraform with the AWS provider, a plain `aws` CLI script and
// aws-sdk-go-v2 each drive `berth-agent --dev` (the real binary, built by
// the test, running real tasks on containerd) through a cluster with
// container insights, SSM and Secrets Manager secrets, task definitions
// that read them, and a service with placement strategies and constraints
// rolled to a second revision; then they tear everything down and check
// through the API that nothing is left, and that no secret value appeared
// where it must not. The package has no code of its own: only its tests
// (docs/ecs-compatibility.md, "Walk-throughs"). Nothing imports it.
package walkthrough
