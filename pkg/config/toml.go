package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"github.com/BurntSushi/toml"
)

// loadTOML applies the TOML file. Each key is decoded into the Go type of its
// shape, so BurntSushi/toml marks it decoded; a top-level key without a row in
// the key table, and anything BurntSushi/toml leaves undecoded, is an error in
// TOML (unlike ecs.config, where unrelated variables are normal).
func (l *loader) loadTOML(data []byte, path string) {
	var doc map[string]toml.Primitive
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		l.problems = append(l.problems, tomlSyntaxProblem(err, path))
		return
	}
	var problems Problems
	for _, tk := range md.Keys() {
		if len(tk) != 1 {
			continue // nested keys belong to a table value
		}
		name := tk[0]
		line := tomlKeyLine(data, name)
		where := path
		if line > 0 {
			where = fmt.Sprintf("%s:%d", path, line)
		}
		k := l.byTOMLName(name)
		if k == nil {
			problems = append(problems, unknownTOMLKey(where, name, l.keys))
			continue
		}
		text, err := decodeTOMLValue(&md, doc[name], k.shape)
		if err != nil {
			msg := fmt.Sprintf("is a TOML %s, not %s", md.Type(name), k.want)
			if md.Type(name) == tomlTypeName(k.shape) {
				// The shape is right but an element is not; BurntSushi says which.
				msg = fmt.Sprintf("is not %s: %v", k.want, err)
			}
			problems = append(problems, Problem{Severity: SeverityError, Where: where, Key: name, Message: msg})
			continue
		}
		if text == "" {
			continue // an empty value counts as unset in every source
		}
		if err := k.set(l.cfg, text); err != nil {
			problems = append(problems, Problem{Severity: SeverityError, Where: where, Key: name, Message: invalidMessage(k, text, err)})
			continue
		}
		l.cfg.sources[k.Name] = Source{Kind: SourceTOML, Path: path, Line: line}
	}
	// Keys left undecoded sit inside a known key's value that has more
	// structure than its type (e.g. a sub-table inside a table of strings).
	for _, tk := range md.Undecoded() {
		if len(tk) < 2 || l.byTOMLName(tk[0]) == nil {
			continue // unknown top-level keys are reported above
		}
		where := path
		if line := tomlKeyLine(data, tk[0]); line > 0 {
			where = fmt.Sprintf("%s:%d", path, line)
		}
		problems = append(problems, Problem{Severity: SeverityError, Where: where, Key: tk.String(), Message: "unknown key"})
	}
	slices.SortStableFunc(problems, func(a, b Problem) int { return compareWhere(a.Where, b.Where) })
	l.problems = append(l.problems, problems...)
}

func unknownTOMLKey(where, name string, keys []Key) Problem {
	msg := "unknown key"
	if s := suggest(name, keys, true); s != "" {
		msg += fmt.Sprintf("; did you mean %s?", s)
	}
	return Problem{Severity: SeverityError, Where: where, Key: name, Message: msg}
}

func (l *loader) byTOMLName(name string) *Key {
	for i := range l.keys {
		if l.keys[i].TOMLName == name {
			return &l.keys[i]
		}
	}
	return nil
}

// decodeTOMLValue decodes p into the Go type of shape and renders it in
// environment syntax, so that TOML values go through the same validation as
// values from ecs.config and the environment.
func decodeTOMLValue(md *toml.MetaData, p toml.Primitive, shape tomlShape) (string, error) {
	switch shape {
	case tomlBool:
		var b bool
		err := md.PrimitiveDecode(p, &b)
		return strconv.FormatBool(b), err
	case tomlInt:
		var n int64
		err := md.PrimitiveDecode(p, &n)
		return strconv.FormatInt(n, 10), err
	case tomlIntArray:
		var ns []int64
		if err := md.PrimitiveDecode(p, &ns); err != nil {
			return "", err
		}
		return jsonText(ns)
	case tomlStringArray:
		var ss []string
		if err := md.PrimitiveDecode(p, &ss); err != nil {
			return "", err
		}
		return jsonText(ss)
	case tomlStringTable:
		var m map[string]string
		if err := md.PrimitiveDecode(p, &m); err != nil {
			return "", err
		}
		return jsonText(m)
	default:
		var s string
		err := md.PrimitiveDecode(p, &s)
		return s, err
	}
}

// tomlTypeName is the name MetaData.Type reports for a value of shape.
func tomlTypeName(shape tomlShape) string {
	switch shape {
	case tomlBool:
		return "Bool"
	case tomlInt:
		return "Integer"
	case tomlIntArray, tomlStringArray:
		return "Array"
	case tomlStringTable:
		return "Hash"
	default:
		return "String"
	}
}

func jsonText(v any) (string, error) {
	b, err := json.Marshal(v)
	if string(b) == "null" {
		return "[]", err
	}
	return string(b), err
}

func tomlSyntaxProblem(err error, path string) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) && pe.Position.Line > 0 {
		return Problem{Severity: SeverityError, Where: fmt.Sprintf("%s:%d", path, pe.Position.Line),
			Message: "TOML syntax: " + pe.Message}
	}
	return Problem{Severity: SeverityError, Where: path, Message: fmt.Sprintf("TOML syntax: %v", err)}
}

// errLineProbe makes BurntSushi/toml stop at a key and report its position.
var errLineProbe = errors.New("line probe")

type lineProbe struct{}

// UnmarshalTOML always fails, so the decoder returns a ParseError carrying
// the position of the key being decoded.
func (lineProbe) UnmarshalTOML(any) error { return errLineProbe }

// tomlKeyLine returns the line on which the top-level key is defined, or 0.
// BurntSushi/toml exposes key positions only through decode errors, so this
// decodes the document into a one-field struct whose field always fails.
func tomlKeyLine(data []byte, key string) int {
	typ := reflect.StructOf([]reflect.StructField{{
		Name: "P",
		Type: reflect.TypeFor[lineProbe](),
		Tag:  reflect.StructTag(fmt.Sprintf("toml:%q", key)),
	}})
	v := reflect.New(typ).Interface()
	_, err := toml.Decode(string(data), v)
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return pe.Position.Line
	}
	return 0
}

// compareWhere orders "path:line" labels by path, then numerically by line.
func compareWhere(a, b string) int {
	pa, la := splitWhere(a)
	pb, lb := splitWhere(b)
	if pa != pb {
		if pa < pb {
			return -1
		}
		return 1
	}
	return la - lb
}

func splitWhere(w string) (string, int) {
	for i := len(w) - 1; i >= 0; i-- {
		if w[i] == ':' {
			if n, err := strconv.Atoi(w[i+1:]); err == nil {
				return w[:i], n
			}
			break
		}
	}
	return w, 0
}
