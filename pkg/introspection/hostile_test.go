package introspection_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestHostileRequests reaches for files through the log API (path
// traversal in the task id and the container name, raw and encoded),
// sends bad query values and other methods. The API only ever streams a
// log path the engine recorded for a known task and container: a file
// next to the log is never served, and each bad value is refused with
// its reason.
func TestHostileRequests(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "app-json.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	writeLine(t, f, "hello from app")
	f.Close()
	// A file that no container logs to, where a traversal would land.
	if err := os.WriteFile(filepath.Join(dir, "secret-json.log"), []byte(`{"log":"TOP SECRET\n","stream":"stdout","time":"2026-01-01T00:00:00Z"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, logPath)
	addr := srv.Listener.Addr().String()
	logs := "/v1/tasks/3b2f9c1d/containers/app/logs"
	cases := []struct {
		name, method, target string
		status               int
		inBody               string
	}{
		{"traversal in the container name", "GET", "/v1/tasks/3b2f9c1d/containers/..%2Fsecret/logs", 404, "no logs for container ../secret of task 3b2f9c1d"},
		{"traversal in the task id", "GET", "/v1/tasks/..%2F..%2F..%2Fetc/containers/app/logs", 404, "no logs for container app of task ../../../etc"},
		{"dot segments in the path", "GET", "/v1/tasks/3b2f9c1d/containers/app/../../../../etc/passwd", 307, `<a href="/v1/etc/passwd">`},
		{"absolute path as the container name", "GET", "/v1/tasks/3b2f9c1d/containers/%2Fetc%2Fpasswd/logs", 404, "no logs for container /etc/passwd"},
		{"NUL in the container name", "GET", "/v1/tasks/3b2f9c1d/containers/app%00/logs", 404, "no logs for container app\\u0000"},
		{"another task's container", "GET", "/v1/tasks/00000000/containers/app/logs", 404, "no logs for container app of task 00000000"},
		{"10,000-character task id", "GET", "/v1/tasks/" + strings.Repeat("t", 10000) + "/containers/app/logs", 404, "no logs"},
		{"negative tail", "GET", logs + "?tail=-1", 400, "tail must be a non-negative integer"},
		{"tail past int64", "GET", logs + "?tail=99999999999999999999999", 400, "tail must be a non-negative integer"},
		{"tail not a number", "GET", logs + "?tail=1x", 400, "tail must be a non-negative integer"},
		{"a query Go would drop a pair of", "GET", logs + "?tail=1;cat%20/etc/passwd", 400, "query: invalid semicolon separator in query"},
		{"a bad escape in the query", "GET", "/v1/tasks?taskarn=%zz", 400, "query: invalid URL escape"},
		{"since not a time", "GET", logs + "?since=yesterday", 400, "since"},
		{"follow not a boolean", "GET", logs + "?follow=maybe", 400, "follow must be true or false"},
		{"POST to the logs", "POST", logs, 405, ""},
		{"DELETE a task", "DELETE", "/v1/tasks?taskarn=" + arn, 405, ""},
		{"task ARN with control characters", "GET", "/v1/tasks?taskarn=%0A%1B%5B2J", 404, `task not found: \n\u001b[2J`},
		{"both taskarn and dockerid", "GET", "/v1/tasks?taskarn=a&dockerid=b", 400, "either taskarn or dockerid"},
		{"empty docker id prefix", "GET", "/v1/tasks?dockerid=%00", 404, "no unique task"},
	}
	for _, c := range cases {
		status, body := testenv.RawHTTP(t, addr, c.method, c.target)
		if status != c.status || !strings.Contains(body, c.inBody) {
			t.Errorf("%s: %s %.80s = %d %.200q, want %d containing %q", c.name, c.method, c.target, status, body, c.status, c.inBody)
		}
		if strings.Contains(body, "TOP SECRET") || strings.Contains(body, "root:") {
			t.Errorf("%s: %s %.80s served a file it must not: %q", c.name, c.method, c.target, body)
		}
	}
	// The container's own log is still served.
	if status, body := testenv.RawHTTP(t, addr, "GET", logs); status != http.StatusOK || body != "hello from app\n" {
		t.Errorf("GET %s = %d %q, want the log", logs, status, body)
	}
}
