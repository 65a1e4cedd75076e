// Package config reads berth-cluster's TOML configuration file
// (/etc/berth/cluster.toml) into typed settings, reporting every mistake as
// "file:line: key: what is wrong, what is allowed". Only cmd/cluster (and dev
// mode) import it; pkg/cluster takes its own Options.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/berth-dev/berth/pkg/cluster/roles"
)

// DefaultPath is where serve looks without --config.
const DefaultPath = "/etc/berth/cluster.toml"

// Config is the cluster endpoint's configuration file.
type Config struct {
	// Listen is the address the ECS API (and later the ACS websocket) is served on.
	Listen string `toml:"listen"`
	// TLSCert and TLSKey are PEM files; required unless InsecureHTTP.
	TLSCert      string `toml:"tls_cert"`
	TLSKey       string `toml:"tls_key"`
	InsecureHTTP bool   `toml:"insecure_http"`
	// Region and AccountID appear in ARNs; clients must sign for Region.
	Region    string `toml:"region"`
	AccountID string `toml:"account_id"`
	// DataDir holds cluster.db and master.key.
	DataDir string `toml:"data_dir"`
	// PollEndpoint is the URL agents are told to open the ACS websocket on;
	// empty means the URL each request came to.
	PollEndpoint string `toml:"poll_endpoint"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log_level"`
	// LogFormat is logfmt (logrus's text format) or json; berth-cluster
	// serve --log-format overrides it.
	LogFormat string `toml:"log_format"`
	// Roles are the task IAM roles task definitions may name ([[roles]]
	// tables; see docs/iam.md). None declared means any role is accepted
	// and no credentials are issued.
	Roles []roles.RoleConfig `toml:"roles"`
	// Store is where the records and keys are kept: "bbolt" (cluster.db in
	// data_dir, one endpoint) or "etcd" (shared by several replicas; the
	// [etcd] table).
	Store string `toml:"store"`
	Etcd  Etcd   `toml:"etcd"`
	// Certificates are the TLS certificates HTTPS listeners of the Elastic
	// Load Balancing API may name ([[certificates]] tables; see
	// docs/load-balancing.md).
	Certificates []Certificate `toml:"certificates"`
}

// Certificate is one [[certificates]] table: PEM files, named by the ARN
// arn:aws:acm:<region>:<account_id>:certificate/<name>.
type Certificate struct {
	Name string `toml:"name"`
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// ARN is the certificate's ARN in the configured region and account.
func (c Certificate) ARN(region, accountID string) string {
	return "arn:aws:acm:" + region + ":" + accountID + ":certificate/" + c.Name
}

// Etcd is the [etcd] table: the etcd cluster the replicas share.
type Etcd struct {
	// Endpoints are the members' client URLs (https://10.0.0.1:2379).
	Endpoints []string `toml:"endpoints"`
	// CertFile and KeyFile are this replica's TLS client certificate;
	// CAFile verifies the members'.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	CAFile   string `toml:"ca_file"`
	// Prefix is put before every key; clusters sharing an etcd differ in it.
	Prefix string `toml:"prefix"`
	// MaxTxnOps is the members' --max-txn-ops (0: etcd's default, 128).
	MaxTxnOps int `toml:"max_txn_ops"`
	// KEKFile is the key-encryption key (32 bytes, 0600), the same file on
	// every replica.
	KEKFile string `toml:"kek_file"`
	// Replica names this replica; empty means the host name.
	Replica string `toml:"replica"`
	// LeaseTTL is the replica's session lease in seconds (0: 5).
	LeaseTTL int `toml:"lease_ttl"`
	// RequestTimeout bounds each etcd request, in seconds (0: 10): how
	// long a request waits on an etcd without quorum before it is refused.
	RequestTimeout int `toml:"request_timeout"`
}

// Defaults returns the settings used where the file says nothing.
func Defaults() Config {
	return Config{
		Listen:    ":8443",
		Region:    "us-east-1",
		DataDir:   "/var/lib/berth-cluster",
		LogLevel:  "info",
		LogFormat: "logfmt",
		Store:     "bbolt",
	}
}

// Error lists every problem found, one per line.
type Error struct {
	Problems []string
}

// Error returns every problem, one per line.
func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }

var (
	regionRE   = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	accountRE  = regexp.MustCompile(`^[0-9]{12}$`)
	certNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	typeErrRE  = regexp.MustCompile(`line ([0-9]+) \(last key "([^"]*)"\): (.*)$`)
)

// Load reads the file at path over Defaults and validates it.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data (named path in errors) over Defaults and validates it.
func Parse(path string, data []byte) (Config, error) {
	cfg := Defaults()
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) && pe.Position.Line > 0 {
			return Config{}, &Error{Problems: []string{fmt.Sprintf("%s:%d: TOML syntax: %s", path, pe.Position.Line, pe.Message)}}
		}
		// Type mismatches come as plain errors that name the line and key.
		if m := typeErrRE.FindStringSubmatch(err.Error()); m != nil {
			return Config{}, &Error{Problems: []string{fmt.Sprintf("%s:%s: %s: %s", path, m[1], m[2], m[3])}}
		}
		return Config{}, &Error{Problems: []string{fmt.Sprintf("%s: %v", path, err)}}
	}
	var problems []string
	add := func(key, format string, args ...any) {
		where := path
		if line := keyLine(data, key); line > 0 {
			where = fmt.Sprintf("%s:%d", path, line)
		}
		problems = append(problems, fmt.Sprintf("%s: %s: %s", where, key, fmt.Sprintf(format, args...)))
	}
	for _, k := range md.Undecoded() {
		if strings.HasPrefix(k.String(), "etcd.") {
			add(k.String(), "unknown setting; allowed in [etcd]: endpoints, cert_file, key_file, ca_file, prefix, max_txn_ops, kek_file, replica, lease_ttl, request_timeout")
			continue
		}
		add(k.String(), "unknown setting; allowed: listen, tls_cert, tls_key, insecure_http, region, account_id, data_dir, poll_endpoint, log_level, log_format, roles, certificates, store, etcd")
	}
	if _, port, err := net.SplitHostPort(cfg.Listen); err != nil || port == "" {
		add("listen", "%q is not host:port (e.g. \":8443\" or \"127.0.0.1:8443\")", cfg.Listen)
	}
	switch {
	case (cfg.TLSCert == "") != (cfg.TLSKey == ""):
		add("tls_key", "tls_cert and tls_key must be set together")
	case cfg.TLSCert == "" && !cfg.InsecureHTTP:
		add("tls_cert", "required (with tls_key) unless insecure_http = true; plain HTTP sends signed requests and task credentials in the clear")
	case cfg.TLSCert != "" && cfg.InsecureHTTP:
		add("insecure_http", "cannot be true when tls_cert and tls_key are set")
	}
	if !regionRE.MatchString(cfg.Region) {
		add("region", "%q is not a region name like us-east-1", cfg.Region)
	}
	if !accountRE.MatchString(cfg.AccountID) {
		add("account_id", "%q must be 12 digits (it appears in every ARN)", cfg.AccountID)
	}
	if !filepath.IsAbs(cfg.DataDir) {
		add("data_dir", "%q must be an absolute path", cfg.DataDir)
	}
	if cfg.PollEndpoint != "" && !strings.HasPrefix(cfg.PollEndpoint, "https://") && !strings.HasPrefix(cfg.PollEndpoint, "http://") {
		add("poll_endpoint", "%q must be an http:// or https:// URL", cfg.PollEndpoint)
	}
	switch cfg.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("log_level", "%q: allowed are debug, info, warn, error", cfg.LogLevel)
	}
	switch cfg.LogFormat {
	case "logfmt", "json":
	default:
		add("log_format", "%q: allowed are logfmt, json", cfg.LogFormat)
	}
	if len(cfg.Roles) > 0 {
		var de *roles.DeclarationError
		switch err := roles.Validate(cfg.Roles, cfg.Region, cfg.AccountID); {
		case errors.As(err, &de):
			for _, p := range de.Problems {
				where := path
				if line := tableKeyLine(data, "roles", p.Index, p.Field); line > 0 {
					where = fmt.Sprintf("%s:%d", path, line)
				}
				problems = append(problems, fmt.Sprintf("%s: roles[%d].%s: %s", where, p.Index, p.Field, p.Message))
			}
		case err != nil:
			add("roles", "%v", err)
		}
	}
	switch cfg.Store {
	case "bbolt":
		if md.IsDefined("etcd") {
			add("etcd", "an [etcd] table needs store = \"etcd\"")
		}
	case "etcd":
		validateEtcd(cfg.Etcd, add)
	default:
		add("store", "%q: allowed are bbolt (one endpoint, cluster.db) and etcd (replicas)", cfg.Store)
	}
	names := map[string]bool{}
	for i, c := range cfg.Certificates {
		at := func(field, format string, args ...any) {
			where := path
			if line := tableKeyLine(data, "certificates", i, field); line > 0 {
				where = fmt.Sprintf("%s:%d", path, line)
			}
			problems = append(problems, fmt.Sprintf("%s: certificates[%d].%s: %s", where, i, field, fmt.Sprintf(format, args...)))
		}
		switch {
		case !certNameRE.MatchString(c.Name):
			at("name", "%q must be 1-128 letters, digits, '-' or '_' (it ends the certificate's ARN)", c.Name)
		case names[c.Name]:
			at("name", "%q is declared twice", c.Name)
		}
		names[c.Name] = true
		if !filepath.IsAbs(c.Cert) || !filepath.IsAbs(c.Key) {
			at("cert", "cert and key must both be absolute paths of PEM files (have %q, %q)", c.Cert, c.Key)
		}
	}
	if len(problems) > 0 {
		return Config{}, &Error{Problems: problems}
	}
	return cfg, nil
}

// validateEtcd checks the [etcd] table of store = "etcd".
func validateEtcd(e Etcd, add func(key, format string, args ...any)) {
	if len(e.Endpoints) == 0 {
		add("etcd.endpoints", "required with store = \"etcd\": the members' client URLs, e.g. [\"https://10.0.0.1:2379\"]")
	}
	for _, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" {
			add("etcd.endpoints", "%q is not a URL like https://10.0.0.1:2379", ep)
		}
	}
	if (e.CertFile == "") != (e.KeyFile == "") {
		add("etcd.key_file", "cert_file and key_file must be set together")
	}
	for key, path := range map[string]string{"etcd.cert_file": e.CertFile, "etcd.key_file": e.KeyFile, "etcd.ca_file": e.CAFile} {
		if path != "" && !filepath.IsAbs(path) {
			add(key, "%q must be an absolute path", path)
		}
	}
	if !strings.HasPrefix(e.Prefix, "/") || strings.Trim(e.Prefix, "/") == "" {
		add("etcd.prefix", "%q: required, a key path like \"/berth/prod/\" (clusters sharing an etcd use different prefixes)", e.Prefix)
	}
	if e.MaxTxnOps < 0 || (e.MaxTxnOps > 0 && e.MaxTxnOps < 128) {
		add("etcd.max_txn_ops", "%d: the members' --max-txn-ops, at least etcd's default 128 (0 means 128)", e.MaxTxnOps)
	}
	if !filepath.IsAbs(e.KEKFile) {
		add("etcd.kek_file", "%q: required, an absolute path to the 32-byte key-encryption key shared by the replicas", e.KEKFile)
	}
	if strings.Contains(e.Replica, "/") {
		add("etcd.replica", "%q must not contain /", e.Replica)
	}
	if e.LeaseTTL != 0 && (e.LeaseTTL < 2 || e.LeaseTTL > 60) {
		add("etcd.lease_ttl", "%d: seconds, 2 to 60 (0 means 5)", e.LeaseTTL)
	}
	if e.RequestTimeout < 0 || e.RequestTimeout > 60 {
		add("etcd.request_timeout", "%d: seconds, 1 to 60 (0 means 10)", e.RequestTimeout)
	}
}

// keyLine returns the line where a top-level key is assigned, or 0. The
// file is flat, so a line-oriented scan is exact enough; a key inside a
// [table] is reported with the table's name and found the same way.
func keyLine(data []byte, key string) int {
	last := key
	if i := strings.LastIndex(key, "."); i >= 0 {
		last = key[i+1:]
	}
	re := regexp.MustCompile(`^\s*("?` + regexp.QuoteMeta(last) + `"?\s*=|\[\s*` + regexp.QuoteMeta(last) + `\s*\])`)
	for i, line := range strings.Split(string(data), "\n") {
		if re.MatchString(line) {
			return i + 1
		}
	}
	return 0
}

// tableKeyLine returns the line where key is assigned in the n-th (from 0)
// [[table]] of an array of tables, or that table's header line when the
// key is absent, or 0.
func tableKeyLine(data []byte, table string, n int, key string) int {
	header := regexp.MustCompile(`^\s*\[\[\s*` + regexp.QuoteMeta(table) + `\s*\]\]`)
	assign := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(key) + `"?\s*=`)
	seen, start := -1, 0
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case header.MatchString(line):
			seen++
			if seen == n {
				start = i + 1
			} else if seen > n {
				return start
			}
		case seen == n && strings.HasPrefix(strings.TrimSpace(line), "["):
			return start
		case seen == n && assign.MatchString(line):
			return i + 1
		}
	}
	return start
}
