package config

import (
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	cfg, err := Parse("cluster.toml", []byte(`
listen = "127.0.0.1:8443"
insecure_http = true
region = "eu-west-1"
account_id = "123456789012"
data_dir = "/var/lib/berth-cluster"
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8443" || !cfg.InsecureHTTP || cfg.Region != "eu-west-1" || cfg.LogLevel != "info" || cfg.LogFormat != "logfmt" {
		t.Fatalf("cfg = %+v", cfg)
	}
}

func TestParseEtcd(t *testing.T) {
	cfg, err := Parse("cluster.toml", []byte(`
insecure_http = true
account_id = "123456789012"
store = "etcd"
[etcd]
endpoints = ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
cert_file = "/etc/berth/etcd/client.pem"
key_file = "/etc/berth/etcd/client-key.pem"
ca_file = "/etc/berth/etcd/ca.pem"
prefix = "/berth/prod/"
max_txn_ops = 1024
kek_file = "/etc/berth/cluster.kek"
lease_ttl = 5
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store != "etcd" || len(cfg.Etcd.Endpoints) != 2 || cfg.Etcd.MaxTxnOps != 1024 || cfg.Etcd.KEKFile != "/etc/berth/cluster.kek" {
		t.Fatalf("cfg = %+v", cfg)
	}
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"syntax", "listen = \"x\nregion = 1\n", "cluster.toml:1: TOML syntax"},
		{"unknown key", "account_id = \"123456789012\"\ninsecure_http = true\nlistne = \":1\"\n", "cluster.toml:3: listne: unknown setting"},
		{"bad account", "insecure_http = true\n\naccount_id = \"42\"\n", "cluster.toml:3: account_id: \"42\" must be 12 digits"},
		{"bad region", "insecure_http = true\naccount_id = \"123456789012\"\nregion = \"mars\"\n", "cluster.toml:3: region:"},
		{"no tls", "account_id = \"123456789012\"\n", "cluster.toml: tls_cert: required"},
		{"half tls", "account_id = \"123456789012\"\ntls_cert = \"/c.pem\"\n", "tls_key: tls_cert and tls_key must be set together"},
		{"relative data dir", "insecure_http = true\naccount_id = \"123456789012\"\ndata_dir = \"data\"\n", "cluster.toml:3: data_dir:"},
		{"bad listen", "listen = \"8443\"\ninsecure_http = true\naccount_id = \"123456789012\"\n", "cluster.toml:1: listen:"},
		{"wrong type", "insecure_http = \"yes\"\n", "cluster.toml:1:"},
		{"bad store", "insecure_http = true\naccount_id = \"123456789012\"\nstore = \"postgres\"\n", "cluster.toml:3: store: \"postgres\": allowed are bbolt"},
		{"etcd without endpoints", "insecure_http = true\naccount_id = \"123456789012\"\nstore = \"etcd\"\n[etcd]\nprefix = \"/berth/x/\"\nkek_file = \"/etc/berth/kek\"\n", "cluster.toml: etcd.endpoints: required"},
		{"etcd bad endpoint", "insecure_http = true\naccount_id = \"123456789012\"\nstore = \"etcd\"\n[etcd]\nendpoints = [\"10.0.0.1\"]\nprefix = \"/berth/x/\"\nkek_file = \"/etc/berth/kek\"\n", "cluster.toml:5: etcd.endpoints: \"10.0.0.1\" is not a URL"},
		{"etcd no kek", "insecure_http = true\naccount_id = \"123456789012\"\nstore = \"etcd\"\n[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/berth/x/\"\n", "etcd.kek_file: \"\": required"},
		{"etcd small txn ops", "insecure_http = true\naccount_id = \"123456789012\"\nstore = \"etcd\"\n[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/berth/x/\"\nkek_file = \"/k\"\nmax_txn_ops = 16\n", "cluster.toml:8: etcd.max_txn_ops: 16"},
		{"etcd unknown", "insecure_http = true\naccount_id = \"123456789012\"\nstore = \"etcd\"\n[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/berth/x/\"\nkek_file = \"/k\"\nendpoint = \"x\"\n", "cluster.toml:8: etcd.endpoint: unknown setting; allowed in [etcd]"},
		{"etcd table with bbolt", "insecure_http = true\naccount_id = \"123456789012\"\n[etcd]\nprefix = \"/berth/x/\"\n", "cluster.toml:3: etcd: an [etcd] table needs store"},
		{"bad log format", "insecure_http = true\naccount_id = \"123456789012\"\nlog_format = \"xml\"\n", "cluster.toml:3: log_format: \"xml\": allowed are logfmt, json"},
	}
	for _, c := range cases {
		_, err := Parse("cluster.toml", []byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

func TestCertificates(t *testing.T) {
	cfg, err := Parse("cluster.toml", []byte(`
insecure_http = true
account_id = "123456789012"
[[certificates]]
name = "web"
cert = "/etc/berth/tls/web.pem"
key  = "/etc/berth/tls/web-key.pem"
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Certificates) != 1 || cfg.Certificates[0].ARN(cfg.Region, cfg.AccountID) != "arn:aws:acm:us-east-1:123456789012:certificate/web" {
		t.Fatalf("certificates: %+v", cfg.Certificates)
	}
	for doc, want := range map[string]string{
		"[[certificates]]\nname = \"a b\"\ncert = \"/c\"\nkey = \"/k\"\n":                                                            "cluster.toml:4: certificates[0].name: \"a b\" must be",
		"[[certificates]]\nname = \"a\"\ncert = \"c.pem\"\nkey = \"/k\"\n":                                                           "cluster.toml:5: certificates[0].cert: cert and key must both be absolute",
		"[[certificates]]\nname = \"a\"\ncert = \"/c\"\nkey = \"/k\"\n[[certificates]]\nname = \"a\"\ncert = \"/c\"\nkey = \"/k\"\n": "cluster.toml:8: certificates[1].name: \"a\" is declared twice",
	} {
		_, err := Parse("cluster.toml", []byte("insecure_http = true\naccount_id = \"123456789012\"\n"+doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", doc, err, want)
		}
	}
}

// TestRoleSecretsGrants parses a role's secrets grants and reports a bad
// one at its file:line, naming the role's field.
func TestRoleSecretsGrants(t *testing.T) {
	head := `insecure_http = true
region = "eu-west-1"
account_id = "123456789012"

[[roles]]
arn = "arn:aws:iam::123456789012:role/app"
source = "static"
access_key_id = "AKIAAPP"
secret_access_key = "s"
`
	cfg, err := Parse("cluster.toml", []byte(head+`secrets = ["arn:aws:ssm:eu-west-1:123456789012:parameter/app/*", "arn:aws:secretsmanager:*:123456789012:secret:db-*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Roles[0].Secrets; len(got) != 2 || got[1] != "arn:aws:secretsmanager:*:123456789012:secret:db-*" {
		t.Fatalf("secrets = %v", got)
	}
	cases := []struct{ grant, want string }{
		{`"arn:aws:s3:::bucket/*"`, "cluster.toml:10: roles[0].secrets: \"arn:aws:s3:::bucket/*\" names neither SSM parameters"},
		{`"arn:aws:ssm:us-east-1:123456789012:parameter/x"`, "cluster.toml:10: roles[0].secrets: \"arn:aws:ssm:us-east-1:123456789012:parameter/x\" names region \"us-east-1\"; this endpoint's is \"eu-west-1\""},
		{`"arn:aws:secretsmanager:eu-west-1:999999999999:secret:x"`, "names account \"999999999999\""},
		{`"db-*"`, "is not an ARN"},
	}
	for _, c := range cases {
		_, err := Parse("cluster.toml", []byte(head+"secrets = ["+c.grant+"]\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("grant %s: error %v, want it to contain %q", c.grant, err, c.want)
		}
	}
	// Two roles with one key pair cannot both be told apart when one has grants.
	_, err = Parse("cluster.toml", []byte(head+`secrets = ["arn:aws:ssm:*:*:parameter/app/*"]

[[roles]]
arn = "arn:aws:iam::123456789012:role/other"
source = "static"
access_key_id = "AKIAAPP"
secret_access_key = "s"
`))
	if err == nil || !strings.Contains(err.Error(), "cluster.toml:15: roles[1].access_key_id: the key pair of") {
		t.Errorf("shared key pair: %v", err)
	}
}
