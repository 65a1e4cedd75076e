package secrets_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/roles"
	"github.com/berth-dev/berth/pkg/cluster/secrets"
	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
)

const (
	region  = "us-test-1"
	account = "123456789012"
)

// clock is the secrets server's clock, moved by tests (recovery windows).
// Signatures are checked against the real time, as the SDK signs with it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is the captured log of a lab.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lab is the secrets APIs behind the real protocol router and SigV4
// verifier, over a bbolt store and a keyring, with the roles broker of the
// declared roles; every log line at debug level is captured, and at the
// end of the test none may hold a value the test registered as secret.
type lab struct {
	url        string
	db         store.Store
	keys       *auth.Keyring
	broker     *roles.Broker
	clock      *clock
	log        *syncBuffer
	id, secret string

	mu     sync.Mutex
	values []string // guarded by mu
}

// Roles the labs declare: app may read /app/* and db-* secrets; other has
// no grants.
const (
	appRole   = "arn:aws:iam::123456789012:role/app-exec"
	otherRole = "arn:aws:iam::123456789012:role/other"
)

func labRoles() []roles.RoleConfig {
	return []roles.RoleConfig{
		{Arn: appRole, Source: roles.SourceStatic, AccessKeyID: "AKIAAPPEXEC000000001", SecretAccessKey: "app-exec-secret",
			Secrets: []string{"arn:aws:ssm:us-test-1:123456789012:parameter/app/*", "arn:aws:secretsmanager:*:123456789012:secret:db-*"}},
		{Arn: otherRole, Source: roles.SourceStatic, AccessKeyID: "AKIAOTHER00000000001", SecretAccessKey: "other-secret"},
	}
}

func startLab(t *testing.T) *lab {
	t.Helper()
	dir := t.TempDir()
	db, err := boltstore.Open(filepath.Join(dir, "cluster.db"), boltstore.Options{Buckets: append(secrets.Buckets(), auth.KeysBucket)})
	if err != nil {
		t.Fatal(err)
	}
	mk, err := auth.LoadMasterKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.NewKeyring(db, mk)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := roles.New(roles.Options{Roles: labRoles(), Region: region, AccountID: account})
	if err != nil {
		t.Fatal(err)
	}
	broker, err := roles.NewBroker(roles.BrokerOptions{Issuer: issuer, Sender: roles.SenderFunc(
		func(context.Context, string, *api.IAMRoleCredentialsMessage) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{db: db, keys: keys, broker: broker, clock: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, log: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(l.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := secrets.New(secrets.Options{Store: db, Sealer: keys, Grants: broker, Region: region, AccountID: account, Now: l.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	verifier := &auth.Verifier{Keys: keys, RoleKeys: broker, Region: region,
		Services: []string{secrets.SSMService, secrets.SecretsManagerService, "ecs", auth.LBService}}
	router, err := awsproto.New(awsproto.Options{Verifier: verifier, APIs: []awsproto.API{srv.SSMAPI(), srv.SecretsManagerAPI()}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(router)
	l.url = hs.URL
	if l.id, l.secret, err = keys.Create(auth.RoleAdmin, time.Now()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hs.Close()
		l.checkLog(t)
		db.Close()
	})
	return l
}

// secretValue registers v as a value that must never be logged nor appear
// in the store in clear, and returns it.
func (l *lab) secretValue(v string) string {
	l.mu.Lock()
	l.values = append(l.values, v)
	l.mu.Unlock()
	return v
}

func (l *lab) checkLog(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.log.String()
	if !strings.Contains(out, "AWS request") {
		t.Errorf("the request log captured nothing; the check would prove nothing:\n%s", out)
	}
	for _, v := range l.values {
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v))} {
			if strings.Contains(out, form) {
				t.Errorf("the log holds the secret value %q:\n%s", v, out)
			}
		}
	}
}

func (l *lab) creds(id, secret, token string) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(id, secret, token)
}

func (l *lab) ssm(c aws.CredentialsProvider) *ssm.Client {
	if c == nil {
		c = l.creds(l.id, l.secret, "")
	}
	return ssm.New(ssm.Options{Region: region, BaseEndpoint: aws.String(l.url), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: c, Retryer: aws.NopRetryer{}})
}

func (l *lab) sm(c aws.CredentialsProvider) *sm.Client {
	if c == nil {
		c = l.creds(l.id, l.secret, "")
	}
	return sm.New(sm.Options{Region: region, BaseEndpoint: aws.String(l.url), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: c, Retryer: aws.NopRetryer{}})
}

// errorCode is the AWS error code of err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// wantCode fails unless err has the AWS error code and (when set) a
// message containing msg.
func wantCode(t *testing.T, what string, err error, code, msg string) {
	t.Helper()
	if errorCode(err) != code {
		t.Errorf("%s: error %v, want %s", what, err, code)
		return
	}
	if msg != "" && !strings.Contains(err.Error(), msg) {
		t.Errorf("%s: error %q does not say %q", what, err, msg)
	}
}

// rawStore is every record of the secrets buckets as stored.
func (l *lab) rawStore(t *testing.T) string {
	t.Helper()
	snap, err := store.Snapshot(l.db, secrets.Buckets())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, recs := range snap {
		for k, v := range recs {
			b.WriteString(k + "=" + v + "\n")
		}
	}
	return b.String()
}

// newServer is a second secrets server over the lab's store and keyring,
// with the lab's clock.
func newServer(t *testing.T, l *lab) *secrets.Server {
	t.Helper()
	s, err := secrets.New(secrets.Options{Store: l.db, Sealer: l.keys, Region: region, AccountID: account, Now: l.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// swapSealed copies the current sealed value of parameter from onto
// parameter to, in the raw records, as someone with write access to the
// store but not the master key could.
func swapSealed(t *testing.T, l *lab, from, to string) {
	t.Helper()
	err := l.db.Update(func(tx store.Tx) error {
		var src, dst map[string]any
		if err := tx.Get(secrets.ParametersBucket, from, &src); err != nil {
			return err
		}
		if err := tx.Get(secrets.ParametersBucket, to, &dst); err != nil {
			return err
		}
		sv, dv := src["versions"].([]any), dst["versions"].([]any)
		dv[len(dv)-1].(map[string]any)["sealed"] = sv[len(sv)-1].(map[string]any)["sealed"]
		return tx.Put(secrets.ParametersBucket, to, dst)
	})
	if err != nil {
		t.Fatal(err)
	}
}
