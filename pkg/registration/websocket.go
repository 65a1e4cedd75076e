package registration

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/gorilla/websocket"
)

// wsTarget is a websocket the agent opens to the endpoint: ACS (tasks) or
// TCS (health). Both are "<endpoint>/ws?<query>" with a SigV4-signed
// handshake for service ecs.
type wsTarget struct {
	name     string // ACS or TCS, for errors
	endpoint string
	query    url.Values
	creds    aws.CredentialsProvider
	region   string
	clock    Clock
	tls      *tls.Config
}

// urls builds the websocket URL and the same URL with an http scheme,
// which is what the handshake is signed as.
func (t wsTarget) urls() (ws, plain string, err error) {
	u, err := url.Parse(t.endpoint)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("%s endpoint %q is not a URL", t.name, t.endpoint)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "http"
	case "https", "wss", "":
		u.Scheme = "https"
	default:
		return "", "", fmt.Errorf("%s endpoint %q: unsupported scheme", t.name, t.endpoint)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/ws"
	u.RawQuery = t.query.Encode()
	plain = u.String()
	if u.Scheme == "http" {
		u.Scheme = "ws"
	} else {
		u.Scheme = "wss"
	}
	return u.String(), plain, nil
}

// emptySHA256 is the payload hash of the bodiless handshake GET.
var emptySHA256 = func() string { s := sha256.Sum256(nil); return hex.EncodeToString(s[:]) }()

// sign returns the SigV4 headers (service ecs) for the handshake GET.
func (t wsTarget) sign(ctx context.Context, plainURL string) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, plainURL, nil)
	if err != nil {
		return nil, fmt.Errorf("sign %s handshake: %w", t.name, err)
	}
	creds, err := t.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("sign %s handshake: retrieve credentials: %w", t.name, err)
	}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, emptySHA256, "ecs", t.region, t.clock.Now().UTC()); err != nil {
		return nil, fmt.Errorf("sign %s handshake: %w", t.name, err)
	}
	h := http.Header{}
	for _, k := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
		if v := req.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	return h, nil
}

// dialSigned opens the websocket. A refused handshake's error carries the
// endpoint's answer; an InactiveInstanceException wraps ErrInactiveInstance.
// It also returns the plain URL, for logs.
func dialSigned(ctx context.Context, t wsTarget) (*websocket.Conn, string, error) {
	wsURL, httpURL, err := t.urls()
	if err != nil {
		return nil, "", err
	}
	header, err := t.sign(ctx, httpURL)
	if err != nil {
		return nil, "", err
	}
	dialer := websocket.Dialer{
		HandshakeTimeout: 30 * time.Second,
		TLSClientConfig:  t.tls,
		Proxy:            http.ProxyFromEnvironment,
	}
	conn, resp, err := dialer.DialContext(ctx, wsURL, header)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if strings.Contains(string(body), "InactiveInstanceException") {
				return nil, "", fmt.Errorf("connect %s: %w", t.name, ErrInactiveInstance)
			}
			return nil, "", fmt.Errorf("connect %s %s: %s: %s", t.name, httpURL, resp.Status, strings.TrimSpace(string(body)))
		}
		return nil, "", fmt.Errorf("connect %s %s: %w", t.name, httpURL, err)
	}
	return conn, httpURL, nil
}

// reconnectLoop runs once, a connection at a time, until ctx ends
// (returning ctx's error) or once fails with ErrInactiveInstance (a
// *TerminalError for op, with hint). Between connections it waits by
// backoff; the backoff starts over after a connection that lasted over a
// minute or that the endpoint closed on purpose (planned(err)).
func reconnectLoop(ctx context.Context, op, hint string, clock Clock, backoff Backoff, log *slog.Logger,
	planned func(error) bool, once func(context.Context) error) error {
	attempt := 0
	for {
		began := clock.Now()
		err := once(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrInactiveInstance) {
			return &TerminalError{Op: op, Err: err, Hint: hint}
		}
		isPlanned := planned != nil && planned(err)
		if isPlanned || clock.Now().Sub(began) > time.Minute {
			attempt = 0
		}
		d := backoff.Delay(attempt)
		attempt++
		if isPlanned {
			log.Info(op+" closed by the endpoint; reconnecting", "reason", err, "in", d)
		} else {
			log.Warn(op+" ended; reconnecting", "err", err, "in", d)
		}
		if err := sleep(ctx, clock, d); err != nil {
			return err
		}
	}
}
