package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     []EnvEntry
		problems []string // Problem.String() values, in order
	}{
		{name: "empty", in: ""},
		{name: "plain", in: "ECS_CLUSTER=prod\n",
			want: []EnvEntry{{Key: "ECS_CLUSTER", Value: "prod", Line: 1}}},
		{name: "comments and blanks", in: "# a comment\n\n   \n  # indented comment\nA=1\n",
			want: []EnvEntry{{Key: "A", Value: "1", Line: 5}}},
		{name: "whitespace around = trimmed", in: "  A  =   b c  \n",
			want: []EnvEntry{{Key: "A", Value: "b c", Line: 1}}},
		{name: "double quotes", in: `A="x y"`,
			want: []EnvEntry{{Key: "A", Value: "x y", Line: 1}}},
		{name: "single quotes keep inner spaces and #", in: `A = '  #x  '`,
			want: []EnvEntry{{Key: "A", Value: "  #x  ", Line: 1}}},
		{name: "quotes taken literally inside", in: `A="a"b"`,
			want: []EnvEntry{{Key: "A", Value: `a"b`, Line: 1}}},
		{name: "empty quoted", in: `A=""`,
			want: []EnvEntry{{Key: "A", Value: "", Line: 1}}},
		{name: "json value keeps its quotes", in: `ECS_AVAILABLE_LOGGING_DRIVERS=["json-file","awslogs"]`,
			want: []EnvEntry{{Key: "ECS_AVAILABLE_LOGGING_DRIVERS", Value: `["json-file","awslogs"]`, Line: 1}}},
		{name: "export prefix", in: "export A=1\nexport\tB=2\n",
			want: []EnvEntry{{Key: "A", Value: "1", Line: 1}, {Key: "B", Value: "2", Line: 2}}},
		{name: "export as a key name", in: "export=1\n",
			want: []EnvEntry{{Key: "export", Value: "1", Line: 1}}},
		{name: "value may contain =", in: "A=b=c\n",
			want: []EnvEntry{{Key: "A", Value: "b=c", Line: 1}}},
		{name: "crlf line endings", in: "A=1\r\nB=2\r\n",
			want: []EnvEntry{{Key: "A", Value: "1", Line: 1}, {Key: "B", Value: "2", Line: 2}}},
		{name: "byte order mark", in: "\xef\xbb\xbfA=1",
			want: []EnvEntry{{Key: "A", Value: "1", Line: 1}}},
		{name: "repeated key: last wins, warning names both lines",
			in:       "A=1\nB=2\nA=3\n",
			want:     []EnvEntry{{Key: "B", Value: "2", Line: 2}, {Key: "A", Value: "3", Line: 3}},
			problems: []string{"f:3: A: warning: also set on line 1; line 3 wins"}},
		{name: "line without = is an error and parsing goes on",
			in:       "A=1\nnonsense\nB=2\n",
			want:     []EnvEntry{{Key: "A", Value: "1", Line: 1}, {Key: "B", Value: "2", Line: 3}},
			problems: []string{`f:2: line has no "=" (expected KEY=VALUE, a # comment or a blank line)`}},
		{name: "bad key name", in: "1A=x\nA B=y\n=z\n",
			problems: []string{
				`f:1: "1A" is not a valid variable name (allowed: letters, digits and _, not starting with a digit)`,
				`f:2: "A B" is not a valid variable name (allowed: letters, digits and _, not starting with a digit)`,
				`f:3: "" is not a valid variable name (allowed: letters, digits and _, not starting with a digit)`,
			}},
		{name: "unterminated quote", in: "A=\"abc\nB='\n",
			problems: []string{
				`f:1: A: value opens a " quote that is not closed at the end of the line`,
				`f:2: B: value opens a ' quote that is not closed at the end of the line`,
			}},
		{name: "every problem reported", in: "x\ny\nA=1\nA=2\n",
			want: []EnvEntry{{Key: "A", Value: "2", Line: 4}},
			problems: []string{
				`f:1: line has no "=" (expected KEY=VALUE, a # comment or a blank line)`,
				`f:2: line has no "=" (expected KEY=VALUE, a # comment or a blank line)`,
				`f:4: A: warning: also set on line 3; line 4 wins`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problems := ParseEnvFile([]byte(tt.in), "f")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("entries:\n got  %#v\n want %#v", got, tt.want)
			}
			var gotProblems []string
			for _, p := range problems {
				gotProblems = append(gotProblems, p.String())
			}
			if !reflect.DeepEqual(gotProblems, tt.problems) {
				t.Errorf("problems:\n got  %q\n want %q", gotProblems, tt.problems)
			}
		})
	}
}

// FuzzParseEnvFile checks that the ecs.config parser never panics, that
// every entry it returns is well formed, that each key appears once, that
// every problem has a line, and that writing the entries back out and
// parsing them again gives the same entries. The seeds run in plain go test.
func FuzzParseEnvFile(f *testing.F) {
	seeds := []string{
		"",
		"ECS_CLUSTER=prod\n",
		"# comment\n\nexport ECS_LOGLEVEL=debug\n",
		`ECS_RESERVED_PORTS=[22, 2375]` + "\n" + `ECS_INSTANCE_ATTRIBUTES={"zone":"a"}`,
		"A = 'x'\nB=\"y\"\nA=z\n",
		"no equals sign\n",
		"A=\"unterminated\n",
		"\xef\xbb\xbfA=1\r\n",
		"export\n=\n==\n'\n\"\n",
		"ECS_ENGINE_AUTH_DATA={\"https://index.docker.io/v1/\":{\"username\":\"u\",\"password\":\"p\"}}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, problems := ParseEnvFile(data, "f")
		seen := map[string]bool{}
		lines := strings.Count(string(data), "\n") + 1
		for _, e := range entries {
			if !validEnvName(e.Key) {
				t.Fatalf("entry with invalid key %q", e.Key)
			}
			if seen[e.Key] {
				t.Fatalf("key %q returned twice", e.Key)
			}
			seen[e.Key] = true
			if e.Line < 1 || e.Line > lines {
				t.Fatalf("entry %q on line %d of a %d-line input", e.Key, e.Line, lines)
			}
			if strings.Contains(e.Value, "\n") {
				t.Fatalf("value of %q spans lines", e.Key)
			}
		}
		for _, p := range problems {
			if !strings.HasPrefix(p.Where, "f:") {
				t.Fatalf("problem without a line: %q", p)
			}
		}
		var b strings.Builder
		for _, e := range entries {
			fmt.Fprintf(&b, "%s=\"%s\"\n", e.Key, e.Value)
		}
		again, againProblems := ParseEnvFile([]byte(b.String()), "g")
		if len(againProblems) != 0 {
			t.Fatalf("re-parsing written entries: %v\n%s", againProblems, b.String())
		}
		if len(again) != len(entries) {
			t.Fatalf("round trip: %d entries became %d", len(entries), len(again))
		}
		for i := range again {
			if again[i].Key != entries[i].Key || again[i].Value != entries[i].Value {
				t.Fatalf("round trip: %q=%q became %q=%q", entries[i].Key, entries[i].Value, again[i].Key, again[i].Value)
			}
		}
	})
}
