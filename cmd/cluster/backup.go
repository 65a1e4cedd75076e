package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/config"
)

// backupRestore runs `backup` (cmd "backup") or `restore`.
func backupRestore(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	var kek, file string
	var force bool
	fs, dataDir, etcd, err := keysFlags(cmd, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&kek, "kek", "", "key-encryption key sealing the keys in the file (default: the etcd cluster's kek_file)")
		if cmd == "backup" {
			fs.StringVar(&file, "out", "", "the backup file to write (- for standard output)")
		} else {
			fs.StringVar(&file, "in", "", "the backup file to read")
			fs.BoolVar(&force, "force", false, "replace the records the store holds")
		}
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s takes no arguments, got %q", cmd, fs.Args())}
	}
	if file == "" {
		return usageError{cmd + " needs the file: --out FILE (backup) or --in FILE (restore)"}
	}
	loc := cluster.StoreLocation{DataDir: dataDir, Etcd: etcd}
	if cmd == "backup" {
		return backup(ctx, loc, file, kek, stdout, stderr)
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	counts, err := cluster.Restore(ctx, loc, f, cluster.RestoreOptions{KEKFile: kek, Replace: force})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %d records into %s: %s\n", counts.Total(), loc, counts)
	return nil
}

// backup writes the file through a temporary one, so that a failed backup
// never leaves a half-written file under the name asked for.
func backup(ctx context.Context, loc cluster.StoreLocation, file, kek string, stdout, stderr io.Writer) error {
	o := cluster.BackupOptions{KEKFile: kek}
	if file == "-" {
		counts, err := cluster.Backup(ctx, loc, stdout, o)
		if err == nil {
			fmt.Fprintf(stderr, "backed up %d records of %s: %s\n", counts.Total(), loc, counts)
		}
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	counts, err := cluster.Backup(ctx, loc, tmp, o)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "backed up %d records of %s to %s: %s\n", counts.Total(), loc, file, counts)
	return nil
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the source: bbolt:DATA_DIR or etcd:CONFIG (a cluster.toml with store = \"etcd\")")
	to := fs.String("to", "", "the destination, as --from")
	force := fs.Bool("force", false, "replace the records the destination holds")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 || *from == "" || *to == "" {
		return usageError{"migrate needs --from and --to, and no arguments"}
	}
	src, err := location("--from", *from)
	if err != nil {
		return err
	}
	dst, err := location("--to", *to)
	if err != nil {
		return err
	}
	counts, err := cluster.Migrate(ctx, src, dst, *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "migrated %d records from %s to %s (read back and compared): %s\n", counts.Total(), src, dst, counts)
	return nil
}

// location parses bbolt:DATA_DIR (or the path of its cluster.db) and
// etcd:CONFIG.
func location(flagName, v string) (cluster.StoreLocation, error) {
	kind, path, ok := strings.Cut(v, ":")
	if !ok || path == "" {
		return cluster.StoreLocation{}, usageError{fmt.Sprintf("%s %q: want bbolt:DATA_DIR or etcd:CONFIG", flagName, v)}
	}
	switch kind {
	case "bbolt":
		if filepath.Base(path) == cluster.StoreFile {
			path = filepath.Dir(path)
		}
		return cluster.StoreLocation{DataDir: path}, nil
	case "etcd":
		cfg, err := config.Load(path)
		if err != nil {
			return cluster.StoreLocation{}, err
		}
		e := etcdOptions(cfg)
		if e == nil {
			return cluster.StoreLocation{}, errors.New(flagName + " " + path + `: store is not "etcd"`)
		}
		return cluster.StoreLocation{Etcd: e}, nil
	}
	return cluster.StoreLocation{}, usageError{fmt.Sprintf("%s %q: the store is bbolt or etcd", flagName, v)}
}
