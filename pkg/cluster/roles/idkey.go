package roles

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
)

// IDKeyFile is the file, inside the endpoint's data directory, that holds
// the key credentials ids are derived under (BrokerOptions.IDKey).
const IDKeyFile = "roles-id.key"

// LoadIDKey reads the 32-byte credentials-id key from dataDir, creating it
// (mode 0600) on first use, so credentials ids survive an endpoint restart.
func LoadIDKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, IDKeyFile)
	if b, err := os.ReadFile(path); err == nil && len(b) == 32 {
		return b, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("credentials id key: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("credentials id key: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("credentials id key: %w", err)
	}
	return b, nil
}
