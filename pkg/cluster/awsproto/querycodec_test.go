package awsproto

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

type codecInner struct {
	Values []string
	Weight *int32
}

type codecInput struct {
	Name    *string
	Port    *int32
	Enabled *bool
	Kind    kind
	Inner   *codecInner
	Items   []codecInner
	Names   []string
	At      *time.Time
	meta    struct{ x int } // unexported, like the SDK types' noSmithyDocumentSerde: skipped
}

type kind string

// TestDecodeQuery: lists by member index in order, nested structs,
// pointers, enums and an empty list; a wrong type or an unknown
// parameter is a ValidationError naming it.
func TestDecodeQuery(t *testing.T) {
	form := url.Values{"Name": {"web"}, "Port": {"8080"}, "Enabled": {"true"}, "Kind": {"app"},
		"Inner.Values.member.1": {"a"}, "Inner.Weight": {"3"},
		"Items.member.2.Values.member.1": {"y"}, "Items.member.1.Values.member.1": {"x"}, "Items.member.1.Values.member.2": {"x2"},
		"Names": {""}}
	var in codecInput
	if err := DecodeQuery(form, &in); err != nil {
		t.Fatal(err)
	}
	if *in.Name != "web" || *in.Port != 8080 || !*in.Enabled || in.Kind != "app" || in.Inner.Values[0] != "a" || *in.Inner.Weight != 3 ||
		len(in.Items) != 2 || in.Items[0].Values[1] != "x2" || in.Items[1].Values[0] != "y" || in.Names == nil || len(in.Names) != 0 {
		t.Fatalf("decoded %+v", in)
	}
	for _, bad := range []url.Values{{"Port": {"http"}}, {"Nope": {"1"}}, {"Items.member.x.Values.member.1": {"1"}}, {"Enabled": {"yes"}}} {
		err := DecodeQuery(bad, &codecInput{})
		var ae *Error
		if !errors.As(err, &ae) || ae.Type != "ValidationError" {
			t.Errorf("%v: error %v, want a ValidationError", bad, err)
		}
	}
}

// TestEncodeQuery: members in field order, lists as <member>, nil and
// unset enum members left out, timestamps with milliseconds, text escaped.
func TestEncodeQuery(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	name, port := "a<b", int32(80)
	b, err := EncodeQuery(codecInput{Name: &name, Port: &port, Items: []codecInner{{Values: []string{"x"}}}, At: &at})
	if err != nil {
		t.Fatal(err)
	}
	want := "<Name>a&lt;b</Name><Port>80</Port><Items><member><Values><member>x</member></Values></member></Items><At>2026-01-02T03:04:05.006Z</At>"
	if got := string(b); got != want {
		t.Fatalf("encoded\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(string(b), "Kind") {
		t.Error("an unset enum was encoded")
	}
}
