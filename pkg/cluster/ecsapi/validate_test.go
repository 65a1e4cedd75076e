package ecsapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestFreeTextLimits proves ECS's limits on the free text of a task
// definition and of RunTask (issue 23 item 7: a 10,000-character image and
// images with a newline or an escape character were accepted).
func TestFreeTextLimits(t *testing.T) {
	h := newAPIHarness(t)
	h.must("CreateCluster", `{"clusterName":"c"}`)
	h.must("RegisterContainerInstance", `{"cluster":"c","totalResources":[{"name":"CPU","type":"INTEGER","integerValue":1024},{"name":"MEMORY","type":"INTEGER","integerValue":2048}]}`)
	td := func(container string) string {
		return `{"family":"web","containerDefinitions":[{"name":"app","memory":64,` + container + `}]}`
	}
	image := func(ref string) string {
		q, err := json.Marshal(ref)
		if err != nil {
			t.Fatal(err)
		}
		return td(`"image":` + string(q))
	}
	digest := "@sha256:" + strings.Repeat("ab", 32)
	cases := []struct {
		name, body string
		ok         bool
	}{
		{"a 10,000-character image", image(strings.Repeat("a", 10000)), false},
		{"an image of 256 characters", image(strings.Repeat("a", 256)), false},
		{"an image of 255 characters", image(strings.Repeat("a", 255)), true},
		{"an image with a newline", image("busybox\nlatest"), false},
		{"an image with an escape", image("busybox\x1b[31m"), false},
		{"an image with a space", image("busy box"), false},
		{"registry, port, path and tag", image("registry.example:5000/team/app:1.2_3-rc#x"), true},
		{"a digest after a 255-character name", image(strings.Repeat("a", 255) + digest), true},
		{"a short digest", image("busybox@sha256:abc"), false},
		{"a digest of another hash", image("busybox@md5:" + strings.Repeat("a", 32)), false},
		{"a hostname with a newline", td(`"image":"busybox","hostname":"a\nb"`), false},
		{"a user with an escape", td(`"image":"busybox","user":"root\u001b"`), false},
		{"a working directory of 4097 characters", td(`"image":"busybox","workingDirectory":"/` + strings.Repeat("d", 4096) + `"`), false},
		{"an environment name with a newline", td(`"image":"busybox","environment":[{"name":"A\nB","value":"x"}]`), false},
		{"an environment value with a newline", td(`"image":"busybox","environment":[{"name":"A","value":"line1\nline2"}]`), true},
		{"a command with a newline", td(`"image":"busybox","command":["sh","-c","echo a\necho b"]`), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, typ, m := h.call("RegisterTaskDefinition", c.body)
			switch {
			case c.ok && code != http.StatusOK:
				t.Fatalf("refused: HTTP %d %s %v", code, typ, m)
			case !c.ok && (code != http.StatusBadRequest || typ != "ClientException"):
				t.Fatalf("HTTP %d %q %v, want 400 ClientException", code, typ, m)
			}
		})
	}
	h.must("RegisterTaskDefinition", image("busybox"))
	env := func(n int) string {
		return fmt.Sprintf(`{"cluster":"c","taskDefinition":"web","overrides":{"containerOverrides":[{"name":"app","environment":[{"name":"A","value":%q}]}]}}`, strings.Repeat("v", n))
	}
	// {"containerOverrides":[{"name":"app","environment":[{"name":"A","value":"..."}]}]} is 79 characters besides the value.
	if code, typ, m := h.call("RunTask", env(8192-79)); code != http.StatusOK {
		t.Errorf("overrides of 8192 characters: HTTP %d %s %v", code, typ, m)
	}
	if code, typ, m := h.call("RunTask", env(8192-78)); code != http.StatusBadRequest || typ != "InvalidParameterException" || !strings.Contains(fmt.Sprint(m), "overrides") {
		t.Errorf("overrides of 8193 characters: HTTP %d %q %v, want InvalidParameterException naming overrides", code, typ, m)
	}
	if code, typ, _ := h.call("RunTask", `{"cluster":"c","taskDefinition":"web","startedBy":"a\nb"}`); typ != "InvalidParameterException" {
		t.Errorf("startedBy with a newline: HTTP %d %q, want InvalidParameterException", code, typ)
	}
}
