package ecsapi

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	smithy "github.com/aws/smithy-go"
)

// sdkOperation is one operation of the SDK's ECS client.
type sdkOperation struct {
	name   string
	method reflect.Method
	input  reflect.Type // the *Input struct type (not a pointer)
}

// sdkOperations lists every operation of the SDK's ECS client: the methods
// taking (context.Context, *<Op>Input, ...func(*ecs.Options)).
func sdkOperations() map[string]sdkOperation {
	ctxType := reflect.TypeOf((*context.Context)(nil)).Elem()
	ct := reflect.TypeOf(&ecs.Client{})
	out := map[string]sdkOperation{}
	for i := 0; i < ct.NumMethod(); i++ {
		m := ct.Method(i)
		if m.Type.NumIn() != 4 || m.Type.In(1) != ctxType {
			continue
		}
		in := m.Type.In(2)
		if in.Kind() != reflect.Pointer || in.Elem().Name() != m.Name+"Input" {
			continue
		}
		out[m.Name] = sdkOperation{name: m.Name, method: m, input: in.Elem()}
	}
	return out
}

// fillSample sets every field of v (recursively, to a bounded depth) to a
// non-zero value: strings "x", numbers 1, booleans true, one-element lists
// and maps, the time now.
func fillSample(v reflect.Value, depth int) {
	if depth > 20 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.Type().Elem() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(&time.Time{}))
			v.Elem().Set(reflect.ValueOf(time.Unix(1700000000, 0)))
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fillSample(v.Elem(), depth+1)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(1700000000, 0)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fillSample(v.Field(i), depth+1)
			}
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte("x"))
			return
		}
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fillSample(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fillSample(k, depth+1)
		fillSample(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	}
}

// inputMembers maps the exported fields of an operation's input struct to
// their ECS member names, as the SDK's own serializer writes them.
func inputMembers(t *testing.T, op sdkOperation) map[string]string {
	t.Helper()
	in := reflect.New(op.input)
	fillSample(in.Elem(), 0)
	body, err := EncodeOutput(context.Background(), in.Interface().(smithy.Serializable))
	if err != nil {
		t.Fatalf("%s: serialize a filled input: %v", op.name, err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("%s: %v", op.name, err)
	}
	out := map[string]string{}
	for i := 0; i < op.input.NumField(); i++ {
		f := op.input.Field(i)
		if !f.IsExported() {
			continue
		}
		for k := range top {
			if strings.EqualFold(k, f.Name) {
				out[f.Name] = k
			}
		}
		if out[f.Name] == "" {
			t.Errorf("%s.%s: the SDK's serializer does not write it; name it in the table by hand", op.name, f.Name)
		}
	}
	return out
}

// sampleInput is a new *Input of op with field and every member the
// operation does not refuse set to their sample values (the SDK insists
// on the required ones): of the refused members only field is set.
func sampleInput(op sdkOperation, field string, refusedFields map[string]bool) reflect.Value {
	in := reflect.New(op.input)
	for i := 0; i < op.input.NumField(); i++ {
		f, v := op.input.Field(i), in.Elem().Field(i)
		switch {
		case !f.IsExported():
		case f.Name == field || !refusedFields[f.Name]:
			fillSample(v, 0)
		case v.Kind() == reflect.Slice:
			// Another refused member: present but empty, which is not
			// refused, for the SDK's required-member check.
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		}
	}
	return in
}

// TestEveryMemberHonouredOrRefused is the guard of the endpoint's rule:
// every ECS operation of the SDK is routed or listed as not routed; every
// input member of a routed operation is in Members(); each honoured member
// has a check that sets it and reads the effect back (memberChecks), and
// each refused member is answered with the error naming it.
func TestEveryMemberHonouredOrRefused(t *testing.T) {
	s := newTestServer(t)
	ops := sdkOperations()
	if len(ops) < 77 {
		t.Fatalf("found %d SDK operations, want at least 77: the reflection over ecs.Client is broken", len(ops))
	}
	table, notRouted := Members(), NotRouted()
	for name := range s.ops {
		if _, ok := ops[name]; !ok {
			t.Errorf("routed operation %s is not an operation of the SDK's ECS client", name)
		}
	}
	for name := range table {
		if _, ok := s.ops[name]; !ok {
			t.Errorf("Members() lists %s, which is not routed", name)
		}
	}
	for name := range ops {
		_, routed := s.ops[name]
		_, why := notRouted[name]
		switch {
		case routed && why:
			t.Errorf("%s is routed and also listed in NotRouted()", name)
		case !routed && !why:
			t.Errorf("%s is neither routed nor listed in NotRouted() with a reason", name)
		}
	}
	for name := range notRouted {
		if _, ok := ops[name]; !ok {
			t.Errorf("NotRouted() lists %s, which the SDK does not have", name)
		}
	}
	checks := memberChecks()
	used := map[string]bool{}
	names := make([]string, 0, len(s.ops))
	for name := range s.ops {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		op, ok := ops[name]
		if !ok {
			continue
		}
		fields := inputMembers(t, op)
		byName := map[string]string{} // member name -> field
		for f, m := range fields {
			byName[m] = f
		}
		listed := map[string]bool{}
		for _, m := range table[name] {
			if listed[m.Name] {
				t.Errorf("%s.%s is listed twice", name, m.Name)
			}
			listed[m.Name] = true
			top, _, _ := strings.Cut(m.Name, ".")
			if _, ok := byName[top]; !ok {
				t.Errorf("%s.%s is listed, but %s has no member %s", name, m.Name, op.input.Name(), top)
			}
			if m.Status != Honoured && m.Note == "" {
				t.Errorf("%s.%s is %s without a note saying how or why", name, m.Name, m.Status)
			}
		}
		for member, field := range byName {
			if !listed[member] {
				t.Errorf("%s.%s (%s.%s) is neither honoured nor refused: list it in Members() and prove it", name, member, op.input.Name(), field)
			}
		}
		refusedFields := map[string]bool{}
		for _, m := range table[name] {
			if f, isTop := byName[m.Name]; isTop && m.Status == Refused {
				refusedFields[f] = true
			}
		}
		for _, m := range table[name] {
			key := name + "." + m.Name
			field, isTop := byName[m.Name]
			if m.Status == Refused && isTop {
				t.Run(key, func(t *testing.T) { checkRefusedBySDK(t, op, field, m.Name, refusedFields) })
				continue
			}
			check, ok := checks[key]
			if !ok {
				t.Errorf("%s is %s but memberChecks has no check proving it", key, m.Status)
				continue
			}
			used[key] = true
			t.Run(key, func(t *testing.T) { check(newEnv(t)) })
		}
	}
	for key := range checks {
		if !used[key] {
			t.Errorf("memberChecks has a check for %s, which Members() does not list as honoured or refused-nested", key)
		}
	}
}

// checkRefusedBySDK sends op through the real SDK client with only member
// set and expects the error that names it.
func checkRefusedBySDK(t *testing.T, op sdkOperation, field, member string, refusedFields map[string]bool) {
	e := newEnv(t)
	in := sampleInput(op, field, refusedFields)
	res := reflect.ValueOf(e.c).MethodByName(op.name).Call([]reflect.Value{reflect.ValueOf(e.ctx), in})
	err, _ := res[1].Interface().(error)
	e.refusedNaming(err, member)
}

// refusedNaming asserts err is InvalidParameterException or ClientException
// and names member.
func (e *env) refusedNaming(err error, member string) {
	e.t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		e.t.Fatalf("want a refusal naming %s, got %v", member, err)
	}
	if code := ae.ErrorCode(); code != "InvalidParameterException" && code != "ClientException" {
		e.t.Fatalf("refusal of %s is %s: %s, want InvalidParameterException or ClientException", member, code, ae.ErrorMessage())
	}
	if !strings.Contains(ae.ErrorMessage(), member) {
		e.t.Fatalf("refusal %q does not name %s", ae.ErrorMessage(), member)
	}
}
