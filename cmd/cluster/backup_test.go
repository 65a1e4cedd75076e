package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestMigrateBackupRestoreCommands: `migrate --from bbolt:DIR --to
// etcd:CONFIG` moves a data directory's keys to etcd (`keys list` on etcd
// shows them), refuses to copy twice without --force; `backup` of etcd
// and `restore` into a new data directory give the key back there;
// mistakes are usage errors naming the flag.
func TestMigrateBackupRestoreCommands(t *testing.T) {
	etcd := testenv.Etcd(t, 1)
	dir := t.TempDir()
	kek := filepath.Join(dir, "cluster.kek")
	if err := os.WriteFile(kek, bytes.Repeat([]byte{3}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "etcd.toml")
	doc := fmt.Sprintf(`insecure_http = true
region = "us-test-1"
account_id = "123456789012"
data_dir = %q
store = "etcd"
[etcd]
endpoints = [%q]
prefix = "/berth/cmd-migrate/"
kek_file = %q
`, filepath.Join(dir, "replica"), etcd.Endpoints[0], kek)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	bolt := filepath.Join(dir, "bolt")
	out, errs, code := keysCmd(t, bolt, "create", "--role", "admin")
	m := credRE.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("keys create: %d %s", code, errs)
	}
	cmd := func(args ...string) (string, string, int) {
		var o, e bytes.Buffer
		code := run(context.Background(), args, &o, &e)
		return o.String(), e.String(), code
	}
	if out, errs, code := cmd("migrate", "--from", "bbolt:"+bolt, "--to", "etcd:"+cfg); code != 0 || !strings.Contains(out, "access-keys 1") {
		t.Fatalf("migrate: %d %q %s", code, out, errs)
	}
	if _, errs, code := cmd("migrate", "--from", "bbolt:"+bolt, "--to", "etcd:"+cfg); code != 1 || !strings.Contains(errs, "not empty") || !strings.Contains(errs, "--force") {
		t.Fatalf("second migrate: %d %s", code, errs)
	}
	if out, errs, code := cmd("keys", "list", "--config", cfg); code != 0 || !strings.Contains(out, m[1]) {
		t.Fatalf("keys list on etcd after the migration: %d %q %s", code, out, errs)
	}
	file := filepath.Join(dir, "backup.jsonl")
	if out, errs, code := cmd("backup", "--config", cfg, "--out", file); code != 0 || !strings.Contains(out, "backed up") {
		t.Fatalf("backup: %d %q %s", code, out, errs)
	}
	restored := filepath.Join(dir, "restored")
	if _, errs, code := cmd("restore", "--data-dir", restored, "--in", file); code != 1 || !strings.Contains(errs, "--kek") {
		t.Fatalf("restore into bbolt without --kek: %d %s", code, errs)
	}
	if out, errs, code := cmd("restore", "--data-dir", restored, "--kek", kek, "--in", file); code != 0 || !strings.Contains(out, "restored") {
		t.Fatalf("restore: %d %q %s", code, out, errs)
	}
	if out, _, code := keysCmd(t, restored, "list"); code != 0 || !strings.Contains(out, m[1]) {
		t.Fatalf("keys list after restore: %d %q", code, out)
	}
	for _, args := range [][]string{
		{"migrate", "--from", "bbolt:" + bolt},
		{"migrate", "--from", "zfs:/x", "--to", "etcd:" + cfg},
		{"backup", "--config", cfg},
	} {
		if _, errs, code := cmd(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage): %s", args, code, errs)
		}
	}
}
