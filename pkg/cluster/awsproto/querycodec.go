package awsproto

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The Query protocol's codec works on the AWS SDK for Go v2's input, output
// and type structs: their Go field names are the members' wire names, lists
// are "<Member>.member.<n>" in requests and <Member><member>...</member>
// </Member> in results, nested structures are "<Member>.<Field>". So an API
// decodes a request straight into the SDK's <Op>Input and encodes the SDK's
// <Op>Output, as ecsapi does with the JSON protocol.

// DecodeQuery fills the struct v points to from a Query request's form
// values (Action and Version already removed). A value of the wrong type,
// or a parameter v has no member for, is a ValidationError naming it:
// nothing a client sends is silently ignored.
func DecodeQuery(params url.Values, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("decode query: want a pointer to a struct, have %T", v)
	}
	used := make(map[string]bool, len(params))
	if err := decodeStruct(params, used, "", rv.Elem()); err != nil {
		return err
	}
	var unknown []string
	for k := range params {
		if !used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return ClientError("ValidationError", "Unknown parameter in input: %q, must be one of the operation's members", unknown[0])
	}
	return nil
}

func decodeStruct(params url.Values, used map[string]bool, prefix string, sv reflect.Value) error {
	st := sv.Type()
	for i := 0; i < st.NumField(); i++ {
		f := st.Field(i)
		if !f.IsExported() || f.Anonymous {
			continue
		}
		if err := decodeValue(params, used, prefix+f.Name, sv.Field(i)); err != nil {
			return err
		}
	}
	return nil
}

// hasPrefix reports whether any parameter is name or lies below it.
func hasPrefix(params url.Values, name string) bool {
	for k := range params {
		if k == name || strings.HasPrefix(k, name+".") {
			return true
		}
	}
	return false
}

var timeType = reflect.TypeFor[time.Time]()

func decodeValue(params url.Values, used map[string]bool, name string, fv reflect.Value) error {
	t := fv.Type()
	switch {
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && t.Elem() != timeType:
		if !hasPrefix(params, name) {
			return nil
		}
		p := reflect.New(t.Elem())
		if err := decodeStruct(params, used, name+".", p.Elem()); err != nil {
			return err
		}
		fv.Set(p)
		return nil
	case t.Kind() == reflect.Struct && t != timeType:
		return decodeStruct(params, used, name+".", fv)
	case t.Kind() == reflect.Slice:
		return decodeList(params, used, name, fv)
	}
	vals, ok := params[name]
	if !ok {
		return nil
	}
	used[name] = true
	return setScalar(name, vals[0], fv)
}

// decodeList reads "<name>.member.<n>" for n = 1, 2, ... in order; "<name>="
// alone is an empty list.
func decodeList(params url.Values, used map[string]bool, name string, fv reflect.Value) error {
	if vals, ok := params[name]; ok {
		used[name] = true
		if len(vals) != 1 || vals[0] != "" {
			return ClientError("ValidationError", "Value for %s must be a list (%s.member.N)", name, name)
		}
		fv.Set(reflect.MakeSlice(fv.Type(), 0, 0))
	}
	var idx []int
	seen := map[int]bool{}
	member := name + ".member."
	for k := range params {
		rest, ok := strings.CutPrefix(k, member)
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, ".")
		i, err := strconv.Atoi(n)
		if err != nil || i < 1 {
			return ClientError("ValidationError", "Parameter %s: list index %q is not a positive number", k, n)
		}
		if !seen[i] {
			seen[i] = true
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	slices.Sort(idx)
	out := reflect.MakeSlice(fv.Type(), len(idx), len(idx))
	for j, i := range idx {
		if err := decodeValue(params, used, member+strconv.Itoa(i), out.Index(j)); err != nil {
			return err
		}
	}
	fv.Set(out)
	return nil
}

func setScalar(name, s string, fv reflect.Value) error {
	t := fv.Type()
	target := fv
	if t.Kind() == reflect.Pointer {
		target = reflect.New(t.Elem()).Elem()
	}
	bad := func(what string) error {
		return ClientError("ValidationError", "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must be %s", s, name, what)
	}
	switch target.Kind() {
	case reflect.String:
		target.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return bad("a boolean")
		}
		target.SetBool(b)
	case reflect.Int32, reflect.Int64, reflect.Int:
		n, err := strconv.ParseInt(s, 10, target.Type().Bits())
		if err != nil {
			return bad("an integer")
		}
		target.SetInt(n)
	case reflect.Float64, reflect.Float32:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return bad("a number")
		}
		target.SetFloat(f)
	default:
		if target.Type() == timeType {
			tm, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return bad("an ISO 8601 timestamp")
			}
			target.Set(reflect.ValueOf(tm))
			break
		}
		return fmt.Errorf("decode query: %s has unsupported type %s", name, t)
	}
	if t.Kind() == reflect.Pointer {
		p := reflect.New(t.Elem())
		p.Elem().Set(target)
		fv.Set(p)
	}
	return nil
}

// EncodeQuery encodes the SDK output struct v as the content of a Query
// result element: each set member as <Name>value</Name>, lists as
// <Name><member>...</member></Name>, timestamps in ISO 8601 with
// milliseconds. Nil pointers, nil lists and empty enum strings are left
// out; structs without exported fields (the SDK's ResultMetadata) too.
func EncodeQuery(v any) ([]byte, error) {
	var b bytes.Buffer
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil, fmt.Errorf("encode query result: want a struct, have %T", v)
	}
	if err := encodeFields(&b, rv); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func encodeFields(b *bytes.Buffer, sv reflect.Value) error {
	st := sv.Type()
	for i := 0; i < st.NumField(); i++ {
		f := st.Field(i)
		if !f.IsExported() || f.Anonymous {
			continue
		}
		if err := encodeValue(b, f.Name, sv.Field(i)); err != nil {
			return err
		}
	}
	return nil
}

// hasExported reports whether a struct type has an exported field.
func hasExported(t reflect.Type) bool {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).IsExported() {
			return true
		}
	}
	return false
}

func encodeValue(b *bytes.Buffer, name string, v reflect.Value) error {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	open, end := "<"+name+">", "</"+name+">"
	switch {
	case v.Type() == timeType:
		b.WriteString(open + v.Interface().(time.Time).UTC().Format("2006-01-02T15:04:05.000Z") + end)
	case v.Kind() == reflect.Struct:
		if !hasExported(v.Type()) {
			return nil
		}
		b.WriteString(open)
		if err := encodeFields(b, v); err != nil {
			return err
		}
		b.WriteString(end)
	case v.Kind() == reflect.Map:
		if v.IsNil() {
			return nil
		}
		// AWS Query maps: <Name><entry><key/><value/></entry></Name>.
		b.WriteString(open)
		keys := v.MapKeys()
		slices.SortFunc(keys, func(x, y reflect.Value) int { return strings.Compare(x.String(), y.String()) })
		for _, k := range keys {
			b.WriteString("<entry>")
			if err := encodeValue(b, "key", k); err != nil {
				return err
			}
			if err := encodeValue(b, "value", v.MapIndex(k)); err != nil {
				return err
			}
			b.WriteString("</entry>")
		}
		b.WriteString(end)
	case v.Kind() == reflect.Slice:
		if v.IsNil() {
			return nil
		}
		b.WriteString(open)
		for i := 0; i < v.Len(); i++ {
			if err := encodeValue(b, "member", v.Index(i)); err != nil {
				return err
			}
		}
		b.WriteString(end)
	case v.Kind() == reflect.String:
		if v.String() == "" && v.Type() != reflect.TypeFor[string]() {
			return nil // an unset enum
		}
		b.WriteString(open)
		if err := xml.EscapeText(b, []byte(v.String())); err != nil {
			return err
		}
		b.WriteString(end)
	case v.Kind() == reflect.Bool:
		b.WriteString(open + strconv.FormatBool(v.Bool()) + end)
	case v.CanInt():
		b.WriteString(open + strconv.FormatInt(v.Int(), 10) + end)
	case v.CanFloat():
		b.WriteString(open + strconv.FormatFloat(v.Float(), 'g', -1, 64) + end)
	default:
		return fmt.Errorf("encode query result: %s has unsupported type %s", name, v.Type())
	}
	return nil
}
