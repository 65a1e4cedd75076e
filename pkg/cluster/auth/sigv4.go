package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Error is an authentication or authorization failure with the AWS error
// type the endpoint must answer with.
type Error struct {
	Type    string // e.g. InvalidSignatureException
	Status  int    // HTTP status
	Message string
}

// Error returns "Type: message".
func (e *Error) Error() string { return e.Type + ": " + e.Message }

// The AWS error types of authentication failures.
const (
	MissingAuthenticationToken = "MissingAuthenticationTokenException"
	IncompleteSignature        = "IncompleteSignatureException"
	InvalidSignature           = "InvalidSignatureException"
	UnrecognizedClient         = "UnrecognizedClientException"
	AccessDenied               = "AccessDeniedException"
)

func authErr(typ string, status int, format string, args ...any) *Error {
	return &Error{Type: typ, Status: status, Message: fmt.Sprintf(format, args...)}
}

// MaxClockSkew is how far X-Amz-Date may be from the endpoint's clock, as AWS
// allows.
const MaxClockSkew = 15 * time.Minute

const (
	algorithm     = "AWS4-HMAC-SHA256"
	amzDateLayout = "20060102T150405Z"
)

// SecretLookup finds an access key and its secret; it returns ErrUnknownKey
// for unknown or revoked keys. *Keyring implements it.
type SecretLookup interface {
	Lookup(accessKeyID string) (Key, string, error)
}

var _ SecretLookup = (*Keyring)(nil)

// RoleKeyLookup finds the declared IAM role whose credentials have an
// access key id: a static role's key pair, or credentials issued to a
// running task. *roles.Broker implements it. sessionToken is what the
// request's X-Amz-Security-Token must be ("" means none).
type RoleKeyLookup interface {
	LookupRoleKey(accessKeyID string) (roleArn, secret, sessionToken string, ok bool)
}

// Verifier checks SigV4 Authorization headers.
type Verifier struct {
	Keys SecretLookup
	// RoleKeys, when set, recognises the credentials of declared IAM roles
	// (keys of role RoleIAM) for the services of RoleServices.
	RoleKeys RoleKeyLookup
	// (Keys holds the endpoint's own access keys.)
	Region string
	// Services lists the SigV4 service names accepted (e.g. "ecs"; "logs"
	// once the CloudWatch Logs API is served).
	Services []string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify authenticates r, whose body has already been read into body, and
// returns the key that signed it. Failures are *Error.
func (v *Verifier) Verify(r *http.Request, body []byte) (Key, error) {
	k, _, err := v.VerifyScope(r, body)
	return k, err
}

// VerifyScope is Verify that also returns the SigV4 service the request was
// signed for (one of Services), so that a server with several APIs on one
// listener can check that each request was signed for the API it calls.
func (v *Verifier) VerifyScope(r *http.Request, body []byte) (Key, string, error) {
	k, service, err := v.verify(r, body)
	if err != nil {
		return Key{}, "", err
	}
	return k, service, nil
}

func (v *Verifier) verify(r *http.Request, body []byte) (Key, string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Key{}, "", authErr(MissingAuthenticationToken, http.StatusForbidden, "Missing Authentication Token")
	}
	cred, signedHeaders, sig, err := parseAuthorization(h)
	if err != nil {
		return Key{}, "", err
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		return Key{}, "", authErr(IncompleteSignature, http.StatusBadRequest, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	signedAt, perr := time.Parse(amzDateLayout, amzDate)
	if perr != nil {
		return Key{}, "", authErr(IncompleteSignature, http.StatusBadRequest, "X-Amz-Date %q is not in the form YYYYMMDD'T'HHMMSS'Z'", amzDate)
	}
	if !containsString(signedHeaders, "host") {
		return Key{}, "", authErr(IncompleteSignature, http.StatusBadRequest, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	if !containsString(signedHeaders, "x-amz-date") {
		return Key{}, "", authErr(IncompleteSignature, http.StatusBadRequest, "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
	}
	if err := requireSigned(r.Header, signedHeaders); err != nil {
		return Key{}, "", err
	}
	// Credential=AKID/yyyymmdd/region/service/aws4_request
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return Key{}, "", authErr(IncompleteSignature, http.StatusBadRequest, "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%s'", cred)
	}
	keyID, date, region, service := parts[0], parts[1], parts[2], parts[3]
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	t := now().UTC()
	if d := t.Sub(signedAt); d > MaxClockSkew || d < -MaxClockSkew {
		return Key{}, "", authErr(InvalidSignature, http.StatusBadRequest,
			"Signature expired: %s is now earlier than %s (%s - 15 min.)",
			amzDate, t.Add(-MaxClockSkew).Format(amzDateLayout), t.Format(amzDateLayout))
	}
	if date != signedAt.Format("20060102") {
		return Key{}, "", authErr(InvalidSignature, http.StatusBadRequest, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s'", date, signedAt.Format("20060102"))
	}
	if region != v.Region {
		return Key{}, "", authErr(InvalidSignature, http.StatusBadRequest, "Credential should be scoped to a valid region, not '%s'. ", region)
	}
	if !containsString(v.Services, service) {
		return Key{}, "", authErr(InvalidSignature, http.StatusBadRequest, "Credential should be scoped to correct service: '%s'. ", strings.Join(v.Services, "', '"))
	}
	key, secret, lerr := v.Keys.Lookup(keyID)
	wantToken := ""
	if errors.Is(lerr, ErrUnknownKey) && v.RoleKeys != nil {
		if roleArn, roleSecret, token, ok := v.RoleKeys.LookupRoleKey(keyID); ok {
			key, secret, wantToken, lerr = Key{AccessKeyID: keyID, Role: RoleIAM, RoleArn: roleArn}, roleSecret, token, nil
		}
	}
	if errors.Is(lerr, ErrUnknownKey) {
		return Key{}, "", authErr(UnrecognizedClient, http.StatusBadRequest, "The security token included in the request is invalid.")
	}
	if lerr != nil {
		return Key{}, "", fmt.Errorf("verify signature: %w", lerr)
	}
	// A role's session token is part of its credentials: without the
	// right one the request is as unknown as a wrong key id. (The
	// endpoint's own keys have none, and a token sent with them is left
	// alone as before.)
	if token := r.Header.Get("X-Amz-Security-Token"); key.Role == RoleIAM && subtle.ConstantTimeCompare([]byte(token), []byte(wantToken)) != 1 {
		return Key{}, "", authErr(UnrecognizedClient, http.StatusBadRequest, "The security token included in the request is invalid.")
	}
	if r.Header.Get("X-Amz-Content-Sha256") == "UNSIGNED-PAYLOAD" {
		return Key{}, "", authErr(InvalidSignature, http.StatusBadRequest, "unsigned payloads are not accepted")
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	creq := canonicalRequest(r, signedHeaders, payloadHash)
	scope := strings.Join(parts[1:], "/")
	crHash := sha256.Sum256([]byte(creq))
	stringToSign := algorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(crHash[:])
	want := hex.EncodeToString(hmacSHA256(signingKey(secret, date, region, service), stringToSign))
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(sig))) {
		return Key{}, "", authErr(InvalidSignature, http.StatusBadRequest, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	// An lb key is good for the load balancer APIs only: every other API
	// (ECS, the log store, the ACS and TCS handshakes) would otherwise
	// have to know of it.
	if key.Role == RoleLB && service != LBService {
		return Key{}, "", authErr(AccessDenied, http.StatusBadRequest, "lb keys may call only the %s API, not %s", LBService, service)
	}
	if key.Role == RoleViewer {
		return Key{}, "", authErr(AccessDenied, http.StatusBadRequest, "viewer keys sign in to the web console (/console/) only; they sign no API request")
	}
	if key.Role == RoleIAM && !containsString(RoleServices, service) {
		return Key{}, "", authErr(AccessDenied, http.StatusBadRequest, "credentials of role %s may call only the %s APIs on this endpoint, not %s",
			key.RoleArn, strings.Join(RoleServices, " and "), service)
	}
	return key, service, nil
}

// requireSigned refuses a request that carries an X-Amz-* header or a
// Content-Type outside its signature: those headers choose the operation
// (X-Amz-Target), the protocol (Content-Type) or the credentials
// (X-Amz-Security-Token), so an unsigned one could be changed in a replayed
// request. The AWS SDKs and the CLI sign every header they send but a few
// (User-Agent, Expect, X-Amzn-Trace-Id), none of them in this set.
func requireSigned(h http.Header, signed []string) error {
	for name := range h {
		lower := strings.ToLower(name)
		if !strings.HasPrefix(lower, "x-amz-") && lower != "content-type" {
			continue
		}
		if !containsString(signed, lower) {
			return authErr(IncompleteSignature, http.StatusBadRequest,
				"'%s' must be a 'SignedHeader' in the AWS Authorization.", http.CanonicalHeaderKey(name))
		}
	}
	return nil
}

// parseAuthorization splits "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...".
func parseAuthorization(h string) (cred string, signed []string, sig string, err error) {
	alg, rest, ok := strings.Cut(h, " ")
	if !ok || alg != algorithm {
		return "", nil, "", authErr(IncompleteSignature, http.StatusBadRequest, "Authorization header must use %s", algorithm)
	}
	var signedRaw string
	for _, p := range strings.Split(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			continue
		}
		switch k {
		case "Credential":
			cred = val
		case "SignedHeaders":
			signedRaw = val
		case "Signature":
			sig = val
		}
	}
	var missing []string
	if cred == "" {
		missing = append(missing, "Credential")
	}
	if signedRaw == "" {
		missing = append(missing, "SignedHeaders")
	}
	if sig == "" {
		missing = append(missing, "Signature")
	}
	if len(missing) > 0 {
		return "", nil, "", authErr(IncompleteSignature, http.StatusBadRequest, "Authorization header requires '%s' parameter(s).", strings.Join(missing, "', '"))
	}
	return cred, strings.Split(signedRaw, ";"), sig, nil
}

func canonicalRequest(r *http.Request, signedHeaders []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalPath(r.URL))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL))
	b.WriteByte('\n')
	for _, name := range signedHeaders {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(headerValue(r, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// headerValue returns a signed header's canonical value. Go's server moves
// Host and Content-Length out of r.Header, so they are read from r.
func headerValue(r *http.Request, name string) string {
	var vals []string
	switch name {
	case "host":
		vals = []string{r.Host}
	case "content-length":
		if r.ContentLength >= 0 {
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	default:
		vals = r.Header.Values(name)
	}
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

// canonicalPath URI-encodes each path segment once more, as SigV4 does for
// every service except S3.
func canonicalPath(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = uriEncode(s)
	}
	return strings.Join(segs, "/")
}

func canonicalQuery(u *url.URL) string {
	q := u.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vals := append([]string(nil), q[k]...)
		sort.Strings(vals)
		for _, v := range vals {
			parts = append(parts, uriEncode(k)+"="+uriEncode(v))
		}
	}
	return strings.Join(parts, "&")
}

// uriEncode percent-encodes everything but RFC 3986 unreserved characters.
func uriEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
