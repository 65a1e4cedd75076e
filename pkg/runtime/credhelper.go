package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/log"
	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
)

// dockerHubServerURL is the server address the Docker CLI hands credential
// helpers for Docker Hub, so helpers find what `docker login` stored.
const dockerHubServerURL = "https://index.docker.io/v1/"

// helperTokenUsername is the username a helper answers when its secret is
// an identity (refresh) token rather than a password.
const helperTokenUsername = "<token>"

// helperWaitDelay bounds how long a killed helper's leftover children may
// hold its output pipes open before the pull gives up on them.
const helperWaitDelay = 2 * time.Second

// DockerConfig is the credential part of a Docker client config file
// (~/.docker/config.json), as LoadDockerConfig reads it.
type DockerConfig struct {
	// Auths are the "auths" entries that carry secrets, by registry host.
	Auths EngineAuth
	// CredsStore names the helper for every registry without its own
	// ("desktop" runs docker-credential-desktop).
	CredsStore string
	// CredHelpers names a helper per registry, keyed as in the file.
	CredHelpers map[string]string
	// authKeys maps a registry host to its "auths" key as written, which is
	// the server address a credsStore helper was given at `docker login`.
	authKeys map[string]string
}

// credentialSource says where Docker would take one registry's credentials
// from: a helper (with the server address to ask it for) or a static entry.
type credentialSource struct {
	helper    string
	serverURL string
	static    Credentials
	hasStatic bool
}

// source applies the Docker CLI's precedence for host: its credHelpers
// entry, then credsStore, then the static "auths" entry.
func (c *DockerConfig) source(host string) credentialSource {
	if c == nil {
		return credentialSource{}
	}
	reg := RegistryHost(host)
	name, key, found := c.helperFor(reg)
	if name != "" {
		return credentialSource{helper: name, serverURL: serverURLFor(reg, key)}
	}
	if !found && c.CredsStore != "" {
		key := c.authKeys[reg]
		if key == "" {
			key = reg
		}
		return credentialSource{helper: c.CredsStore, serverURL: serverURLFor(reg, key)}
	}
	cr, ok := c.Auths[reg]
	return credentialSource{static: cr, hasStatic: ok}
}

// helperFor finds the credHelpers entry for a registry host. The Docker CLI
// matches keys exactly; aliases ("https://index.docker.io/v1/",
// "registry.example.com/") are accepted too, an exact key winning. An entry
// naming no helper is found too: as in the Docker CLI, it exempts the
// registry from credsStore.
func (c *DockerConfig) helperFor(reg string) (name, key string, found bool) {
	if name, ok := c.CredHelpers[reg]; ok {
		return name, reg, true
	}
	for k := range c.CredHelpers {
		if RegistryHost(k) == reg && (!found || k < key) {
			key, found = k, true
		}
	}
	return c.CredHelpers[key], key, found
}

// serverURLFor is the address a helper is asked about: Docker Hub's
// historical URL, otherwise the registry key as configured.
func serverURLFor(reg, key string) string {
	if reg == "docker.io" {
		return dockerHubServerURL
	}
	return key
}

// CredentialHelperError is a credential helper that failed for a reason
// other than having no credentials. It wraps docker.ErrInvalidAuthorization
// so that a pull it fails is classified as ErrUnauthorized.
type CredentialHelperError struct {
	// Helper is the program run ("docker-credential-ecr-login").
	Helper string
	// Registry is the registry host credentials were asked for.
	Registry string
	// Err is what went wrong.
	Err error
}

func (e *CredentialHelperError) Error() string {
	return fmt.Sprintf("credential helper %s for registry %s: %v", e.Helper, e.Registry, e.Err)
}

// Unwrap returns the authorization sentinel and the cause.
func (e *CredentialHelperError) Unwrap() []error {
	return []error{docker.ErrInvalidAuthorization, e.Err}
}

// Lookup returns the credentials Docker would use for a registry host,
// running a credential helper when one is configured for it; ok is false
// for anonymous access. A helper that reports no credentials means
// anonymous; any other helper failure is a *CredentialHelperError. ctx
// bounds the helper's run.
func (c *DockerConfig) Lookup(ctx context.Context, host string) (Credentials, bool, error) {
	src := c.source(host)
	if src.helper == "" {
		return src.static, src.hasStatic, nil
	}
	return runCredentialHelper(ctx, src.helper, src.serverURL, RegistryHost(host))
}

// runCredentialHelper asks docker-credential-<name> for serverURL's
// credentials. The answer holds secrets: it is never logged.
func runCredentialHelper(ctx context.Context, name, serverURL, reg string) (Credentials, bool, error) {
	program := "docker-credential-" + name
	log.G(ctx).WithFields(log.Fields{"helper": program, "registry": reg}).Debug("asking credential helper")
	got, err := client.Get(contextProgramFunc(ctx, program), serverURL)
	if err != nil {
		if credentials.IsErrCredentialsNotFound(err) {
			return Credentials{}, false, nil
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return Credentials{}, false, &CredentialHelperError{Helper: program, Registry: reg, Err: err}
	}
	if got.Username == helperTokenUsername {
		return Credentials{IdentityToken: got.Secret}, got.Secret != "", nil
	}
	cr := Credentials{Username: got.Username, Password: got.Secret}
	return cr, !cr.empty(), nil
}

// contextProgramFunc runs a helper like client.NewShellProgramFunc does,
// but killed when ctx ends, so that a hung helper cannot hang a pull, and
// with its standard error kept for the failure message instead of being
// written to the agent's own.
func contextProgramFunc(ctx context.Context, program string) client.ProgramFunc {
	return func(args ...string) client.Program {
		cmd := exec.CommandContext(ctx, program, args...)
		cmd.WaitDelay = helperWaitDelay
		return &helperCommand{cmd: cmd}
	}
}

// helperCommand is one run of a credential helper.
type helperCommand struct {
	cmd *exec.Cmd
}

var _ client.Program = (*helperCommand)(nil)

// Input sets what the helper reads on standard input.
func (h *helperCommand) Input(in io.Reader) { h.cmd.Stdin = in }

// Output runs the helper and returns its standard output, which holds the
// answer or, on failure, the helper's error message. Failure output ends up
// in errors (and containerd's logs), so it is cut short.
func (h *helperCommand) Output() ([]byte, error) {
	out, err := h.cmd.Output()
	if err == nil {
		return out, nil
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if msg := strings.TrimSpace(string(exitErr.Stderr)); msg != "" {
			err = fmt.Errorf("%w (stderr: %s)", err, truncate(msg))
		}
	}
	return []byte(truncate(strings.TrimSpace(string(out)))), err
}

// truncate cuts a helper's failure message to a length fit for an error.
func truncate(msg string) string {
	const limit = 512
	if len(msg) <= limit {
		return msg
	}
	return msg[:limit] + "..."
}

// pullCredentials looks up docker config credentials for the hosts of one
// pull, running each host's helper at most once however often containerd
// asks.
type pullCredentials struct {
	cfg *DockerConfig

	// mu guards byHost.
	mu     sync.Mutex
	byHost map[string]pullCredentialsResult
}

type pullCredentialsResult struct {
	creds Credentials
	ok    bool
	err   error
}

func newPullCredentials(cfg *DockerConfig) *pullCredentials {
	return &pullCredentials{cfg: cfg, byHost: map[string]pullCredentialsResult{}}
}

// lookup returns host's credentials, from the first lookup of this pull;
// ctx is the pull's and bounds a helper's run.
func (p *pullCredentials) lookup(ctx context.Context, host string) (Credentials, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	reg := RegistryHost(host)
	if r, ok := p.byHost[reg]; ok {
		return r.creds, r.ok, r.err
	}
	c, ok, err := p.cfg.Lookup(ctx, host)
	p.byHost[reg] = pullCredentialsResult{creds: c, ok: ok, err: err}
	return c, ok, err
}
