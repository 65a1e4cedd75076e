package roles

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestLoadIDKeyPersists: the key is created once, private, and the same on
// every later load, so credentials ids survive an endpoint restart.
func TestLoadIDKeyPersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := LoadIDKey(dir)
	if err != nil || len(first) != 32 {
		t.Fatalf("LoadIDKey = %d bytes, %v; want 32 bytes", len(first), err)
	}
	st, err := os.Stat(filepath.Join(dir, IDKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", st, err)
	}
	again, err := LoadIDKey(dir)
	if err != nil || !bytes.Equal(first, again) {
		t.Fatalf("second LoadIDKey gave a different key (%v)", err)
	}
}
