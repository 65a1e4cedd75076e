package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-dev/berth/internal/testenv"
)

// firefoxScript drives the console in Firefox with puppeteer-core over
// WebDriver BiDi (chromedp speaks only the DevTools protocol, which
// Firefox dropped); make console-firefox installs its node_modules.
const firefoxScript = "testdata/firefox/console.mjs"

// firefoxReport is one line the script prints.
type firefoxReport struct {
	Stage         string   `json:"stage"`
	Error         string   `json:"error"`
	Clusters      string   `json:"clusters"`
	RunningBefore string   `json:"runningBefore"`
	UserAgent     string   `json:"userAgent"`
	RunningAfter  string   `json:"runningAfter"`
	NoReload      bool     `json:"noReload"`
	Errors        []string `json:"errors"`
}

// TestFirefox: the console works in Firefox (Debian's firefox-esr) as in
// Chromium: sign in with the form (WebCrypto proof), the clusters, cluster
// and service pages under the CSP, and a live update (the service scaled
// through the API) changes the running count without a reload; the page
// logs no script error.
func TestFirefox(t *testing.T) {
	testenv.RequireBinaries(t, "firefox-esr", "node")
	requireFile(t, "static/vendor/htmx.min.js", "the console's vendored libraries are missing (static/vendor/htmx.min.js): run `make console-assets`")
	requireFile(t, "testdata/firefox/node_modules/puppeteer-core", "puppeteer-core is missing (testdata/firefox/node_modules): run `make console-firefox`")
	firefox, err := exec.LookPath("firefox-esr")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	f.createService(t, "api", 1)
	cfg, err := json.Marshal(map[string]string{"url": f.url, "keyId": f.adminID, "secret": f.adminKey,
		"cluster": "web", "service": "api", "firefox": firefox, "profile": t.TempDir(), "wantRunning": "2"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Base(firefoxScript), string(cfg))
	cmd.Dir = filepath.Dir(firefoxScript)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	var reports []firefoxReport
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		var r firefoxReport
		if err := json.Unmarshal(lines.Bytes(), &r); err != nil {
			t.Errorf("the script printed %q: %v", lines.Text(), err)
			continue
		}
		reports = append(reports, r)
		if r.Stage == "ready" {
			// The page is open: scale the service through the API, as
			// another operator would, and let the agent run the task.
			if _, err := f.admin.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("web"), Service: aws.String("api"),
				DesiredCount: aws.Int32(2)}); err != nil {
				t.Errorf("UpdateService: %v", err)
			}
			f.waitRunning(t, "api", 2)
		}
	}
	werr := cmd.Wait()
	if werr != nil || len(reports) != 2 || reports[1].Stage != "done" {
		t.Fatalf("the Firefox script: %v; reports %+v\nstderr:\n%s", werr, reports, stderr.String())
	}
	ready, done := reports[0], reports[1]
	if !strings.Contains(ready.UserAgent, "Firefox") {
		t.Errorf("user agent %q, want Firefox", ready.UserAgent)
	}
	if !strings.Contains(ready.Clusters, "web") {
		t.Errorf("clusters page shows %q, want the cluster web", ready.Clusters)
	}
	if ready.RunningBefore != "1" || done.RunningAfter != "2" {
		t.Errorf("running count %q, then %q; want 1, then 2", ready.RunningBefore, done.RunningAfter)
	}
	if !done.NoReload {
		t.Error("the page was reloaded to show the new count")
	}
	if len(done.Errors) > 0 {
		t.Errorf("the page logged errors in Firefox: %q", done.Errors)
	}
	t.Logf("Firefox: %s", ready.UserAgent)
}
