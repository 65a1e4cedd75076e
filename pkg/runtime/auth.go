package runtime

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Credentials authenticate to one registry.
type Credentials struct {
	Username string
	Password string
	// IdentityToken is an OAuth2 refresh token (docker config "identitytoken");
	// when set it is used instead of Username/Password.
	IdentityToken string
}

func (c Credentials) empty() bool {
	return c.Username == "" && c.Password == "" && c.IdentityToken == ""
}

// EngineAuth holds registry credentials by registry host, as configured for
// the whole agent (ECS_ENGINE_AUTH_TYPE / ECS_ENGINE_AUTH_DATA).
type EngineAuth map[string]Credentials

// Engine auth types accepted by ParseEngineAuth.
const (
	// EngineAuthDocker is {"<registry>": {"username": "...", "password": "...", "email": "..."}}.
	EngineAuthDocker = "docker"
	// EngineAuthDockercfg is {"<registry>": {"auth": "base64(user:password)", "email": "..."}}.
	EngineAuthDockercfg = "dockercfg"
)

// ParseEngineAuth parses agent-wide registry credentials in one of the two
// formats ECS uses. Registry keys may be URLs ("https://index.docker.io/v1/")
// or hosts; they are reduced to the host containerd resolves ("docker.io").
// An empty authType with empty data is no credentials.
func ParseEngineAuth(authType, data string) (EngineAuth, error) {
	if authType == "" && strings.TrimSpace(data) == "" {
		return nil, nil
	}
	out := EngineAuth{}
	switch authType {
	case EngineAuthDocker:
		var m map[string]struct {
			Username string `json:"username"`
			Password string `json:"password"`
		}
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			return nil, fmt.Errorf("engine auth data (type docker): %w", err)
		}
		for k, v := range m {
			if v.Username == "" {
				return nil, fmt.Errorf("engine auth data (type docker): registry %q: username is empty", k)
			}
			out[RegistryHost(k)] = Credentials{Username: v.Username, Password: v.Password}
		}
	case EngineAuthDockercfg:
		var m map[string]dockerAuthEntry
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			return nil, fmt.Errorf("engine auth data (type dockercfg): %w", err)
		}
		for k, v := range m {
			c, err := v.credentials()
			if err != nil {
				return nil, fmt.Errorf("engine auth data (type dockercfg): registry %q: %w", k, err)
			}
			out[RegistryHost(k)] = c
		}
	default:
		return nil, fmt.Errorf("engine auth type %q: want %q or %q", authType, EngineAuthDocker, EngineAuthDockercfg)
	}
	return out, nil
}

// dockerAuthEntry is one registry entry of a dockercfg or config.json file.
type dockerAuthEntry struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
}

func (e dockerAuthEntry) credentials() (Credentials, error) {
	c := Credentials{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken}
	if e.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(e.Auth)
		if err != nil {
			return Credentials{}, fmt.Errorf("auth is not base64: %w", err)
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return Credentials{}, errors.New(`auth is not base64 of "user:password"`)
		}
		c.Username, c.Password = user, pass
	}
	if c.empty() {
		return Credentials{}, errors.New("no auth, username or identitytoken")
	}
	return c, nil
}

// LoadDockerConfig reads the credential settings of a Docker client config
// file (~/.docker/config.json): "auths", "credsStore" and "credHelpers".
// Helpers are not run here but by DockerConfig.Lookup, when a registry asks
// for credentials. A missing file or an empty path is a nil config (no
// credentials).
func LoadDockerConfig(path string) (*DockerConfig, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read docker config: %w", err)
	}
	var f struct {
		Auths       map[string]dockerAuthEntry `json:"auths"`
		CredsStore  string                     `json:"credsStore"`
		CredHelpers map[string]string          `json:"credHelpers"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse docker config %s: %w", path, err)
	}
	out := &DockerConfig{
		Auths:       EngineAuth{},
		CredsStore:  f.CredsStore,
		CredHelpers: f.CredHelpers,
		authKeys:    map[string]string{},
	}
	for k, v := range f.Auths {
		host := RegistryHost(k)
		if prev, ok := out.authKeys[host]; !ok || k < prev {
			out.authKeys[host] = k
		}
		c, err := v.credentials()
		if err != nil {
			// An entry without secrets (credsStore keeps them) is not an error.
			continue
		}
		out.Auths[host] = c
	}
	return out, nil
}

// RegistryHost reduces a registry key as found in Docker credential files
// ("https://index.docker.io/v1/", "registry.example.com:5000/") to the host
// containerd asks credentials for ("docker.io", "registry.example.com:5000").
func RegistryHost(key string) string {
	k := strings.TrimSpace(key)
	if strings.Contains(k, "://") {
		if u, err := url.Parse(k); err == nil && u.Host != "" {
			k = u.Host
		}
	}
	k, _, _ = strings.Cut(k, "/")
	switch k {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "docker.io"
	}
	return k
}

// lookup finds credentials for a host, matching docker.io aliases.
func (a EngineAuth) lookup(host string) (Credentials, bool) {
	c, ok := a[RegistryHost(host)]
	return c, ok
}
