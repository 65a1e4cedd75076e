// Package logs owns container log capture and reading.
//
// Capture runs in one log daemon per agent (cmd/logd's berth-logd, or the
// agent binary, in the hidden "log-daemon" mode, RunDaemon; DaemonBinary) that reads every container's stdout and
// stderr from FIFOs which containerd's shim writes, so container output never
// flows through the agent and an agent restart never blocks a container.
// Captures is the daemon's client: pkg/runtime registers each task's FIFOs
// with it, and it starts the daemon and starts it again if it dies. The
// daemon writes Docker-compatible json-file lines and rotates them by size.
// Containers created before the daemon keep the per-container logger their
// shim started ("logger" mode, RunShimLogger); ServeMode serves both modes
// for every program that may be the runtime's logger binary. Readers (Read)
// tail, filter by time and follow the files across rotations; the
// introspection API and log drivers import this package.
package logs

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
)

// LoggerMode is the first argument the shim passes to the per-container
// logger of a container created before the log daemon: its task's log URI
// is binary://<agent>?logger=<encoded Config> (ShimArgs), and the shim runs
// "<agent> logger <encoded Config>".
const LoggerMode = "logger"

// Config says where one container's log goes. It travels to the logger
// process as a single self-contained argument (see Encode).
type Config struct {
	// Path is the absolute path of the current json-file log; rotated files
	// are Path.1 (newest) to Path.<MaxFile-1> (oldest).
	Path string `json:"path"`
	// MaxSize rotates the file once it reaches this many bytes; 0 never rotates.
	MaxSize int64 `json:"maxSize,omitempty"`
	// MaxFile is how many files, the current one included, are kept; values
	// below 1 mean 1.
	MaxFile int `json:"maxFile,omitempty"`
}

// Validate reports a Config that the logger could not honour.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("log config: path is empty")
	}
	if !filepath.IsAbs(c.Path) {
		return fmt.Errorf("log config: path %q is not absolute", c.Path)
	}
	if c.MaxSize < 0 {
		return fmt.Errorf("log config: max-size %d is negative", c.MaxSize)
	}
	if c.MaxFile < 0 {
		return fmt.Errorf("log config: max-file %d is negative", c.MaxFile)
	}
	return nil
}

func (c Config) maxFile() int {
	if c.MaxFile < 1 {
		return 1
	}
	return c.MaxFile
}

// Encode returns the Config as one URL-safe argument for the logger process.
func (c Config) Encode() (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode log config: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodeConfig parses an argument produced by Config.Encode.
func DecodeConfig(arg string) (Config, error) {
	b, err := base64.RawURLEncoding.DecodeString(arg)
	if err != nil {
		return Config{}, fmt.Errorf("decode log config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("decode log config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ShimArgs returns the query arguments for cio.BinaryIO so that the shim
// runs "<binary> logger <encoded cfg>".
func ShimArgs(cfg Config) (map[string]string, error) {
	arg, err := cfg.Encode()
	if err != nil {
		return nil, err
	}
	return map[string]string{LoggerMode: arg}, nil
}
