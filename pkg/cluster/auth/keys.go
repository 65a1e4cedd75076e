// Package auth authenticates requests to the cluster endpoint: it keeps the
// endpoint's access keys (with their role) in the store, sealed with a master
// key, and verifies AWS Signature Version 4 on every request. SigV4 needs the
// secret itself to recompute a signature, so secrets cannot be hashed; they
// are encrypted with AES-256-GCM under a 32-byte master key kept in a 0600
// file in the data directory. Keys have a role: admin, agent, or lb (a load
// balancer data plane's, good for the elasticloadbalancing service only).
// It is imported by pkg/cluster, the AWS protocol layer (awsproto), the API
// packages (ecsapi, logstore, elbv2) and the session server (acs).
package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// Role says what a key may do.
type Role string

const (
	// RoleAdmin may call every operation.
	RoleAdmin Role = "admin"
	// RoleAgent may call only the operations an agent uses, and only for the
	// container instances it registered.
	RoleAgent Role = "agent"
	// RoleLB is a load balancer data plane's (berth-lb's) key: it may call
	// only the Elastic Load Balancing v2 API's read operations and the
	// data-plane operations (read a load balancer's state, report target
	// health); the Verifier refuses it for every other service.
	RoleLB Role = "lb"
	// RoleViewer is a read-only operator's key: it signs in to the web
	// console, which shows it everything and lets it change nothing. The
	// Verifier refuses it for every signed request, and the ECS API lets
	// it call only the Describe and List operations (the console's path).
	RoleViewer Role = "viewer"
	// RoleIAM is not an access key of the keyring but the credentials of
	// an IAM role declared in cluster.toml (a task's role or execution
	// role), recognised by the Verifier through its RoleKeys. Key.RoleArn
	// names the role; the Verifier refuses it for every service but those
	// of RoleServices, whose APIs check the role's secrets grants.
	RoleIAM Role = "iam-role"
)

// RoleServices are the SigV4 services a request signed with a role's
// credentials (RoleIAM) may call: SSM Parameter Store and Secrets Manager.
var RoleServices = []string{"ssm", "secretsmanager"}

// LBService is the SigV4 service of the Elastic Load Balancing v2 API and of
// the load balancer data-plane API, the only one an lb key may sign for.
const LBService = "elasticloadbalancing"

// ParseRole accepts "admin", "agent", "lb" or "viewer".
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleAdmin, RoleAgent, RoleLB, RoleViewer:
		return Role(s), nil
	}
	return "", fmt.Errorf("role %q: must be admin, agent, lb or viewer", s)
}

// ErrUnknownKey is returned when an access key does not exist or was revoked.
var ErrUnknownKey = errors.New("unknown access key")

// Key is one access key as listed; it never carries the secret.
type Key struct {
	AccessKeyID string    `json:"accessKeyId"`
	Role        Role      `json:"role"`
	CreatedAt   time.Time `json:"createdAt"`
	Revoked     bool      `json:"revoked,omitempty"`
	// RoleArn is the IAM role a RoleIAM key stands for.
	RoleArn string `json:"roleArn,omitempty"`
}

// KeysBucket holds the access keys, keyRecord under the access key id.
const KeysBucket store.Bucket = "access-keys"

// keyRecord is what the store holds under the access key id.
type keyRecord struct {
	Key
	// SealedSecret is nonce||AES-GCM(secret), with the key id as additional
	// data so a sealed secret cannot be moved to another key.
	SealedSecret []byte `json:"sealedSecret"`
}

// Keyring creates, lists, revokes and looks up access keys.
type Keyring struct {
	store store.Store
	aead  cipher.AEAD
}

// MasterKeyFile is the name of the master key file inside the data directory.
const MasterKeyFile = "master.key"

// LoadMasterKey reads dir/master.key, creating it with 32 random bytes and
// mode 0600 if it does not exist. A file readable by group or others is
// refused, since it decrypts every secret.
func LoadMasterKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, MasterKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generate master key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create master key %s: %w", path, err)
		}
		if _, err := f.Write(key); err != nil {
			f.Close()
			return nil, fmt.Errorf("write master key %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("write master key %s: %w", path, err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read master key %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat master key %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key %s has mode %v: must not be readable by group or others (chmod 600)", path, st.Mode().Perm())
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("master key %s: want 32 bytes, have %d", path, len(b))
	}
	return b, nil
}

// NewKeyring returns a keyring over st sealed with the 32-byte master key.
func NewKeyring(st store.Store, masterKey []byte) (*Keyring, error) {
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return &Keyring{store: st, aead: aead}, nil
}

// Create makes a new key pair with the given role and returns the access key
// id and the secret. The secret is shown to the caller once; only its sealed
// form is stored.
func (k *Keyring) Create(role Role, now time.Time) (id, secret string, err error) {
	if _, err := ParseRole(string(role)); err != nil {
		return "", "", err
	}
	idBytes := make([]byte, 12)
	secretBytes := make([]byte, 30)
	if _, err := rand.Read(idBytes); err != nil {
		return "", "", fmt.Errorf("generate key id: %w", err)
	}
	if _, err := rand.Read(secretBytes); err != nil {
		return "", "", fmt.Errorf("generate secret: %w", err)
	}
	// AWS access key ids are 20 upper-case characters; "BK" marks Berth keys.
	id = "BK" + strings.ToUpper(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(idBytes))[:18]
	secret = base64.RawStdEncoding.EncodeToString(secretBytes)[:40]
	sealed, err := k.seal(id, secret)
	if err != nil {
		return "", "", err
	}
	rec := keyRecord{Key: Key{AccessKeyID: id, Role: role, CreatedAt: now.UTC()}, SealedSecret: sealed}
	err = k.store.Update(func(tx store.Tx) error {
		var existing keyRecord
		if err := tx.Get(KeysBucket, id, &existing); err == nil {
			return fmt.Errorf("access key id collision %s", id)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return tx.Put(KeysBucket, id, rec)
	})
	if err != nil {
		return "", "", fmt.Errorf("create key: %w", err)
	}
	return id, secret, nil
}

// List returns every key, revoked ones included, ordered by id.
func (k *Keyring) List() ([]Key, error) {
	var keys []Key
	err := k.store.View(func(tx store.Tx) error {
		return store.ForEach(tx, KeysBucket, "", func(_ string, raw []byte) error {
			var rec keyRecord
			if err := json.Unmarshal(raw, &rec); err != nil {
				return err
			}
			keys = append(keys, rec.Key)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].AccessKeyID < keys[j].AccessKeyID })
	return keys, nil
}

// Revoke marks a key revoked; requests signed with it are refused from then
// on. The sealed secret is erased.
func (k *Keyring) Revoke(id string) error {
	err := k.store.Update(func(tx store.Tx) error {
		var rec keyRecord
		if err := tx.Get(KeysBucket, id, &rec); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%w: %s", ErrUnknownKey, id)
			}
			return err
		}
		rec.Revoked = true
		rec.SealedSecret = nil
		return tx.Put(KeysBucket, id, rec)
	})
	if err != nil {
		return fmt.Errorf("revoke key %s: %w", id, err)
	}
	return nil
}

// Lookup returns the key and its secret, or ErrUnknownKey when the key does
// not exist or is revoked.
func (k *Keyring) Lookup(id string) (Key, string, error) {
	var rec keyRecord
	err := k.store.View(func(tx store.Tx) error { return tx.Get(KeysBucket, id, &rec) })
	if errors.Is(err, store.ErrNotFound) {
		return Key{}, "", ErrUnknownKey
	}
	if err != nil {
		return Key{}, "", fmt.Errorf("look up key: %w", err)
	}
	if rec.Revoked {
		return Key{}, "", ErrUnknownKey
	}
	secret, err := k.open(id, rec.SealedSecret)
	if err != nil {
		return Key{}, "", err
	}
	return rec.Key, secret, nil
}

func (k *Keyring) seal(id, secret string) ([]byte, error) {
	return k.SealValue(id, []byte(secret))
}

func (k *Keyring) open(id string, sealed []byte) (string, error) {
	plain, err := k.OpenValue(id, sealed)
	if err != nil {
		return "", fmt.Errorf("secret of %s: %w", id, err)
	}
	return string(plain), nil
}

// SealValue encrypts plain under the master key: AES-256-GCM with a fresh
// random nonce, returned as nonce||ciphertext, with aad as additional
// data, so that a sealed value opens only under the identity it was
// sealed for. The access keys use their key id; other users of the master
// key (SSM parameters, Secrets Manager secrets) prefix theirs so that the
// identities never meet.
func (k *Keyring) SealValue(aad string, plain []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("generate nonce: %w", err)
	}
	return k.aead.Seal(nonce, nonce, plain, []byte(aad)), nil
}

// OpenValue decrypts what SealValue sealed for aad.
func (k *Keyring) OpenValue(aad string, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("unseal: sealed value is truncated")
	}
	plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], []byte(aad))
	if err != nil {
		// Wrong master key or a tampered record: never fall back to anything.
		return nil, fmt.Errorf("unseal (wrong master key?): %w", err)
	}
	return plain, nil
}

// KeyActive reports, inside the caller's transaction, whether the key
// exists and is not revoked. The API uses it to let a new agent key take
// over a container instance whose key was revoked (key rotation on a host).
func KeyActive(tx store.Tx, id string) (bool, error) {
	var rec keyRecord
	err := tx.Get(KeysBucket, id, &rec)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up key %s: %w", id, err)
	}
	return !rec.Revoked, nil
}
