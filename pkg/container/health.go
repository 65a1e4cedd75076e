package container

import (
	"encoding/json"
	"fmt"
)

// HealthStatus is the result of a container's Docker health check.
type HealthStatus int

// Health statuses. HealthUnknown means no health check or none decided yet.
const (
	HealthUnknown HealthStatus = iota
	HealthHealthy
	HealthUnhealthy
)

var healthNames = [...]string{"UNKNOWN", "HEALTHY", "UNHEALTHY"}

// String returns the ECS name of the health status.
func (h HealthStatus) String() string {
	if h < 0 || int(h) >= len(healthNames) {
		return fmt.Sprintf("HealthStatus(%d)", int(h))
	}
	return healthNames[h]
}

// MarshalJSON writes the ECS name.
func (h HealthStatus) MarshalJSON() ([]byte, error) { return json.Marshal(h.String()) }

// UnmarshalJSON reads an ECS name.
func (h *HealthStatus) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return fmt.Errorf("health status: %w", err)
	}
	for i, n := range healthNames {
		if n == name {
			*h = HealthStatus(i)
			return nil
		}
	}
	return fmt.Errorf("health status: unknown %q", name)
}

// TaskHealth is the health of one running task's containers that have a
// health check, as the engine reports it (engine.Engine.TaskHealth);
// pkg/registration maps it onto the TCS wire types. Only containers with a
// health check are listed, in task definition order.
type TaskHealth struct {
	// TaskARN, Cluster, Family and Version name the task and its definition.
	TaskARN, Cluster, Family, Version string
	Containers                        []ContainerHealth
}

// ContainerHealth is the health of one container of a task.
type ContainerHealth struct {
	// Name is the task definition's container name.
	Name   string
	Status HealthStatus
}
