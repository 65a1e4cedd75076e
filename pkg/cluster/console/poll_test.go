package console_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestLivePollETag: a live part carries an ETag; a poll sending it back
// gets 304 and no body while nothing changed, and 200 with a new tag once
// the service changed.
func TestLivePollETag(t *testing.T) {
	f := newFixture(t)
	f.createService(t, "api", 1)
	c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	live := f.url + "/console/clusters/web/services/api?part=live"
	poll := func(tag string) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, live, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("HX-Request", "true")
		if tag != "" {
			req.Header.Set("If-None-Match", tag)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("ETag"), string(b)
	}
	code, tag, body := poll("")
	if code != http.StatusOK || tag == "" || !strings.Contains(body, `id="desired">1<`) {
		t.Fatalf("first poll: HTTP %d, ETag %q:\n%s", code, tag, body)
	}
	if code, again, body := poll(tag); code != http.StatusNotModified || again != tag || body != "" {
		t.Errorf("poll with its tag, nothing changed: HTTP %d, ETag %q, %d bytes; want 304, the same tag, no body", code, again, len(body))
	}
	page := get(t, c, f.url+"/console/clusters/web/services/api")
	if code, _ := post(t, c, f.url+"/console/clusters/web/services/api/desired-count", url.Values{"csrf": {csrfOf(t, page)}, "desiredCount": {"2"}}, nil); code != http.StatusOK {
		t.Fatalf("scale: HTTP %d", code)
	}
	if code, newTag, body := poll(tag); code != http.StatusOK || newTag == tag || !strings.Contains(body, `id="desired">2<`) {
		t.Errorf("poll with the old tag after a change: HTTP %d, ETag %q (old %q); want 200 with desired 2 and a new tag", code, newTag, tag)
	}
}
