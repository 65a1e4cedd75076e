package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
)

func TestDockerConfigSourceFollowsDockerPrecedence(t *testing.T) {
	static := Credentials{Username: "u", Password: "p"}
	cases := []struct {
		name string
		cfg  *DockerConfig
		host string
		want credentialSource
	}{
		{"nil config", nil, "reg.example", credentialSource{}},
		{"static only", &DockerConfig{Auths: EngineAuth{"reg.example": static}}, "reg.example",
			credentialSource{static: static, hasStatic: true}},
		{"nothing for host", &DockerConfig{Auths: EngineAuth{"other.example": static}}, "reg.example", credentialSource{}},
		{"credHelpers beats credsStore and auths", &DockerConfig{
			Auths: EngineAuth{"reg.example": static}, CredsStore: "store", CredHelpers: map[string]string{"reg.example": "ecr"},
		}, "reg.example", credentialSource{helper: "ecr", serverURL: "reg.example"}},
		{"credHelpers for another host", &DockerConfig{
			Auths: EngineAuth{"reg.example": static}, CredHelpers: map[string]string{"other.example": "ecr"},
		}, "reg.example", credentialSource{static: static, hasStatic: true}},
		{"credHelpers key as URL is passed as written", &DockerConfig{
			CredHelpers: map[string]string{"https://reg.example:5000/": "h"},
		}, "reg.example:5000", credentialSource{helper: "h", serverURL: "https://reg.example:5000/"}},
		{"exact credHelpers key wins over alias", &DockerConfig{
			CredHelpers: map[string]string{"https://reg.example/": "alias", "reg.example": "exact"},
		}, "reg.example", credentialSource{helper: "exact", serverURL: "reg.example"}},
		{"docker hub via docker.io key", &DockerConfig{CredHelpers: map[string]string{"docker.io": "hub"}},
			"registry-1.docker.io", credentialSource{helper: "hub", serverURL: dockerHubServerURL}},
		{"docker hub via index URL key", &DockerConfig{CredHelpers: map[string]string{dockerHubServerURL: "hub"}},
			"registry-1.docker.io", credentialSource{helper: "hub", serverURL: dockerHubServerURL}},
		{"credsStore beats auths", &DockerConfig{Auths: EngineAuth{"reg.example": static}, CredsStore: "store"},
			"reg.example", credentialSource{helper: "store", serverURL: "reg.example"}},
		{"credsStore asked for the auths key as written", &DockerConfig{
			CredsStore: "store", authKeys: map[string]string{"reg.example": "https://reg.example"},
		}, "reg.example", credentialSource{helper: "store", serverURL: "https://reg.example"}},
		{"credsStore for docker hub", &DockerConfig{CredsStore: "store"}, "registry-1.docker.io",
			credentialSource{helper: "store", serverURL: dockerHubServerURL}},
		{"empty credHelpers entry exempts from credsStore", &DockerConfig{
			Auths: EngineAuth{"reg.example": static}, CredsStore: "store", CredHelpers: map[string]string{"reg.example": ""},
		}, "reg.example", credentialSource{static: static, hasStatic: true}},
	}
	for _, c := range cases {
		if got := c.cfg.source(c.host); got != c.want {
			t.Errorf("%s: source(%q) = %+v, want %+v", c.name, c.host, got, c.want)
		}
	}
}

// fakeHelpers is a directory of fake docker-credential-* programs put
// first on PATH; every helper records its arguments and standard input.
type fakeHelpers struct {
	dir string
}

// newFakeHelpers puts a fresh directory first on PATH for this test (so
// the test cannot be parallel).
func newFakeHelpers(t *testing.T) *fakeHelpers {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return &fakeHelpers{dir: dir}
}

// add writes a helper whose shell body runs after it has recorded "$1" and
// its input in $url; it returns the helper's name (the part after
// "docker-credential-"), unique to this run.
func (f *fakeHelpers) add(t *testing.T, body string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "berthtest" + hex.EncodeToString(b)
	script := fmt.Sprintf("#!/bin/sh\nurl=$(cat)\nprintf '%%s %%s' \"$1\" \"$url\" >> %s\n%s\n",
		filepath.Join(f.dir, name+".calls"), body)
	if err := os.WriteFile(filepath.Join(f.dir, "docker-credential-"+name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return name
}

// calls returns what the helper was run with ("get <server URL>" per run,
// concatenated), empty if it never ran.
func (f *fakeHelpers) calls(name string) string {
	b, _ := os.ReadFile(filepath.Join(f.dir, name+".calls"))
	return string(b)
}

// answer is a helper body printing a credentials answer for $url.
func answer(user, secret string) string {
	return fmt.Sprintf(`printf '{"ServerURL":"%%s","Username":"%s","Secret":"%s"}' "$url"`, user, secret)
}

const notFoundBody = `echo "credentials not found in native keychain"; exit 1`

func TestCredentialHelperAnswers(t *testing.T) {
	helpers := newFakeHelpers(t)
	cases := []struct {
		name     string
		body     string // "" for a helper that is not installed
		want     Credentials
		wantOK   bool
		wantErr  string // substring of the error, besides the helper's name
		wantCall bool
	}{
		{name: "password", body: answer("al", "pw"), want: Credentials{Username: "al", Password: "pw"}, wantOK: true, wantCall: true},
		{name: "identity token", body: answer("<token>", "refresh"), want: Credentials{IdentityToken: "refresh"}, wantOK: true, wantCall: true},
		{name: "not found is anonymous", body: notFoundBody, wantCall: true},
		{name: "empty answer is anonymous", body: answer("", ""), wantCall: true},
		{name: "failure", body: `echo "store is locked"; echo "details on stderr" >&2; exit 1`,
			wantErr: "store is locked", wantCall: true},
		{name: "stderr kept", body: `echo "cannot reach the store" >&2; exit 2`,
			wantErr: "exit status 2 (stderr: cannot reach the store)", wantCall: true},
		{name: "bad json", body: `echo "not json"`, wantErr: "invalid character", wantCall: true},
		{name: "not installed", wantErr: "executable file not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "berthtestmissing"
			if c.body != "" {
				name = helpers.add(t, c.body)
			}
			cfg := &DockerConfig{CredHelpers: map[string]string{"reg.example:5000": name}}
			got, ok, err := cfg.Lookup(t.Context(), "reg.example:5000")
			if c.wantErr != "" {
				var he *CredentialHelperError
				if !errors.As(err, &he) || he.Helper != "docker-credential-"+name || he.Registry != "reg.example:5000" {
					t.Fatalf("error %v, want a CredentialHelperError for docker-credential-%s and reg.example:5000", err, name)
				}
				if !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "docker-credential-"+name) {
					t.Errorf("error %q does not say %q and name the helper", err, c.wantErr)
				}
				if !errors.Is(classifyPullError("ref", fmt.Errorf("resolve: %w", err), nil, nil), ErrUnauthorized) {
					t.Errorf("helper failure %v is not classified as ErrUnauthorized", err)
				}
			} else if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			if got != c.want || ok != c.wantOK {
				t.Errorf("Lookup = %+v, %v; want %+v, %v", got, ok, c.want, c.wantOK)
			}
			if calls := helpers.calls(name); c.wantCall && calls != "get reg.example:5000" {
				t.Errorf("helper was run with %q, want %q", calls, "get reg.example:5000")
			}
		})
	}
}

func TestCredentialHelperIsBoundedByContext(t *testing.T) {
	helpers := newFakeHelpers(t)
	name := helpers.add(t, "exec sleep 600")
	cfg := &DockerConfig{CredsStore: name}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, ok, err := cfg.Lookup(ctx, "reg.example")
	var he *CredentialHelperError
	if !errors.As(err, &he) || !errors.Is(err, context.DeadlineExceeded) || ok {
		t.Fatalf("Lookup with a hanging helper = %v, %v; want a CredentialHelperError wrapping the deadline", ok, err)
	}
}

func TestPullCredentialsRunEachHelperOncePerHost(t *testing.T) {
	helpers := newFakeHelpers(t)
	name := helpers.add(t, answer("al", "pw"))
	pc := newPullCredentials(&DockerConfig{CredsStore: name})
	for _, host := range []string{"reg.example", "reg.example", "other.example"} {
		if c, ok, err := pc.lookup(t.Context(), host); err != nil || !ok || c.Password != "pw" {
			t.Fatalf("lookup(%s) = %+v, %v, %v", host, c, ok, err)
		}
	}
	if got, want := helpers.calls(name), "get reg.exampleget other.example"; got != want {
		t.Errorf("helper runs %q, want %q (once per host)", got, want)
	}
}

// TestPullWithCredentialHelpers pulls from the real authenticating
// registry with credentials that only a helper knows.
func TestPullWithCredentialHelpers(t *testing.T) {
	areg := testenv.AuthRegistry(t)
	img := testenv.BuildImage(t, areg, "rt/credhelper", testenv.ImageSpec{Cmd: []string{"/bin/true"}})
	helpers := newFakeHelpers(t)
	right := helpers.add(t, answer(areg.Username, areg.Password))
	wrong := helpers.add(t, answer(areg.Username, areg.Password+"-wrong"))
	failing := helpers.add(t, `echo "helper exploded"; exit 1`)
	notFound := helpers.add(t, notFoundBody)
	hanging := helpers.add(t, "exec sleep 600")

	writeConfig := func(t *testing.T, cfg map[string]any) string {
		path := filepath.Join(t.TempDir(), "config.json")
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	helperFor := func(name string) map[string]any {
		return map[string]any{"credHelpers": map[string]string{areg.Host: name}}
	}
	engineRight, err := ParseEngineAuth(EngineAuthDocker,
		fmt.Sprintf(`{%q:{"username":%q,"password":%q}}`, areg.Host, areg.Username, areg.Password))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		cfg    map[string]any
		adjust func(*Options)
		helper string // run with the registry's host, if set
		// check judges the pull's error.
		check func(t *testing.T, err error)
	}{
		{name: "credHelpers", cfg: helperFor(right), helper: right, check: pullSucceeded},
		{name: "credsStore", cfg: map[string]any{"auths": map[string]any{areg.Host: map[string]any{}}, "credsStore": right},
			helper: right, check: pullSucceeded},
		{name: "credHelpers beats credsStore", cfg: map[string]any{"credHelpers": map[string]string{areg.Host: right}, "credsStore": failing},
			helper: right, check: pullSucceeded},
		{name: "wrong password", cfg: helperFor(wrong), helper: wrong, check: pullUnauthorized("")},
		{name: "failing helper", cfg: helperFor(failing), helper: failing,
			check: pullUnauthorized("docker-credential-"+failing, areg.Host, "helper exploded")},
		{name: "missing helper", cfg: helperFor("berthtestmissing"),
			check: pullUnauthorized("docker-credential-berthtestmissing", areg.Host)},
		{name: "not found is anonymous", cfg: map[string]any{"credsStore": notFound}, helper: notFound, check: pullUnauthorized("")},
		{name: "engine auth before docker config", cfg: helperFor(failing),
			adjust: func(o *Options) { o.Registry.EngineAuth = engineRight }, check: pullSucceeded},
		{name: "hanging helper ends with the pull", cfg: helperFor(hanging), helper: hanging,
			adjust: func(o *Options) { o.PullTimeout = 2 * time.Second }, check: func(t *testing.T, err error) {
				if !errors.Is(err, ErrPullTimeout) {
					t.Fatalf("Pull with a hanging helper: %v, want ErrPullTimeout", err)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, c.cfg)
			before := map[string]string{}
			for _, h := range []string{right, wrong, failing, notFound, hanging} {
				before[h] = helpers.calls(h)
			}
			tr := newTestRuntime(t, func(o *Options) {
				o.Registry.DockerConfigPath = path
				if c.adjust != nil {
					c.adjust(o)
				}
			})
			got, err := tr.PullWith(t.Context(), img.Ref, PullOptions{})
			c.check(t, err)
			if err == nil && got.Digest != img.Digest.String() {
				t.Errorf("recorded digest %s, registry has %s", got.Digest, img.Digest)
			}
			for h, was := range before {
				calls := strings.TrimPrefix(helpers.calls(h), was)
				switch {
				case h == c.helper && calls != "get "+areg.Host:
					t.Errorf("helper %s ran as %q during the pull, want once as %q", h, calls, "get "+areg.Host)
				case h != c.helper && calls != "":
					t.Errorf("helper %s ran as %q during the pull, want not at all", h, calls)
				}
			}
		})
	}
}

func pullSucceeded(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
}

// pullUnauthorized wants ErrUnauthorized; with words, a helper failure
// whose message says them all, without, an anonymous or wrong-password
// pull that no helper failed.
func pullUnauthorized(words ...string) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Pull: %v, want ErrUnauthorized", err)
		}
		var he *CredentialHelperError
		isHelper := errors.As(err, &he)
		if words[0] == "" {
			if isHelper {
				t.Fatalf("Pull: %v, want a refusal by the registry, not a helper failure", err)
			}
			return
		}
		if !isHelper {
			t.Fatalf("Pull: %v, want a CredentialHelperError", err)
		}
		for _, w := range words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Pull error %q does not say %q", err, w)
			}
		}
	}
}
