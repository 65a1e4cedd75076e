// Package iam is the agent side of task IAM roles and task metadata: it owns
// an in-memory credentials store fed from ACS, the credentials endpoints
// (/v1/credentials?id= and /v2/credentials/<id>) with the ECS agent's exact
// response and error shapes, a per-client-IP rate limit, an audit log, the
// source-IP-to-task check, and the task metadata v4 handlers.
//
// It is imported by pkg/agent, which feeds the Store from ACS frames,
// implements TaskLookup and MetadataSource over the engine's task states
// and runs the server (pkg/agent/iam*.go). Of Berth it imports pkg/api
// only: it knows nothing of the engine, containerd or CNI (a rule in
// internal/layout).
package iam
