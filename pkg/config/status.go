package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Status says how Berth treats a setting that the Amazon ECS agent (or
// ecs-init) reads. docs/ecs-compatibility.md lists every upstream key with
// its status; TestCompatibilityDocMatchesKeys keeps the two in step.
type Status int

const (
	// StatusBerth is a setting of Berth's own (BERTH_*): not an ECS key.
	StatusBerth Status = iota
	// StatusHonoured means the key has the ECS agent's meaning and default.
	StatusHonoured
	// StatusDifferent means the key is honoured, with the difference that
	// Key.Note describes (another default, a narrower range, a no-op).
	StatusDifferent
	// StatusNotEnforced means the value is parsed and validated, but the
	// part of Berth that would apply it does not exist yet: a value that
	// asks for it earns a start-up warning naming the key.
	StatusNotEnforced
	// StatusRefused means Berth cannot apply the key (it needs AWS, Docker,
	// Windows or hardware Berth does not have): a value that would need it
	// earns the warning "not supported by Berth: <reason>".
	StatusRefused
)

// String returns the status as docs/ecs-compatibility.md writes it.
func (s Status) String() string {
	switch s {
	case StatusHonoured:
		return "honoured"
	case StatusDifferent:
		return "honoured with difference"
	case StatusNotEnforced:
		return "accepted, not enforced yet"
	case StatusRefused:
		return "refused"
	default:
		return "Berth setting"
	}
}

// notEnforcedMessage is the warning for a StatusNotEnforced key whose value
// asks for the missing part; what names that part.
func notEnforcedMessage(what string) string {
	return "accepted but not yet enforced by Berth: " + what
}

// refusedMessage is the warning for a StatusRefused key.
func refusedMessage(reason string) string {
	return "not supported by Berth: " + reason
}

// unsupportedKey builds the row of a key Berth accepts but does not apply
// (StatusRefused). The text is kept for print-config; a value for which
// harmless reports false earns refusedMessage(reason). shape is the TOML
// value shape, typ the type column of the document.
func unsupportedKey(name, typ string, shape tomlShape, harmless func(string) bool, reason string) Key {
	return ignoredKey(name, typ, shape, StatusRefused, harmless, reason, refusedMessage(reason))
}

// ignoredKey is a key without a Config field: its text is kept for
// print-config, and a value for which harmless reports false earns the
// warning msg.
func ignoredKey(name, typ string, shape tomlShape, status Status, harmless func(string) bool, note, msg string) Key {
	return Key{
		Name:     name,
		TOMLName: tomlName(name),
		Type:     typ,
		Doc:      "Not applied by Berth; see docs/ecs-compatibility.md.",
		Status:   status,
		Note:     note,
		Upstream: true,
		want:     typ,
		shape:    shape,
		set: func(c *Config, text string) error {
			c.unsupported[name] = text
			return nil
		},
		get: func(c *Config) string { return c.unsupported[name] },
		check: func(c *Config) string {
			if harmless(c.unsupported[name]) {
				return ""
			}
			return msg
		},
	}
}

// unsupportedBool is unsupportedKey for a boolean that turns on a feature
// Berth lacks: false is harmless.
func unsupportedBool(name, reason string) Key {
	return unsupportedKey(name, "bool", tomlBool, isFalse, reason)
}

// unsupportedString is unsupportedKey for a value of any text that only
// matters when it differs from the listed harmless values.
func unsupportedString(name, typ string, shape tomlShape, reason string, harmless ...string) Key {
	return unsupportedKey(name, typ, shape, func(s string) bool {
		for _, h := range harmless {
			if strings.EqualFold(strings.TrimSpace(s), h) {
				return true
			}
		}
		return false
	}, reason)
}

// isFalse reports whether s is a boolean false; anything else (true, or a
// value that is not a boolean) would ask for the feature.
func isFalse(s string) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	return err == nil && !b
}

// isEmptyJSON reports whether s is an empty JSON array or object.
func isEmptyJSON(s string) bool {
	s = strings.Join(strings.Fields(s), "")
	return s == "[]" || s == "{}"
}

// clampDuration raises *d to minimum, as the ECS agent does for its
// container timeouts, and says so.
func clampDuration(d *time.Duration, minimum time.Duration) string {
	if *d >= minimum {
		return ""
	}
	msg := fmt.Sprintf("%s is below the minimum of %s; using %s, as the ECS agent does", formatDuration(*d), formatDuration(minimum), formatDuration(minimum))
	*d = minimum
	return msg
}

// resetDuration replaces a *d below minimum with the default dflt, as the
// ECS agent does for its cleanup intervals, and says so.
func resetDuration(d *time.Duration, minimum, dflt time.Duration) string {
	if *d >= minimum {
		return ""
	}
	msg := fmt.Sprintf("%s is below the minimum of %s; using the default %s, as the ECS agent does", formatDuration(*d), formatDuration(minimum), formatDuration(dflt))
	*d = dflt
	return msg
}
