package auth

import (
	"encoding/base32"
	"encoding/json"
)

func base32NoPad(b []byte) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }
