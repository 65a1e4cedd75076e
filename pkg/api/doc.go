// Package api holds Berth's wire types: the ACS and TCS websocket frames and
// the task model they carry (member names exactly as in the ACS model,
// shared/protocol/acs-api-2.json), the Docker Engine API subset that arrives
// inside a container's dockerConfig strings, the epoch-seconds timestamp
// of the ECS JSON protocols, and the agent's StateChange (a task or
// container transition to submit: made by pkg/engine, kept in pkg/state's
// outbox, submitted by pkg/registration). Its subpackage arn is the project's one ARN
// parser.
//
// The ECS API's own shapes are the AWS SDK's; only the endpoint encodes and
// decodes them (pkg/cluster), so the agent does not link the SDK's ECS
// client through this package.
//
// The package encodes, decodes and validates; it does no I/O and imports no
// other Berth package, so every other package (agent and endpoint alike) may
// import it.
package api
