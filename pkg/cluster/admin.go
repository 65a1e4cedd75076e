package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// AdminSocket is the unix socket, inside the data directory, on which a
// running endpoint manages keys for `berth-cluster keys`. bbolt lets only
// one process open the store, so while serve runs the keys commands go
// through it. The socket is mode 0600 in a 0700 directory: only the
// endpoint's own user can reach it.
const AdminSocket = "admin.sock"

// KeyAdmin creates, lists and revokes access keys.
type KeyAdmin interface {
	Create(role auth.Role, now time.Time) (id, secret string, err error)
	List() ([]auth.Key, error)
	Revoke(id string) error
	Close() error
}

// OpenKeyring returns a KeyAdmin for the data directory: through the
// running endpoint's admin socket when it answers, else on the store file.
func OpenKeyring(dataDir string) (KeyAdmin, error) {
	sock := filepath.Join(dataDir, AdminSocket)
	if _, err := os.Stat(sock); err == nil {
		c := &socketAdmin{client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		}}}
		_, sockErr := c.List()
		if sockErr == nil {
			return c, nil
		}
		// A stale socket from a stopped endpoint: use the file. If a
		// running endpoint holds the file, say that the socket failed too.
		db, kr, err := OpenStore(dataDir)
		if err != nil {
			return nil, fmt.Errorf("%w (and the admin socket %s did not answer: %v)", err, sock, sockErr)
		}
		return &fileAdmin{Keyring: kr, db: db}, nil
	}
	db, kr, err := OpenStore(dataDir)
	if err != nil {
		return nil, err
	}
	return &fileAdmin{Keyring: kr, db: db}, nil
}

// OpenKeyringEtcd returns a KeyAdmin on the etcd store of o: the replicas
// share their keys through etcd, so any host with the configuration and
// the key-encryption key manages them, whether a replica runs there or not.
func OpenKeyringEtcd(ctx context.Context, o *EtcdOptions) (KeyAdmin, error) {
	st, kr, _, err := openEtcd(ctx, o, nil)
	if err != nil {
		return nil, err
	}
	return &fileAdmin{Keyring: kr, db: st}, nil
}

type fileAdmin struct {
	*auth.Keyring
	db io.Closer
}

var _ KeyAdmin = (*fileAdmin)(nil)

func (f *fileAdmin) Close() error { return f.db.Close() }

type socketAdmin struct{ client *http.Client }

var _ KeyAdmin = (*socketAdmin)(nil)

type createKeyRequest struct {
	Role auth.Role `json:"role"`
}

type createKeyResponse struct {
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
}

type revokeKeyRequest struct {
	AccessKeyID string `json:"accessKeyId"`
}

func (s *socketAdmin) call(method, path string, in, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://berth-cluster"+path, body)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin socket: %s", bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (s *socketAdmin) Create(role auth.Role, _ time.Time) (string, string, error) {
	var out createKeyResponse
	if err := s.call(http.MethodPost, "/keys", createKeyRequest{Role: role}, &out); err != nil {
		return "", "", err
	}
	return out.AccessKeyID, out.SecretAccessKey, nil
}

func (s *socketAdmin) List() ([]auth.Key, error) {
	var out []auth.Key
	err := s.call(http.MethodGet, "/keys", nil, &out)
	return out, err
}

func (s *socketAdmin) Revoke(id string) error {
	return s.call(http.MethodPost, "/keys/revoke", revokeKeyRequest{AccessKeyID: id}, nil)
}

func (s *socketAdmin) Close() error { return nil }

// adminHandler serves the admin socket.
func (e *Endpoint) adminHandler() http.Handler {
	now := time.Now
	if e.opts.Now != nil {
		now = e.opts.Now
	}
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, code int, err error) {
		w.WriteHeader(code)
		fmt.Fprintln(w, err.Error())
	}
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		keys, err := e.keys.List()
		if err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		reply(w, keys)
	})
	mux.HandleFunc("POST /keys", func(w http.ResponseWriter, r *http.Request) {
		var in createKeyRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&in); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		id, secret, err := e.keys.Create(in.Role, now())
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		e.opts.Logger.Info("access key created", "accessKeyId", id, "role", in.Role)
		reply(w, createKeyResponse{AccessKeyID: id, SecretAccessKey: secret})
	})
	mux.HandleFunc("POST /keys/revoke", func(w http.ResponseWriter, r *http.Request) {
		var in revokeKeyRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&in); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		if err := e.keys.Revoke(in.AccessKeyID); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, auth.ErrUnknownKey) {
				code = http.StatusNotFound
			}
			fail(w, code, err)
			return
		}
		e.opts.Logger.Info("access key revoked", "accessKeyId", in.AccessKeyID)
		reply(w, struct{}{})
	})
	return mux
}

// listenAdmin opens the admin socket, replacing a stale one.
func (e *Endpoint) listenAdmin() (net.Listener, error) {
	path := filepath.Join(e.opts.DataDir, AdminSocket)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale admin socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod admin socket: %w", err)
	}
	return ln, nil
}
