package config

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by the error Load returns when the configuration has
// at least one error-severity problem.
var ErrInvalid = errors.New("invalid configuration")

// Severity says whether a Problem stops the agent.
type Severity int

const (
	// SeverityWarning is reported but does not stop the agent.
	SeverityWarning Severity = iota
	// SeverityError makes the configuration unusable.
	SeverityError
)

// String returns "warning" or "error".
func (s Severity) String() string {
	if s == SeverityError {
		return "error"
	}
	return "warning"
}

// Problem is one thing wrong with the configuration. Message never contains
// the value of a secret key.
type Problem struct {
	Severity Severity
	// Where is "path:line", "path", or "environment".
	Where string
	// Key is the setting's name as written in its source (environment name,
	// or TOML name for the TOML file); empty when the problem is not about one key.
	Key     string
	Message string
}

// String renders the problem as "where: KEY: message", with "warning: "
// before the message for warnings, so that every line starts with its place.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Where)
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	if p.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found while loading, in the order found.
type Problems []Problem

// HasErrors reports whether any problem is an error.
func (ps Problems) HasErrors() bool {
	for _, p := range ps {
		if p.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Err returns nil when there are no errors, and otherwise an error wrapping
// ErrInvalid whose text lists every error.
func (ps Problems) Err() error {
	var lines []string
	for _, p := range ps {
		if p.Severity == SeverityError {
			lines = append(lines, p.String())
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return fmt.Errorf("%w:\n%s", ErrInvalid, strings.Join(lines, "\n"))
}
