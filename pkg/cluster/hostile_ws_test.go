package cluster_test

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/gorilla/websocket"

	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/ecsapi"
	"github.com/berth-dev/berth/pkg/cluster/logstore"
)

// wsDial is one websocket handshake of the hostile suite.
type wsDial struct {
	path     string // "/ws" or "/tcs/ws"
	query    url.Values
	creds    *aws.Credentials // nil: unsigned
	service  string           // "" means ecs
	signAt   time.Time
	editQ    func(url.Values) // changes the query before signing
	tamperQ  func(url.Values) // changes the query after signing
	addAfter map[string]string
}

func (re *runningEndpoint) dialWS(t *testing.T, d wsDial) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	if d.editQ != nil {
		d.query = cloneQuery(d.query)
		d.editQ(d.query)
	}
	plain := re.url + d.path + "?" + d.query.Encode()
	h := http.Header{}
	if d.creds != nil {
		req, _ := http.NewRequest(http.MethodGet, plain, nil)
		sum := sha256.Sum256(nil)
		at := d.signAt
		if at.IsZero() {
			at = time.Now()
		}
		if err := v4.NewSigner().SignHTTP(context.Background(), *d.creds, req, hex.EncodeToString(sum[:]), cmp.Or(d.service, ecsapi.Service), testRegion, at); err != nil {
			t.Fatal(err)
		}
		h.Set("Authorization", req.Header.Get("Authorization"))
		h.Set("X-Amz-Date", req.Header.Get("X-Amz-Date"))
	}
	for k, v := range d.addAfter {
		h.Set(k, v)
	}
	if d.tamperQ != nil {
		q := cloneQuery(d.query)
		d.tamperQ(q)
		plain = re.url + d.path + "?" + q.Encode()
	}
	return websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(plain, "http"), h)
}

func cloneQuery(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// TestHostileWebsockets attacks the ACS and TCS handshakes (no, bad,
// replayed or out-of-scope signatures, keys of other roles or instances,
// the query changed after signing) and, once a session is open, sends it
// garbage and oversized frames. Refused handshakes change nothing in the
// store; garbage is ignored without ending the session; an oversized frame
// ends it (1009) without the endpoint buffering it.
func TestHostileWebsockets(t *testing.T) {
	re := startEndpointWith(t, t.TempDir(), func(o *cluster.Options) { o.NoAgentSessions = false })
	ctx := context.Background()
	if _, err := re.admin().CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("lab")}); err != nil {
		t.Fatal(err)
	}
	aID, aSecret := newKey(t, re.ep, auth.RoleAgent)
	bID, bSecret := newKey(t, re.ep, auth.RoleAgent)
	lbID, lbSecret := newKey(t, re.ep, auth.RoleLB)
	keyA := aws.Credentials{AccessKeyID: aID, SecretAccessKey: aSecret}
	keyB := aws.Credentials{AccessKeyID: bID, SecretAccessKey: bSecret}
	lbKey := aws.Credentials{AccessKeyID: lbID, SecretAccessKey: lbSecret}
	wrong := aws.Credentials{AccessKeyID: aID, SecretAccessKey: strings.Repeat("x", 40)}
	unknown := aws.Credentials{AccessKeyID: "BKUNKNOWNUNKNOWNUNKN", SecretAccessKey: aSecret}
	ri, err := re.client(aID, aSecret).RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("lab"), TotalResources: resources(1024, 1024)})
	if err != nil {
		t.Fatal(err)
	}
	inst := aws.ToString(ri.ContainerInstance.ContainerInstanceArn)
	rb, err := re.client(bID, bSecret).RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("lab"), TotalResources: resources(1024, 1024)})
	if err != nil {
		t.Fatal(err)
	}
	instB := aws.ToString(rb.ContainerInstance.ContainerInstanceArn)
	clusterArn := "arn:aws:ecs:" + testRegion + ":" + testAccount + ":cluster/lab"
	acsQuery := url.Values{"clusterArn": {clusterArn}, "containerInstanceArn": {inst}, "seqNum": {"1"}, "protocolVersion": {"2"}, "agentVersion": {"1.0.0"}}
	tcsQuery := url.Values{"cluster": {clusterArn}, "containerInstance": {inst}}
	before := snapshot(t, re)

	for _, s := range []struct {
		name, path, param string
		query             url.Values
	}{{"ACS", "/ws", "containerInstanceArn", acsQuery}, {"TCS", ecsapi.TelemetryPath + "/ws", "containerInstance", tcsQuery}} {
		cases := []struct {
			name    string
			d       wsDial
			status  int
			errType string
		}{
			{"unsigned", wsDial{}, 403, auth.MissingAuthenticationToken},
			{"wrong secret", wsDial{creds: &wrong}, 400, auth.InvalidSignature},
			{"unknown key", wsDial{creds: &unknown}, 400, auth.UnrecognizedClient},
			{"signed 20 minutes ago", wsDial{creds: &keyA, signAt: time.Now().Add(-20 * time.Minute)}, 400, auth.InvalidSignature},
			{"instance changed after signing", wsDial{creds: &keyA, tamperQ: func(q url.Values) { q.Set(s.param, instB) }}, 400, auth.InvalidSignature},
			{"security token not signed", wsDial{creds: &keyA, addAfter: map[string]string{"X-Amz-Security-Token": "t"}}, 400, auth.IncompleteSignature},
			{"another agent's instance", wsDial{creds: &keyB}, 403, auth.AccessDenied},
			{"unknown instance", wsDial{creds: &keyA, editQ: func(q url.Values) { q.Set(s.param, inst+"0") }}, 400, "InvalidInstanceException"},
			{"no instance", wsDial{creds: &keyA, editQ: func(q url.Values) { q.Del(s.param) }}, 400, "BadRequestException"},
			{"scoped to logs", wsDial{creds: &keyA, service: logstore.Service}, 400, auth.InvalidSignature},
			{"lb key scoped to elasticloadbalancing", wsDial{creds: &lbKey, service: auth.LBService}, 400, auth.InvalidSignature},
			{"lb key scoped to ecs", wsDial{creds: &lbKey}, 400, auth.AccessDenied},
		}
		for _, c := range cases {
			c.d.path, c.d.query = s.path, s.query
			conn, resp, err := re.dialWS(t, c.d)
			if err == nil {
				conn.Close()
				t.Errorf("%s, %s: handshake accepted, want HTTP %d %s", s.name, c.name, c.status, c.errType)
				continue
			}
			if resp == nil {
				t.Errorf("%s, %s: %v, want HTTP %d %s", s.name, c.name, err, c.status, c.errType)
				continue
			}
			var body struct {
				Type    string `json:"__type"`
				Message string `json:"message"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != c.status || body.Type != c.errType || body.Message == "" {
				t.Errorf("%s, %s: HTTP %d %s %q, want %d %s", s.name, c.name, resp.StatusCode, body.Type, body.Message, c.status, c.errType)
			}
		}
	}
	if after := snapshot(t, re); !reflect.DeepEqual(before, after) {
		t.Errorf("refused handshakes changed the store")
	}

	// An open ACS session: garbage is ignored, an oversized frame ends it.
	conn, _, err := re.dialWS(t, wsDial{path: "/ws", query: acsQuery, creds: &keyA})
	if err != nil {
		t.Fatalf("ACS handshake: %v", err)
	}
	defer conn.Close()
	for _, g := range [][]byte{[]byte("\x00\xff\xfe"), []byte("{"), []byte(`{"type":"NoSuchMessage","message":{}}`),
		[]byte(`{"type":"AckRequest","message":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`)} {
		if err := conn.WriteMessage(websocket.TextMessage, g); err != nil {
			t.Fatalf("write garbage: %v", err)
		}
	}
	if err := conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatalf("write binary garbage: %v", err)
	}
	// The session is still there: a ping is answered.
	pong := make(chan struct{}, 1)
	conn.SetPongHandler(func(string) error { pong <- struct{}{}; return nil })
	if err := conn.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	select {
	case <-pong:
	case err := <-readErr:
		t.Fatalf("the session ended after garbage frames: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("no pong after garbage frames")
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"AckRequest","message":{"messageId":"`+strings.Repeat("x", 64<<10)+`"}}`)); err != nil {
		t.Fatalf("write oversized frame: %v", err)
	}
	select {
	case err := <-readErr:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
			t.Errorf("after an oversized frame: %v, want close 1009 (message too big)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the session survived a frame over the limit")
	}
}
