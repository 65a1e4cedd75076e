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

// TestUpdateRevision: the service page offers the family's active
// revisions, newest first, the service's own selected; choosing another
// is UpdateService with that task definition (a new primary deployment),
// a revision that does not exist shows the API's refusal, and a viewer
// gets no control and a 403.
func TestUpdateRevision(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.createService(t, "api", 1)
	if _, err := f.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("app"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox:1.36"), Memory: aws.Int32(64)}}}); err != nil {
		t.Fatalf("RegisterTaskDefinition: %v", err)
	}
	c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	svcURL := f.url + "/console/clusters/web/services/api"
	page := get(t, c, svcURL)
	if !strings.Contains(page, `<option>app:2</option><option selected>app:1</option>`) {
		t.Fatalf("the service page does not offer app:2 and app:1 (selected):\n%s", page)
	}
	token := csrfOf(t, page)
	code, body := post(t, c, svcURL+"/task-definition", url.Values{"csrf": {token}, "taskDefinition": {"app:2"}}, http.Header{"HX-Request": {"true"}})
	if code != http.StatusOK || !strings.Contains(body, "Service api is being updated to app:2.") {
		t.Fatalf("update to app:2: HTTP %d %s", code, body)
	}
	d, err := f.admin.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("web"), Services: []string{"api"}})
	if err != nil || len(d.Services) != 1 {
		t.Fatalf("DescribeServices: %v", err)
	}
	if td := aws.ToString(d.Services[0].TaskDefinition); !strings.HasSuffix(td, "task-definition/app:2") ||
		!strings.HasSuffix(aws.ToString(d.Services[0].Deployments[0].TaskDefinition), "app:2") {
		t.Errorf("after the update the service runs %s, primary deployment %s; want app:2", td, aws.ToString(d.Services[0].Deployments[0].TaskDefinition))
	}
	code, body = post(t, c, svcURL+"/task-definition", url.Values{"csrf": {token}, "taskDefinition": {"app:9"}}, http.Header{"HX-Request": {"true"}})
	if code != http.StatusOK || !strings.Contains(body, "flash error") || !strings.Contains(body, "InvalidParameterException") {
		t.Errorf("update to app:9 (none): HTTP %d %s; want the API's refusal", code, body)
	}
	viewerID, viewerSecret := f.newKey(t, auth.RoleViewer)
	vc, _, _ := f.signInHTTP(t, viewerID, viewerSecret)
	vpage := get(t, vc, svcURL)
	if strings.Contains(vpage, "revision-form") {
		t.Errorf("a viewer's service page has the revision control")
	}
	if code, _ := post(t, vc, svcURL+"/task-definition", url.Values{"csrf": {csrfOf(t, vpage)}, "taskDefinition": {"app:1"}}, nil); code != http.StatusForbidden {
		t.Errorf("a viewer's update: HTTP %d, want 403", code)
	}
}
