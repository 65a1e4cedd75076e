// Package config owns the agent's configuration: it reads the process
// environment, the ECS agent's ecs.config file and Berth's TOML file into a
// typed Config, validates every value, and reports every problem at once with
// the place it came from (file:line, "environment" or the TOML file).
//
// Every setting is one row of the key table (keys.go): its environment name,
// type, default, documentation and whether it is secret. docs/configuration.md
// is checked against that table by a test, so adding a setting means adding a
// row, a Config field and a line in the document.
//
// Only cmd/* and pkg/agent import this package; every other package takes its
// own options struct filled from Config by pkg/agent. It imports no other
// berth package.
package config
