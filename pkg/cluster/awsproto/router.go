// Package awsproto is the cluster endpoint's AWS protocol layer, shared by
// every AWS API the endpoint serves on POST / (ECS, CloudWatch Logs,
// Elastic Load Balancing v2, SSM Parameter Store and Secrets Manager today;
// CloudWatch metrics and Application Auto Scaling later). It reads and size-limits the
// request, has its SigV4 signature verified, routes it to the API and
// operation it names and writes the answer or the error in that API's
// protocol:
//
//   - AWS JSON 1.0 and 1.1: the operation is named by X-Amz-Target
//     ("<prefix>.<Operation>"); errors are {"__type": ..., "message": ...}
//     with an X-Amzn-ErrorType header.
//   - AWS Query: a form-encoded body with Action and Version, routed to the
//     Query API whose SigV4 service the request was signed for; results and
//     errors are XML (<OpResponse><OpResult>, <ErrorResponse><Error>).
//   - Smithy RPC v2 CBOR: POST /service/<service shape>/operation/<Op> with
//     a CBOR body (what aws-sdk-go-v2 speaks to CloudWatch); errors are a
//     CBOR map {"__type", "message"}.
//
// An API that used to speak Query and now also speaks JSON 1.0 or CBOR
// (CloudWatch: "awsQueryCompatible") gives its errors a QueryCode, which
// the JSON and CBOR answers carry in the X-Amzn-Query-Error header and the
// Query answers as their code. DecodeInput and EncodeOutput (codec.go)
// read and write the SDK's structs in whichever protocol a request came.
//
// An API plugs in as an API value with a Handler; the handler decodes its
// input, runs the operation and encodes its result, and decides what each
// key role may call. pkg/cluster builds the router; the API packages
// (ecsapi, logstore) import this package for Request, Error and API, and it
// imports only pkg/cluster/auth.
package awsproto

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// MaxRequestBody is the body limit of an API that sets no MaxBody: ECS task
// definitions are limited to 64 KiB, and an agent's state change with many
// containers stays far below this.
const MaxRequestBody = 1 << 20

// Protocol is how an API's requests, results and errors are encoded.
type Protocol int

// The protocols of AWS APIs.
const (
	JSON11    Protocol = iota // application/x-amz-json-1.1 (ECS, CloudWatch Logs)
	JSON10                    // application/x-amz-json-1.0
	Query                     // form-encoded requests, XML results and errors (ELBv2, CloudWatch)
	RPCv2CBOR                 // Smithy RPC v2 CBOR (CloudWatch from aws-sdk-go-v2)
)

// contentType is the Content-Type of the protocol's answers.
func (p Protocol) contentType() string {
	switch p {
	case JSON10:
		return "application/x-amz-json-1.0"
	case Query:
		return "text/xml"
	case RPCv2CBOR:
		return "application/cbor"
	default:
		return "application/x-amz-json-1.1"
	}
}

// API is one AWS API served on POST /.
type API struct {
	// Name is what logs call it ("ECS").
	Name string
	// Service is the SigV4 service requests must be signed for; the
	// Verifier must accept it.
	Service  string
	Protocol Protocol
	// TargetPrefix (JSON protocols) is the X-Amz-Target prefix including
	// the dot ("AmazonEC2ContainerServiceV20141113.").
	TargetPrefix string
	// RPCService, set on a JSON API, also serves it in the RPC v2 CBOR
	// protocol at /service/<RPCService>/operation/<Op>
	// ("GraniteServiceVersion20100801").
	RPCService string
	// Version (Query) is the API version requests must name
	// ("2015-12-01"); XMLNamespace is the namespace of its results and
	// errors.
	Version      string
	XMLNamespace string
	// MaxBody is the largest request body accepted; zero means
	// MaxRequestBody.
	MaxBody int
	// InternalError is the error type answered for an error that is not an
	// *Error (details go to the log only); empty means "InternalFailure".
	InternalError string
	Handler       Handler
}

func (a *API) maxBody() int {
	if a.MaxBody > 0 {
		return a.MaxBody
	}
	return MaxRequestBody
}

// Request is one call of an operation by a verified caller.
type Request struct {
	Context context.Context
	// Key is the caller's access key (of either role: the handler decides
	// what an agent key may do).
	Key       auth.Key
	Operation string
	// Protocol is the protocol the request came in, which its answer
	// speaks too.
	Protocol Protocol
	// Body is the request body: the JSON input of the JSON protocols, the
	// CBOR input of RPC v2.
	Body []byte
	// Params are the Query protocol's form values, Action and Version left
	// out.
	Params url.Values
	// BaseURL is the scheme and host the request came to.
	BaseURL string
}

// Handler runs the operations of one API. It returns the encoded result:
// the JSON body (JSON protocols), the CBOR body (RPC v2), or the XML
// content of the <OperationResult> element (Query), which the router wraps.
type Handler interface {
	ServeAWS(r *Request) ([]byte, error)
}

// Verifier authenticates a request whose body has been read and says which
// SigV4 service it was signed for. *auth.Verifier implements it.
type Verifier interface {
	VerifyScope(r *http.Request, body []byte) (auth.Key, string, error)
}

var _ Verifier = (*auth.Verifier)(nil)

// Services lists the SigV4 services of apis, for the Verifier.
func Services(apis []API) []string {
	var out []string
	for _, a := range apis {
		out = append(out, a.Service)
	}
	return out
}

// Options configure a Router.
type Options struct {
	Verifier Verifier
	APIs     []API
	Logger   *slog.Logger
	// Now is the clock of the request log's durations; nil means time.Now.
	Now func() time.Time
}

// Router serves the APIs on POST /.
type Router struct {
	o Options
}

var _ http.Handler = (*Router)(nil)

// New returns a Router; Verifier is required.
func New(o Options) (*Router, error) {
	if o.Verifier == nil {
		return nil, errors.New("AWS protocol router: Verifier is required")
	}
	for i, a := range o.APIs {
		if a.Handler == nil || a.Service == "" || (a.Protocol == Query) == (a.TargetPrefix != "") {
			return nil, fmt.Errorf("AWS protocol router: API %d (%s) needs a Handler, a Service and either a TargetPrefix (JSON) or the Query protocol", i, a.Name)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Router{o: o}, nil
}

// RPCPathPrefix starts the paths of RPC v2 requests.
const RPCPathPrefix = "/service/"

// ServeHTTP answers POST / and POST /service/<service>/operation/<Op>;
// anything else is 404.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, RPCPathPrefix) {
		rt.serveRPC(w, r)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	target := r.Header.Get("X-Amz-Target")
	if target == "" && isForm(r) {
		rt.serveQuery(w, r)
		return
	}
	rt.serveJSON(w, r, target)
}

// isForm reports whether the body is form-encoded: a Query request.
func isForm(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// readVerified reads at most limit bytes of body and has the request
// verified; on failure it has answered with fail.
func (rt *Router) readVerified(w http.ResponseWriter, r *http.Request, limit int, fail func(error)) ([]byte, auth.Key, string, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		fail(ClientError("SerializationException", "read request body: %v", err))
		return nil, auth.Key{}, "", false
	}
	// One byte past the limit tells an oversized body from one cut at
	// the limit, which would fail its signature with a misleading error.
	if len(body) > limit {
		fail(&Error{Type: "RequestEntityTooLargeException", Status: http.StatusRequestEntityTooLarge,
			Message: fmt.Sprintf("request body exceeds %d bytes", limit)})
		return nil, auth.Key{}, "", false
	}
	key, service, err := rt.o.Verifier.VerifyScope(r, body)
	if err != nil {
		var ae *auth.Error
		if errors.As(err, &ae) {
			rt.o.Logger.Info("request refused", "remote", r.RemoteAddr, "error", ae.Type, "reason", ae.Message)
		}
		fail(err)
		return nil, auth.Key{}, "", false
	}
	// The SDKs compress large PutMetricData bodies; the signature is the
	// compressed body's.
	if enc := r.Header.Get("Content-Encoding"); enc != "" {
		if body, err = decompress(enc, body, limit); err != nil {
			fail(err)
			return nil, auth.Key{}, "", false
		}
	}
	return body, key, service, true
}

// decompress undoes a Content-Encoding of gzip; anything else is refused.
// The result is limited as a plain body is.
func decompress(enc string, body []byte, limit int) ([]byte, error) {
	if !strings.EqualFold(enc, "gzip") {
		return nil, ClientError("SerializationException", "Content-Encoding %q is not supported (gzip is)", enc)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, ClientError("SerializationException", "the gzip request body is not valid: %v", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if err != nil {
		return nil, ClientError("SerializationException", "the gzip request body is not valid: %v", err)
	}
	if len(out) > limit {
		return nil, &Error{Type: "RequestEntityTooLargeException", Status: http.StatusRequestEntityTooLarge,
			Message: fmt.Sprintf("decompressed request body exceeds %d bytes", limit)}
	}
	return out, nil
}

func wrongService(want string) *auth.Error {
	return &auth.Error{Type: auth.InvalidSignature, Status: http.StatusBadRequest,
		Message: fmt.Sprintf("Credential should be scoped to correct service: '%s'. ", want)}
}

func baseURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// serveJSON serves an AWS JSON request: the API is the one whose target
// prefix X-Amz-Target starts with.
func (rt *Router) serveJSON(w http.ResponseWriter, r *http.Request, target string) {
	var api *API
	var op string
	for i := range rt.o.APIs {
		a := &rt.o.APIs[i]
		if name, ok := strings.CutPrefix(target, a.TargetPrefix); ok && a.Protocol != Query && name != "" {
			api, op = a, name
			break
		}
	}
	limit, proto, internal := MaxRequestBody, JSON11, ""
	if api != nil {
		limit, proto, internal = api.maxBody(), api.Protocol, api.InternalError
	}
	fail := func(err error) { rt.writeJSONError(w, proto, internal, target, err) }
	body, key, service, ok := rt.readVerified(w, r, limit, fail)
	if !ok {
		return
	}
	if api == nil {
		fail(ClientError("UnknownOperationException", "Unknown operation %q", target))
		return
	}
	if service != api.Service {
		fail(wrongService(api.Service))
		return
	}
	req := &Request{Context: r.Context(), Key: key, Operation: op, Protocol: proto, Body: body, BaseURL: baseURL(r)}
	out, err := rt.call(api, req)
	if err != nil {
		fail(err)
		return
	}
	w.Header().Set("Content-Type", proto.contentType())
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// call runs one operation and logs it: the API, the operation, the key id,
// the error and the duration, never the request or response body, which
// carries SSM parameter and Secrets Manager values (access key ids are not
// secret). Error messages of the secrets APIs never quote a value.
func (rt *Router) call(api *API, req *Request) ([]byte, error) {
	start := rt.o.Now()
	out, err := api.Handler.ServeAWS(req)
	rt.o.Logger.Debug("AWS request", "api", api.Name, "operation", req.Operation, "accessKeyId", req.Key.AccessKeyID,
		"err", err, "duration", rt.o.Now().Sub(start))
	return out, err
}

// classify returns what the client is told of err. An error that is
// neither an *Error nor an *auth.Error is internal: it is logged, and the
// client gets internalType.
func (rt *Router) classify(op string, err error, internalType string) Error {
	var ae *Error
	var authE *auth.Error
	switch {
	case errors.As(err, &ae):
		e := *ae
		e.Status = ae.status()
		return e
	case errors.As(err, &authE):
		return Error{Type: authE.Type, Status: authE.Status, Message: authE.Message}
	}
	if internalType == "" {
		internalType = "InternalFailure"
	}
	if errors.Is(err, store.ErrUnavailable) {
		// The replicas' etcd has no quorum: say so, with a 503 that the
		// SDKs retry, rather than an anonymous internal error.
		rt.o.Logger.Warn("request refused: the store is unavailable", "operation", op, "err", err)
		return Error{Type: internalType, Status: http.StatusServiceUnavailable,
			Message: "the cluster's store has no quorum (etcd unavailable): the request was refused and may not have taken effect; reads still answer but may be stale; retry later"}
	}
	rt.o.Logger.Error("request failed", "operation", op, "err", err)
	return Error{Type: internalType, Status: http.StatusInternalServerError, Message: "internal error"}
}

func (rt *Router) writeJSONError(w http.ResponseWriter, proto Protocol, internalType, op string, err error) {
	e := rt.classify(op, err, internalType)
	setQueryError(w, e)
	WriteJSONError(w, proto, e.Status, e.Type, e.Message)
}

// setQueryError sets the X-Amzn-Query-Error header ("<code>;Sender") of an
// error with a QueryCode.
func setQueryError(w http.ResponseWriter, e Error) {
	if e.QueryCode == "" {
		return
	}
	fault := "Sender"
	if e.Status >= 500 {
		fault = "Receiver"
	}
	w.Header().Set("X-Amzn-Query-Error", e.QueryCode+";"+fault)
}

// WriteJSONError answers with an AWS JSON error: {"__type", "message"} and
// the X-Amzn-ErrorType header. The ACS and TCS handshakes answer their
// refusals this way too.
func WriteJSONError(w http.ResponseWriter, proto Protocol, status int, typ, msg string) {
	w.Header().Set("Content-Type", proto.contentType())
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(status)
	w.Write(JSONErrorBody(typ, msg))
}

// JSONErrorBody is the body of an AWS JSON error,
// {"__type":"ClientException","message":"..."}.
func JSONErrorBody(typ, msg string) []byte {
	b, err := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{typ, msg})
	if err != nil { // two strings always encode
		return []byte(`{"__type":"InternalFailure","message":"internal error"}`)
	}
	return b
}

// actionRE is what an Action may be: it names the XML result element.
var actionRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{0,127}$`)

// serveQuery serves an AWS Query request: the API is the Query API the
// request was signed for.
func (rt *Router) serveQuery(w http.ResponseWriter, r *http.Request) {
	limit := 0
	for _, a := range rt.o.APIs {
		if a.Protocol == Query {
			limit = max(limit, a.maxBody())
		}
	}
	if limit == 0 {
		limit = MaxRequestBody
	}
	requestID := newRequestID()
	var api *API
	fail := func(err error) {
		ns, internal := "", ""
		if api != nil {
			ns, internal = api.XMLNamespace, api.InternalError
		}
		e := rt.classify("query", err, internal)
		code := e.Type
		if e.QueryCode != "" {
			code = e.QueryCode
		}
		writeXMLError(w, ns, e.Status, code, e.Message, requestID)
	}
	body, key, service, ok := rt.readVerified(w, r, limit, fail)
	if !ok {
		return
	}
	for i := range rt.o.APIs {
		if a := &rt.o.APIs[i]; a.Protocol == Query && a.Service == service {
			api = a
			break
		}
	}
	params, err := url.ParseQuery(string(body))
	if err != nil {
		fail(ClientError("MalformedQueryString", "the request body is not a form: %v", err))
		return
	}
	action, version := params.Get("Action"), params.Get("Version")
	params.Del("Action")
	params.Del("Version")
	switch {
	case api == nil:
		fail(ClientError("InvalidAction", "No Query API is served for service %q.", service))
		return
	case !actionRE.MatchString(action):
		fail(ClientError("InvalidAction", "The action %q is not valid.", action))
		return
	case api.Version != "" && version != api.Version:
		fail(ClientError("InvalidAction", "Could not find operation %s for version %s.", action, version))
		return
	}
	req := &Request{Context: r.Context(), Key: key, Operation: action, Protocol: Query, Params: params, BaseURL: baseURL(r)}
	out, err := rt.call(api, req)
	if err != nil {
		fail(err)
		return
	}
	w.Header().Set("Content-Type", Query.contentType())
	w.Header().Set("X-Amzn-RequestId", requestID)
	w.WriteHeader(http.StatusOK)
	writeQueryResult(w, api.XMLNamespace, action, out, requestID)
}

func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// serveRPC serves an RPC v2 CBOR request,
// POST /service/<service>/operation/<Op>: the API is the one whose
// RPCService names the service.
func (rt *Router) serveRPC(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, RPCPathPrefix)
	svc, op, _ := strings.Cut(rest, "/operation/")
	var api *API
	for i := range rt.o.APIs {
		if a := &rt.o.APIs[i]; a.RPCService != "" && a.RPCService == svc {
			api = a
			break
		}
	}
	limit, internal := MaxRequestBody, ""
	if api != nil {
		limit, internal = api.maxBody(), api.InternalError
	}
	fail := func(err error) {
		e := rt.classify(op, err, internal)
		setQueryError(w, e)
		w.Header().Set("Content-Type", RPCv2CBOR.contentType())
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
		w.Header().Set("X-Amzn-ErrorType", e.Type)
		w.WriteHeader(e.Status)
		w.Write(cborErrorBody(e.Type, e.Message))
	}
	body, key, service, ok := rt.readVerified(w, r, limit, fail)
	if !ok {
		return
	}
	switch {
	case api == nil:
		fail(ClientError("UnknownOperationException", "Unknown service %q", svc))
		return
	case !actionRE.MatchString(op):
		fail(ClientError("UnknownOperationException", "Unknown operation %q", op))
		return
	case service != api.Service:
		fail(wrongService(api.Service))
		return
	}
	req := &Request{Context: r.Context(), Key: key, Operation: op, Protocol: RPCv2CBOR, Body: body, BaseURL: baseURL(r)}
	out, err := rt.call(api, req)
	if err != nil {
		fail(err)
		return
	}
	w.Header().Set("Content-Type", RPCv2CBOR.contentType())
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}
