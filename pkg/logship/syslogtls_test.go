package logship

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeTestCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "syslog test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// On tcp+tls with RFC 5424 each message is framed by octet counting
// (RFC 5425), so a message containing a newline stays one message; the
// server's certificate is checked against syslog-tls-ca-cert.
func TestSyslogTLSOctetCounting(t *testing.T) {
	certFile, keyFile := writeTestCert(t, t.TempDir())
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	frames := make(chan string, 10)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			n, err := r.ReadString(' ')
			if err != nil {
				return
			}
			size, err := strconv.Atoi(strings.TrimSpace(n))
			if err != nil {
				frames <- "bad length " + n
				return
			}
			buf := make([]byte, size)
			if _, err := io.ReadFull(r, buf); err != nil {
				return
			}
			frames <- string(buf)
		}
	}()
	opts := map[string]string{"syslog-address": "tcp+tls://" + ln.Addr().String(), "syslog-format": "rfc5424micro",
		"syslog-facility": "local0", "syslog-tls-ca-cert": certFile, "tag": "app"}
	if err := ValidateOptions(DriverSyslog, opts); err != nil {
		t.Fatal(err)
	}
	d, err := NewDriver(DriverSyslog, opts, ContainerInfo{ID: "c"}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ts := time.Date(2026, 11, 22, 1, 2, 3, 456789000, time.UTC)
	if n, err := d.Ship(context.Background(), []Message{{Line: []byte("two\nlines"), Stream: "stderr", Time: ts}, {Line: []byte("next"), Stream: "stdout", Time: ts}}); n != 2 || err != nil {
		t.Fatalf("shipped %d: %v", n, err)
	}
	host, _ := os.Hostname()
	for _, want := range []string{
		"<131>1 2026-11-22T01:02:03.456789Z " + host + " app - app - two\nlines", // local0 (16)*8 + err (3)
		"<134>1 2026-11-22T01:02:03.456789Z " + host + " app - app - next",
	} {
		select {
		case got := <-frames:
			if got != want {
				t.Fatalf("frame %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no frame received")
		}
	}
}
