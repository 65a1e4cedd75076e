// Package api holds Berth's wire types: the ACS websocket frames and the
// task model they carry (member names exactly as in the ACS model,
// shared/protocol/acs-api-2.json), the Docker Engine API subset that arrives
// inside a container's dockerConfig strings, and the ECS API shapes the
// cluster endpoint serves (files named ecs_*.go).
//
// The package encodes, decodes and validates; it does no I/O and imports no
// other Berth package, so every other package (agent and endpoint alike) may
// import it.
package api
