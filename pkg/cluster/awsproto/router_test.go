package awsproto

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// signedFor stands in for SigV4 (which has its own tests): a request is
// signed for the service its X-Test-Service header names, and refused
// without it.
type signedFor struct{}

func (signedFor) VerifyScope(r *http.Request, _ []byte) (auth.Key, string, error) {
	s := r.Header.Get("X-Test-Service")
	if s == "" {
		return auth.Key{}, "", &auth.Error{Type: auth.MissingAuthenticationToken, Status: http.StatusForbidden, Message: "Missing Authentication Token"}
	}
	return auth.Key{AccessKeyID: "BKTEST", Role: auth.RoleAdmin}, s, nil
}

// handlerFunc adapts a function to Handler.
type handlerFunc func(r *Request) ([]byte, error)

func (f handlerFunc) ServeAWS(r *Request) ([]byte, error) { return f(r) }

// elbLike is a small Query API shaped like Elastic Load Balancing v2: it
// knows DescribeLoadBalancers, refuses an unknown name with
// LoadBalancerNotFound and fails internally on Boom.
var elbLike = API{Name: "ELBv2", Service: "elasticloadbalancing", Protocol: Query, Version: "2015-12-01",
	XMLNamespace: "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/",
	Handler: handlerFunc(func(r *Request) ([]byte, error) {
		switch r.Operation {
		case "DescribeLoadBalancers":
			if name := r.Params.Get("Names.member.1"); name != "web" {
				return nil, ClientError("LoadBalancerNotFound", "One or more load balancers not found: %q <&>", name)
			}
			return []byte(`<LoadBalancers><member><LoadBalancerName>web</LoadBalancerName></member></LoadBalancers>`), nil
		case "Boom":
			return nil, errors.New("disk on fire: /var/lib/secret")
		}
		return nil, ClientError("InvalidAction", "unknown action %s", r.Operation)
	})}

var jsonLike = API{Name: "Logs", Service: "logs", TargetPrefix: "Logs_20140328.",
	Handler: handlerFunc(func(r *Request) ([]byte, error) {
		if r.Operation == "CreateLogGroup" {
			return []byte(`{}`), nil
		}
		return nil, ClientError("ResourceNotFoundException", "no %s", r.Operation)
	})}

func newRouter(t *testing.T) *Router {
	t.Helper()
	rt, err := New(Options{Verifier: signedFor{}, APIs: []API{elbLike, jsonLike}})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func query(t *testing.T, rt *Router, service string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if service != "" {
		req.Header.Set("X-Test-Service", service)
	}
	rec := httptest.NewRecorder()
	rt.ServeHTTP(rec, req)
	return rec
}

// xmlError is the AWS Query error shape.
type xmlError struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Error   struct {
		Type    string
		Code    string
		Message string
	}
	RequestID string `xml:"RequestId"`
}

// TestQueryErrorsAreXML: a Query API's errors (its own, the router's and
// the signature's) come as AWS's XML ErrorResponse, Sender for the
// client's faults and Receiver, without details, for internal ones.
func TestQueryErrorsAreXML(t *testing.T) {
	rt := newRouter(t)
	describe := url.Values{"Action": {"DescribeLoadBalancers"}, "Version": {"2015-12-01"}, "Names.member.1": {"api"}}
	cases := []struct {
		name, service string
		form          url.Values
		status        int
		fault, code   string
		message       string
	}{
		{"handler error", "elasticloadbalancing", describe, 400, "Sender", "LoadBalancerNotFound", `One or more load balancers not found: "api" <&>`},
		{"internal error", "elasticloadbalancing", url.Values{"Action": {"Boom"}, "Version": {"2015-12-01"}}, 500, "Receiver", "InternalFailure", "internal error"},
		{"wrong version", "elasticloadbalancing", url.Values{"Action": {"DescribeLoadBalancers"}, "Version": {"2012-06-01"}}, 400, "Sender", "InvalidAction", ""},
		{"bad action", "elasticloadbalancing", url.Values{"Action": {"<x>"}, "Version": {"2015-12-01"}}, 400, "Sender", "InvalidAction", ""},
		{"no Query API for the service", "monitoring", describe, 400, "Sender", "InvalidAction", ""},
		{"unsigned", "", describe, 403, "Sender", auth.MissingAuthenticationToken, "Missing Authentication Token"},
	}
	for _, c := range cases {
		rec := query(t, rt, c.service, c.form)
		var e xmlError
		if err := xml.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Errorf("%s: body %q is not an XML ErrorResponse: %v", c.name, rec.Body.String(), err)
			continue
		}
		if rec.Code != c.status || e.Error.Type != c.fault || e.Error.Code != c.code || (c.message != "" && e.Error.Message != c.message) ||
			e.RequestID == "" || rec.Header().Get("Content-Type") != "text/xml" {
			t.Errorf("%s: HTTP %d %s %+v, want %d %s %s %q with a request id", c.name, rec.Code, rec.Header().Get("Content-Type"), e, c.status, c.fault, c.code, c.message)
		}
		if strings.Contains(rec.Body.String(), "disk on fire") {
			t.Errorf("%s: internal details reached the client: %s", c.name, rec.Body.String())
		}
	}
	if ns := elbLike.XMLNamespace; !strings.Contains(query(t, rt, "elasticloadbalancing", describe).Body.String(), `<ErrorResponse xmlns="`+ns+`">`) {
		t.Errorf("the error does not carry the API's namespace %s", ns)
	}
}

// TestQueryResultIsWrapped: a Query result is the handler's XML inside
// <ActionResponse><ActionResult> with the request id, as AWS answers.
func TestQueryResultIsWrapped(t *testing.T) {
	rec := query(t, newRouter(t), "elasticloadbalancing", url.Values{"Action": {"DescribeLoadBalancers"}, "Version": {"2015-12-01"}, "Names.member.1": {"web"}})
	var out struct {
		XMLName xml.Name `xml:"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/ DescribeLoadBalancersResponse"`
		Result  struct {
			Names []string `xml:"LoadBalancers>member>LoadBalancerName"`
		} `xml:"DescribeLoadBalancersResult"`
		RequestID string `xml:"ResponseMetadata>RequestId"`
	}
	if rec.Code != 200 {
		t.Fatalf("HTTP %d %s", rec.Code, rec.Body.String())
	}
	if err := xml.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Result.Names) != 1 || out.Result.Names[0] != "web" ||
		out.RequestID == "" || out.RequestID != rec.Header().Get("X-Amzn-RequestId") {
		t.Fatalf("result %q decodes to %+v, %v", rec.Body.String(), out, err)
	}
}

// TestJSONRouting: JSON requests go by X-Amz-Target prefix, must be signed
// for their API's service, and fail in the JSON shape.
func TestJSONRouting(t *testing.T) {
	rt := newRouter(t)
	cases := []struct {
		target, service string
		status          int
		typ             string
	}{
		{"Logs_20140328.CreateLogGroup", "logs", 200, ""},
		{"Logs_20140328.DeleteLogGroup", "logs", 400, "ResourceNotFoundException"},
		{"Logs_20140328.CreateLogGroup", "ecs", 400, auth.InvalidSignature},
		{"Logs_20140328.", "logs", 400, "UnknownOperationException"},
		{"Kinesis_20131202.ListStreams", "logs", 400, "UnknownOperationException"},
		{"", "logs", 400, "UnknownOperationException"},
	}
	for _, c := range cases {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
		req.Header.Set("X-Amz-Target", c.target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Test-Service", c.service)
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, req)
		var e struct {
			Type string `json:"__type"`
		}
		if c.status != 200 {
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || rec.Header().Get("X-Amzn-ErrorType") != e.Type {
				t.Errorf("%s: body %q, header %q: not an AWS JSON error (%v)", c.target, rec.Body.String(), rec.Header().Get("X-Amzn-ErrorType"), err)
			}
		}
		if rec.Code != c.status || e.Type != c.typ {
			t.Errorf("%s signed for %s: HTTP %d %s, want %d %s", c.target, c.service, rec.Code, e.Type, c.status, c.typ)
		}
	}
}

// TestBodyLimit: an API's MaxBody bounds its requests, refused as too large
// rather than cut.
func TestBodyLimit(t *testing.T) {
	small := jsonLike
	small.MaxBody = 16
	rt, err := New(Options{Verifier: signedFor{}, APIs: []API{small}})
	if err != nil {
		t.Fatal(err)
	}
	for body, want := range map[string]int{`{"a":"0123456"}`: 200, `{"a":"01234567890"}`: http.StatusRequestEntityTooLarge} {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", "Logs_20140328.CreateLogGroup")
		req.Header.Set("X-Test-Service", "logs")
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%d-byte body: HTTP %d, want %d", len(body), rec.Code, want)
		}
	}
}
