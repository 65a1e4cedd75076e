package arn

import (
	"slices"
	"testing"
)

func TestResourceID(t *testing.T) {
	for in, want := range map[string]string{
		"arn:aws:ecs:us-east-1:123456789012:task/lab/0123abcd":         "0123abcd",
		"arn:aws:ecs:us-east-1:123456789012:task/0123abcd":             "0123abcd", // old style, no cluster
		"arn:aws:ecs:us-east-1:123456789012:cluster/lab":               "lab",
		"arn:aws:ecs:us-east-1:123456789012:container-instance/lab/ci": "ci",
		"0123abcd": "0123abcd",
		"":         "",
		"lab/":     "",
	} {
		if got := ResourceID(in); got != want {
			t.Errorf("ResourceID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseAndSplit(t *testing.T) {
	a, err := Parse("arn:aws:ecs:us-east-1:123456789012:task/lab/0123")
	if err != nil {
		t.Fatal(err)
	}
	if a.Partition != "aws" || a.Service != "ecs" || a.Region != "us-east-1" || a.AccountID != "123456789012" || a.Resource != "task/lab/0123" {
		t.Fatalf("Parse = %+v", a)
	}
	if a.String() != "arn:aws:ecs:us-east-1:123456789012:task/lab/0123" {
		t.Errorf("String() = %q", a.String())
	}
	typ, path := SplitResource(a.Resource)
	if typ != "task" || !slices.Equal(path, []string{"lab", "0123"}) {
		t.Errorf("SplitResource(%q) = %q %q, want task [lab 0123]", a.Resource, typ, path)
	}
	if typ, path := SplitResource("cluster"); typ != "cluster" || path != nil {
		t.Errorf("SplitResource(cluster) = %q %q", typ, path)
	}
	for _, bad := range []string{"", "task/lab/x", "arn:aws:ecs:us-east-1", "urn:aws:ecs:r:a:task/x"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}
