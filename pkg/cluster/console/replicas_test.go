package console_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/console"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// TestSessionsAcrossReplicas: two replicas of the endpoint on one real
// etcd, as behind a load balancer. A browser signed in through one is
// signed in on the other, its CSRF token is good on both, a sign-in page
// served by one is accepted by the other (and only once, on either),
// signing out on one ends the session on the other, and idle and absolute
// expiry hold whichever replica last saw the session. The store holds no
// session id in clear.
func TestSessionsAcrossReplicas(t *testing.T) {
	etcd := testenv.Etcd(t, 1)
	kek := filepath.Join(t.TempDir(), "cluster.kek")
	if err := os.WriteFile(kek, []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	// One clock for both replicas, moved forward to expire sessions.
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	open := func(name string) cluster.Options {
		o := endpointOptions(t)
		o.Now = now
		o.Etcd = &cluster.EtcdOptions{Endpoints: etcd.Endpoints, Prefix: "/berth/console-test/", KEKFile: kek,
			MaxTxnOps: testenv.EtcdMaxTxnOps, LeaseTTL: 2 * time.Second, Replica: name}
		return o
	}
	a := newFixtureWith(t, open("a"))
	_, bURL := serve(t, open("b"))
	a.createService(t, "api", 1)

	c := newBrowser(t)
	if code := signInVia(t, c, a.url, a.url, a.adminID, a.adminKey); code != http.StatusSeeOther {
		t.Fatalf("sign in on A: %d", code)
	}
	pageA := get(t, c, a.url+"/console/clusters/web/services/api")
	pageB := get(t, c, bURL+"/console/clusters/web/services/api")
	if csrfOf(t, pageA) != csrfOf(t, pageB) {
		t.Fatal("the session's CSRF token differs between the replicas")
	}
	token := csrfOf(t, pageB)

	// Act on B: without the token refused, with it done.
	u := bURL + "/console/clusters/web/services/api/desired-count"
	if code, body := post(t, c, u, url.Values{"desiredCount": {"5"}}, nil); code != http.StatusForbidden {
		t.Fatalf("action on B without CSRF token: %d %s", code, body)
	}
	if code, body := post(t, c, u, url.Values{"desiredCount": {"3"}, "csrf": {token}}, nil); code >= 400 {
		t.Fatalf("action on B: %d %s", code, body)
	}
	if got := a.desired(t, "api"); got != 3 {
		t.Fatalf("desired count after the action on B = %d, want 3", got)
	}

	// What the store holds does not sign anyone in.
	cookie := sessionCookie(t, c, a.url)
	snap, err := store.Snapshot(a.ep.Store(), console.Buckets())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap[console.SessionsBucket]) != 1 {
		t.Fatalf("sessions in the store: %v", snap[console.SessionsBucket])
	}
	for b, recs := range snap {
		for k, v := range recs {
			if strings.Contains(k, cookie) || strings.Contains(v, cookie) || strings.Contains(v, token) {
				t.Fatalf("%s/%s holds the session id or its CSRF token in clear: %s", b, k, v)
			}
		}
	}

	// A sign-in page served by A, posted to B; its challenge is then used
	// up on both.
	c2 := newBrowser(t)
	nonce := challenge(t, c2, a.url)
	if code := postSignIn(t, c2, bURL, nonce, a.adminID, a.adminKey); code != http.StatusSeeOther {
		t.Fatalf("sign in on B with A's sign-in page: %d", code)
	}
	if code := postSignIn(t, newBrowser(t), a.url, nonce, a.adminID, a.adminKey); code != http.StatusUnauthorized {
		t.Fatalf("the challenge used on B replayed on A: %d, want 401", code)
	}

	// A wrong proof is refused and writes nothing: guesses cannot fill
	// the store.
	before, err := store.Snapshot(a.ep.Store(), console.Buckets())
	if err != nil {
		t.Fatal(err)
	}
	if code := postSignIn(t, newBrowser(t), bURL, challenge(t, newBrowser(t), a.url), a.adminID, "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("sign in with a wrong secret: %d, want 401", code)
	}
	after, err := store.Snapshot(a.ep.Store(), console.Buckets())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("a refused sign-in changed the store:\nbefore %v\nafter  %v", before, after)
	}

	// Sign out on B: refused on A.
	if code, body := post(t, c, bURL+"/console/signout", url.Values{"csrf": {token}}, nil); code != http.StatusSeeOther {
		t.Fatalf("sign out on B: %d %s", code, body)
	}
	if code := status(t, withCookie(t, cookie), a.url+"/console/clusters/web"); code != http.StatusSeeOther {
		t.Fatalf("A after signing out on B: %d, want 303 to the sign-in page", code)
	}
	if code, _ := post(t, withCookie(t, cookie), a.url+"/console/clusters/web/services/api/desired-count",
		url.Values{"desiredCount": {"4"}, "csrf": {token}}, nil); code != http.StatusUnauthorized {
		t.Fatalf("action on A after signing out on B: %d, want 401", code)
	}

	// Idle expiry: c2 (signed in on B) unused for longer than 30 minutes
	// is refused on A.
	if code := status(t, c2, a.url+"/console/"); code != http.StatusOK {
		t.Fatalf("A, for the session signed in on B: %d, want 200", code)
	}
	skew.Add(int64(31 * time.Minute))
	if code := status(t, c2, bURL+"/console/"); code != http.StatusSeeOther {
		t.Fatalf("B after 31 idle minutes: %d, want 303", code)
	}
	c3 := newBrowser(t)
	if code := signInVia(t, c3, bURL, bURL, a.adminID, a.adminKey); code != http.StatusSeeOther {
		t.Fatalf("sign in on B: %d", code)
	}
	signedIn := time.Duration(skew.Load())
	// Absolute expiry: c3, used every 20 minutes alternately on A and B,
	// is good until 12 hours after signing in, then refused.
	for i := 0; ; i++ {
		base := []string{a.url, bURL}[i%2]
		code := status(t, c3, base+"/console/")
		elapsed := time.Duration(skew.Load()) - signedIn
		if elapsed > 12*time.Hour+time.Minute {
			if code != http.StatusSeeOther {
				t.Fatalf("%s after %s: %d, want 303", base, elapsed, code)
			}
			break
		}
		if elapsed < 12*time.Hour-time.Minute && code != http.StatusOK {
			t.Fatalf("%s after %s in use: %d, want 200", base, elapsed, code)
		}
		skew.Add(int64(20 * time.Minute))
	}
}

// newBrowser is a client with a cookie jar that does not follow
// redirects: cookies are per host, so one jar serves both replicas on
// 127.0.0.1, as a browser's would behind a load balancer.
func newBrowser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// withCookie is a browser holding only the session cookie value.
func withCookie(t *testing.T, value string) *http.Client {
	t.Helper()
	c := newBrowser(t)
	u, _ := url.Parse("http://127.0.0.1/console/")
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "berth_console", Value: value, Path: "/console/"}})
	return c
}

func sessionCookie(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	u, _ := url.Parse(base + "/console/")
	for _, k := range c.Jar.Cookies(u) {
		if k.Name == "berth_console" {
			return k.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// challenge returns the nonce of base's sign-in page.
func challenge(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	page := get(t, c, base+"/console/signin")
	m := regexp.MustCompile(`name="nonce" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("sign-in page has no challenge:\n%s", page)
	}
	return m[1]
}

// postSignIn sends the sign-in form for nonce to base; it returns the
// status.
func postSignIn(t *testing.T, c *http.Client, base, nonce, id, secret string) int {
	t.Helper()
	resp, err := c.PostForm(base+"/console/signin", url.Values{"keyId": {id}, "nonce": {nonce}, "proof": {console.Proof(secret, nonce, id)}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// signInVia signs c in with the sign-in page of from, posted to to.
func signInVia(t *testing.T, c *http.Client, from, to, id, secret string) int {
	t.Helper()
	return postSignIn(t, c, to, challenge(t, c, from), id, secret)
}

func status(t *testing.T, c *http.Client, u string) int {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
