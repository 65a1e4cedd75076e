package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/console"
)

// TestSignIn: only a proof made with the key's secret over a fresh
// challenge signs in, once per challenge, and only with an admin key.
func TestSignIn(t *testing.T) {
	f := newFixture(t)
	agentID, agentSecret := f.newKey(t, auth.RoleAgent)

	c, resp, body := f.signInHTTP(t, f.adminID, f.adminKey)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="clusters"`) {
		t.Fatalf("admin sign-in: %s, want the clusters page:\n%s", resp.Status, body)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Request.Response.Cookies() {
		if ck.Name == "berth_console" {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/console/" {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/console/", cookie)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q: want default-src 'none' and script-src 'self'", csp)
	}
	get(t, c, f.url+"/console/clusters/web")

	for _, tc := range []struct {
		name, id, secret, want string
	}{
		{"wrong secret", f.adminID, "not-the-secret", "the access key id or the secret is wrong"},
		{"unknown key", "BKNOSUCHKEY000000000", "x", "the access key id or the secret is wrong"},
		{"agent key", agentID, agentSecret, "agent keys cannot sign in to the console"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, body := f.signInHTTP(t, tc.id, tc.secret)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, tc.want) {
				t.Errorf("sign-in: %s, want 401 saying %q:\n%s", resp.Status, tc.want, body)
			}
		})
	}

	t.Run("replayed challenge", func(t *testing.T) {
		c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
		// Replaying the form the browser sent, challenge and all, is
		// refused: capture it by signing in by hand.
		page := get(t, &http.Client{}, f.url+"/console/signin")
		nonce := strings.SplitN(strings.SplitN(page, `name="nonce" value="`, 2)[1], `"`, 2)[0]
		form := url.Values{"keyId": {f.adminID}, "nonce": {nonce}, "proof": {console.Proof(f.adminKey, nonce, f.adminID)}}
		first, _ := post(t, c, f.url+"/console/signin", form, nil)
		second, body := post(t, c, f.url+"/console/signin", form, nil)
		if first != http.StatusOK || second != http.StatusUnauthorized || !strings.Contains(body, "already used") {
			t.Errorf("first use %d, replay %d, want 200 then 401 saying already used:\n%s", first, second, body)
		}
	})

	t.Run("no session", func(t *testing.T) {
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noRedirect.Get(f.url + "/console/clusters/web")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/signin" {
			t.Errorf("page without a session: %s to %q, want 303 to /console/signin", resp.Status, resp.Header.Get("Location"))
		}
		status, _ := post(t, noRedirect, f.url+"/console/clusters/web/stop-task", url.Values{"task": {"x"}}, nil)
		if status != http.StatusUnauthorized {
			t.Errorf("action without a session: %d, want 401", status)
		}
		req, _ := http.NewRequest(http.MethodGet, f.url+"/console/clusters/web/services/api?part=live", nil)
		req.Header.Set("HX-Request", "true")
		resp, err = noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("HX-Redirect") != "/console/signin" {
			t.Errorf("a live poll without a session: %s, HX-Redirect %q; want 401 sending htmx to /console/signin", resp.Status, resp.Header.Get("HX-Redirect"))
		}
	})

	t.Run("revoked key", func(t *testing.T) {
		id, secret := f.newKey(t, auth.RoleAdmin)
		c, _, _ := f.signInHTTP(t, id, secret)
		get(t, c, f.url+"/console/")
		if err := f.ep.Keys().Revoke(id); err != nil {
			t.Fatal(err)
		}
		body := get(t, c, f.url+"/console/")
		if !strings.Contains(body, `id="signin"`) {
			t.Errorf("a revoked key's session still shows pages:\n%s", body)
		}
	})
}

// TestActionsNeedCSRF: an action without the session's CSRF token, or
// with a stale one, is refused and changes nothing; with it, it is the
// ECS operation, whose refusals the page shows.
func TestActionsNeedCSRF(t *testing.T) {
	f := newFixture(t)
	f.createService(t, "api", 1)
	c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	page := get(t, c, f.url+"/console/clusters/web/services/api")
	token := csrfOf(t, page)
	u := f.url + "/console/clusters/web/services/api/desired-count"

	// A stale token: one from a session signed in earlier.
	old, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	stale := csrfOf(t, get(t, old, f.url+"/console/clusters/web/services/api"))
	for _, tc := range []struct {
		name   string
		form   url.Values
		header http.Header
	}{
		{"missing", url.Values{"desiredCount": {"5"}}, nil},
		{"stale form field", url.Values{"desiredCount": {"5"}, "csrf": {stale}}, nil},
		{"stale header", url.Values{"desiredCount": {"5"}}, http.Header{"X-Csrf-Token": {stale}, "Hx-Request": {"true"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, c, u, tc.form, tc.header)
			if status != http.StatusForbidden || !strings.Contains(body, "CSRF") {
				t.Errorf("POST %s: %d %q, want 403 naming the CSRF token", tc.name, status, body)
			}
		})
	}
	if got := f.desired(t, "api"); got != 1 {
		t.Fatalf("refused actions changed the desired count to %d", got)
	}

	status, body := post(t, c, u, url.Values{"desiredCount": {"4"}}, http.Header{"X-Csrf-Token": {token}, "Hx-Request": {"true"}})
	if status != http.StatusOK || !strings.Contains(body, "Desired count of api set to 4.") || f.desired(t, "api") != 4 {
		t.Errorf("scale with the token: %d %q, desired %d; want 200, the message and 4", status, body, f.desired(t, "api"))
	}
	// The API's own validation answers, as the API would.
	status, body = post(t, c, u, url.Values{"desiredCount": {"-1"}, "csrf": {token}}, nil)
	if status != http.StatusBadRequest || !strings.Contains(body, "InvalidParameterException") {
		t.Errorf("desired count -1: %d, want 400 with the API's InvalidParameterException:\n%s", status, body)
	}
	status, body = post(t, c, f.url+"/console/clusters/web/stop-task", url.Values{"task": {"nosuchtask"}, "csrf": {token}}, nil)
	if status != http.StatusBadRequest || !strings.Contains(body, "InvalidParameterException") {
		t.Errorf("stop an unknown task: %d, want 400 with the API's error:\n%s", status, body)
	}
}

func (f *fixture) desired(t *testing.T, service string) int32 {
	t.Helper()
	d, err := f.admin.DescribeServices(context.Background(), &ecs.DescribeServicesInput{Cluster: aws.String("web"), Services: []string{service}})
	if err != nil || len(d.Services) != 1 {
		t.Fatalf("DescribeServices: %v", err)
	}
	return d.Services[0].DesiredCount
}

// TestUserStringsEscaped: a stop reason (any caller's string) with markup
// renders as text.
func TestUserStringsEscaped(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	run, err := f.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("web"), TaskDefinition: aws.String("app")})
	if err != nil || len(run.Tasks) != 1 {
		t.Fatalf("RunTask: %v %+v", err, run)
	}
	const evil = `<script>window.pwned=1</script><img src=x onerror=alert(1)>`
	if _, err := f.admin.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("web"), Task: run.Tasks[0].TaskArn, Reason: aws.String(evil)}); err != nil {
		t.Fatalf("StopTask: %v", err)
	}
	c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	id := run.Tasks[0].TaskArn
	page := get(t, c, f.url+"/console/clusters/web/tasks/"+(*id)[strings.LastIndex(*id, "/")+1:])
	if strings.Contains(page, "<script>window") || strings.Contains(page, "<img src=x") {
		t.Fatalf("the stop reason's markup reached the page unescaped:\n%s", page)
	}
	if !strings.Contains(page, "&lt;script&gt;window.pwned=1&lt;/script&gt;") {
		t.Errorf("the stop reason is not shown as text:\n%s", page)
	}
}

// TestStaticRevalidates: the embedded files carry an ETag, and a browser
// revalidating one it has gets 304 without the body.
func TestStaticRevalidates(t *testing.T) {
	f := newFixture(t)
	resp, err := http.Get(f.url + "/console/static/console.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || etag == "" {
		t.Fatalf("GET console.js: %s, ETag %q", resp.Status, etag)
	}
	req, _ := http.NewRequest(http.MethodGet, f.url+"/console/static/console.js", nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidating console.js: %s, want 304", resp.Status)
	}
}

// TestSignInLink: dev mode's one-time link signs a browser in once.
func TestSignInLink(t *testing.T) {
	f := newFixture(t)
	link, err := f.ep.ConsoleSignInLink(f.adminID)
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if page := get(t, c, f.url+link); !strings.Contains(page, `id="clusters"`) {
		t.Fatalf("following the link: want the clusters page, got:\n%s", page)
	}
	resp, err := (&http.Client{}).Get(f.url + link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "used already") {
		t.Errorf("the link a second time: %s, want 401 saying it was used:\n%s", resp.Status, body)
	}
	if _, err := f.ep.ConsoleSignInLink("BKNOSUCHKEY000000000"); err == nil {
		t.Error("a link for an unknown key was made")
	}
}

// TestDrainAndForceDeployment: a plain form post (no JavaScript) drains
// an instance and activates it again, and forces a new deployment, each
// through the ECS operation, and comes back to the page.
func TestDrainAndForceDeployment(t *testing.T) {
	f := newFixture(t)
	f.createService(t, "api", 1)
	ctx := context.Background()
	c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	page := get(t, c, f.url+"/console/clusters/web")
	token := csrfOf(t, page)
	instance := f.instanceArn[strings.LastIndex(f.instanceArn, "/")+1:]
	status := func() string {
		d, err := f.admin.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("web"),
			ContainerInstances: []string{f.instanceArn}})
		if err != nil || len(d.ContainerInstances) != 1 {
			t.Fatalf("DescribeContainerInstances: %v", err)
		}
		return aws.ToString(d.ContainerInstances[0].Status)
	}
	for _, want := range []string{"DRAINING", "ACTIVE"} {
		code, body := post(t, c, f.url+"/console/clusters/web/instance-state", url.Values{"csrf": {token}, "instance": {instance}, "status": {want}}, nil)
		if code != http.StatusOK || !strings.Contains(body, `id="instances"`) || status() != want {
			t.Fatalf("set instance %s: HTTP %d, instance %s; want the cluster page and %s", want, code, status(), want)
		}
	}
	before, err := f.admin.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("web"), Services: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	code, body := post(t, c, f.url+"/console/clusters/web/services/api/force-deployment", url.Values{"csrf": {token}}, nil)
	after, err := f.admin.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("web"), Services: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK || !strings.Contains(body, `id="live"`) ||
		aws.ToString(after.Services[0].Deployments[0].Id) == aws.ToString(before.Services[0].Deployments[0].Id) {
		t.Errorf("force a new deployment: HTTP %d, primary deployment %s before and %s after; want the service page and a new one",
			code, aws.ToString(before.Services[0].Deployments[0].Id), aws.ToString(after.Services[0].Deployments[0].Id))
	}
}

// TestTaskDefinitionsAndRunTask: the task definition pages list the
// families and revisions and show a revision readably and as JSON, its
// environment values escaped; running it from its page is RunTask.
func TestTaskDefinitionsAndRunTask(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("app"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Memory: aws.Int32(32),
			Environment: []ecstypes.KeyValuePair{{Name: aws.String("GREETING"), Value: aws.String("<b>hi</b>")}}}}}); err != nil {
		t.Fatalf("RegisterTaskDefinition: %v", err)
	}
	c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	if page := get(t, c, f.url+"/console/task-definitions"); !strings.Contains(page, `href="/console/task-definitions/app/2"`) {
		t.Errorf("families page does not link app's latest revision 2:\n%s", page)
	}
	if page := get(t, c, f.url+"/console/task-definitions/app"); !strings.Contains(page, "app:1") || !strings.Contains(page, "app:2") {
		t.Errorf("family page does not list both revisions:\n%s", page)
	}
	page := get(t, c, f.url+"/console/task-definitions/app/2")
	if strings.Contains(page, "<b>hi</b>") || !strings.Contains(page, "GREETING=&lt;b&gt;hi&lt;/b&gt;") || !strings.Contains(page, `id="taskdef-json"`) {
		t.Errorf("revision page: want the environment escaped and the JSON:\n%s", page)
	}
	token := csrfOf(t, page)
	code, body := post(t, c, f.url+"/console/task-definitions/app/2/run", url.Values{"csrf": {token}, "cluster": {"web"}, "count": {"0"}}, nil)
	if code != http.StatusBadRequest || !strings.Contains(body, "InvalidParameterException") {
		t.Errorf("run 0 tasks: HTTP %d, want 400 with the API's error:\n%s", code, body)
	}
	code, body = post(t, c, f.url+"/console/task-definitions/app/2/run", url.Values{"csrf": {token}, "cluster": {"web"}, "count": {"2"}}, nil)
	if code != http.StatusOK || !strings.Contains(body, `id="cluster-tasks"`) {
		t.Fatalf("run 2 tasks: HTTP %d, want the cluster page:\n%s", code, body)
	}
	list, err := f.admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("web"), StartedBy: aws.String("console/" + f.adminID)})
	if err != nil || len(list.TaskArns) != 2 {
		t.Errorf("tasks started by the console: %v %v, want 2", list, err)
	}
}
