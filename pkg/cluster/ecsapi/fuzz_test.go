package ecsapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
)

// acceptAll authenticates every request as an admin; decoding is what the
// fuzz target exercises, SigV4 has its own tests.
type acceptAll struct{}

func (acceptAll) VerifyScope(*http.Request, []byte) (auth.Key, string, error) {
	return auth.Key{AccessKeyID: "BKFUZZ", Role: auth.RoleAdmin}, Service, nil
}

var _ awsproto.Verifier = acceptAll{}

// FuzzRequestDecoding sends arbitrary bodies to every operation: the
// endpoint must answer with a JSON body and never with a ServerException
// (which would mean a panic or an unhandled decode path).
func FuzzRequestDecoding(f *testing.F) {
	s := newTestServer(f)
	names := make([]string, 0, len(s.ops))
	for n := range s.ops {
		names = append(names, n)
	}
	sort.Strings(names)
	index := map[string]uint8{}
	for i, n := range names {
		index[n] = uint8(i)
	}
	seeds := []struct{ op, body string }{
		{"CreateCluster", `{"clusterName":"lab"}`},
		{"RegisterTaskDefinition", `{"family":"web","containerDefinitions":[{"name":"web","image":"busybox","memory":64,"portMappings":[{"containerPort":80}],"dependsOn":[{"containerName":"web","condition":"START"}]}]}`},
		{"RegisterContainerInstance", `{"cluster":"lab","totalResources":[{"name":"CPU","type":"INTEGER","integerValue":1024},{"name":"MEMORY","type":"INTEGER","integerValue":1024},{"name":"PORTS","type":"STRINGSET","stringSetValue":["22"]}]}`},
		{"RunTask", `{"cluster":"lab","taskDefinition":"web","count":2,"overrides":{"cpu":"256","containerOverrides":[{"name":"web","memory":32}]}}`},
		{"SubmitTaskStateChange", `{"cluster":"lab","task":"abc","status":"RUNNING","pullStartedAt":1.7e9,"containers":[{"containerName":"web","exitCode":0}]}`},
		{"ListTasks", `{"cluster":"lab","maxResults":1,"nextToken":"b2Zmc2V0OjE"}`},
		{"DescribeTasks", `{"cluster":"lab","tasks":["arn:aws:ecs:us-test-1:123456789012:task/lab/x"]}`},
		{"PutAttributes", `{"cluster":"lab","attributes":[{"name":"a","value":"b","targetId":"x"}]}`},
		{"CreateCluster", `{"clusterName":`},
		{"RunTask", `[]`},
	}
	for _, sd := range seeds {
		f.Add(index[sd.op], []byte(sd.body))
	}
	f.Fuzz(func(t *testing.T, opIndex uint8, body []byte) {
		name := names[int(opIndex)%len(names)]
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("X-Amz-Target", "AmazonEC2ContainerServiceV20141113."+name)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: HTTP %d %s", name, body, rec.Code, rec.Body.String())
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %q: response is not JSON: %q", name, body, rec.Body.String())
		}
	})
}
