package ecsapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/launch"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
)

// apiHarness serves the ECS API of a fresh store in-process, every request
// authenticated as an admin (SigV4 has its own tests).
type apiHarness struct {
	t *testing.T
	s *testServer
}

func newAPIHarness(t *testing.T) *apiHarness {
	t.Helper()
	return &apiHarness{t: t, s: newTestServer(t)}
}

// testServer is a Server behind the AWS protocol router.
type testServer struct {
	*Server
	http.Handler
}

// newTestServer is a Server on a fresh store, behind the AWS protocol
// router, that takes every request as an admin's; the store is closed when
// the test ends.
func newTestServer(tb testing.TB) *testServer {
	tb.Helper()
	db, err := boltstore.Open(filepath.Join(tb.TempDir(), "api.db"), boltstore.Options{Buckets: append(records.Buckets(), records.LBBuckets()...)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	s, err := New(Options{Store: db, Launcher: &launch.Launcher{ARNs: records.ARNs{Region: "us-test-1", AccountID: "123456789012"}}})
	if err != nil {
		tb.Fatal(err)
	}
	rt, err := awsproto.New(awsproto.Options{Verifier: acceptAll{}, APIs: []awsproto.API{s.API()}})
	if err != nil {
		tb.Fatal(err)
	}
	return &testServer{Server: s, Handler: rt}
}

// call sends one operation and returns the HTTP status, the AWS error type
// and the decoded body.
func (h *apiHarness) call(op, body string) (int, string, map[string]any) {
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerServiceV20141113."+op)
	rec := httptest.NewRecorder()
	h.s.ServeHTTP(rec, req)
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		h.t.Fatalf("%s %s: body %q is not a JSON object: %v", op, body, rec.Body.String(), err)
	}
	return rec.Code, rec.Header().Get("X-Amzn-ErrorType"), m
}

// must sends an operation that has to succeed and returns its body.
func (h *apiHarness) must(op, body string) map[string]any {
	h.t.Helper()
	code, typ, m := h.call(op, body)
	if code != http.StatusOK {
		h.t.Fatalf("%s %s: HTTP %d %s %v", op, body, code, typ, m)
	}
	return m
}

// TestDescribeAndListAnswers pins what the Describe operations report for
// references they cannot resolve and how the List operations page: the
// failures' ARNs and reasons, the page contents and tokens, and which error
// wins when both the cluster and the paging arguments are wrong.
func TestDescribeAndListAnswers(t *testing.T) {
	h := newAPIHarness(t)
	h.must("CreateCluster", `{"clusterName":"lab"}`)
	h.must("CreateCluster", `{"clusterName":"gone"}`)
	h.must("DeleteCluster", `{"cluster":"gone"}`)
	const td = `{"family":%q,"containerDefinitions":[{"name":"c","image":"busybox","memory":64}]}`
	for _, fam := range []string{"web", "web", "api", "old"} {
		h.must("RegisterTaskDefinition", fmt.Sprintf(td, fam))
	}
	h.must("DeregisterTaskDefinition", `{"taskDefinition":"old:1"}`)
	const res = `[{"name":"CPU","type":"INTEGER","integerValue":1024},{"name":"MEMORY","type":"INTEGER","integerValue":1024}]`
	var insts []string
	for _, zone := range []string{"a", "b"} {
		m := h.must("RegisterContainerInstance", fmt.Sprintf(`{"cluster":"lab","totalResources":%s,"attributes":[{"name":"zone","value":%q}]}`, res, zone))
		insts = append(insts, m["containerInstance"].(map[string]any)["containerInstanceArn"].(string))
	}
	active, inactive := insts[0], insts[1]
	h.must("DeregisterContainerInstance", fmt.Sprintf(`{"cluster":"lab","containerInstance":%q}`, inactive))
	h.must("CreateService", `{"cluster":"lab","serviceName":"svc","taskDefinition":"web","desiredCount":0}`)
	h.must("CreateService", `{"cluster":"lab","serviceName":"b","taskDefinition":"api","desiredCount":0}`)

	const arnPrefix = "arn:aws:ecs:us-test-1:123456789012:"
	otherCluster := strings.Replace(active, "/lab/", "/default/", 1)
	missingTask := arnPrefix + "task/lab/0123456789abcdef0123456789abcdef"
	cases := []struct {
		name    string
		op      string
		body    string
		errType string
		// want maps response members to their exact JSON; count maps list
		// members to their length.
		want  map[string]string
		count map[string]int
	}{
		{
			name:  "clusters: unknown names, foreign ARNs and invalid names are MISSING as given; INACTIVE ones are described",
			op:    "DescribeClusters",
			body:  `{"clusters":["lab","nope","arn:aws:ecs:us-test-1:999:cluster/lab","bad name!","gone"]}`,
			want:  map[string]string{"failures": `[{"arn":"nope","reason":"MISSING"},{"arn":"arn:aws:ecs:us-test-1:999:cluster/lab","reason":"MISSING"},{"arn":"bad name!","reason":"MISSING"}]`},
			count: map[string]int{"clusters": 2},
		},
		{
			name:  "clusters: none named describes default, which does not exist",
			op:    "DescribeClusters",
			body:  `{}`,
			want:  map[string]string{"failures": `[{"arn":"default","reason":"MISSING"}]`, "clusters": `[]`},
			count: map[string]int{},
		},
		{
			name:  "instances: unknown ids and another cluster's ARN are MISSING as given",
			op:    "DescribeContainerInstances",
			body:  fmt.Sprintf(`{"cluster":"lab","containerInstances":[%q,"nope",%q]}`, active, otherCluster),
			want:  map[string]string{"failures": fmt.Sprintf(`[{"arn":"nope","reason":"MISSING"},{"arn":%q,"reason":"MISSING"}]`, otherCluster)},
			count: map[string]int{"containerInstances": 1},
		},
		{
			name:  "instances: a deregistered instance is still described",
			op:    "DescribeContainerInstances",
			body:  fmt.Sprintf(`{"cluster":"lab","containerInstances":[%q]}`, inactive),
			want:  map[string]string{"failures": `[]`},
			count: map[string]int{"containerInstances": 1},
		},
		{
			name:  "instance state: a deregistered instance is MISSING",
			op:    "UpdateContainerInstancesState",
			body:  fmt.Sprintf(`{"cluster":"lab","containerInstances":[%q,%q,"nope"],"status":"DRAINING"}`, inactive, active),
			want:  map[string]string{"failures": fmt.Sprintf(`[{"arn":%q,"reason":"MISSING"},{"arn":"nope","reason":"MISSING"}]`, inactive)},
			count: map[string]int{"containerInstances": 1},
		},
		{
			name:  "tasks: unknown tasks are MISSING as given",
			op:    "DescribeTasks",
			body:  fmt.Sprintf(`{"cluster":"lab","tasks":[%q,"nope"]}`, missingTask),
			want:  map[string]string{"failures": fmt.Sprintf(`[{"arn":%q,"reason":"MISSING"},{"arn":"nope","reason":"MISSING"}]`, missingTask), "tasks": `[]`},
			count: map[string]int{},
		},
		{
			name:  "services: a missing service is named by the ARN it would have in the cluster",
			op:    "DescribeServices",
			body:  `{"cluster":"lab","services":["svc","nope","arn:aws:ecs:us-test-1:123456789012:service/lab/zz"]}`,
			want:  map[string]string{"failures": `[{"arn":"` + arnPrefix + `service/lab/nope","reason":"MISSING"},{"arn":"` + arnPrefix + `service/lab/zz","reason":"MISSING"}]`},
			count: map[string]int{"services": 1},
		},
		{name: "tasks: an INACTIVE cluster is not found", op: "DescribeTasks", body: `{"cluster":"gone","tasks":["x"]}`, errType: "ClusterNotFoundException"},
		{name: "services: an unknown cluster is not found", op: "DescribeServices", body: `{"cluster":"nope","services":["x"]}`, errType: "ClusterNotFoundException"},
		{name: "instances: none named is invalid", op: "DescribeContainerInstances", body: `{"cluster":"lab","containerInstances":[]}`, errType: "InvalidParameterException"},
		{
			name: "clusters list: INACTIVE clusters are left out",
			op:   "ListClusters",
			body: `{}`,
			want: map[string]string{"clusterArns": `["` + arnPrefix + `cluster/lab"]`},
		},
		{
			name: "families: first page of one, with the offset token",
			op:   "ListTaskDefinitionFamilies",
			body: `{"status":"ALL","maxResults":1}`,
			want: map[string]string{"families": `["api"]`, "nextToken": `"b2Zmc2V0OjE"`},
		},
		{
			name: "families: the last page carries no token",
			op:   "ListTaskDefinitionFamilies",
			body: `{"status":"ALL","maxResults":2,"nextToken":"b2Zmc2V0OjE"}`,
			want: map[string]string{"families": `["old","web"]`},
		},
		{
			name: "families: INACTIVE means no ACTIVE revision",
			op:   "ListTaskDefinitionFamilies",
			body: `{"status":"INACTIVE"}`,
			want: map[string]string{"families": `["old"]`},
		},
		{
			name: "task definitions: DESC reverses family and revision order",
			op:   "ListTaskDefinitions",
			body: `{"sort":"DESC","maxResults":2}`,
			want: map[string]string{"taskDefinitionArns": `["` + arnPrefix + `task-definition/web:2","` + arnPrefix + `task-definition/web:1"]`, "nextToken": `"b2Zmc2V0OjI"`},
		},
		{
			name: "task definitions: a token past the end is an empty page",
			op:   "ListTaskDefinitions",
			body: `{"nextToken":"b2Zmc2V0Ojk5"}`,
			want: map[string]string{"taskDefinitionArns": `[]`},
		},
		{
			name: "services: sorted by ARN and paged",
			op:   "ListServices",
			body: `{"cluster":"lab","maxResults":1}`,
			want: map[string]string{"serviceArns": `["` + arnPrefix + `service/lab/b"]`, "nextToken": `"b2Zmc2V0OjE"`},
		},
		{
			name: "instances list: DRAINING and ACTIVE by default, deregistered ones left out",
			op:   "ListContainerInstances",
			body: `{"cluster":"lab"}`,
			want: map[string]string{"containerInstanceArns": fmt.Sprintf(`[%q]`, active)},
		},
		{
			name: "attributes: paged by instance and name",
			op:   "ListAttributes",
			body: `{"cluster":"lab","targetType":"container-instance","attributeName":"zone","maxResults":1}`,
			want: map[string]string{"attributes": fmt.Sprintf(`[{"name":"zone","targetId":%q,"targetType":"container-instance","value":"a"}]`, active)},
		},
		{name: "tasks list: a garbage token is invalid", op: "ListTasks", body: `{"cluster":"lab","nextToken":"garbage!"}`, errType: "InvalidParameterException"},
		{name: "clusters list: maxResults 0 is invalid", op: "ListClusters", body: `{"maxResults":0}`, errType: "InvalidParameterException"},
		{name: "services list: maxResults 101 is invalid", op: "ListServices", body: `{"cluster":"lab","maxResults":101}`, errType: "InvalidParameterException"},
		{name: "services list: a missing cluster is reported before bad paging", op: "ListServices", body: `{"cluster":"nope","maxResults":0}`, errType: "ClusterNotFoundException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, typ, m := h.call(c.op, c.body)
			if c.errType != "" {
				if code != http.StatusBadRequest || typ != c.errType {
					t.Fatalf("%s %s: HTTP %d %q %v, want 400 %s", c.op, c.body, code, typ, m, c.errType)
				}
				return
			}
			if code != http.StatusOK {
				t.Fatalf("%s %s: HTTP %d %s %v, want 200", c.op, c.body, code, typ, m)
			}
			if _, ok := c.want["nextToken"]; !ok && m["nextToken"] != nil {
				t.Errorf("nextToken %v, want none", m["nextToken"])
			}
			for member, want := range c.want {
				got, err := json.Marshal(m[member])
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != want {
					t.Errorf("%s:\n got %s\nwant %s", member, got, want)
				}
			}
			for member, n := range c.count {
				if got, _ := m[member].([]any); len(got) != n {
					t.Errorf("%s has %d items, want %d: %v", member, len(got), n, m[member])
				}
			}
		})
	}
}
