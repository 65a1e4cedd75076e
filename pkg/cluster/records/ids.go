package records

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
)

// NewID returns 32 lower-case hex digits, the form of ECS task and container
// instance ids.
func NewID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// NewUUID returns a random RFC 4122 UUID, the form of container and service
// event ids.
func NewUUID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// newDeploymentID returns "ecs-svc/" and 19 digits, ECS's form.
func newDeploymentID() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(8e18))
	if err != nil {
		return "", fmt.Errorf("generate deployment id: %w", err)
	}
	return fmt.Sprintf("ecs-svc/%019d", n.Int64()+1e18), nil
}
