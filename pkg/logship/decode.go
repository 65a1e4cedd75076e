package logship

import (
	"bytes"
	"encoding/json"
	"time"
)

// decodeEntry decodes one json-file line. Lines in the exact shape
// pkg/logs and Docker write ({"log":…,"stream":…,"time":…} with simple
// escapes) take a fast path; anything else goes through encoding/json.
func decodeEntry(line []byte) (entry, error) {
	if e, ok := decodeFast(line); ok {
		return e, nil
	}
	var e entry
	err := json.Unmarshal(bytes.TrimSpace(line), &e)
	return e, err
}

func decodeFast(line []byte) (entry, bool) {
	const (
		pLog    = `{"log":"`
		pStream = `,"stream":"`
		pTime   = `,"time":"`
	)
	rest, ok := bytes.CutPrefix(line, []byte(pLog))
	if !ok {
		return entry{}, false
	}
	msg, rest, ok := unquoteSimple(rest)
	if !ok {
		return entry{}, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(pStream)); !ok {
		return entry{}, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 {
		return entry{}, false
	}
	stream := string(rest[:i])
	if rest, ok = bytes.CutPrefix(rest[i+1:], []byte(pTime)); !ok {
		return entry{}, false
	}
	if i = bytes.IndexByte(rest, '"'); i < 0 {
		return entry{}, false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(rest[:i]))
	if err != nil {
		return entry{}, false
	}
	if tail := bytes.TrimSpace(rest[i+1:]); len(tail) != 1 || tail[0] != '}' {
		return entry{}, false
	}
	return entry{Log: msg, Stream: stream, Time: ts}, true
}

// unquoteSimple reads a JSON string body up to its closing quote, handling
// the one-character escapes; \u escapes report !ok (the slow path decodes
// them, surrogate pairs included).
func unquoteSimple(b []byte) (string, []byte, bool) {
	end := bytes.IndexByte(b, '"')
	if end < 0 {
		return "", nil, false
	}
	if bytes.IndexByte(b[:end], '\\') < 0 {
		return string(b[:end]), b[end+1:], true
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			return string(out), b[i+1:], true
		case c < 0x20:
			return "", nil, false
		case c != '\\':
			out = append(out, c)
			continue
		}
		i++
		if i >= len(b) {
			return "", nil, false
		}
		switch b[i] {
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'r':
			out = append(out, '\r')
		case '"', '\\', '/':
			out = append(out, b[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		default:
			return "", nil, false
		}
	}
	return "", nil, false
}
