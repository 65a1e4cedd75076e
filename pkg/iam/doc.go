// Package iam is the agent side of task IAM roles and task metadata: an
// in-memory credentials store fed from ACS, the credentials endpoints
// (/v1/credentials?id= and /v2/credentials/<id>) with the ECS agent's exact
// response and error shapes, a per-client-IP rate limit, an audit log, the
// source-IP-to-task check, and the task metadata v4 handlers.
//
// It is imported by pkg/agent, which feeds the Store from ACS frames and
// implements TaskLookup and MetadataSource over the engine. It knows nothing
// of containerd, CNI or the engine's internals.
package iam
