package awsproto

import (
	"bytes"
	"encoding/json"
)

// EmptyJSON reports whether a JSON member's value is unset as AWS clients
// send it: null, false, 0, "", [] or {}, or an object of such values.
// Handlers that refuse members by name (the ECS and Logs member tables)
// treat such a member as absent.
func EmptyJSON(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	switch string(raw) {
	case "", "null", "false", "0", `""`, "[]", "{}":
		return true
	}
	if raw[0] != '{' {
		return false
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return false
	}
	for _, v := range obj {
		if !EmptyJSON(v) {
			return false
		}
	}
	return true
}
