package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// Sign-in: the page carries a challenge (a nonce the server made and
// MACed, so it keeps nothing until it is used); the browser proves it
// holds the key's secret with the Proof over the nonce and its key id,
// computed by WebCrypto (static/console.js), and sends only the
// key id, the nonce and the proof. A nonce is good once, for
// challengeTTL. The session is a random id in an HttpOnly, SameSite=Strict
// cookie (Secure over TLS); the endpoint's store keeps its hash with the
// key it stands for (sessions.go), so every replica knows it, and its CSRF
// token is a MAC of it. It ends after idleTTL without a request, after
// sessionTTL in any case, when it signs out (on every replica), and as
// soon as its key is revoked.
const (
	challengeTTL = 5 * time.Minute
	// linkTTL is how long a one-time sign-in link (SignInLink) is good.
	linkTTL    = 10 * time.Minute
	idleTTL    = 30 * time.Minute
	sessionTTL = 12 * time.Hour
	cookieName = "berth_console"
	// csrfHeader carries the CSRF token of htmx requests (the layout's
	// hx-headers); plain forms send it as the csrf field.
	csrfHeader = "X-CSRF-Token"
)

// Proof is the sign-in proof for a challenge (the nonce of the sign-in
// page) and a key: hex(HMAC-SHA256(secret, "berth-console-signin\n" +
// nonce + "\n" + key id)), what static/console.js computes in the browser.
// Tests and benchmarks sign in with it.
func Proof(secret, nonce, keyID string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("berth-console-signin\n" + nonce + "\n" + keyID))
	return hex.EncodeToString(m.Sum(nil))
}

type sessionKey struct{}

// sessionOf returns the session signedIn found for r.
func sessionOf(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

// signedIn wraps a handler that needs a session: without one, a page
// request goes to the sign-in page and anything else is 401. Every POST
// must carry the session's CSRF token.
func (s *Server) signedIn(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, _, err := s.currentSession(r)
		if err != nil {
			s.storeError(w, err)
			return
		}
		if sess == nil {
			if r.Method == http.MethodGet && !isHTMX(r) {
				http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
				return
			}
			if isHTMX(r) {
				// A live part's poll after the session ended: htmx
				// follows HX-Redirect, so the page goes to the sign-in
				// form instead of silently going stale.
				w.Header().Set("HX-Redirect", Prefix+"signin")
			}
			http.Error(w, "not signed in to the console (or the session ended): sign in again", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			token := r.Header.Get(csrfHeader)
			if token == "" {
				token = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(token), []byte(sess.CSRF)) != 1 {
				http.Error(w, "the request's CSRF token is missing or stale: reload the page", http.StatusForbidden)
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	}
}

// acting wraps an action's handler: only sessions whose key may act get
// through (a viewer's page shows no controls, and a forged request is
// refused here; the ECS API refuses a viewer's writes too).
func (s *Server) acting(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if sess := sessionOf(r); !sess.canAct() {
			http.Error(w, fmt.Sprintf("AccessDeniedException: %s keys may only look", sess.Key.Role), http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

// currentSession returns r's session, if its cookie names a live one whose
// key is still valid; an error only when the store cannot say.
func (s *Server) currentSession(r *http.Request) (*session, string, error) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil, "", nil
	}
	sess, err := s.sessions.get(c.Value)
	if sess == nil || err != nil {
		return nil, "", err
	}
	key, _, err := s.o.Keys.Lookup(sess.Key.AccessKeyID)
	if err != nil && !errors.Is(err, auth.ErrUnknownKey) {
		return nil, "", fmt.Errorf("console: look up a session's key: %w", err)
	}
	if err != nil || key.Role != sess.Key.Role {
		return nil, "", s.sessions.end(c.Value)
	}
	return sess, c.Value, nil
}

// SignInLink returns the path of a link that signs a browser in as the
// key keyID once, within 10 minutes: dev mode prints it for its admin key.
// Whoever holds the link holds the session, as with the key itself.
func (s *Server) SignInLink(keyID string) (string, error) {
	if _, _, err := s.o.Keys.Lookup(keyID); err != nil {
		return "", fmt.Errorf("console sign-in link: %w", err)
	}
	token, err := randomToken()
	if err != nil {
		return "", fmt.Errorf("console sign-in link: %w", err)
	}
	if err := s.sessions.addLink(token, keyID); err != nil {
		return "", fmt.Errorf("console sign-in link: %w", err)
	}
	return Prefix + "signin?token=" + token, nil
}

type signInData struct {
	Nonce, KeyID, Error string
}

// signInPage shows the sign-in form, or signs in with a one-time link's
// token (?token=).
func (s *Server) signInPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		s.renderSignIn(w, http.StatusOK, "", "")
		return
	}
	keyID, ok, err := s.sessions.useLink(token)
	if err != nil {
		s.storeError(w, err)
		return
	}
	if !ok {
		s.renderSignIn(w, http.StatusUnauthorized, "", fmt.Sprintf("%s: this sign-in link was used already or is older than %s; sign in with the key", errSignIn, linkTTL))
		return
	}
	key, _, err := s.o.Keys.Lookup(keyID)
	if errors.Is(err, auth.ErrUnknownKey) || err == nil && !consoleRole(key.Role) {
		s.renderSignIn(w, http.StatusUnauthorized, "", fmt.Sprintf("%s: the link's key was revoked or cannot sign in", errSignIn))
		return
	}
	if err != nil {
		s.internalError(w, fmt.Errorf("sign in with a link: %w", err))
		return
	}
	s.startSession(w, r, key)
}

func (s *Server) renderSignIn(w http.ResponseWriter, status int, keyID, msg string) {
	nonce, err := s.sessions.challenge()
	if err != nil {
		s.internalError(w, err)
		return
	}
	s.render(w, status, "signin", "layout.html", &page{Title: "Sign in", Data: signInData{Nonce: nonce, KeyID: keyID, Error: msg}})
}

// consoleRole reports whether keys of role r may sign in: admins, and
// viewers, who only look. Agent, load balancer and role keys are for
// machines.
func consoleRole(r auth.Role) bool { return r == auth.RoleAdmin || r == auth.RoleViewer }

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	keyID, nonce, proof := strings.TrimSpace(r.PostFormValue("keyId")), r.PostFormValue("nonce"), r.PostFormValue("proof")
	key, err := s.checkSignIn(keyID, nonce, proof)
	if err != nil {
		if !errors.Is(err, errSignIn) {
			s.storeError(w, err)
			return
		}
		s.renderSignIn(w, http.StatusUnauthorized, keyID, err.Error())
		return
	}
	s.startSession(w, r, key)
}

// startSession signs the browser in as key and sends it to the clusters.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, key auth.Key) {
	id, _, err := s.sessions.create(key)
	if err != nil {
		s.internalError(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: Prefix, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: int(sessionTTL / time.Second)})
	s.o.Logger.Info("console: signed in", "accessKeyId", key.AccessKeyID, "role", key.Role)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// checkSignIn returns the key a sign-in proves, or an errSignIn saying why
// not.
func (s *Server) checkSignIn(keyID, nonce, proof string) (auth.Key, error) {
	if keyID == "" || proof == "" {
		return auth.Key{}, fmt.Errorf("%w: enter the access key id and the secret access key (the page needs JavaScript to sign in)", errSignIn)
	}
	if err := s.sessions.checkChallenge(nonce); err != nil {
		return auth.Key{}, err
	}
	key, secret, err := s.o.Keys.Lookup(keyID)
	if errors.Is(err, auth.ErrUnknownKey) {
		return auth.Key{}, fmt.Errorf("%w: the access key id or the secret is wrong", errSignIn)
	}
	if err != nil {
		return auth.Key{}, fmt.Errorf("sign in: %w", err)
	}
	if !hmac.Equal([]byte(strings.ToLower(proof)), []byte(Proof(secret, nonce, keyID))) {
		return auth.Key{}, fmt.Errorf("%w: the access key id or the secret is wrong", errSignIn)
	}
	if !consoleRole(key.Role) {
		return auth.Key{}, fmt.Errorf("%w: %s keys cannot sign in to the console; use an admin or a viewer key", errSignIn, key.Role)
	}
	if err := s.sessions.useChallenge(nonce); err != nil {
		return auth.Key{}, err
	}
	return key, nil
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	_, id, err := s.currentSession(r)
	if err == nil && id != "" {
		err = s.sessions.end(id)
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}
