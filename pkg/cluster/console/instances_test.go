package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// TestInstancePage: a container instance's page, reached from the
// cluster page, shows what it registered and what is left with two tasks
// placed, the ports it reserved, its attributes (one put through the API)
// and its tasks; drained from its own page it lands back there DRAINING.
// A viewer's page has no drain control.
func TestInstancePage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.createService(t, "api", 2)
	instance := f.instanceArn[strings.LastIndex(f.instanceArn, "/")+1:]
	if _, err := f.admin.PutAttributes(ctx, &ecs.PutAttributesInput{Cluster: aws.String("web"), Attributes: []types.Attribute{{
		Name: aws.String("stack"), Value: aws.String("blue"), TargetType: types.TargetTypeContainerInstance, TargetId: aws.String(f.instanceArn)}}}); err != nil {
		t.Fatalf("PutAttributes: %v", err)
	}
	c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	href := "/console/clusters/web/instances/" + instance
	if page := get(t, c, f.url+"/console/clusters/web"); !strings.Contains(page, `href="`+href+`"`) {
		t.Fatalf("the cluster page does not link to the instance's page %s:\n%s", href, page)
	}
	page := get(t, c, f.url+href)
	// Each task of app holds 64 CPU units and 64 MiB.
	if !containsAll(page, `id="cpu">3968 / 4096<`, `id="memory">8064 / 8192<`, `id="instance-running">2<`, `id="agent">`,
		"<code>berth.host-address</code></td><td><code>127.0.0.1</code>", "<code>stack</code></td><td><code>blue</code>", `id="ports-registered">none<`,
		"service:api") || strings.Count(page, `href="/console/clusters/web/tasks/`) != 2 {
		t.Errorf("the instance page does not show its resources, attributes and two tasks:\n%s", page)
	}

	// An instance that reserved ports at registration shows them taken.
	agentID, agentKey := f.newKey(t, auth.RoleAgent)
	ri, err := f.client(agentID, agentKey).RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("web"),
		TotalResources: []types.Resource{{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: 1024},
			{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: 2048},
			{Name: aws.String("PORTS"), Type: aws.String("STRINGSET"), StringSetValue: []string{"2375", "22"}}}})
	if err != nil {
		t.Fatalf("RegisterContainerInstance: %v", err)
	}
	second := aws.ToString(ri.ContainerInstance.ContainerInstanceArn)
	second = second[strings.LastIndex(second, "/")+1:]
	if page := get(t, c, f.url+"/console/clusters/web/instances/"+second); !containsAll(page, `id="ports-registered">22, 2375<`, `id="ports-used">22, 2375<`) {
		t.Errorf("the second instance's page does not show ports 22 and 2375 reserved and taken:\n%s", page)
	}

	code, body := post(t, c, f.url+"/console/clusters/web/instance-state", url.Values{"csrf": {csrfOf(t, page)}, "instance": {instance},
		"status": {"DRAINING"}, "from": {"instance"}}, nil)
	if code != http.StatusOK || !strings.Contains(body, `id="instance-status">DRAINING<`) {
		t.Errorf("drain from the instance page: HTTP %d, want the instance's page DRAINING:\n%s", code, body)
	}
	viewerID, viewerSecret := f.newKey(t, auth.RoleViewer)
	vc, _, _ := f.signInHTTP(t, viewerID, viewerSecret)
	if vpage := get(t, vc, f.url+href); !strings.Contains(vpage, `id="instance-status">DRAINING<`) || strings.Contains(vpage, "instance-state-form") {
		t.Errorf("a viewer's instance page: want the status and no drain control:\n%s", vpage)
	}
	resp, err := c.Get(f.url + "/console/clusters/web/instances/nosuch")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown instance's page: HTTP %d, want 404", resp.StatusCode)
	}
}
