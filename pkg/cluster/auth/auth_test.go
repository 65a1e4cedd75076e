package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
)

func newKeyring(t *testing.T, dir string) (*Keyring, store.Store) {
	t.Helper()
	db, err := boltstore.Open(filepath.Join(dir, "keys.db"), boltstore.Options{Buckets: []store.Bucket{KeysBucket}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	mk, err := LoadMasterKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := NewKeyring(db, mk)
	if err != nil {
		t.Fatal(err)
	}
	return kr, db
}

func TestKeyringSealsSecrets(t *testing.T) {
	dir := t.TempDir()
	kr, db := newKeyring(t, dir)
	id, secret, err := kr.Create(RoleAgent, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 20 || !strings.HasPrefix(id, "BK") || len(secret) != 40 {
		t.Errorf("key id %q (%d) secret length %d, want 20-character BK id and 40-character secret", id, len(id), len(secret))
	}
	snap, err := store.Snapshot(db, []store.Bucket{KeysBucket})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(snap[KeysBucket][id], secret) {
		t.Fatalf("the store holds the secret in clear")
	}
	k, got, err := kr.Lookup(id)
	if err != nil || got != secret || k.Role != RoleAgent {
		t.Fatalf("Lookup = %+v %q %v", k, got, err)
	}
	// Another master key cannot open it.
	other, err := NewKeyring(db, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.Lookup(id); err == nil {
		t.Fatalf("a wrong master key unsealed the secret")
	}
	if err := kr.Revoke(id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kr.Lookup(id); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Lookup after revoke: %v, want ErrUnknownKey", err)
	}
	if err := kr.Revoke("BKNOPE"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Revoke unknown: %v", err)
	}
	if _, _, err := kr.Create("root", time.Now()); err == nil {
		t.Fatalf("created a key with role root")
	}
}

func TestMasterKeyFile(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadMasterKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, MasterKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("master key mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
	b, err := LoadMasterKey(dir)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("second load differs: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, MasterKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadMasterKey(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable master key accepted: %v", err)
	}
}

type staticKeys map[string]string

func (s staticKeys) Lookup(id string) (Key, string, error) {
	secret, ok := s[id]
	if !ok {
		return Key{}, "", ErrUnknownKey
	}
	return Key{AccessKeyID: id, Role: RoleAdmin}, secret, nil
}

// TestVerifyAgainstSDKSigner signs requests with the SDK's signer, including
// the GET with a query string that the ACS websocket handshake uses, and
// checks that they verify and that any change breaks them.
func TestVerifyAgainstSDKSigner(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	v := &Verifier{Keys: staticKeys{"AKID": "s3cret"}, Region: "us-test-1", Services: []string{"ecs"}, Now: func() time.Time { return now }}
	sign := func(method, target string, body string, at time.Time, secret string) *http.Request {
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-amz-json-1.1")
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: secret}, r, hex.EncodeToString(sum[:]), "ecs", "us-test-1", at); err != nil {
			t.Fatal(err)
		}
		return r
	}
	ws := "http://endpoint.test/ws?clusterArn=arn%3Aaws%3Aecs%3Aus-test-1%3A1%3Acluster%2Flab&seqNum=1&agentVersion=1.0.0%2Bx&sendCredentials=true"
	cases := []struct {
		name string
		req  *http.Request
		body string
		want string
	}{
		{"POST", sign("POST", "http://endpoint.test/", `{"a":1}`, now, "s3cret"), `{"a":1}`, ""},
		{"websocket GET with query", sign("GET", ws, "", now, "s3cret"), "", ""},
		{"14 minutes late", sign("POST", "http://endpoint.test/", "{}", now.Add(-14*time.Minute), "s3cret"), "{}", ""},
		{"16 minutes late", sign("POST", "http://endpoint.test/", "{}", now.Add(-16*time.Minute), "s3cret"), "{}", InvalidSignature},
		{"16 minutes early", sign("POST", "http://endpoint.test/", "{}", now.Add(16*time.Minute), "s3cret"), "{}", InvalidSignature},
		{"wrong secret", sign("POST", "http://endpoint.test/", "{}", now, "other"), "{}", InvalidSignature},
		{"body changed", sign("POST", "http://endpoint.test/", `{"a":1}`, now, "s3cret"), `{"a":2}`, InvalidSignature},
	}
	for _, c := range cases {
		_, err := v.Verify(c.req, []byte(c.body))
		got := ""
		var ae *Error
		if errors.As(err, &ae) {
			got = ae.Type
		} else if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	// A query parameter changed after signing.
	r := sign("GET", ws, "", now, "s3cret")
	r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "seqNum=1", "seqNum=2", 1)
	if _, err := v.Verify(r, nil); err == nil {
		t.Errorf("changed query verified")
	}
	// A header that was signed, changed.
	r = sign("POST", "http://endpoint.test/", "{}", now, "s3cret")
	r.Header.Set("Content-Type", "text/plain")
	if _, err := v.Verify(r, []byte("{}")); err == nil {
		t.Errorf("changed signed header verified")
	}
	// Unsigned host is refused as incomplete.
	r = sign("POST", "http://endpoint.test/", "{}", now, "s3cret")
	r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=content-length;content-type;host;", "SignedHeaders=content-length;content-type;", 1))
	var ae *Error
	if _, err := v.Verify(r, []byte("{}")); !errors.As(err, &ae) || ae.Type != IncompleteSignature {
		t.Errorf("host not signed: %v, want %s (Authorization %s)", err, IncompleteSignature, r.Header.Get("Authorization"))
	}
}

// TestUnsignedTargetRefused replays a request signed over host and
// x-amz-date only with another X-Amz-Target (issue 23, item 6): the target,
// the content type and every other X-Amz-* header must be signed, as AWS
// requires, or a captured DescribeTaskDefinition becomes a
// DeregisterTaskDefinition.
func TestUnsignedTargetRefused(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	v := &Verifier{Keys: staticKeys{"AKID": "s3cret"}, Region: "us-test-1", Services: []string{"ecs"}, Now: func() time.Time { return now }}
	body := `{"taskDefinition":"web:1"}`
	sum := sha256.Sum256([]byte(body))
	signed := func(headers map[string]string) *http.Request {
		r := httptest.NewRequest("POST", "http://endpoint.test/", strings.NewReader(body))
		for k, val := range headers {
			r.Header.Set(k, val)
		}
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "s3cret"}, r, hex.EncodeToString(sum[:]), "ecs", "us-test-1", now); err != nil {
			t.Fatal(err)
		}
		return r
	}
	all := map[string]string{"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.DescribeTaskDefinition"}
	if _, err := v.Verify(signed(all), []byte(body)); err != nil {
		t.Fatalf("fully signed request refused: %v", err)
	}
	cases := []struct {
		name, header, value string
	}{
		{"target added after signing", "X-Amz-Target", "AmazonEC2ContainerServiceV20141113.DeregisterTaskDefinition"},
		{"content type added after signing", "Content-Type", "application/x-amz-json-1.0"},
		{"security token added after signing", "X-Amz-Security-Token", "token"},
	}
	for _, c := range cases {
		r := signed(map[string]string{})
		if !strings.Contains(r.Header.Get("Authorization"), "SignedHeaders=content-length;host;x-amz-date,") {
			t.Fatalf("%s: signed over %q, want content-length;host;x-amz-date only", c.name, r.Header.Get("Authorization"))
		}
		r.Header.Set(c.header, c.value)
		var ae *Error
		_, err := v.Verify(r, []byte(body))
		if !errors.As(err, &ae) || ae.Type != IncompleteSignature || !strings.Contains(ae.Message, "'"+c.header+"' must be a 'SignedHeader'") {
			t.Errorf("%s: %v, want %s naming %s", c.name, err, IncompleteSignature, c.header)
		}
	}
}
