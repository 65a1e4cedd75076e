package awsproto

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"time"

	smithy "github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding/cbor"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/aws/smithy-go/transport/http/protocol/rpcv2"
)

// An API served in several protocols (CloudWatch: Query for old clients,
// JSON 1.0 for the AWS CLI, RPC v2 CBOR for aws-sdk-go-v2) decodes each
// request into the SDK's <Op>Input with DecodeInput and encodes the SDK's
// <Op>Output with EncodeOutput, which pick the request's protocol. JSON and
// CBOR bodies are read into a tree of plain values first and that tree
// into the struct, matching members to the SDK's Go field names without
// regard to case (the models name them so), timestamps from epoch seconds
// (JSON), tag 1 (CBOR) or ISO 8601 text.

// Codec names the SDK schemas EncodeOutput serializes with: the service
// schema (its protocol traits) and any one of its operations (the JSON
// serializer needs an operation to name).
type Codec struct {
	Service   *smithy.ServiceSchema
	Operation *smithy.OperationSchema
}

// DecodeInput fills the SDK input struct v points to from r in r's
// protocol. A member v has no field for, or a value of the wrong type, is
// a SerializationException naming it (a ValidationError in Query):
// nothing a client sends is silently ignored.
func DecodeInput(r *Request, v any) error {
	switch r.Protocol {
	case Query:
		return DecodeQuery(r.Params, v)
	case RPCv2CBOR:
		if len(bytes.TrimSpace(r.Body)) == 0 {
			return nil
		}
		cv, err := cbor.Decode(r.Body)
		if err != nil {
			return ClientError("SerializationException", "the request body is not CBOR: %v", err)
		}
		tree, err := fromCBOR(cv)
		if err != nil {
			return ClientError("SerializationException", "%v", err)
		}
		return decodeTree(tree, reflect.ValueOf(v), "")
	default:
		body := bytes.TrimSpace(r.Body)
		if len(body) == 0 {
			return nil
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var tree any
		if err := dec.Decode(&tree); err != nil {
			return ClientError("SerializationException", "the request body is not JSON: %v", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return ClientError("SerializationException", "trailing data after the JSON object")
		}
		return decodeTree(tree, reflect.ValueOf(v), "")
	}
}

// EncodeOutput encodes the SDK output struct out as r's answer: with the
// SDK's own schema serializer for JSON and CBOR (so member names, omitted
// members and timestamps are the SDK's), with EncodeQuery for Query.
func EncodeOutput(ctx context.Context, r *Request, c Codec, out smithy.Serializable) ([]byte, error) {
	var proto interface {
		SerializeRequest(context.Context, *smithy.OperationSchema, smithy.Serializable, *smithyhttp.Request) error
	}
	switch r.Protocol {
	case Query:
		return EncodeQuery(out)
	case RPCv2CBOR:
		proto = rpcv2.NewCBOR(c.Service)
	case JSON10:
		proto = awsjson.New10(c.Service)
	default:
		proto = awsjson.New11(c.Service)
	}
	req := smithyhttp.NewStackRequest().(*smithyhttp.Request)
	if err := proto.SerializeRequest(ctx, c.Operation, out, req); err != nil {
		return nil, fmt.Errorf("encode %s response: %w", r.Operation, err)
	}
	built := req.Build(ctx)
	if built.Body == nil {
		if r.Protocol == RPCv2CBOR {
			return cbor.Encode(cbor.Map{}), nil
		}
		return []byte("{}"), nil
	}
	defer built.Body.Close()
	b, err := io.ReadAll(built.Body)
	if err != nil {
		return nil, fmt.Errorf("encode %s response: %w", r.Operation, err)
	}
	return b, nil
}

// cborErrorBody is the body of an RPC v2 CBOR error.
func cborErrorBody(typ, msg string) []byte {
	return cbor.Encode(cbor.Map{"__type": cbor.String(typ), "message": cbor.String(msg)})
}

// fromCBOR turns a CBOR value into the tree decodeTree reads: maps,
// lists, strings, bools, json.Number, time.Time (tag 1) and []byte.
func fromCBOR(v cbor.Value) (any, error) {
	switch v := v.(type) {
	case cbor.Map:
		m := make(map[string]any, len(v))
		for k, e := range v {
			t, err := fromCBOR(e)
			if err != nil {
				return nil, err
			}
			m[k] = t
		}
		return m, nil
	case cbor.List:
		l := make([]any, len(v))
		for i, e := range v {
			t, err := fromCBOR(e)
			if err != nil {
				return nil, err
			}
			l[i] = t
		}
		return l, nil
	case cbor.String:
		return string(v), nil
	case cbor.Slice:
		return []byte(v), nil
	case cbor.Bool:
		return bool(v), nil
	case *cbor.Nil, *cbor.Undefined:
		return nil, nil
	case cbor.Uint, cbor.NegInt:
		n, err := cbor.AsInt64(v)
		if err != nil {
			return nil, err
		}
		return json.Number(fmt.Sprint(n)), nil
	case cbor.Float32, cbor.Float64:
		f, err := cbor.AsFloat64(v)
		if err != nil {
			return nil, err
		}
		return f, nil
	case *cbor.Tag:
		if v.ID == 1 {
			return cbor.AsTime(v)
		}
		return nil, fmt.Errorf("unsupported CBOR tag %d", v.ID)
	}
	return nil, fmt.Errorf("unsupported CBOR value %T", v)
}

var bytesType = reflect.TypeFor[[]byte]()

// decodeTree stores src into dst (a pointer the first time); path names
// the member in errors ("MetricData[0].Value").
func decodeTree(src any, dst reflect.Value, path string) error {
	if src == nil {
		return nil
	}
	bad := func(want string) error {
		return ClientError("SerializationException", "Value of %s must be %s, have %T", pathName(path), want, src)
	}
	if dst.Kind() == reflect.Pointer {
		if dst.IsNil() {
			dst.Set(reflect.New(dst.Type().Elem()))
		}
		return decodeTree(src, dst.Elem(), path)
	}
	t := dst.Type()
	switch {
	case t == timeType:
		tm, err := treeTime(src)
		if err != nil {
			return bad("a timestamp (epoch seconds or ISO 8601)")
		}
		dst.Set(reflect.ValueOf(tm))
		return nil
	case t == bytesType:
		switch s := src.(type) {
		case []byte:
			dst.SetBytes(s)
		case string:
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return bad("base64 text")
			}
			dst.SetBytes(b)
		default:
			return bad("a blob")
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := src.(map[string]any)
		if !ok {
			return bad("an object")
		}
		for k, v := range m {
			f, ok := fieldFold(t, k)
			if !ok {
				return ClientError("SerializationException", "Unknown member %s", pathName(join(path, k)))
			}
			if err := decodeTree(v, dst.FieldByIndex(f.Index), join(path, f.Name)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		l, ok := src.([]any)
		if !ok {
			return bad("a list")
		}
		out := reflect.MakeSlice(t, len(l), len(l))
		for i, e := range l {
			if err := decodeTree(e, out.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		dst.Set(out)
	case reflect.Map:
		m, ok := src.(map[string]any)
		if !ok || t.Key().Kind() != reflect.String {
			return bad("a map")
		}
		out := reflect.MakeMapWithSize(t, len(m))
		for k, e := range m {
			ev := reflect.New(t.Elem()).Elem()
			if err := decodeTree(e, ev, join(path, k)); err != nil {
				return err
			}
			out.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), ev)
		}
		dst.Set(out)
	case reflect.String:
		s, ok := src.(string)
		if !ok {
			return bad("a string")
		}
		dst.SetString(s)
	case reflect.Bool:
		b, ok := src.(bool)
		if !ok {
			return bad("a boolean")
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f, ok := treeNumber(src)
		if !ok || f != math.Trunc(f) || dst.OverflowInt(int64(f)) {
			return bad("an integer")
		}
		dst.SetInt(int64(f))
	case reflect.Float32, reflect.Float64:
		f, ok := treeNumber(src)
		if !ok {
			return bad("a number")
		}
		dst.SetFloat(f)
	default:
		return ClientError("SerializationException", "%s is not supported", pathName(path))
	}
	return nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func pathName(path string) string {
	if path == "" {
		return "the request"
	}
	return path
}

// fieldFold finds t's exported field named name, ignoring case.
func fieldFold(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.IsExported() && !f.Anonymous && strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func treeNumber(src any) (float64, bool) {
	switch n := src.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	case string: // NaN and Infinity travel as strings in JSON
		switch n {
		case "NaN":
			return math.NaN(), true
		case "Infinity":
			return math.Inf(1), true
		case "-Infinity":
			return math.Inf(-1), true
		}
	}
	return 0, false
}

func treeTime(src any) (time.Time, error) {
	switch v := src.(type) {
	case time.Time:
		return v, nil
	case string:
		return time.Parse(time.RFC3339Nano, v)
	}
	f, ok := treeNumber(src)
	if !ok {
		return time.Time{}, fmt.Errorf("not a timestamp")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
}

// Op adapts an operation written on the SDK's input type to a Request:
// it decodes the input (DecodeInput) and runs fn with the request's
// context. S is the API's server type.
func Op[S, In any, Out smithy.Serializable](fn func(S, context.Context, *In) (Out, error)) func(S, *Request) (smithy.Serializable, error) {
	return func(s S, r *Request) (smithy.Serializable, error) {
		var in In
		if err := DecodeInput(r, &in); err != nil {
			return nil, err
		}
		return fn(s, r.Context, &in)
	}
}
