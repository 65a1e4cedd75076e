package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// Default file locations.
const (
	// DefaultConfigPath is the ECS agent's ecs.config location.
	DefaultConfigPath = "/etc/ecs/ecs.config"
	// DefaultTOMLPath is Berth's optional TOML file.
	DefaultTOMLPath = "/etc/berth/agent.toml"
)

// envWhere labels problems found in the process environment.
const envWhere = "environment"

// LoadOptions says where Load reads from. The library never reads the process
// environment itself: the caller passes it in Env.
type LoadOptions struct {
	// Env is the process environment as os.Environ returns it ("KEY=VALUE").
	Env []string
	// ConfigPath is the ecs.config file; empty means DefaultConfigPath.
	ConfigPath string
	// ConfigPathSet is true when the operator named ConfigPath (--config):
	// then a missing file is an error, while a missing default file is not.
	ConfigPathSet bool
	// TOMLPath is the TOML file; empty means DefaultTOMLPath.
	TOMLPath string
	// TOMLPathSet is true when the operator named TOMLPath (--toml).
	TOMLPathSet bool
	// ReadFile reads a file; nil means os.ReadFile.
	ReadFile func(path string) ([]byte, error)
}

// loader carries one Load call's state.
type loader struct {
	cfg      *Config
	keys     []Key
	byName   map[string]*Key
	problems Problems
}

// Load builds the effective configuration from, highest priority first, the
// environment, the ecs.config file, the TOML file and the defaults. It always
// returns a Config (a key whose value is invalid keeps the value of the next
// source down) and every problem found. The error is non-nil, and wraps
// ErrInvalid, exactly when some problem is an error.
func Load(opts LoadOptions) (*Config, Problems, error) {
	l := newLoader()
	readFile := opts.ReadFile
	if readFile == nil {
		readFile = os.ReadFile
	}

	tomlPath := opts.TOMLPath
	if tomlPath == "" {
		tomlPath = DefaultTOMLPath
	}
	if data, ok := l.read(readFile, tomlPath, opts.TOMLPathSet); ok {
		l.loadTOML(data, tomlPath)
	}

	configPath := opts.ConfigPath
	if configPath == "" {
		configPath = DefaultConfigPath
	}
	if data, ok := l.read(readFile, configPath, opts.ConfigPathSet); ok {
		l.loadEnvFile(data, configPath)
	}

	l.loadEnv(opts.Env)
	l.checkKeys()
	l.crossCheck()
	l.derive(readFile)
	return l.cfg, l.problems, l.problems.Err()
}

func newLoader() *loader {
	l := &loader{cfg: &Config{sources: map[string]Source{}, unsupported: map[string]string{}}, keys: Keys(), byName: map[string]*Key{}}
	for i := range l.keys {
		k := &l.keys[i]
		l.byName[k.Name] = k
		l.cfg.sources[k.Name] = Source{Kind: SourceDefault}
		if k.Default != "" {
			// Defaults are valid by construction (TestDefaultsParse).
			_ = k.set(l.cfg, k.Default)
		}
	}
	return l
}

// read returns the file's contents; a missing file is a problem only when the
// operator named it.
func (l *loader) read(readFile func(string) ([]byte, error), path string, named bool) ([]byte, bool) {
	data, err := readFile(path)
	if err == nil {
		return data, true
	}
	if errors.Is(err, fs.ErrNotExist) && !named {
		return nil, false
	}
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		err = pathErr.Err // the path is already in Where
	}
	l.problems = append(l.problems, Problem{Severity: SeverityError, Where: path,
		Message: fmt.Sprintf("cannot read configuration file: %v", err)})
	return nil, false
}

func (l *loader) loadEnvFile(data []byte, path string) {
	entries, problems := ParseEnvFile(data, path)
	start := len(l.problems)
	l.problems = append(l.problems, problems...)
	for _, e := range entries {
		where := fmt.Sprintf("%s:%d", path, e.Line)
		l.apply(e.Key, e.Key, e.Value, where, Source{Kind: SourceFile, Path: path, Line: e.Line})
	}
	slices.SortStableFunc(l.problems[start:], func(a, b Problem) int { return compareWhere(a.Where, b.Where) })
}

func (l *loader) loadEnv(env []string) {
	env = slices.Clone(env)
	slices.Sort(env) // report problems in a stable order
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		l.apply(name, name, value, envWhere, Source{Kind: SourceEnv})
	}
}

// apply sets the key called name from text. label is the name as written in
// the source. Names the agent does not know are ignored unless they look like
// settings (ECS_ or BERTH_), which earns a warning. An empty value counts as
// unset, as in the ECS agent.
func (l *loader) apply(name, label, text, where string, src Source) {
	k, ok := l.byName[name]
	if !ok && notSettings()[name] {
		if src.Kind != SourceEnv {
			l.problems = append(l.problems, Problem{Severity: SeverityWarning, Where: where, Key: label,
				Message: "is set by the agent inside task containers, not read as configuration; ignored"})
		}
		return
	}
	if !ok {
		if strings.HasPrefix(name, "ECS_") || strings.HasPrefix(name, "BERTH_") {
			msg := "unknown key, ignored"
			if s := suggest(name, l.keys, false); s != "" {
				msg += fmt.Sprintf("; did you mean %s?", s)
			}
			l.problems = append(l.problems, Problem{Severity: SeverityWarning, Where: where, Key: label, Message: msg})
		}
		return
	}
	if text == "" {
		return
	}
	if err := k.set(l.cfg, text); err != nil {
		l.problems = append(l.problems, Problem{Severity: SeverityError, Where: where, Key: label, Message: invalidMessage(k, text, err)})
		return
	}
	l.cfg.sources[k.Name] = src
}

// invalidMessage says what is wrong with text and what is allowed, without
// the text when the key is secret.
func invalidMessage(k *Key, text string, err error) string {
	if k.Secret {
		return fmt.Sprintf("value %s is not %s", Redacted, k.want)
	}
	msg := fmt.Sprintf("%q is not %s", text, k.want)
	if d := err.Error(); d != "" {
		msg += ": " + d
	}
	return msg
}

// checkKeys runs each key's check (clamps, not-enforced and refused
// warnings) for the keys that some source set, in key-table order.
func (l *loader) checkKeys() {
	for _, k := range l.keys {
		if k.check == nil || l.cfg.sources[k.Name].Kind == SourceDefault {
			continue
		}
		if msg := k.check(l.cfg); msg != "" {
			l.keyProblem(SeverityWarning, k.Name, msg)
		}
	}
}

// osReleasePath is where ECS_DETAILED_OS_FAMILY's default comes from.
const osReleasePath = "/etc/os-release"

// derive fills values that follow from other keys or from the host when
// no source set them.
func (l *loader) derive(readFile func(string) ([]byte, error)) {
	c := l.cfg
	if c.Listen.OffhostIntrospection && l.cfg.sources["BERTH_INTROSPECTION_ADDRESS"].Kind == SourceDefault {
		c.Listen.Introspection = netip.AddrPortFrom(netip.IPv4Unspecified(), c.Listen.Introspection.Port())
	}
	if c.Instance.DetailedOSFamily == "" {
		c.Instance.DetailedOSFamily = detailedOSFamily(readFile)
	}
}

// detailedOSFamily is ecs-init's ECS_DETAILED_OS_FAMILY: ID_VERSION_ID from
// /etc/os-release, or "linux" when either is missing.
func detailedOSFamily(readFile func(string) ([]byte, error)) string {
	data, err := readFile(osReleasePath)
	if err != nil {
		return "linux"
	}
	entries, _ := ParseEnvFile(data, osReleasePath)
	var id, version string
	for _, e := range entries {
		switch e.Key {
		case "ID":
			id = e.Value
		case "VERSION_ID":
			version = e.Value
		}
	}
	if id == "" || version == "" {
		return "linux"
	}
	return id + "_" + version
}

// crossCheck reports problems that involve more than one key.
func (l *loader) crossCheck() {
	c := l.cfg
	if c.Images.AuthData.IsSet() && c.Images.AuthType == "" {
		l.keyProblem(SeverityError, "ECS_ENGINE_AUTH_DATA", "is set but ECS_ENGINE_AUTH_TYPE is not (allowed: docker, dockercfg)")
	}
	if c.IAM.EnableTaskRoleNetworkHost && !c.IAM.EnableTaskRole {
		l.keyProblem(SeverityWarning, "ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST", "has no effect unless ECS_ENABLE_TASK_IAM_ROLE=true")
	}
	if c.Listen.Introspection == c.Listen.Credentials {
		l.keyProblem(SeverityError, "BERTH_CREDENTIALS_ADDRESS", fmt.Sprintf("%q is also BERTH_INTROSPECTION_ADDRESS; the two listeners need different addresses", c.Listen.Credentials))
	}
	if !c.Checkpoint {
		l.keyProblem(SeverityWarning, "ECS_CHECKPOINT", "false is not supported: Berth always persists task state (it is how a restart adopts running containers)")
	}
	if c.Images.PullInactivityTimeout > c.Images.PullTimeout {
		l.keyProblem(SeverityWarning, "ECS_IMAGE_PULL_INACTIVITY_TIMEOUT", "is longer than ECS_IMAGE_PULL_TIMEOUT, so it never fires")
	}
}

// keyProblem records a problem about a key at the place its value came from.
func (l *loader) keyProblem(sev Severity, name, msg string) {
	src := l.cfg.sources[name]
	label := name
	if src.Kind == SourceTOML {
		label = tomlName(name)
	}
	l.problems = append(l.problems, Problem{Severity: sev, Where: src.String(), Key: label, Message: msg})
}
