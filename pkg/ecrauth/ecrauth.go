// Package ecrauth obtains registry credentials for ECR-style registries:
// images under <account>.dkr.ecr.<region>.amazonaws.com (and registries
// configured as ECR-compatible with their API endpoint) are pulled with a
// token from ecr:GetAuthorizationToken, called with the task's execution
// role credentials or the instance's own. Tokens are cached until shortly
// before they expire.
//
// It is imported by pkg/execrole, whose RegistryLogins passes the result
// to pkg/runtime's per-pull credentials, and by pkg/agent, which builds the
// Provider. It imports no agent package.
package ecrauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
)

// Registry is an ECR-compatible registry configured by its host.
type Registry struct {
	// Host is the registry as it appears in image references
	// ("registry.example:5000").
	Host string
	// Endpoint is the base URL of its GetAuthorizationToken API.
	Endpoint string
	// Region signs the API calls; empty means DefaultRegion.
	Region string
	// RegistryID tells registries on one endpoint apart in the token cache.
	RegistryID string
}

// DefaultRegion signs calls to configured registries that name no region.
const DefaultRegion = "us-east-1"

// Options configure a Provider.
type Options struct {
	// Registries are ECR-compatible registries besides the amazonaws.com ones.
	Registries []Registry
	// InstanceCredentials are used for tasks without an execution role;
	// nil means such pulls get no token (ErrNoCredentials).
	InstanceCredentials aws.CredentialsProvider
	// HTTPClient carries the API calls; nil means the SDK's default.
	HTTPClient ecr.HTTPClient
	// RefreshBefore is how long before a token's expiry it stops being
	// used from the cache. Default 30m (tokens last 12h).
	RefreshBefore time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// RoleCredentials are an execution role's credentials.
type RoleCredentials struct {
	// RoleArn keys the token cache, so tasks sharing a role share tokens.
	RoleArn         string
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// Auth is a registry login.
type Auth struct {
	Username  string
	Password  string
	ExpiresAt time.Time
}

// ErrNoCredentials is returned for an ECR image when the task has no
// execution role and no instance credentials are configured.
var ErrNoCredentials = errors.New("ECR image needs an execution role or instance credentials")

var ecrHost = regexp.MustCompile(`^([0-9]{12})\.dkr\.ecr(-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$`)

// target is where a registry's token comes from.
type target struct {
	endpoint   string // empty: the SDK's regional endpoint
	region     string
	registryID string
}

type cacheKey struct {
	endpoint, region, registryID, identity string
}

// Provider answers registry credentials for image references.
type Provider struct {
	opts   Options
	byHost map[string]Registry
	mu     sync.Mutex
	// guarded by mu
	cache map[cacheKey]Auth
}

// New returns a Provider.
func New(opts Options) (*Provider, error) {
	if opts.RefreshBefore <= 0 {
		opts.RefreshBefore = 30 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Provider{opts: opts, byHost: make(map[string]Registry), cache: make(map[cacheKey]Auth)}
	for _, r := range opts.Registries {
		if r.Host == "" || r.Endpoint == "" {
			return nil, fmt.Errorf("ECR-compatible registry %q: host and endpoint are required", r.Host)
		}
		p.byHost[r.Host] = r
	}
	return p, nil
}

// registryHost returns the registry part of an image reference ("" for
// Docker Hub short names, which are never ECR).
func registryHost(ref string) string {
	host, _, ok := strings.Cut(ref, "/")
	if !ok || !strings.ContainsAny(host, ".:") && host != "localhost" {
		return ""
	}
	return host
}

func (p *Provider) match(ref string) (target, bool) {
	host := registryHost(ref)
	if host == "" {
		return target{}, false
	}
	if r, ok := p.byHost[host]; ok {
		region := r.Region
		if region == "" {
			region = DefaultRegion
		}
		return target{endpoint: r.Endpoint, region: region, registryID: r.RegistryID}, true
	}
	if m := ecrHost.FindStringSubmatch(host); m != nil {
		return target{region: m[3], registryID: m[1]}, true
	}
	return target{}, false
}

// IsECR reports whether ref's registry is pulled with a GetAuthorizationToken token.
func (p *Provider) IsECR(ref string) bool {
	_, ok := p.match(ref)
	return ok
}

// Auth returns the registry login for ref: ok is false when ref's
// registry is not ECR-style (the caller uses its other credentials).
// exec are the task's execution role credentials; nil uses the instance's.
func (p *Provider) Auth(ctx context.Context, ref string, exec *RoleCredentials) (auth Auth, ok bool, err error) {
	t, ok := p.match(ref)
	if !ok {
		return Auth{}, false, nil
	}
	var creds aws.CredentialsProvider
	identity := "instance"
	if exec != nil {
		creds = credentials.NewStaticCredentialsProvider(exec.AccessKeyID, exec.SecretAccessKey, exec.SessionToken)
		identity = "role:" + exec.RoleArn
		if exec.RoleArn == "" {
			identity = "key:" + exec.AccessKeyID
		}
	} else if p.opts.InstanceCredentials != nil {
		creds = p.opts.InstanceCredentials
	} else {
		return Auth{}, true, fmt.Errorf("registry auth for %s: %w", ref, ErrNoCredentials)
	}
	key := cacheKey{t.endpoint, t.region, t.registryID, identity}
	now := p.opts.Now()
	p.mu.Lock()
	cached, hit := p.cache[key]
	p.mu.Unlock()
	if hit && now.Before(cached.ExpiresAt.Add(-p.opts.RefreshBefore)) {
		return cached, true, nil
	}
	a, err := p.fetch(ctx, t, creds)
	if err != nil {
		return Auth{}, true, fmt.Errorf("registry auth for %s: %w", ref, err)
	}
	p.mu.Lock()
	p.cache[key] = a
	p.mu.Unlock()
	return a, true, nil
}

func (p *Provider) fetch(ctx context.Context, t target, creds aws.CredentialsProvider) (Auth, error) {
	o := ecr.Options{Region: t.region, Credentials: creds, HTTPClient: p.opts.HTTPClient}
	if t.endpoint != "" {
		o.BaseEndpoint = aws.String(t.endpoint)
	}
	// registryIds is deprecated: a token opens every registry the
	// principal may use, so the registry id only keys the cache.
	out, err := ecr.New(o).GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return Auth{}, fmt.Errorf("get authorization token: %w", err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return Auth{}, errors.New("get authorization token: no authorization data in the answer")
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(*d.AuthorizationToken)
	if err != nil {
		return Auth{}, fmt.Errorf("authorization token is not base64: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return Auth{}, errors.New(`authorization token is not base64 of "user:password"`)
	}
	a := Auth{Username: user, Password: pass}
	if d.ExpiresAt != nil {
		a.ExpiresAt = *d.ExpiresAt
	} else {
		// ECR tokens last 12 hours; an answer without expiresAt is cached as such.
		a.ExpiresAt = p.opts.Now().Add(12 * time.Hour)
	}
	return a, nil
}
