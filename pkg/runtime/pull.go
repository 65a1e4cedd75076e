package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/pkg/container"
	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/containerd/remotes/docker/config"
	remoteerrors "github.com/containerd/containerd/remotes/errors"
	"github.com/containerd/log"
	"github.com/distribution/reference"
)

// Pull failure classes. Pull errors wrap exactly one of them with %w so the
// caller can write a reason such as "CannotPullContainerError: ...".
var (
	ErrImageNotFound       = errors.New("image not found")
	ErrUnauthorized        = errors.New("registry refused the credentials")
	ErrRegistryUnreachable = errors.New("registry unreachable")
	ErrPullTimeout         = errors.New("image pull timed out")
)

// PullBehavior says when Pull contacts the registry (ECS_IMAGE_PULL_BEHAVIOR).
type PullBehavior string

// Pull behaviours.
const (
	// PullDefault pulls every time and falls back to a cached copy when the
	// pull fails.
	PullDefault PullBehavior = "default"
	// PullAlways pulls every time; a failed pull is an error.
	PullAlways PullBehavior = "always"
	// PullOnce pulls only when this agent has not pulled the image before
	// (or its copy was removed).
	PullOnce PullBehavior = "once"
	// PullPreferCached uses any local copy and pulls only when there is none.
	PullPreferCached PullBehavior = "prefer-cached"
)

// ParsePullBehavior checks an ECS_IMAGE_PULL_BEHAVIOR value; empty means
// PullDefault.
func ParsePullBehavior(s string) (PullBehavior, error) {
	if s == "" {
		return PullDefault, nil
	}
	b := PullBehavior(s)
	return b, b.validate()
}

func (b PullBehavior) validate() error {
	switch b {
	case PullDefault, PullAlways, PullOnce, PullPreferCached:
		return nil
	}
	return fmt.Errorf("pull behavior %q: want default, always, once or prefer-cached", string(b))
}

// pulledLabel marks images this agent pulled itself, for PullOnce.
const pulledLabel = "io.berth.pulled"

// RegistryOptions configures registry access for every pull.
type RegistryOptions struct {
	// EngineAuth are agent-wide credentials (see ParseEngineAuth).
	EngineAuth EngineAuth
	// DockerConfigPath is a Docker client config.json whose credentials
	// ("credHelpers", "credsStore", "auths", as the Docker CLI ranks them)
	// are used after EngineAuth; empty means none.
	DockerConfigPath string
	// HostsDir is containerd's certs.d layout (<dir>/<host>/hosts.toml) for
	// mirrors, CAs and client certificates.
	HostsDir string
	// InsecureRegistries are hosts ("host" or "host:port") reached over
	// plain HTTP. Loopback registries with a port use HTTP already.
	InsecureRegistries []string
}

// PullOptions are per-pull settings.
type PullOptions struct {
	// Credentials for the image's own registry, taking precedence over the
	// agent-wide ones.
	Credentials *Credentials
	// Behavior overrides Options.PullBehavior when set.
	Behavior PullBehavior
}

// NormalizeReference applies Docker's defaults: "busybox" becomes
// "docker.io/library/busybox:latest".
func NormalizeReference(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w: %w", ref, ErrImageNotFound, err)
	}
	return named.String(), nil
}

// Pull makes ref available locally for the owner named by
// container.PullFor(ctx), logging in as Options.PullAuth says for it. The
// error wraps container.ErrUnavailable when containerd could not be reached.
func (r *Runtime) Pull(ctx context.Context, ref string) (container.Image, error) {
	var opts PullOptions
	if r.opts.PullAuth != nil {
		creds, err := r.opts.PullAuth.PullCredentials(ctx, container.PullFor(ctx), ref)
		if err != nil {
			return container.Image{}, fmt.Errorf("pull %s: registry login: %w", ref, err)
		}
		if creds != nil {
			opts.Credentials = &Credentials{Username: creds.Username, Password: creds.Password}
		}
	}
	img, err := r.PullWith(ctx, ref, opts)
	if err != nil {
		return container.Image{}, r.opErr(ctx, err)
	}
	return img, nil
}

// PullWith makes ref available locally according to the pull behaviour.
// Concurrent pulls of one reference with the same credentials share a single
// registry fetch; the shared pull is bounded by the pull timeouts, not by
// any one caller's ctx.
func (r *Runtime) PullWith(ctx context.Context, ref string, opts PullOptions) (container.Image, error) {
	ctx = r.withNS(ctx)
	norm, err := NormalizeReference(ref)
	if err != nil {
		return container.Image{}, err
	}
	behavior := opts.Behavior
	if behavior == "" {
		behavior = r.opts.PullBehavior
	}
	if err := behavior.validate(); err != nil {
		return container.Image{}, err
	}
	if behavior == PullPreferCached || behavior == PullOnce {
		if cached, err := r.cachedImage(ctx, norm); err == nil && (behavior == PullPreferCached || cached.pulledByUs) {
			return cached.Image, nil
		}
	}
	img, err := r.sharedPull(ctx, norm, opts.Credentials)
	if err != nil {
		if behavior == PullDefault {
			if cached, cerr := r.cachedImage(ctx, norm); cerr == nil {
				log.G(ctx).WithError(err).WithField("image", norm).Warn("pull failed, using the cached image")
				c := cached.Image
				c.PullError = err
				return c, nil
			}
		}
		return container.Image{}, err
	}
	return img, nil
}

type cachedImage struct {
	container.Image
	pulledByUs bool
}

// cachedImage finds a local, unpacked copy of ref.
func (r *Runtime) cachedImage(ctx context.Context, ref string) (cachedImage, error) {
	img, err := r.client.GetImage(ctx, ref)
	if err != nil {
		return cachedImage{}, err
	}
	ok, err := img.IsUnpacked(ctx, r.opts.Snapshotter)
	if err != nil {
		return cachedImage{}, err
	}
	if !ok {
		lctx, release, err := r.withLease(ctx)
		if err != nil {
			return cachedImage{}, err
		}
		err = img.Unpack(lctx, r.opts.Snapshotter)
		release(err != nil)
		if err != nil {
			return cachedImage{}, err
		}
	}
	return cachedImage{
		Image:      container.Image{Ref: ref, Digest: img.Target().Digest.String(), Cached: true},
		pulledByUs: img.Labels()[pulledLabel] != "",
	}, nil
}

func (r *Runtime) sharedPull(ctx context.Context, ref string, creds *Credentials) (container.Image, error) {
	key := ref
	if creds != nil {
		h := sha256.Sum256([]byte(creds.Username + "\x00" + creds.Password + "\x00" + creds.IdentityToken))
		key += "\x00" + hex.EncodeToString(h[:])
	}
	ch := r.pulls.DoChan(key, func() (any, error) {
		done, err := r.track()
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		defer done()
		// Detached from the first caller so that its cancellation does not
		// fail the others; bounded by the pull timeouts and by Close instead.
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		stop := context.AfterFunc(r.ctx, cancel)
		defer stop()
		return r.pull(pctx, ref, creds)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return container.Image{}, res.Err
		}
		return res.Val.(container.Image), nil
	case <-ctx.Done():
		return container.Image{}, fmt.Errorf("pull %s: %w", ref, ctx.Err())
	}
}

// errInactive is the cancellation cause when no bytes arrived for too long.
var errInactive = errors.New("no data received")

func (r *Runtime) pull(ctx context.Context, ref string, creds *Credentials) (_ container.Image, retErr error) {
	if r.opts.PullTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.opts.PullTimeout)
		defer cancel()
	}
	// One lease of ours over Fetch and Unpack, instead of one of the
	// client's each that a kill -9 could leave behind (leases.go).
	ctx, release, err := r.withLease(ctx)
	if err != nil {
		return container.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	defer func() { release(retErr != nil) }()
	fetchCtx, cancelFetch := context.WithCancelCause(ctx)
	defer cancelFetch(nil)

	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	touch := func() { last.Store(time.Now().UnixNano()) }
	var wg sync.WaitGroup
	if d := r.opts.PullInactivityTimeout; d > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(min(d/4, time.Second))
			defer t.Stop()
			for {
				select {
				case <-fetchCtx.Done():
					return
				case <-t.C:
					if time.Since(time.Unix(0, last.Load())) >= d {
						cancelFetch(fmt.Errorf("%w for %s", errInactive, d))
						return
					}
				}
			}
		}()
	}

	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: r.registryHosts(fetchCtx, ref, creds, touch)})
	// Fetch first under the inactivity watchdog, then unpack (local work
	// that moves no bytes over the network) under the overall timeout only.
	imgMeta, err := r.client.Fetch(fetchCtx, ref, containerd.WithResolver(resolver))
	cause := context.Cause(fetchCtx)
	cancelFetch(nil)
	wg.Wait()
	if err != nil {
		return container.Image{}, classifyPullError(ref, err, cause, ctx.Err())
	}
	img := containerd.NewImage(r.client, imgMeta)
	if err := img.Unpack(ctx, r.opts.Snapshotter); err != nil {
		if ctx.Err() != nil {
			return container.Image{}, fmt.Errorf("pull %s: unpack: %w: %w", ref, ErrPullTimeout, err)
		}
		return container.Image{}, fmt.Errorf("pull %s: unpack: %w", ref, err)
	}
	if imgMeta.Labels == nil {
		imgMeta.Labels = map[string]string{}
	}
	imgMeta.Labels[pulledLabel] = time.Now().UTC().Format(time.RFC3339)
	if _, err := r.client.ImageService().Update(ctx, imgMeta, "labels."+pulledLabel); err != nil {
		log.G(ctx).WithError(err).WithField("image", ref).Warn("could not label pulled image")
	}
	return container.Image{Ref: ref, Digest: imgMeta.Target.Digest.String()}, nil
}

// classifyPullError maps a containerd/registry error to one sentinel.
func classifyPullError(ref string, err, cause, overall error) error {
	class := func(sentinel error, what string) error {
		if what != "" {
			return fmt.Errorf("pull %s: %w: %s: %w", ref, sentinel, what, err)
		}
		return fmt.Errorf("pull %s: %w: %w", ref, sentinel, err)
	}
	switch {
	case errors.Is(cause, errInactive):
		return class(ErrPullTimeout, cause.Error())
	case overall != nil || errors.Is(err, context.DeadlineExceeded):
		return class(ErrPullTimeout, "")
	case errors.Is(err, docker.ErrInvalidAuthorization):
		return class(ErrUnauthorized, "")
	}
	var status remoteerrors.ErrUnexpectedStatus
	if errors.As(err, &status) {
		switch status.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return class(ErrUnauthorized, "")
		case http.StatusNotFound:
			return class(ErrImageNotFound, "")
		}
		if status.StatusCode >= 500 {
			return class(ErrRegistryUnreachable, "")
		}
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "401 Unauthorized"), strings.Contains(msg, "403 Forbidden"),
		strings.Contains(msg, "unauthorized"), strings.Contains(msg, "denied"):
		return class(ErrUnauthorized, "")
	case errdefs.IsNotFound(err), strings.Contains(msg, "not found"), strings.Contains(msg, "404 Not Found"):
		return class(ErrImageNotFound, "")
	case serverError.MatchString(msg):
		return class(ErrRegistryUnreachable, "")
	}
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.As(err, &netErr) ||
		strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") ||
		strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:") || errors.Is(err, io.ErrUnexpectedEOF) {
		return class(ErrRegistryUnreachable, "")
	}
	return class(ErrRegistryUnreachable, "unclassified")
}

// serverError matches a 5xx status in containerd's error text, for errors
// that lost their ErrUnexpectedStatus on the way.
var serverError = regexp.MustCompile(`: 5\d\d [A-Z]`)

// registryHosts builds containerd's host configuration for one pull:
// certs.d, credentials (per-pull, agent-wide, docker config, in that order),
// plain HTTP for insecure registries, and byte counting for the watchdog.
func (r *Runtime) registryHosts(ctx context.Context, ref string, creds *Credentials, touch func()) docker.RegistryHosts {
	refHost := ""
	if named, err := reference.ParseNormalizedNamed(ref); err == nil {
		refHost = reference.Domain(named)
	}
	dockerCfg, err := LoadDockerConfig(r.opts.Registry.DockerConfigPath)
	if err != nil {
		log.G(ctx).WithError(err).Warn("ignoring docker config")
	}
	// containerd asks only when a registry challenges, so helpers run for
	// registries that need credentials, at most once per host and pull.
	dockerCreds := newPullCredentials(dockerCfg)
	credFn := func(host string) (string, string, error) {
		var c Credentials
		var ok bool
		if creds != nil && !creds.empty() && RegistryHost(host) == RegistryHost(refHost) {
			c, ok = *creds, true
		}
		if !ok {
			c, ok = r.opts.Registry.EngineAuth.lookup(host)
		}
		if !ok {
			var err error
			if c, ok, err = dockerCreds.lookup(ctx, host); err != nil {
				// Never anonymous instead: the operator configured a helper.
				return "", "", err
			}
		}
		if !ok {
			return "", "", nil
		}
		if c.IdentityToken != "" {
			return "", c.IdentityToken, nil
		}
		return c.Username, c.Password, nil
	}
	base := config.HostOptions{
		HostDir:     config.HostDirFromRoot(r.opts.Registry.HostsDir),
		Credentials: credFn,
		UpdateClient: func(c *http.Client) error {
			rt := c.Transport
			if rt == nil {
				rt = http.DefaultTransport
			}
			c.Transport = &progressTransport{base: rt, touch: touch}
			return nil
		},
	}
	secure := config.ConfigureHosts(ctx, base)
	plain := base
	plain.DefaultScheme = "http"
	insecure := config.ConfigureHosts(ctx, plain)
	return func(host string) ([]docker.RegistryHost, error) {
		// Loopback registries are plain HTTP, without a first HTTPS attempt.
		if r.insecureRegistry(host) || docker.IsLocalhost(host) {
			return insecure(host)
		}
		return secure(host)
	}
}

func (r *Runtime) insecureRegistry(host string) bool {
	for _, h := range r.opts.Registry.InsecureRegistries {
		h = RegistryHost(h)
		if h == host {
			return true
		}
		if hostOnly, _, err := net.SplitHostPort(host); err == nil && hostOnly == h {
			return true
		}
	}
	return false
}

// progressTransport reports every response byte read, so that the pull
// watchdog can tell a slow transfer from a stalled one.
type progressTransport struct {
	base  http.RoundTripper
	touch func()
}

func (t *progressTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.touch()
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	t.touch()
	resp.Body = &progressBody{ReadCloser: resp.Body, touch: t.touch}
	return resp, nil
}

type progressBody struct {
	io.ReadCloser
	touch func()
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.touch()
	}
	return n, err
}

var _ http.RoundTripper = (*progressTransport)(nil)

// imageRecord is what Create needs from a local image.
func (r *Runtime) localImage(ctx context.Context, ref string) (containerd.Image, error) {
	norm, err := NormalizeReference(ref)
	if err != nil {
		return nil, err
	}
	img, err := r.client.GetImage(ctx, norm)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("image %s is not pulled: %w", norm, ErrImageNotFound)
		}
		return nil, fmt.Errorf("get image %s: %w", norm, err)
	}
	return img, nil
}
