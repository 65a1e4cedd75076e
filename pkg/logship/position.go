package logship

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// PositionStore persists a Shipper's position.
type PositionStore interface {
	// Load returns the saved state; ok is false when none was saved.
	Load() (st SavedState, ok bool, err error)
	// Save replaces the saved state.
	Save(st SavedState) error
}

// SavedState is what a Shipper persists.
type SavedState struct {
	// Committed is the position up to which every line was delivered (or
	// counted as dropped).
	Committed Position `json:"committed"`
	// InFlight, when set, marks a batch handed to the driver whose
	// delivery is not confirmed yet. After a crash a Reconciler tells how
	// much of it arrived.
	InFlight *InFlight `json:"inFlight,omitempty"`
	// Dropped is the lifetime count of lines lost to rotation or overflow.
	Dropped uint64 `json:"dropped,omitempty"`
}

// InFlight marks the end of a batch being shipped.
type InFlight struct {
	// Pos is the position after the batch's last message.
	Pos Position `json:"pos"`
}

// FilePositions stores the state as JSON in one file, replaced atomically
// (write to a temporary file, fsync, rename), so a crash leaves either the
// old or the new state.
type FilePositions struct {
	Path string
}

var _ PositionStore = (*FilePositions)(nil)

// Load reads the file; a missing file is not an error.
func (p *FilePositions) Load() (SavedState, bool, error) {
	b, err := os.ReadFile(p.Path)
	if errors.Is(err, os.ErrNotExist) {
		return SavedState{}, false, nil
	}
	if err != nil {
		return SavedState{}, false, fmt.Errorf("read log position %s: %w", p.Path, err)
	}
	var st SavedState
	if err := json.Unmarshal(b, &st); err != nil {
		return SavedState{}, false, fmt.Errorf("decode log position %s: %w", p.Path, err)
	}
	return st, true, nil
}

// Save writes the state atomically.
func (p *FilePositions) Save(st SavedState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode log position: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(p.Path), 0o700); err != nil {
		return fmt.Errorf("save log position: %w", err)
	}
	tmp := p.Path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("save log position: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("save log position %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save log position %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save log position %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p.Path); err != nil {
		return fmt.Errorf("save log position: %w", err)
	}
	return nil
}
