package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The console keeps its sessions, the used sign-in challenges, the unused
// sign-in links and the key that MACs the challenges in the endpoint's
// store, so that with several replicas on etcd a browser signed in through
// one is signed in on all of them (an operator behind a load balancer),
// and signing out, or a session's expiry, holds everywhere. A session id,
// a nonce and a link's token are kept only as their SHA-256: what the
// store holds does not sign anyone in.
const (
	// SessionsBucket holds sessionRecord under hashID(session id).
	SessionsBucket store.Bucket = "console-sessions"
	// SignInBucket holds the challenges' MAC key (macKeyName), the used
	// challenges (nonceRecord under "nonce/"+hashID(nonce)) and the unused
	// sign-in links (linkRecord under "link/"+hashID(token)).
	SignInBucket store.Bucket = "console-signin"

	macKeyName = "mac-key"
	// seenEvery is how stale a session's last-seen time may get before a
	// request writes it again: a browser polling every 2 s writes once a
	// minute, not 30 times. A session so ends after idleTTL-seenEvery to
	// idleTTL without a request.
	seenEvery = time.Minute
	// pruneMax bounds the expired records one sign-in deletes (a store
	// transaction has a bounded size on etcd).
	pruneMax = 64
)

// Buckets are the console's buckets of the endpoint's store: their
// records are short-lived, so backups leave them out.
func Buckets() []store.Bucket { return []store.Bucket{SessionsBucket, SignInBucket} }

// session is one signed-in browser.
type session struct {
	Key  auth.Key
	CSRF string
}

// canAct reports whether the session's key may take actions.
func (s *session) canAct() bool { return s.Key.Role == auth.RoleAdmin }

// sessionRecord is what the store holds for a session.
type sessionRecord struct {
	Key     auth.Key  `json:"key"`
	Created time.Time `json:"created"`
	Seen    time.Time `json:"seen"`
}

func (r *sessionRecord) expired(now time.Time) bool {
	return now.Sub(r.Seen) > idleTTL || now.Sub(r.Created) > sessionTTL
}

type nonceRecord struct {
	Expires time.Time `json:"expires"`
}

type linkRecord struct {
	KeyID   string    `json:"keyId"`
	Expires time.Time `json:"expires"`
}

type macKeyRecord struct {
	Key []byte `json:"key"`
}

// sessions keeps the console's sign-in state in the store.
type sessions struct {
	db  store.Store
	now func() time.Time

	mu sync.Mutex
	// macKey (guarded by mu) is the store's challenge key once read: it
	// never changes.
	macKey []byte
}

func newSessions(db store.Store, now func() time.Time) *sessions {
	return &sessions{db: db, now: now}
}

// hashID is how the store names a session id, nonce or link token.
func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// key returns the challenges' MAC key, made and stored by the first
// replica that needs it.
func (ss *sessions) key() ([]byte, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.macKey != nil {
		return ss.macKey, nil
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("console: sign-in key: %w", err)
	}
	var key []byte
	err := ss.db.Update(func(tx store.Tx) error {
		var rec macKeyRecord
		err := tx.Get(SignInBucket, macKeyName, &rec)
		if err == nil && len(rec.Key) == len(fresh) {
			key = rec.Key
			return nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		key = fresh
		return tx.Put(SignInBucket, macKeyName, macKeyRecord{Key: fresh})
	})
	if err != nil {
		return nil, fmt.Errorf("console: read the sign-in key: %w", err)
	}
	ss.macKey = key
	return key, nil
}

func (ss *sessions) mac(s string) (string, error) {
	key, err := ss.key()
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
}

// challenge returns a new sign-in nonce: the time, random bytes and their
// MAC. It writes nothing: the sign-in page is open to anyone.
func (ss *sessions) challenge() (string, error) {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b, uint64(ss.now().Unix()))
	if _, err := rand.Read(b[8:]); err != nil {
		return "", fmt.Errorf("sign-in challenge: %w", err)
	}
	body := base64.RawURLEncoding.EncodeToString(b)
	sum, err := ss.mac(body)
	if err != nil {
		return "", err
	}
	return body + "." + sum, nil
}

// errSignIn is every refused sign-in; its message is shown.
var errSignIn = errors.New("sign-in refused")

// checkChallenge checks that nonce is one of ours (made by any replica)
// and fresh; it writes nothing, so that only a sign-in whose proof holds
// writes (useChallenge) and guesses cannot fill the store.
func (ss *sessions) checkChallenge(nonce string) error {
	body, sum, ok := strings.Cut(nonce, ".")
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if !ok || err != nil || len(raw) != 24 {
		return fmt.Errorf("%w: the sign-in page's challenge is not one this endpoint made; reload the page", errSignIn)
	}
	want, err := ss.mac(body)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(sum), []byte(want)) {
		return fmt.Errorf("%w: the sign-in page's challenge is not one this endpoint made; reload the page", errSignIn)
	}
	now := ss.now()
	made := time.Unix(int64(binary.BigEndian.Uint64(raw)), 0)
	if now.Sub(made) > challengeTTL {
		return fmt.Errorf("%w: the sign-in page is older than %s; reload it", errSignIn, challengeTTL)
	}
	return nil
}

// useChallenge marks a checked nonce used, or says it was already.
func (ss *sessions) useChallenge(nonce string) error {
	name := "nonce/" + hashID(nonce)
	expires := ss.now().Add(challengeTTL + time.Minute)
	var used bool
	err := ss.db.Update(func(tx store.Tx) error {
		used = false
		var rec nonceRecord
		err := tx.Get(SignInBucket, name, &rec)
		if err == nil {
			used = true
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return tx.Put(SignInBucket, name, nonceRecord{Expires: expires})
	})
	if err != nil {
		return fmt.Errorf("console: mark a sign-in challenge used: %w", err)
	}
	if used {
		return fmt.Errorf("%w: this sign-in page was already used; reload it", errSignIn)
	}
	return nil
}

// create starts a session for key and returns its id; it also deletes
// some of the expired sessions, challenges and links.
func (ss *sessions) create(key auth.Key) (string, *session, error) {
	id, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	csrf, err := ss.mac("csrf\n" + id)
	if err != nil {
		return "", nil, err
	}
	now := ss.now()
	err = ss.db.Update(func(tx store.Tx) error {
		if err := prune(tx, now); err != nil {
			return err
		}
		return tx.Put(SessionsBucket, hashID(id), sessionRecord{Key: key, Created: now, Seen: now})
	})
	if err != nil {
		return "", nil, fmt.Errorf("console: start a session: %w", err)
	}
	return id, &session{Key: key, CSRF: csrf}, nil
}

// prune deletes up to pruneMax expired records.
func prune(tx store.Tx, now time.Time) error {
	type doomed struct {
		b   store.Bucket
		key string
	}
	var del []doomed
	walk := func(b store.Bucket, expired func(raw []byte) bool) error {
		return store.ForEach(tx, b, "", func(k string, raw []byte) error {
			if len(del) >= pruneMax {
				return store.ErrStopScan
			}
			if k != macKeyName && expired(raw) {
				del = append(del, doomed{b, k})
			}
			return nil
		})
	}
	if err := walk(SessionsBucket, func(raw []byte) bool {
		var r sessionRecord
		return json.Unmarshal(raw, &r) != nil || r.expired(now)
	}); err != nil {
		return err
	}
	if err := walk(SignInBucket, func(raw []byte) bool {
		var r struct {
			Expires time.Time `json:"expires"`
		}
		return json.Unmarshal(raw, &r) != nil || now.After(r.Expires)
	}); err != nil {
		return err
	}
	for _, d := range del {
		if err := tx.Delete(d.b, d.key); err != nil {
			return err
		}
	}
	return nil
}

// get returns the live session id names. It writes the session's
// last-seen time when that is older than seenEvery, and deletes it when
// it has expired.
func (ss *sessions) get(id string) (*session, error) {
	name := hashID(id)
	now := ss.now()
	var rec sessionRecord
	err := ss.db.View(func(tx store.Tx) error { return tx.Get(SessionsBucket, name, &rec) })
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("console: read a session: %w", err)
	}
	if rec.expired(now) || now.Sub(rec.Seen) >= seenEvery {
		live := false
		err = ss.db.Update(func(tx store.Tx) error {
			live = false
			if err := tx.Get(SessionsBucket, name, &rec); errors.Is(err, store.ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			if rec.expired(now) {
				return tx.Delete(SessionsBucket, name)
			}
			live = true
			rec.Seen = now
			return tx.Put(SessionsBucket, name, rec)
		})
		if err != nil {
			return nil, fmt.Errorf("console: note a session seen: %w", err)
		}
		if !live {
			return nil, nil
		}
	}
	csrf, err := ss.mac("csrf\n" + id)
	if err != nil {
		return nil, err
	}
	return &session{Key: rec.Key, CSRF: csrf}, nil
}

// end deletes the session id names, for every replica.
func (ss *sessions) end(id string) error {
	if err := ss.db.Update(func(tx store.Tx) error { return tx.Delete(SessionsBucket, hashID(id)) }); err != nil {
		return fmt.Errorf("console: end a session: %w", err)
	}
	return nil
}

// addLink stores a one-time sign-in link's token for keyID.
func (ss *sessions) addLink(token, keyID string) error {
	rec := linkRecord{KeyID: keyID, Expires: ss.now().Add(linkTTL)}
	return ss.db.Update(func(tx store.Tx) error { return tx.Put(SignInBucket, "link/"+hashID(token), rec) })
}

// useLink returns the key id of an unused, unexpired link and deletes it.
func (ss *sessions) useLink(token string) (string, bool, error) {
	name := "link/" + hashID(token)
	var rec linkRecord
	found := false
	err := ss.db.Update(func(tx store.Tx) error {
		found = false
		err := tx.Get(SignInBucket, name, &rec)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return tx.Delete(SignInBucket, name)
	})
	if err != nil {
		return "", false, fmt.Errorf("console: use a sign-in link: %w", err)
	}
	if !found || ss.now().After(rec.Expires) {
		return "", false, nil
	}
	return rec.KeyID, true, nil
}
