// Package execrole does on the agent what a task's execution role is for,
// on the task's own path from the engine to containerd: Secrets fetches
// the values of a task's secrets from SSM Parameter Store and Secrets
// Manager (the engine's SecretSource), RegistryLogins logs in to ECR-style
// registries for its image pulls (the runtime's PullAuthorizer), both
// signed with the execution role credentials pkg/iam's Store holds for the
// task. The engine and the runtime call them directly, with the neutral
// types of pkg/container (SecretRef, Credentials).
//
// pkg/agent builds them from its configuration (which endpoint, which
// registries, which instance credentials) and hands them over; nothing
// else imports this package. Of Berth it imports pkg/api, pkg/container,
// pkg/ecrauth and pkg/iam, never the engine, the runtime or the agent's
// wiring (layout rules).
package execrole
