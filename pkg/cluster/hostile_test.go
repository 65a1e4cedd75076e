package cluster_test

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/autoscaling"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/cloudwatchapi"
	"github.com/berth-dev/berth/pkg/cluster/ecsapi"
	"github.com/berth-dev/berth/pkg/cluster/elbv2/lbwire"
	"github.com/berth-dev/berth/pkg/cluster/logstore"
	"github.com/berth-dev/berth/pkg/cluster/secrets"
)

// hostileAPI is one AWS API of the endpoint as the hostile-input suite
// attacks it: how its requests look, one request it accepts (base), and
// how it answers a bad free-text name.
type hostileAPI struct {
	name    string
	service string // SigV4 service
	path    string // "/" or the RPC v2 path
	ctype   string
	target  string // X-Amz-Target; empty for Query and RPC v2
	json    bool   // the body is JSON (deep nesting applies)
	base    string // a request the endpoint accepts from an admin key
	// withName is base with its free-text name member set to s; empty
	// nameMember means the API has no such request in the suite.
	withName   func(s string) string
	nameMember string
	nameError  string // the error type a bad name gets
	nameInMsg  string // how its message names the member
	// maxBody is the API's body limit; zero means awsproto.MaxRequestBody.
	maxBody int
	// answers replaces the suite's expected answer for the named cases
	// where this API answers otherwise, as its AWS counterpart does.
	answers map[string]hostileWant
	// otherService is a service the endpoint serves that this API is not.
	otherService string
	// admin is false for the data-plane API, which an lb key calls.
	lbKey bool
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func hostileAPIs() []hostileAPI {
	form := func(s string) string {
		return "Action=CreateTargetGroup&Version=2015-12-01&Protocol=HTTP&Port=80&VpcId=vpc-berth&Name=" + strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", "\n", "%0A", "\x1b", "%1B", "\x00", "%00").Replace(s)
	}
	return []hostileAPI{
		{name: "ECS", service: ecsapi.Service, path: "/", ctype: "application/x-amz-json-1.1", target: ecsapi.TargetPrefix + "CreateCluster", json: true,
			base:     `{"clusterName":"hostile"}`,
			withName: func(s string) string { return `{"clusterName":` + jsonString(s) + `}` }, nameMember: "clusterName", nameError: "InvalidParameterException", nameInMsg: "Cluster name",
			otherService: logstore.Service},
		{name: "CloudWatch Logs", service: logstore.Service, path: "/", ctype: "application/x-amz-json-1.1", target: logstore.TargetPrefix + "CreateLogGroup", json: true,
			base:     `{"logGroupName":"hostile"}`,
			withName: func(s string) string { return `{"logGroupName":` + jsonString(s) + `}` }, nameMember: "logGroupName", nameError: "InvalidParameterException", nameInMsg: "logGroup",
			otherService: ecsapi.Service, maxBody: 8 << 20},
		{name: "ELBv2 (Query)", service: auth.LBService, path: "/", ctype: "application/x-www-form-urlencoded; charset=utf-8",
			base: form("hostile"), withName: form, nameMember: "Name", nameError: "ValidationError", nameInMsg: "Target group name",
			otherService: ecsapi.Service, answers: map[string]hostileWant{
				// A Query request names no API: the service it was signed
				// for chooses it, and ECS has no Query API.
				"scoped to ecs": {400, "InvalidAction", `No Query API is served for service "ecs"`},
				"agent key":     {403, "AccessDenied", "agent keys may not call"},
			}},
		{name: "CloudWatch (JSON 1.0)", service: cloudwatchapi.Service, path: "/", ctype: "application/x-amz-json-1.0", target: cloudwatchapi.TargetPrefix + "PutMetricAlarm", json: true,
			base:     hostileAlarm("hostile"),
			withName: hostileAlarm, nameMember: "AlarmName", nameError: "InvalidParameterValueException", nameInMsg: "AlarmName",
			otherService: ecsapi.Service},
		{name: "CloudWatch (RPC v2 CBOR)", service: cloudwatchapi.Service, path: awsproto.RPCPathPrefix + cloudwatchapi.ServiceShape + "/operation/ListMetrics",
			ctype: "application/cbor", base: "\xa0", otherService: ecsapi.Service},
		{name: "SSM", service: secrets.SSMService, path: "/", ctype: "application/x-amz-json-1.1", target: secrets.SSMTargetPrefix + "PutParameter", json: true,
			base:     `{"Name":"/hostile/p","Value":"v","Type":"String"}`,
			withName: func(s string) string { return `{"Name":` + jsonString(s) + `,"Value":"v","Type":"String"}` }, nameMember: "Name", nameError: "ValidationException", nameInMsg: "name",
			otherService: secrets.SecretsManagerService},
		{name: "Secrets Manager", service: secrets.SecretsManagerService, path: "/", ctype: "application/x-amz-json-1.1", target: secrets.SecretsManagerTargetPrefix + "CreateSecret", json: true,
			base:     `{"Name":"hostile","SecretString":"s"}`,
			withName: func(s string) string { return `{"Name":` + jsonString(s) + `,"SecretString":"s"}` }, nameMember: "Name", nameError: "InvalidParameterException", nameInMsg: "Invalid name",
			otherService: secrets.SSMService},
		{name: "Application Auto Scaling", service: autoscaling.Service, path: "/", ctype: "application/x-amz-json-1.1", target: autoscaling.TargetPrefix + "DescribeScalableTargets", json: true,
			base:     `{"ServiceNamespace":"ecs"}`,
			withName: func(s string) string { return `{"ServiceNamespace":"ecs","ResourceIds":[` + jsonString(s) + `]}` }, nameMember: "ResourceIds", nameError: "ValidationException", nameInMsg: "resource ID",
			otherService: ecsapi.Service},
		{name: "LB data plane", service: auth.LBService, path: "/", ctype: "application/x-amz-json-1.1", target: lbwire.TargetPrefix + lbwire.OpGetLoadBalancerState, json: true,
			base: `{"LoadBalancerName":"hostile-lb"}`, otherService: ecsapi.Service, lbKey: true, answers: map[string]hostileWant{
				// An lb key signs for its one service or is refused.
				"scoped to ecs": {400, auth.AccessDenied, "lb keys may call only the elasticloadbalancing API, not ecs"},
			}},
	}
}

func hostileAlarm(name string) string {
	return `{"AlarmName":` + jsonString(name) + `,"Namespace":"AWS/ECS","MetricName":"CPUUtilization","Statistic":"Average","Period":60,` +
		`"EvaluationPeriods":1,"Threshold":90,"ComparisonOperator":"GreaterThanThreshold","Dimensions":[{"Name":"ClusterName","Value":"lab"}]}`
}

// hostileWant is the refusal a case expects.
type hostileWant struct {
	status  int
	errType string
	inMsg   string // a part of the message
}

// hostileReq is one request of the suite, built from an API's shape.
type hostileReq struct {
	body    string
	target  string // "" keeps the API's
	id      string
	secret  string
	service string // SigV4 service signed for; "" keeps the API's
	region  string
	signAt  time.Time
	// unsigned leaves the request without Authorization.
	unsigned bool
	// addAfter are headers set only after signing, so outside the signature.
	addAfter map[string]string
	// leaveOut are the API's headers left out of the request before signing
	// (and then added back by addAfter).
	leaveOut []string
	header   map[string]string // extra headers, signed
	tamper   func(*http.Request)
}

// hostileAnswer is what the endpoint answered.
type hostileAnswer struct {
	status       int
	errType, msg string
	body         []byte
}

func (re *runningEndpoint) send(t *testing.T, a hostileAPI, h hostileReq) hostileAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, re.url+a.path, strings.NewReader(h.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", a.ctype)
	if target := cmp.Or(h.target, a.target); target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	for k, v := range h.header {
		req.Header.Set(k, v)
	}
	for _, k := range h.leaveOut {
		req.Header.Del(k)
	}
	if !h.unsigned {
		at := h.signAt
		if at.IsZero() {
			at = time.Now()
		}
		sum := sha256.Sum256([]byte(h.body))
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: h.id, SecretAccessKey: h.secret},
			req, hex.EncodeToString(sum[:]), cmp.Or(h.service, a.service), cmp.Or(h.region, testRegion), at); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range h.addAfter {
		req.Header.Set(k, v)
	}
	if h.tamper != nil {
		h.tamper(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", a.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ans := hostileAnswer{status: resp.StatusCode, body: b, errType: resp.Header.Get("X-Amzn-ErrorType")}
	if resp.StatusCode == http.StatusOK {
		return ans
	}
	switch {
	case strings.HasPrefix(resp.Header.Get("Content-Type"), "text/xml"):
		var e struct {
			Code    string `xml:"Error>Code"`
			Message string `xml:"Error>Message"`
		}
		if err := xml.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: error body %q is not an AWS Query error: %v", a.name, b, err)
		}
		ans.errType, ans.msg = e.Code, e.Message
	case strings.HasPrefix(resp.Header.Get("Content-Type"), "application/cbor"):
		ans.msg = string(b) // CBOR text strings are their UTF-8 bytes
	default:
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: error body %q is not an AWS JSON error: %v", a.name, b, err)
		}
		if e.Type != ans.errType {
			t.Errorf("%s: __type %q differs from X-Amzn-ErrorType %q", a.name, e.Type, ans.errType)
		}
		ans.msg = e.Message
	}
	if ans.msg == "" {
		t.Errorf("%s: error %s has no message", a.name, ans.errType)
	}
	return ans
}

func gzipped(t *testing.T, b []byte) string {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestHostileInput sends every AWS API of the endpoint what an attacker
// or a broken client would: requests whose signature does not cover what
// they ask (body, target or content type changed or added after signing),
// replayed out of the clock skew, scoped to another service or region,
// signed with unknown keys or keys of the wrong role, oversized and
// gzip-bombed bodies, JSON nested 100,000 deep, names with control
// characters or 10,000 characters. Each is refused with its AWS error
// type (and the member it names), and the store is byte for byte what it
// was. Then each API's base request, untampered, is accepted: the
// refusals were the tampering's.
func TestHostileInput(t *testing.T) {
	re := startEndpoint(t, t.TempDir())
	l := buildLab(t, re)
	lbID, lbSecret := newKey(t, re.ep, auth.RoleLB)
	agentID, agentSecret := l.agentAKey, l.agentASecret
	adm := func(h hostileReq) hostileReq {
		if h.id == "" {
			h.id, h.secret = re.adminID, re.adminSecret
		}
		return h
	}
	// The data-plane API reads a load balancer's state.
	if got := re.send(t, hostileAPIs()[2], adm(hostileReq{body: "Action=CreateLoadBalancer&Version=2015-12-01&Name=hostile-lb"})); got.status != http.StatusOK {
		t.Fatalf("CreateLoadBalancer: HTTP %d %s %s", got.status, got.errType, got.msg)
	}
	before := snapshot(t, re)
	logGroupsBefore := re.send(t, hostileAPIs()[1], adm(hostileReq{target: logstore.TargetPrefix + "DescribeLogGroups", body: `{}`}))

	deep := `{"a":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`
	type hcase struct {
		name       string
		req        hostileReq
		wantStatus int
		wantType   string
		wantInMsg  string
	}
	for _, a := range hostileAPIs() {
		owner := func(h hostileReq) hostileReq {
			if h.id == "" {
				if a.lbKey {
					h.id, h.secret = lbID, lbSecret
				} else {
					h.id, h.secret = re.adminID, re.adminSecret
				}
			}
			return h
		}
		cases := []hcase{
			{"unsigned", hostileReq{body: a.base, unsigned: true}, 403, auth.MissingAuthenticationToken, ""},
			{"body changed after signing", hostileReq{body: a.base, tamper: func(r *http.Request) {
				r.Body, r.ContentLength = io.NopCloser(strings.NewReader(a.base+" ")), int64(len(a.base)+1)
			}}, 400, auth.InvalidSignature, "signature we calculated does not match"},
			{"Content-Type not signed", hostileReq{body: a.base, leaveOut: []string{"Content-Type"}, addAfter: map[string]string{"Content-Type": a.ctype}},
				400, auth.IncompleteSignature, "'Content-Type' must be a 'SignedHeader'"},
			{"Content-Type changed after signing", hostileReq{body: a.base, tamper: func(r *http.Request) { r.Header.Set("Content-Type", a.ctype+"; x=1") }},
				400, auth.InvalidSignature, "signature we calculated does not match"},
			{"X-Amz-Security-Token not signed", hostileReq{body: a.base, addAfter: map[string]string{"X-Amz-Security-Token": "t"}},
				400, auth.IncompleteSignature, "'X-Amz-Security-Token' must be a 'SignedHeader'"},
			{"signed 20 minutes ago", hostileReq{body: a.base, signAt: time.Now().Add(-20 * time.Minute)}, 400, auth.InvalidSignature, "Signature expired"},
			{"signed 20 minutes ahead", hostileReq{body: a.base, signAt: time.Now().Add(20 * time.Minute)}, 400, auth.InvalidSignature, "Signature expired"},
			{"scoped to another region", hostileReq{body: a.base, region: "eu-west-9"}, 400, auth.InvalidSignature, "valid region, not 'eu-west-9'"},
			{"scoped to " + a.otherService, hostileReq{body: a.base, service: a.otherService}, 400, auth.InvalidSignature, "scoped to correct service"},
			{"scoped to an unknown service", hostileReq{body: a.base, service: "s3"}, 400, auth.InvalidSignature, "scoped to correct service"},
			{"Authorization without Credential", hostileReq{body: a.base, tamper: func(r *http.Request) {
				r.Header.Set("Authorization", "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=00")
			}}, 400, auth.IncompleteSignature, "'Credential'"},
			{"unknown key", hostileReq{body: a.base, id: "BKUNKNOWNUNKNOWNUNKN", secret: re.adminSecret}, 400, auth.UnrecognizedClient, ""},
			{"wrong secret", hostileReq{body: a.base, secret: strings.Repeat("x", 40), id: re.adminID}, 400, auth.InvalidSignature, ""},
			{"oversize body", hostileReq{body: a.base + strings.Repeat(" ", cmp.Or(a.maxBody, awsproto.MaxRequestBody)+1-len(a.base))}, 413, "RequestEntityTooLargeException", "exceeds"},
			{"gzip bomb", hostileReq{body: gzipped(t, bytes.Repeat([]byte(" "), 64<<20)), header: map[string]string{"Content-Encoding": "gzip"}},
				413, "RequestEntityTooLargeException", "decompressed request body exceeds"},
			{"Content-Encoding not gzip", hostileReq{body: a.base, header: map[string]string{"Content-Encoding": "br"}}, 400, "SerializationException", "Content-Encoding"},
		}
		if a.target != "" {
			cases = append(cases,
				hcase{"X-Amz-Target not signed", hostileReq{body: a.base, leaveOut: []string{"X-Amz-Target"}, addAfter: map[string]string{"X-Amz-Target": a.target}},
					400, auth.IncompleteSignature, "'X-Amz-Target' must be a 'SignedHeader'"},
				hcase{"X-Amz-Target changed after signing", hostileReq{body: a.base, tamper: func(r *http.Request) { r.Header.Set("X-Amz-Target", a.target+"x") }},
					400, auth.InvalidSignature, "signature we calculated does not match"},
			)
		}
		if a.json {
			cases = append(cases, hcase{"JSON nested 100,000 deep", hostileReq{body: deep}, 400, "SerializationException", ""},
				hcase{"not JSON", hostileReq{body: "\x00\xff{"}, 400, "SerializationException", ""})
		}
		if a.ctype == "application/cbor" {
			cases = append(cases, hcase{"CBOR nested to the body limit", hostileReq{body: "\xa1\x61a" + strings.Repeat("\x81", awsproto.MaxRequestBody-4) + "\xa0"},
				400, "SerializationException", ""})
		}
		if a.service == auth.LBService || a.lbKey {
			cases = append(cases, hcase{"agent key", hostileReq{body: a.base, id: agentID, secret: agentSecret}, 400, auth.AccessDenied, ""})
		} else {
			cases = append(cases, hcase{"lb key", hostileReq{body: a.base, id: lbID, secret: lbSecret}, 400, auth.AccessDenied, "lb keys may call only"})
		}
		if a.nameMember != "" {
			for _, bad := range []struct{ what, name string }{
				{"newline", "host\nile"}, {"escape", "host\x1b[2Jile"}, {"NUL", "host\x00ile"}, {"10,000 characters", strings.Repeat("n", 10000)},
			} {
				cases = append(cases, hcase{a.nameMember + " with " + bad.what, hostileReq{body: a.withName(bad.name)}, 400, a.nameError, a.nameInMsg})
			}
		}
		for _, c := range cases {
			if w, ok := a.answers[c.name]; ok {
				c.wantStatus, c.wantType, c.wantInMsg = w.status, w.errType, w.inMsg
			}
			got := re.send(t, a, owner(c.req))
			if got.status != c.wantStatus || got.errType != c.wantType || !strings.Contains(strings.ToLower(got.msg), strings.ToLower(c.wantInMsg)) {
				t.Errorf("%s, %s: HTTP %d %s %.300q; want %d %s containing %q", a.name, c.name, got.status, got.errType, got.msg, c.wantStatus, c.wantType, c.wantInMsg)
			}
		}
	}
	if after := snapshot(t, re); !reflect.DeepEqual(before, after) {
		for b := range after {
			if !reflect.DeepEqual(before[b], after[b]) {
				t.Errorf("bucket %s changed by refused requests", b)
			}
		}
	}
	if got := re.send(t, hostileAPIs()[1], adm(hostileReq{target: logstore.TargetPrefix + "DescribeLogGroups", body: `{}`})); !bytes.Equal(got.body, logGroupsBefore.body) {
		t.Errorf("log groups changed by refused requests: %s, was %s", got.body, logGroupsBefore.body)
	}
	// The same requests, untampered, are accepted.
	for _, a := range hostileAPIs() {
		h := adm(hostileReq{body: a.base})
		if a.lbKey {
			h.id, h.secret = lbID, lbSecret
		}
		if got := re.send(t, a, h); got.status != http.StatusOK {
			t.Errorf("%s: the base request was refused: HTTP %d %s %s", a.name, got.status, got.errType, got.msg)
		}
	}
}
