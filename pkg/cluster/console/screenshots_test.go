package console_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/chromedp/chromedp"
)

// screenshotsEnv names the directory TestScreenshots writes its images
// to (make console-screenshots: docs/console); unset, they go to a
// temporary directory and are only checked.
const screenshotsEnv = "BERTH_CONSOLE_SCREENSHOTS"

// TestScreenshots takes 1280×800 screenshots of the main pages of a
// cluster with two services and one behind a load balancer, their graph,
// a task's page, the instance's and the load balancer's, and checks
// each is a PNG of that size.
func TestScreenshots(t *testing.T) {
	path := requireBrowser(t)
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		dir = t.TempDir()
	}
	f := newFixture(t)
	ctx0 := context.Background()
	if _, err := f.admin.RegisterTaskDefinition(ctx0, &ecs.RegisterTaskDefinitionInput{Family: aws.String("api"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("api"), Image: aws.String("registry.local/api:1.4"), Memory: aws.Int32(256),
			Cpu: 256, PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(8080), HostPort: aws.Int32(0)}},
			LogConfiguration: &types.LogConfiguration{LogDriver: types.LogDriverAwslogs, Options: map[string]string{
				"awslogs-group": "/ecs/api", "awslogs-region": testRegion, "awslogs-stream-prefix": "api"}}}}}); err != nil {
		t.Fatalf("RegisterTaskDefinition: %v", err)
	}
	f.createServiceOf(t, "api", "api", 3)
	f.createService(t, "worker", 2)
	lb := f.serviceBehindLB(t)
	f.reportHealth(t, lb, "healthy", "", "")
	putUtilisation(t, f, "api", 90)
	list, err := f.admin.ListTasks(ctx0, &ecs.ListTasksInput{Cluster: aws.String("web"), ServiceName: aws.String("api")})
	if err != nil || len(list.TaskArns) == 0 {
		t.Fatalf("ListTasks: %v", err)
	}
	task := list.TaskArns[0][strings.LastIndex(list.TaskArns[0], "/")+1:]
	// The agent reports the container running on a dynamic host port and
	// ships its first lines.
	if _, err := f.agent.SubmitTaskStateChange(ctx0, &ecs.SubmitTaskStateChangeInput{Cluster: aws.String("web"), Task: aws.String(list.TaskArns[0]),
		Status: aws.String("RUNNING"), Containers: []types.ContainerStateChange{{ContainerName: aws.String("api"), Status: aws.String("RUNNING"),
			NetworkBindings: []types.NetworkBinding{{BindIP: aws.String("0.0.0.0"), ContainerPort: aws.Int32(8080), HostPort: aws.Int32(32768),
				Protocol: types.TransportProtocolTcp}}}}}); err != nil {
		t.Fatalf("SubmitTaskStateChange: %v", err)
	}
	f.putLogs(t, "/ecs/api", "api/api/"+task, "api 1.4 listening on :8080", "GET /healthz 200 0.4ms", "GET /v1/orders 200 12.1ms",
		"POST /v1/orders 201 31.7ms", "GET /healthz 200 0.3ms")

	ctx := browser(t, path)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	shoot := func(name, path, ready string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(f.url+path), chromedp.WaitVisible(chromedp.CSS(ready))); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		img, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(img))
		if err != nil || cfg.Width != 1280 || cfg.Height != 800 {
			t.Fatalf("screenshot %s: %dx%d (%v), want a 1280x800 PNG", name, cfg.Width, cfg.Height, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shoot("signin", "/console/signin", "#signin")
	signIn(t, ctx, f.url, f.adminID, f.adminKey)
	shoot("clusters", "/console/", "#clusters")
	shoot("cluster", "/console/clusters/web", "#instances")
	shoot("service", "/console/clusters/web/services/api", "#utilisation-chart canvas")
	shoot("task", "/console/clusters/web/tasks/"+task, "#containers")
	shoot("instance", "/console/clusters/web/instances/"+lb.instanceID, "#attributes")
	shoot("loadbalancer", "/console/load-balancers/"+lb.lbID, ".targets")
}
