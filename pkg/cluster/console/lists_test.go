package console_test

import (
	"context"
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// TestListsFilterAndPage: with 112 tasks (110 run from the task
// definition tiny, 2 of the service api), the cluster page shows the
// first 100 and links to the tasks list, which pages by 100 and filters
// on the server by group, status and a part of the id, the filter kept
// in the next page's link; the services and instances lists filter by
// name and status; a filter value is echoed as text.
func TestListsFilterAndPage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.createService(t, "api", 2)
	if _, err := f.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("tiny"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("tiny"), Image: aws.String("busybox"), Memory: aws.Int32(6)}}}); err != nil {
		t.Fatalf("RegisterTaskDefinition: %v", err)
	}
	for range 11 {
		run, err := f.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("web"), TaskDefinition: aws.String("tiny"), Count: aws.Int32(10)})
		if err != nil || len(run.Failures) > 0 || len(run.Tasks) != 10 {
			t.Fatalf("RunTask: %v %+v", err, run)
		}
	}
	c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	base := f.url + "/console/clusters/web"
	cluster := get(t, c, base)
	if !containsAll(cluster, "(112, the first 100 shown;", `id="next-tasks" href="/console/clusters/web/tasks?after=`, `href="/console/clusters/web/tasks"`) ||
		strings.Count(cluster, `href="/console/clusters/web/tasks/`) != 100 {
		t.Errorf("the cluster page does not show the first 100 of 112 tasks with links to the list:\n%s", cluster)
	}
	count := func(page string) string {
		m := regexp.MustCompile(`id="list-count">([^<]*)`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("a list page without its count:\n%s", page)
		}
		return m[1]
	}
	rows := func(page string) int { return strings.Count(page, `<tr><td><a href="/console/clusters/web/tasks/`) }

	all := get(t, c, base+"/tasks")
	if got := count(all); got != "112 in all; 100 shown." || rows(all) != 100 {
		t.Errorf("tasks list: %q and %d rows, want 112 in all and 100 rows", got, rows(all))
	}
	next := regexp.MustCompile(`id="next-page" href="([^"]+)"`).FindStringSubmatch(all)
	if next == nil {
		t.Fatalf("the first page of 112 tasks has no next page link:\n%s", all)
	}
	second := get(t, c, f.url+html.UnescapeString(next[1]))
	if rows(second) != 12 || strings.Contains(second, `id="next-page"`) {
		t.Errorf("the second page shows %d tasks (want 12) or links further:\n%s", rows(second), second)
	}

	tiny := get(t, c, base+"/tasks?group=family:tiny")
	next = regexp.MustCompile(`id="next-page" href="([^"]+)"`).FindStringSubmatch(tiny)
	if got := count(tiny); got != "110 match; 100 shown." || next == nil || !strings.Contains(html.UnescapeString(next[1]), "group=family%3Atiny") {
		t.Errorf("group family:tiny: %q, next %v; want 110 match and the group kept in the next link", got, next)
	}
	api := get(t, c, base+"/tasks?"+url.Values{"group": {"service:api"}, "status": {"RUNNING"}}.Encode())
	if got := count(api); got != "2 match; 2 shown." || !strings.Contains(api, `<option selected>RUNNING</option>`) {
		t.Errorf("service:api RUNNING: %q, want 2 match and RUNNING selected:\n%s", got, api)
	}
	id := regexp.MustCompile(`href="/console/clusters/web/tasks/([0-9a-f]{32})"`).FindStringSubmatch(api)
	if id == nil {
		t.Fatalf("no task id on the page:\n%s", api)
	}
	if byID := get(t, c, base+"/tasks?q="+id[1][:12]); !strings.HasPrefix(count(byID), "1 match") || !strings.Contains(byID, id[1]) {
		t.Errorf("q=%s: %q, want the task %s", id[1][:12], count(byID), id[1])
	}
	hostile := get(t, c, base+"/tasks?"+url.Values{"q": {`"><script>alert(1)</script>`}}.Encode())
	if strings.Contains(hostile, "<script>alert") || count(hostile) != "0 match." {
		t.Errorf("a hostile filter value is not escaped, or matched:\n%s", hostile)
	}

	if got := count(get(t, c, base+"/services?q=ap")); got != "1 match; 1 shown." {
		t.Errorf("services q=ap: %q, want 1 match", got)
	}
	if got := count(get(t, c, base+"/services?q=zz")); got != "0 match." {
		t.Errorf("services q=zz: %q, want 0", got)
	}
	if got := count(get(t, c, base+"/instances?status=ACTIVE")); got != "1 match; 1 shown." {
		t.Errorf("instances ACTIVE: %q, want 1", got)
	}
	if got := count(get(t, c, base+"/instances?status=DRAINING")); got != "0 match." {
		t.Errorf("instances DRAINING: %q, want 0", got)
	}
}
