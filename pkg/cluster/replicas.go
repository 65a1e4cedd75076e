package cluster

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/etcdstore"
)

// EtcdOptions keep the endpoint's records in etcd instead of the data
// directory's cluster.db, so that several replicas serve one cluster
// (cluster.toml's store = "etcd" and [etcd] table).
type EtcdOptions struct {
	// Endpoints are the etcd members' client URLs.
	Endpoints []string
	// CertFile, KeyFile and CAFile are the TLS client certificate and the
	// CA of the members' certificates.
	CertFile, KeyFile, CAFile string
	// Prefix is put before every key, e.g. "/berth/prod/"; clusters that
	// share an etcd use different prefixes.
	Prefix string
	// MaxTxnOps is the members' --max-txn-ops; zero means etcd's default
	// (128).
	MaxTxnOps int
	// KEKFile is the key-encryption key: 32 bytes, mode 0600, the same file
	// on every replica. It seals the master key (which seals the access
	// keys' secrets) and the credentials-id key that the replicas share
	// through etcd, so that etcd and its backups never hold them in clear.
	KEKFile string
	// Replica names this replica in logs, the election and the session
	// records; empty means the host name. A random suffix makes each
	// process's id unique, so that a restarted replica is told apart from
	// the one that died.
	Replica string
	// LeaseTTL is the replica's session lease: how long after it dies its
	// leadership passes on and its agents' sessions are swept. Zero means
	// 5 seconds.
	LeaseTTL time.Duration
	// RequestTimeout bounds each etcd request, so that nothing waits on an
	// etcd without quorum for longer; zero means 10 seconds.
	RequestTimeout time.Duration
}

// sharedKeysBucket holds the keys every replica uses, sealed under the
// KEK: master (the access keys' master key) and credentials-id (the
// roles broker's id key).
const sharedKeysBucket store.Bucket = "cluster-keys"

type sealedKey struct {
	Sealed []byte `json:"sealed"`
}

// openEtcd opens the etcd store and the keyring and credentials-id key
// sealed in it.
func openEtcd(ctx context.Context, o *EtcdOptions, log *slog.Logger) (*etcdstore.Store, *auth.Keyring, []byte, error) {
	kek, err := loadKEK(o.KEKFile)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := openEtcdStore(ctx, o, log)
	if err != nil {
		return nil, nil, nil, err
	}
	master, err := sharedKey(st, kek, "master")
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	idKey, err := sharedKey(st, kek, "credentials-id")
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	kr, err := auth.NewKeyring(st, master)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return st, kr, idKey, nil
}

// openEtcdStore opens the etcd store of o, nothing else.
func openEtcdStore(ctx context.Context, o *EtcdOptions, log *slog.Logger) (*etcdstore.Store, error) {
	return etcdstore.Open(ctx, etcdstore.Options{Endpoints: o.Endpoints, CertFile: o.CertFile, KeyFile: o.KeyFile,
		CAFile: o.CAFile, Prefix: o.Prefix, MaxTxnOps: o.MaxTxnOps, RequestTimeout: o.RequestTimeout, Logger: log})
}

// loadKEK reads the key-encryption key file: 32 bytes, not readable by
// group or others (auth.LoadMasterKey's rules for its own file).
func loadKEK(path string) (cipher.AEAD, error) {
	if path == "" {
		return nil, errors.New("etcd store: a key-encryption key file is required (kek_file; create one with `head -c 32 /dev/urandom > FILE && chmod 600 FILE` and copy it to every replica)")
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key-encryption key %s has mode %v: must not be readable by group or others (chmod 600)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("key-encryption key %s: want 32 bytes, have %d", path, len(b))
	}
	block, err := aes.NewCipher(b)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	return cipher.NewGCM(block)
}

// sharedKey returns the 32-byte key called name, sealed under kek in the
// store; the first replica to ask creates it. A replica with another KEK
// fails here instead of sealing secrets no other replica can read.
func sharedKey(st store.Store, kek cipher.AEAD, name string) ([]byte, error) {
	var key []byte
	err := st.Update(func(tx store.Tx) error {
		var rec sealedKey
		err := tx.Get(sharedKeysBucket, name, &rec)
		if err == nil {
			key, err = unseal(kek, name, rec)
			return err
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		sealed, err := seal(kek, name, key)
		if err != nil {
			return err
		}
		return tx.Put(sharedKeysBucket, name, sealed)
	})
	if err != nil {
		return nil, fmt.Errorf("shared %s key: %w", name, err)
	}
	return key, nil
}

// seal encrypts the key called name under kek: a random nonce and the
// AES-GCM box, with the name as additional data.
func seal(kek cipher.AEAD, name string, key []byte) (sealedKey, error) {
	nonce := make([]byte, kek.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return sealedKey{}, err
	}
	return sealedKey{Sealed: kek.Seal(nonce, nonce, key, []byte(name))}, nil
}

// unseal opens what seal made of the key called name.
func unseal(kek cipher.AEAD, name string, rec sealedKey) ([]byte, error) {
	ns := kek.NonceSize()
	if len(rec.Sealed) < ns {
		return nil, fmt.Errorf("sealed %s key: too short", name)
	}
	key, err := kek.Open(nil, rec.Sealed[:ns], rec.Sealed[ns:], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("the %s key was sealed under another key-encryption key (kek_file must be the same file on every replica): %w", name, err)
	}
	return key, nil
}

// replicaID makes this process's replica id: the configured name (or the
// host name) and a random suffix.
func replicaID(name string) string {
	if name == "" {
		name, _ = os.Hostname()
	}
	name = strings.NewReplacer("/", "_", " ", "_").Replace(name)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return name + "-" + hex.EncodeToString(b)
}

// leadership decides where the once-per-cluster workers run.
type leadership interface {
	// lead runs fn whenever this replica leads, with a context that ends
	// when it stops leading; it returns nil when ctx ends, or fn's error
	// when fn fails while this replica leads.
	lead(ctx context.Context, fn func(ctx context.Context) error) error
}

// soleReplica is the leadership of an endpoint alone on its store (bbolt):
// it always leads.
type soleReplica struct{}

func (soleReplica) lead(ctx context.Context, fn func(ctx context.Context) error) error {
	return fn(ctx)
}

// etcdElection leads through an etcd election among the replicas.
type etcdElection struct {
	st *etcdstore.Store
	o  etcdstore.LeadOptions
}

func (l etcdElection) lead(ctx context.Context, fn func(ctx context.Context) error) error {
	return l.st.Lead(ctx, l.o, fn)
}

// runSessionSweep clears, every few seconds, the agent sessions that
// replicas which died were holding (their agents reconnect elsewhere and
// are recorded anew); it runs on the leader.
func (e *Endpoint) runSessionSweep(ctx context.Context) error {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		live, err := e.etcd.Replicas()
		if err != nil {
			e.opts.Logger.Warn("sweep agent sessions: list replicas", "err", err)
			continue
		}
		if n, err := e.sessions.SweepSessions(live); err != nil {
			e.opts.Logger.Warn("sweep agent sessions", "err", err)
		} else if n > 0 {
			e.opts.Logger.Info("cleared the agent sessions of replicas that died", "count", n)
		}
	}
}

// runSessionRefresh records again, every few seconds, the agent sessions
// this replica holds that the leader's sweep cleared while this replica's
// liveness key was missing for a moment (acs.Server.RefreshSessions).
func (e *Endpoint) runSessionRefresh(ctx context.Context) error {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if n, err := e.sessions.RefreshSessions(); err != nil {
			e.opts.Logger.Warn("refresh agent sessions", "err", err)
		} else if n > 0 {
			e.opts.Logger.Warn("recorded again agent sessions this replica holds that were cleared as if it had died", "count", n)
		}
	}
}

// runWatch feeds every change any replica commits to tasks and services to
// this replica's session server (tasks to deliver or stop on the sessions
// it holds) and service controller (woken; it acts when this replica
// leads).
func (e *Endpoint) runWatch(ctx context.Context) error {
	return e.etcd.Watch(ctx, []store.Bucket{records.Tasks, records.Services}, func(c store.Change) {
		if e.sessions != nil {
			e.sessions.StoreChanged(ctx, c)
		}
		e.services.Wake() // coalesced: one pass for a burst of changes
	})
}
