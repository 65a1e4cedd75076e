// Package registration is the agent's side of the ECS control plane: the ECS
// API client (aws-sdk-go-v2 with ECS_BACKEND_HOST as base endpoint and the
// standard credential chain), RegisterContainerInstance with the instance's
// resources, attributes and tags, the ACS websocket session that delivers
// tasks (Session), the TCS websocket on which it publishes container health
// (Telemetry), and the Submitter that drains the state outbox into
// SubmitTaskStateChange and SubmitContainerStateChange.
//
// It starts no container: payloads go to a PayloadHandler (pkg/agent's
// Agent.HandlePayload), state changes come from an Outbox (pkg/state's DB)
// and container health from a HealthSource in pkg/container's neutral
// types (the engine's TaskHealth), which Telemetry maps onto the TCS wire
// types. cmd/agent, dev mode and tests wire it; among Berth packages it
// imports pkg/api, pkg/state and pkg/container only.
package registration
