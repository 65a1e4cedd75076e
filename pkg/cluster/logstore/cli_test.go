package logstore

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestCLIWalkThrough drives the log groups with `aws logs` as an operator
// would: a tagged group, its tags by ARN and by name, a name-pattern
// search, retention, events read back by the group's ARN, a stream
// deleted, and an error with AWS's code.
func TestCLIWalkThrough(t *testing.T) {
	_, url := newStore(t, nil)
	cli := testenv.AWSCLI(t, url, testRegion, testKeyID, testSecret)
	run := func(wantOK bool, args ...string) map[string]any {
		t.Helper()
		return cli(t, wantOK, append([]string{"logs"}, args...)...)
	}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }

	run(true, "create-log-group", "--log-group-name", "/ecs/web", "--tags", "env=lab,team=a")
	run(true, "create-log-group", "--log-group-name", "/ecs/batch")
	groups := run(true, "describe-log-groups", "--log-group-name-pattern", "web")
	gs, _ := groups["logGroups"].([]any)
	if len(gs) != 1 {
		t.Fatalf("describe-log-groups --log-group-name-pattern web: %s", js(groups))
	}
	arn, _ := gs[0].(map[string]any)["logGroupArn"].(string)
	if !strings.HasSuffix(arn, ":log-group:/ecs/web") {
		t.Fatalf("logGroupArn %q", arn)
	}
	run(true, "tag-resource", "--resource-arn", arn, "--tags", "cost=1")
	run(true, "untag-resource", "--resource-arn", arn, "--tag-keys", "team")
	if got := js(run(true, "list-tags-for-resource", "--resource-arn", arn)["tags"]); got != `{"cost":"1","env":"lab"}` {
		t.Errorf("list-tags-for-resource: %s", got)
	}
	if got := js(run(true, "list-tags-log-group", "--log-group-name", "/ecs/web")["tags"]); got != `{"cost":"1","env":"lab"}` {
		t.Errorf("list-tags-log-group: %s", got)
	}
	run(true, "put-retention-policy", "--log-group-name", "/ecs/web", "--retention-in-days", "14")
	gs, _ = run(true, "describe-log-groups", "--log-group-identifiers", arn)["logGroups"].([]any)
	if len(gs) != 1 || js(gs[0].(map[string]any)["retentionInDays"]) != "14" {
		t.Errorf("describe-log-groups --log-group-identifiers: %s", js(gs))
	}
	run(true, "create-log-stream", "--log-group-name", "/ecs/web", "--log-stream-name", "web/app/1")
	run(true, "put-log-events", "--log-group-name", "/ecs/web", "--log-stream-name", "web/app/1",
		"--log-events", `[{"timestamp":`+strconv.FormatInt(time.Now().UnixMilli(), 10)+`,"message":"hello"}]`)
	ev, _ := run(true, "get-log-events", "--log-group-identifier", arn, "--log-stream-name", "web/app/1", "--start-from-head")["events"].([]any)
	if len(ev) != 1 || ev[0].(map[string]any)["message"] != "hello" {
		t.Errorf("get-log-events --log-group-identifier: %s", js(ev))
	}
	run(true, "delete-log-stream", "--log-group-name", "/ecs/web", "--log-stream-name", "web/app/1")
	if ss, _ := run(true, "describe-log-streams", "--log-group-identifier", arn)["logStreams"].([]any); len(ss) != 0 {
		t.Errorf("streams after delete-log-stream: %s", js(ss))
	}
	out := run(false, "put-retention-policy", "--log-group-name", "/ecs/web", "--retention-in-days", "2")
	if e := out["error"].(string); !strings.Contains(e, "InvalidParameterException") || !strings.Contains(e, "retentionInDays") {
		t.Errorf("put-retention-policy 2: %s", e)
	}
	out = run(false, "describe-log-groups", "--log-group-name-prefix", "/ecs", "--log-group-name-pattern", "web")
	if e := out["error"].(string); !strings.Contains(e, "InvalidParameterException") {
		t.Errorf("describe-log-groups with prefix and pattern: %s", e)
	}
}
