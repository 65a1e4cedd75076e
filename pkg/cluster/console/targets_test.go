package console_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/chromedp/chromedp"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/elbv2/lbwire"
	"github.com/berth-dev/berth/pkg/cluster/records"
)

// balanced is a service "site" behind a load balancer "web": a listener on
// port 80 whose default action forwards to the target group "web-tg" and
// a rule sending /health to a fixed response. Its one task runs with the
// dynamic host port 32770, which the service controller registered.
type balanced struct {
	lbID, lbArn, tgID, tgArn, instanceID string
	// dataPlaneID and dataPlaneKey are an lb key: the data plane's part.
	dataPlaneID, dataPlaneKey string
}

func (f *fixture) serviceBehindLB(t *testing.T) *balanced {
	t.Helper()
	ctx := context.Background()
	lbc := elb.New(elb.Options{Region: testRegion, BaseEndpoint: aws.String(f.url), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(f.adminID, f.adminKey, "")})
	tg, err := lbc.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("web-tg"), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), VpcId: aws.String("vpc-berth"), TargetType: elbtypes.TargetTypeEnumInstance, HealthCheckPath: aws.String("/ping")})
	if err != nil {
		t.Fatalf("CreateTargetGroup: %v", err)
	}
	b := &balanced{tgArn: aws.ToString(tg.TargetGroups[0].TargetGroupArn)}
	b.tgID = records.LBResourceID(b.tgArn)
	lb, err := lbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web"), Subnets: []string{"subnet-berth"}})
	if err != nil {
		t.Fatalf("CreateLoadBalancer: %v", err)
	}
	b.lbArn = aws.ToString(lb.LoadBalancers[0].LoadBalancerArn)
	b.lbID = records.LBResourceID(b.lbArn)
	ls, err := lbc.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn,
		Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(b.tgArn)}}})
	if err != nil {
		t.Fatalf("CreateListener: %v", err)
	}
	if _, err := lbc.CreateRule(ctx, &elb.CreateRuleInput{ListenerArn: ls.Listeners[0].ListenerArn, Priority: aws.Int32(10),
		Conditions: []elbtypes.RuleCondition{{Field: aws.String("path-pattern"), PathPatternConfig: &elbtypes.PathPatternConditionConfig{Values: []string{"/health"}}}},
		Actions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumFixedResponse, FixedResponseConfig: &elbtypes.FixedResponseActionConfig{
			StatusCode: aws.String("204")}}}}); err != nil {
		t.Fatalf("CreateRule: %v", err)
	}
	if _, err := f.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("web"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("web"), Image: aws.String("busybox"), Memory: aws.Int32(32),
			PortMappings: []ecstypes.PortMapping{{ContainerPort: aws.Int32(8080), HostPort: aws.Int32(0)}}}}}); err != nil {
		t.Fatalf("RegisterTaskDefinition: %v", err)
	}
	if _, err := f.admin.CreateService(ctx, &ecs.CreateServiceInput{Cluster: aws.String("web"), ServiceName: aws.String("site"),
		TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(1),
		LoadBalancers: []ecstypes.LoadBalancer{{TargetGroupArn: aws.String(b.tgArn), ContainerName: aws.String("web"), ContainerPort: aws.Int32(8080)}}}); err != nil {
		t.Fatalf("CreateService: %v", err)
	}
	// The agent reports the task RUNNING with the container's dynamic host
	// port, which the service controller registers as the target.
	var taskArn string
	for deadline := time.Now().Add(30 * time.Second); taskArn == ""; time.Sleep(100 * time.Millisecond) {
		list, err := f.admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("web"), ServiceName: aws.String("site")})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.TaskArns) > 0 {
			taskArn = list.TaskArns[0]
		} else if time.Now().After(deadline) {
			t.Fatal("no task of site placed after 30s")
		}
	}
	if _, err := f.agent.SubmitTaskStateChange(ctx, &ecs.SubmitTaskStateChangeInput{Cluster: aws.String("web"), Task: aws.String(taskArn),
		Status: aws.String("RUNNING"), Containers: []ecstypes.ContainerStateChange{{ContainerName: aws.String("web"), Status: aws.String("RUNNING"),
			NetworkBindings: []ecstypes.NetworkBinding{{BindIP: aws.String("0.0.0.0"), ContainerPort: aws.Int32(8080), HostPort: aws.Int32(32770),
				Protocol: ecstypes.TransportProtocolTcp}}}}}); err != nil {
		t.Fatalf("SubmitTaskStateChange: %v", err)
	}
	b.instanceID = records.LBResourceID(f.instanceArn)
	b.dataPlaneID, b.dataPlaneKey = f.newKey(t, auth.RoleLB)
	// The service controller registers the target on its next pass, after
	// the state change: wait for it, or a health report finds no target
	// (seen in CI: "ReportTargetHealth recorded 0 reports").
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		th, err := lbc.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(b.tgArn)})
		if err != nil {
			t.Fatalf("DescribeTargetHealth: %v", err)
		}
		if len(th.TargetHealthDescriptions) == 1 && aws.ToInt32(th.TargetHealthDescriptions[0].Target.Port) == 32770 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the task's target (port 32770) not registered after 30s: %d targets", len(th.TargetHealthDescriptions))
		}
	}
	return b
}

// reportHealth plays the load balancer's data plane (berth-lb): it
// reports the health its checks see of the task's target.
func (f *fixture) reportHealth(t *testing.T, b *balanced, state, reason, description string) {
	t.Helper()
	var rep lbwire.ReportOutput
	f.dataPlane(t, b, lbwire.OpReportTargetHealth, lbwire.ReportInput{TargetGroupArn: b.tgArn, Targets: []lbwire.TargetHealth{{ID: b.instanceID,
		Port: 32770, State: state, Reason: reason, Description: description}}}, &rep)
	if rep.Recorded != 1 {
		t.Fatalf("ReportTargetHealth recorded %d reports, want 1", rep.Recorded)
	}
}

// dataPlane calls a data-plane operation as berth-lb does, with b's lb
// key.
func (f *fixture) dataPlane(t *testing.T, b *balanced, op string, in, out any) {
	t.Helper()
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, f.url+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", lbwire.TargetPrefix+op)
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: b.dataPlaneID, SecretAccessKey: b.dataPlaneKey}, req,
		hex.EncodeToString(sum[:]), auth.LBService, testRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, out) != nil {
		t.Fatalf("%s: HTTP %d %s", op, resp.StatusCode, raw)
	}
}

// waitPage polls the console page u as c until its text (HTML entities
// decoded) contains every one of want; it returns the page as served.
func waitPage(t *testing.T, c *http.Client, u string, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		page := get(t, c, u)
		if containsAll(html.UnescapeString(page), want...) {
			return page
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not show %q after 30s:\n%s", u, want, page)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestServiceTargets: a service behind a target group shows its target
// group (a link to its page) and its tasks' targets (instance and dynamic
// host port) with their health, as DescribeTargetHealth reports it
// (initial: no data plane reported yet).
func TestServiceTargets(t *testing.T) {
	f := newFixture(t)
	b := f.serviceBehindLB(t)
	c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	waitPage(t, c, f.url+"/console/clusters/web/services/site?part=live", `id="targets"`, `href="/console/target-groups/`+b.tgID+`">web-tg<`,
		">initial<", ":32770<", "Elb.RegistrationInProgress")
	page := get(t, c, f.url+"/console/clusters/web/services/site")
	if !containsAll(page, `id="service-target-groups"`, `href="/console/target-groups/`+b.tgID+`"`, "<td>web</td>", ">8080<") {
		t.Errorf("the service page does not list its target group web-tg (container web, port 8080):\n%s", page)
	}
}

// TestLoadBalancerPages: the load balancers page lists the load balancer
// and the target group; the load balancer's page shows its listener with
// the rules in the order they apply and the target group with the target's
// health, which follows the data plane's reports; a description the data
// plane sends is text, not markup.
func TestLoadBalancerPages(t *testing.T) {
	f := newFixture(t)
	b := f.serviceBehindLB(t)
	c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	list := get(t, c, f.url+"/console/load-balancers")
	if !containsAll(list, `href="/console/load-balancers/`+b.lbID+`">web<`, "application", `href="/console/target-groups/`+b.tgID+`">web-tg<`) {
		t.Errorf("the load balancers page does not list web and web-tg:\n%s", list)
	}
	lbURL := f.url + "/console/load-balancers/" + b.lbID + "?part=live"
	page := waitPage(t, c, lbURL, "HTTP:80", ":32770<", ">initial<", "Health check: HTTP /ping on the traffic port")
	rule, dflt := strings.Index(page, "path-pattern is /health"), strings.Index(page, "<td>default</td>")
	if rule < 0 || dflt < rule || !strings.Contains(page, "fixed response 204") || !strings.Contains(page, `forward to <a href="/console/target-groups/`+b.tgID+`">web-tg</a>`) {
		t.Errorf("listener rules: want the /health rule (fixed response 204) before the default rule (forward to web-tg):\n%s", page)
	}
	f.reportHealth(t, b, "unhealthy", "Target.ResponseCodeMismatch", "Health checks failed with these codes: [502] <script>alert(1)</script>")
	page = waitPage(t, c, lbURL, ">unhealthy<", "Target.ResponseCodeMismatch")
	if strings.Contains(page, "<script>alert") || !strings.Contains(page, "[502] &lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the data plane's description is not escaped:\n%s", page)
	}
	waitPage(t, c, f.url+"/console/target-groups/"+b.tgID+"?part=live", ">unhealthy<", `href="/console/load-balancers/`+b.lbID+`">web<`)
	if got := get(t, c, f.url+"/console/load-balancers"); !strings.Contains(got, "0 / 1") {
		t.Errorf("the target group list counts no 0 healthy of 1 target:\n%s", got)
	}
	for _, u := range []string{"/console/load-balancers/nosuch", "/console/target-groups/nosuch"} {
		resp, err := c.Get(f.url + u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: HTTP %d, want 404", u, resp.StatusCode)
		}
	}
}

// TestBrowserTargetHealth: the load balancer's page in Chromium polls
// with the ETag of what it shows (304 while nothing changes) and shows the
// target's health change as the data plane reports it, without a reload.
func TestBrowserTargetHealth(t *testing.T) {
	path := requireBrowser(t)
	f := newFixture(t)
	b := f.serviceBehindLB(t)
	ctx := browser(t, path)
	signIn(t, ctx, f.url, f.adminID, f.adminKey)
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a[href="/console/load-balancers"]`)),
		chromedp.WaitVisible(chromedp.CSS("#load-balancers")),
		chromedp.Click(chromedp.CSS(`a[href="/console/load-balancers/`+b.lbID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("table.rules")),
	); err != nil {
		t.Fatalf("open the load balancer's page: %v", err)
	}
	if err := waitText(ctx, ".targets td.health", "initial"); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.berthNoReload = true`)); err != nil {
		t.Fatalf("mark the page: %v", err)
	}
	// While nothing changes, the polls are answered 304 (the ETag sent
	// back); the page keeps showing the target.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`performance.getEntriesByType("resource").filter(e => e.name.includes("part=live") && e.responseStatus === 304).length`))
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			dbg, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(performance.getEntriesByType("resource").filter(e => e.name.includes("part=live")).map(e => [e.responseStatus, e.transferSize]))`))
			t.Fatalf("no poll of the load balancer's live part was answered 304 in 15 s (status, bytes of each): %s", dbg)
		}
	}
	if err := waitText(ctx, ".targets td.health", "initial"); err != nil {
		t.Fatal(err)
	}
	f.reportHealth(t, b, "healthy", "", "")
	if err := waitText(ctx, ".targets td.health", "healthy"); err != nil {
		t.Fatal(err)
	}
	if still, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.berthNoReload === true`)); err != nil || !still {
		t.Fatalf("the page was reloaded to show the new health (marker %v, %v)", still, err)
	}
}
