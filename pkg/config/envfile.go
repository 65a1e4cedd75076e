package config

import (
	"bytes"
	"fmt"
	"strings"
)

// EnvEntry is one KEY=VALUE assignment read from an ecs.config file.
type EnvEntry struct {
	Key   string
	Value string
	// Line is the 1-based line the assignment is on.
	Line int
}

// ParseEnvFile parses the ecs.config format: one KEY=VALUE per line, blank
// lines and lines starting with # ignored, an optional "export " prefix,
// whitespace around the key and the value trimmed, and a value optionally
// wrapped in one pair of single or double quotes (taken literally; there are no
// escapes, as in systemd's EnvironmentFile). A key assigned twice keeps the
// last value and yields a warning naming both lines; a non-empty line without
// "=" is an error. path is used only to label problems.
//
// Entries come back in line order, one per key. Problems never contain a
// value, because values may be secrets.
func ParseEnvFile(data []byte, path string) ([]EnvEntry, Problems) {
	var (
		all      []EnvEntry
		problems Problems
		last     = map[string]int{} // key -> index in all of its last assignment
	)
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	for i, raw := range strings.Split(string(data), "\n") {
		lineNo := i + 1
		where := fmt.Sprintf("%s:%d", path, lineNo)
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "export"); ok && rest != "" && isSpace(rest[0]) {
			line = strings.TrimSpace(rest)
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			problems = append(problems, Problem{Severity: SeverityError, Where: where,
				Message: `line has no "=" (expected KEY=VALUE, a # comment or a blank line)`})
			continue
		}
		key = strings.TrimSpace(key)
		if !validEnvName(key) {
			problems = append(problems, Problem{Severity: SeverityError, Where: where,
				Message: fmt.Sprintf("%q is not a valid variable name (allowed: letters, digits and _, not starting with a digit)", key)})
			continue
		}
		value, err := unquote(strings.TrimSpace(value))
		if err != nil {
			problems = append(problems, Problem{Severity: SeverityError, Where: where, Key: key, Message: err.Error()})
			continue
		}
		if prev, dup := last[key]; dup {
			problems = append(problems, Problem{Severity: SeverityWarning, Where: where, Key: key,
				Message: fmt.Sprintf("also set on line %d; line %d wins", all[prev].Line, lineNo)})
		}
		last[key] = len(all)
		all = append(all, EnvEntry{Key: key, Value: value, Line: lineNo})
	}
	var entries []EnvEntry
	for i, e := range all {
		if last[e.Key] == i {
			entries = append(entries, e)
		}
	}
	return entries, problems
}

// unquote removes one pair of matching quotes around v. A value that opens a
// quote it does not close is an error rather than a literal, because that is
// nearly always a typo that would otherwise surface as a confusing value.
func unquote(v string) (string, error) {
	if v == "" {
		return v, nil
	}
	q := v[0]
	if q != '"' && q != '\'' {
		return v, nil
	}
	if len(v) < 2 || v[len(v)-1] != q {
		return "", fmt.Errorf("value opens a %c quote that is not closed at the end of the line", q)
	}
	return v[1 : len(v)-1], nil
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' }

// validEnvName reports whether s is a portable environment variable name.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
