package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/chromedp/chromedp"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// requireBrowser stops the test unless Chromium and the vendored browser
// libraries are there: a failure under CI=true, a skip elsewhere.
func requireBrowser(t *testing.T) string {
	t.Helper()
	testenv.RequireBinaries(t, "chromium")
	requireFile(t, "static/vendor/htmx.min.js", "the console's vendored libraries are missing (static/vendor/htmx.min.js): run `make console-assets`")
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// requireFile stops the test unless path exists: a failure saying msg
// under CI=true, a skip elsewhere.
func requireFile(t *testing.T, path, msg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// browser starts a headless Chromium for the test, with a 1280×800
// window (the screenshots' size).
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 800),
		chromedp.NoSandbox, // the tests run as root
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancel := chromedp.NewContext(actx)
	// Start the browser now, on a context without a deadline (which would
	// end the browser), so that a missing library fails here.
	if err := chromedp.Do(bctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(bctx, 2*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
	})
	return ctx
}

// signIn fills in the sign-in form as an operator does.
func signIn(t *testing.T, ctx context.Context, base, id, secret string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/console/"),
		chromedp.WaitVisible(chromedp.CSS("#key-id")),
		chromedp.SendKeys(chromedp.CSS("#key-id"), id),
		chromedp.SendKeys(chromedp.CSS("#secret"), secret),
		chromedp.Click(chromedp.CSS("#signin-button")),
		chromedp.WaitVisible(chromedp.CSS("#clusters")),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
}

// waitText waits until the element sel shows want.
func waitText(ctx context.Context, sel, want string) error {
	return waitUntil(ctx, sel, fmt.Sprintf("%q", want), func(text string) bool { return strings.TrimSpace(text) == want })
}

// waitContains waits until the text of sel contains every one of want.
func waitContains(ctx context.Context, sel string, want ...string) error {
	return waitUntil(ctx, sel, fmt.Sprintf("text containing %q", want), func(text string) bool { return containsAll(text, want...) })
}

// waitUntil waits up to 30 s until the text of the element sel is ok;
// it fails with the text last seen and the page's main element.
func waitUntil(ctx context.Context, sel, want string, ok func(string) bool) error {
	deadline := time.Now().Add(30 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		// A query waits for its element; each try is bounded, so that an
		// element that never comes fails with what the page showed.
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		text, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			got = text
			if ok(got) {
				return nil
			}
		} else if ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
	return fmt.Errorf("%s shows %q after 30s, want %s; the page's main:\n%s", sel, got, want, html)
}

// TestBrowserScaleAndStop drives the console in Chromium as an operator:
// sign in, find a service created through the API with its running
// tasks, scale it from the page and watch the running count follow
// without a reload, then stop a task from the page.
func TestBrowserScaleAndStop(t *testing.T) {
	path := requireBrowser(t)
	f := newFixture(t)
	f.createService(t, "api", 2)
	ctx := browser(t, path)
	signIn(t, ctx, f.url, f.adminID, f.adminKey)

	clusters, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#clusters")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(clusters, "web") {
		t.Fatalf("clusters page shows %q, want the cluster web", clusters)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a[href="/console/clusters/web"]`)),
		chromedp.WaitVisible(chromedp.CSS("#services")),
		chromedp.Click(chromedp.CSS(`a[href="/console/clusters/web/services/api"]`)),
		chromedp.WaitVisible(chromedp.CSS("#running")),
	); err != nil {
		t.Fatalf("open the service page: %v", err)
	}
	if err := waitText(ctx, "#running", "2"); err != nil {
		t.Fatal(err)
	}

	// Scale to 3 from the page. A marker on window proves afterwards that
	// the page was never reloaded.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.berthNoReload = true`)); err != nil {
		t.Fatalf("mark the page: %v", err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#desired-input"), "3"),
		chromedp.Click(chromedp.CSS("#set-desired")),
	); err != nil {
		t.Fatalf("scale: %v", err)
	}
	if err := waitText(ctx, "#flash .flash", "Desired count of api set to 3."); err != nil {
		t.Fatal(err)
	}
	if err := waitText(ctx, "#desired", "3"); err != nil {
		t.Fatal(err)
	}
	// The service controller places the third task; the agent reports it.
	f.waitRunning(t, "api", 3)
	if err := waitText(ctx, "#running", "3"); err != nil {
		t.Fatal(err)
	}
	if still, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.berthNoReload === true`)); err != nil || !still {
		t.Fatalf("the page was reloaded to show the new count (marker %v, %v)", still, err)
	}

	// Stop the first task of the list from the page.
	attr, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#service-tasks tbody tr"), "data-task"))
	if err != nil || !attr.Exists {
		t.Fatalf("the first task of the list: %v (found: %v)", err, attr.Exists)
	}
	taskID := attr.Value
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#service-tasks tbody tr button.stop"))); err != nil {
		t.Fatalf("stop task %s: %v", taskID, err)
	}
	if err := waitText(ctx, "#flash .flash", "Task "+taskID+" is stopping."); err != nil {
		t.Fatal(err)
	}
	d, err := f.admin.DescribeTasks(context.Background(), &ecs.DescribeTasksInput{Cluster: aws.String("web"), Tasks: []string{taskID}})
	if err != nil || len(d.Tasks) != 1 {
		t.Fatalf("DescribeTasks %s: %v %+v", taskID, err, d)
	}
	if got := aws.ToString(d.Tasks[0].DesiredStatus); got != "STOPPED" {
		t.Errorf("task %s stopped from the page: desired status %s, want STOPPED", taskID, got)
	}
	if got, want := aws.ToString(d.Tasks[0].StoppedReason), "Stopped from the console by "+f.adminID; got != want {
		t.Errorf("stopped reason %q, want %q", got, want)
	}
}

// TestBrowserViewerCannotAct: a viewer key signs in and sees the service,
// without the controls; a request forged from its page with its session's
// CSRF token is refused and changes nothing; the key signs no API request.
func TestBrowserViewerCannotAct(t *testing.T) {
	path := requireBrowser(t)
	f := newFixture(t)
	f.createService(t, "api", 1)
	viewerID, viewerSecret := f.newKey(t, auth.RoleViewer)
	if _, err := f.client(viewerID, viewerSecret).ListClusters(context.Background(), &ecs.ListClustersInput{}); !strings.Contains(fmt.Sprint(err), "AccessDenied") {
		t.Errorf("viewer key's signed ListClusters: %v, want AccessDenied", err)
	}
	ctx := browser(t, path)
	signIn(t, ctx, f.url, viewerID, viewerSecret)
	if err := chromedp.Do(ctx, chromedp.Navigate(f.url+"/console/clusters/web/services/api"),
		chromedp.WaitVisible(chromedp.CSS("#service-tasks"))); err != nil {
		t.Fatalf("viewer opens the service page: %v", err)
	}
	if err := waitText(ctx, "#running", "1"); err != nil {
		t.Fatal(err)
	}
	controls, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#desired-form, #stop-form, button.stop").length`))
	if err != nil || controls != 0 {
		t.Errorf("a viewer's service page has %d action controls (%v), want none", controls, err)
	}
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(async () => {
		const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"];
		const r = await fetch("/console/clusters/web/services/api/desired-count", {method: "POST",
			headers: {"X-CSRF-Token": token, "Content-Type": "application/x-www-form-urlencoded"}, body: "desiredCount=9"});
		return r.status;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil || status != 403 {
		t.Errorf("forged scale from a viewer's page: HTTP %d (%v), want 403", status, err)
	}
	if got := f.desired(t, "api"); got != 1 {
		t.Errorf("after the viewer's forged request the desired count is %d, want 1", got)
	}
}

// TestBrowserSessionEnd: when the session ends under an open page (its
// key revoked), the next live poll takes the browser to the sign-in page
// instead of leaving a page that silently stops updating.
func TestBrowserSessionEnd(t *testing.T) {
	path := requireBrowser(t)
	f := newFixture(t)
	f.createService(t, "api", 1)
	id, secret := f.newKey(t, auth.RoleAdmin)
	ctx := browser(t, path)
	signIn(t, ctx, f.url, id, secret)
	if err := chromedp.Do(ctx, chromedp.Navigate(f.url+"/console/clusters/web/services/api"),
		chromedp.WaitVisible(chromedp.CSS("#live"))); err != nil {
		t.Fatal(err)
	}
	if err := f.ep.Keys().Revoke(id); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second) // polls run every 2 s
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS("#signin"))); err != nil {
		t.Fatalf("after the key was revoked the page did not go to the sign-in form: %v", err)
	}
}
