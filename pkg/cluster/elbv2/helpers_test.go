package elbv2_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

const (
	region  = "us-test-1"
	account = "123456789012"
	// certArn is the certificate the test endpoint declares.
	certArn = "arn:aws:acm:us-test-1:123456789012:certificate/lab"
)

// lab is a real cluster endpoint on a loopback port with an admin key.
type lab struct {
	ep         *cluster.Endpoint
	url        string
	id, secret string
	certFile   string
	keyFile    string
}

func startLab(t *testing.T) *lab {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)
	ep, err := cluster.Open(context.Background(), cluster.Options{Region: region, AccountID: account, DataDir: filepath.Join(dir, "data"),
		NoAgentSessions: true, Certificates: []cluster.Certificate{{ARN: certArn, CertFile: certFile, KeyFile: keyFile}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ep.Handler())
	t.Cleanup(func() {
		srv.Close()
		ep.Close()
	})
	id, secret, err := ep.Keys().Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &lab{ep: ep, url: srv.URL, id: id, secret: secret, certFile: certFile, keyFile: keyFile}
}

func (l *lab) key(t *testing.T, role auth.Role) (string, string) {
	t.Helper()
	id, secret, err := l.ep.Keys().Create(role, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return id, secret
}

// elb is the AWS SDK's ELBv2 client, without retries.
func (l *lab) elb(id, secret string) *elb.Client {
	return elb.New(elb.Options{Region: region, BaseEndpoint: aws.String(l.url), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""), Retryer: aws.NopRetryer{}})
}

func (l *lab) ecs() *ecs.Client {
	return ecs.New(ecs.Options{Region: region, BaseEndpoint: aws.String(l.url), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(l.id, l.secret, ""), Retryer: aws.NopRetryer{}})
}

func (l *lab) snapshot(t *testing.T) map[store.Bucket]map[string]string {
	t.Helper()
	snap, err := store.Snapshot(l.ep.Store(), cluster.Buckets())
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// errorCode is the AWS error code of err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// refused runs call, which must fail with code and leave the store as it
// was.
func (l *lab) refused(t *testing.T, what, code string, call func() error) {
	t.Helper()
	before := l.snapshot(t)
	err := call()
	if errorCode(err) != code {
		t.Errorf("%s: error %v, want %s", what, err, code)
	}
	if after := l.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("%s: the failed request changed the store", what)
	}
}

// writeSelfSigned writes an Ed25519 certificate for lab.localhost and its
// PKCS #8 key as PEM files.
func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), DNSNames: []string{"lab.localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600),
		os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)); err != nil {
		t.Fatal(err)
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func equalSnap(a, b map[store.Bucket]map[string]string) bool { return reflect.DeepEqual(a, b) }

func (l *lab) ecsHTTP() *awshttp.BuildableClient { return awshttp.NewBuildableClient() }
