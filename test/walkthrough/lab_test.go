package walkthrough_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestMain serves the test binary's other modes (testenv's).
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const (
	region  = "us-east-1"
	account = "000000000000" // dev mode's account
	// execRole is the execution role the walk-throughs' task definitions
	// name: dev mode declares it (--dev-role), and its credentials may read
	// the account's secrets.
	execRole    = "walk-exec"
	execRoleArn = "arn:aws:iam::" + account + ":role/" + execRole
)

// appScript is the walk-throughs' container: it prints the SHA-256 of
// each secret it got in its environment (never the value) and the
// revision it runs, then waits for SIGTERM.
const appScript = `#!/bin/sh
for v in DB_PASSWORD API_TOKEN; do
  eval "val=\${$v}"
  printf '%s sha256=%s\n' "$v" "$(printf %s "$val" | sha256sum | cut -d' ' -f1)"
done
echo "REVISION=$REVISION"
trap 'exit 0' TERM
while :; do sleep 1; done
`

// devLab is `berth-agent --dev` (the binary built from this tree) in the
// test's own slice of the host, with an image for the walk-throughs'
// tasks, SDK clients for its endpoint and a recording proxy in front of it
// for the clients under test.
type devLab struct {
	dir    string // dev mode's DIR
	intro  string // its introspection API's address
	bridge string
	subnet string // its first three octets and a dot
	image  string
	agent  *testenv.AgentProcess
	env    testenv.DevEnv
	ecs    *ecs.Client
	ssm    *ssm.Client
	sm     *sm.Client
	// adminID and adminSecret are dev mode's admin key (DIR/credentials).
	adminID, adminSecret string
	// proxy records every request and answer between a client under test
	// and the endpoint; proxyURL is where the client is pointed.
	proxy    *recorder
	proxyURL string
}

// startDevLab builds berth-agent and runs it in dev mode with its own
// containerd namespace, bridge, subnet and loopback ports, declaring the
// execution role.
func startDevLab(t *testing.T) *devLab {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "iptables", "ip")
	testenv.RequireBusyboxStatic(t)
	cd := testenv.Containerd(t)
	reg := testenv.Registry(t)
	l := &devLab{dir: t.TempDir(), intro: testenv.FreeLoopbackAddr(t),
		bridge: fmt.Sprintf("bw%06x", mrand.IntN(1<<24)),
		subnet: fmt.Sprintf("10.%d.%d.", 120+mrand.IntN(20), mrand.IntN(256))}
	l.image = testenv.BuildImage(t, reg, "walk/app", testenv.ImageSpec{
		Files: []testenv.File{{Path: "/walk.sh", Mode: 0o755, Data: []byte(appScript)}},
		Cmd:   []string{"/walk.sh"},
	}).Ref
	bin := testenv.BuildBinary(t, "github.com/berth-dev/berth/cmd/agent")
	t.Cleanup(func() {
		// The bridge outlives dev mode by design; this test made it.
		_ = exec.Command("ip", "link", "del", l.bridge).Run()
	})
	env := []string{
		"BERTH_CONTAINERD_ADDRESS=" + cd.Address,
		"BERTH_CONTAINERD_NAMESPACE=" + cd.Namespace(t),
		"BERTH_INSECURE_REGISTRIES=[\"" + reg.Host + "\"]",
		"BERTH_BRIDGE_NAME=" + l.bridge,
		"BERTH_BRIDGE_SUBNET=" + l.subnet + "0/24",
		"BERTH_INTROSPECTION_ADDRESS=" + l.intro,
		"BERTH_CREDENTIALS_ADDRESS=" + testenv.FreeLoopbackAddr(t),
		"ECS_CONTAINER_STOP_TIMEOUT=2s",
		// Everything the agent and the endpoint log is checked for values.
		"ECS_LOGLEVEL=debug",
		"AWS_REGION=" + region,
	}
	l.agent, l.env = testenv.StartDevMode(t, bin, l.dir, env, "--dev-role", execRole)
	cfg := l.env.AWSConfig(t)
	creds, err := cfg.Credentials.Retrieve(t.Context())
	if err != nil {
		t.Fatalf("dev mode's admin key: %v", err)
	}
	l.adminID, l.adminSecret = creds.AccessKeyID, creds.SecretAccessKey
	endpoint := l.env["AWS_ENDPOINT_URL_ECS"]
	l.ecs = l.env.ECS(t)
	l.ssm = ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(endpoint) })
	l.sm = sm.NewFromConfig(cfg, func(o *sm.Options) { o.BaseEndpoint = aws.String(endpoint) })
	l.proxy = newRecorder(t, endpoint)
	l.proxyURL = l.proxy.srv.URL
	return l
}

// stop stops dev mode with SIGTERM as Ctrl-C would: it must exit 0.
func (l *devLab) stop(t *testing.T) {
	t.Helper()
	if code := l.agent.Stop(t); code != 0 {
		t.Errorf("berth-agent --dev exited %d on SIGTERM, want 0\n%s", code, l.agent.Output())
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// secretValues are one walk-through's secret values, random per run.
type secretValues struct {
	db    string // the SecureString parameter's value
	token string // the "token" key of the Secrets Manager secret's JSON
}

func newSecretValues() secretValues {
	return secretValues{db: "walk-db-" + randomHex(12), token: "walk-token-" + randomHex(12)}
}

// exchange is one request through the recording proxy.
type exchange struct {
	target   string // X-Amz-Target
	request  []byte
	response []byte
}

// recorder is a reverse proxy to the endpoint that keeps every exchange.
type recorder struct {
	srv *httptest.Server
	mu  sync.Mutex
	ex  []exchange
}

// teeWriter copies a response as the proxy writes it.
type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	return w.ResponseWriter.Write(p)
}

func newRecorder(t *testing.T, upstream string) *recorder {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	// The Host header stays the proxy's, which the client signed.
	rp := httputil.NewSingleHostReverseProxy(u)
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.Header.Del("Accept-Encoding") // answers are read as they are
		tw := &teeWriter{ResponseWriter: w}
		rp.ServeHTTP(tw, req)
		r.mu.Lock()
		r.ex = append(r.ex, exchange{target: req.Header.Get("X-Amz-Target"), request: body, response: tw.buf.Bytes()})
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) exchanges() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]exchange(nil), r.ex...)
}

// forms are the ways a value could show: as it is and in base64.
func forms(v string) []string {
	return []string{v, base64.StdEncoding.EncodeToString([]byte(v))}
}

// checkAnswers checks every answer the proxy saw: the SecureString's
// value only in GetParameter(s)/GetParametersByPath answers to requests
// WithDecryption, the secret's only in GetSecretValue answers. Each must
// have been read back at least once by the client (else the check proved
// nothing).
func (l *devLab) checkAnswers(t *testing.T, v secretValues) {
	t.Helper()
	var dbRead, tokenRead bool
	for _, ex := range l.proxy.exchanges() {
		for _, f := range forms(v.db) {
			if !bytes.Contains(ex.response, []byte(f)) {
				continue
			}
			var in struct{ WithDecryption bool }
			_ = json.Unmarshal(ex.request, &in)
			switch ex.target {
			case "AmazonSSM.GetParameter", "AmazonSSM.GetParameters", "AmazonSSM.GetParametersByPath":
				if in.WithDecryption && f == v.db {
					dbRead = true
					continue
				}
			}
			t.Errorf("the SecureString's value (%q form) is in the answer to %s %s", f[:4], ex.target, ex.request)
		}
		for _, f := range forms(v.token) {
			if !bytes.Contains(ex.response, []byte(f)) {
				continue
			}
			if ex.target == "secretsmanager.GetSecretValue" && f == v.token {
				tokenRead = true
				continue
			}
			t.Errorf("the secret's value (%q form) is in the answer to %s %s", f[:4], ex.target, ex.request)
		}
	}
	if !dbRead || !tokenRead {
		t.Errorf("the client never read the values back through the proxy (SecureString %v, secret %v): the check saw nothing", dbRead, tokenRead)
	}
}

// checkLogs checks that no value appears in dev mode's output (the agent
// and the endpoint, at debug level) or in any file under its directory:
// the agent's state, the containers' logs (the app prints hashes only),
// the audit log, the endpoint's store (values sealed).
func (l *devLab) checkLogs(t *testing.T, v secretValues) {
	t.Helper()
	out := l.agent.Output()
	if !strings.Contains(out, "level=debug") && !strings.Contains(out, `"level":"debug"`) {
		t.Errorf("dev mode logged nothing at debug level: the check would see little\n%.2000s", out)
	}
	for _, f := range append(forms(v.db), forms(v.token)...) {
		if strings.Contains(out, f) {
			t.Errorf("dev mode's output holds a secret value (%q...)", f[:4])
		}
	}
	err := filepath.WalkDir(l.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, f := range append(forms(v.db), forms(v.token)...) {
			if bytes.Contains(b, []byte(f)) {
				t.Errorf("%s holds a secret value (%q...)", p, f[:4])
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("read dev mode's directory: %v", err)
	}
}

func sha(v string) string {
	s := sha256.Sum256([]byte(v))
	return hex.EncodeToString(s[:])
}

// waitService waits until the service runs exactly desired tasks, all of
// revision (a task definition ARN), RUNNING, and returns them.
func (l *devLab) waitService(t *testing.T, service, revision string, desired int) []ecstypes.Task {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for {
		list, err := l.ecs.ListTasks(t.Context(), &ecs.ListTasksInput{Cluster: aws.String("default"), ServiceName: aws.String(service)})
		if err == nil && len(list.TaskArns) > 0 {
			desc, err := l.ecs.DescribeTasks(t.Context(), &ecs.DescribeTasksInput{Cluster: aws.String("default"), Tasks: list.TaskArns})
			if err == nil {
				var running []ecstypes.Task
				last = ""
				for _, task := range desc.Tasks {
					last += fmt.Sprintf(" %s:%s/%s", aws.ToString(task.TaskDefinitionArn), aws.ToString(task.LastStatus), aws.ToString(task.DesiredStatus))
					if aws.ToString(task.TaskDefinitionArn) == revision && aws.ToString(task.LastStatus) == "RUNNING" {
						running = append(running, task)
					}
				}
				if len(running) == desired && len(desc.Tasks) == desired {
					return running
				}
			}
		} else if err != nil {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s: want %d RUNNING tasks of %s only; have%s\n%s", service, desired, revision, last, l.agent.Output())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkSecretsArrived reads each task's app container log through the
// agent's introspection API: the hashes of the values it got in its
// environment must be those of the values, and its REVISION revision.
func (l *devLab) checkSecretsArrived(t *testing.T, tasks []ecstypes.Task, v secretValues, revision string) {
	t.Helper()
	want := []string{"DB_PASSWORD sha256=" + sha(v.db), "API_TOKEN sha256=" + sha(v.token), "REVISION=" + revision}
	for _, task := range tasks {
		arn := aws.ToString(task.TaskArn)
		u := "http://" + l.intro + "/v1/tasks/" + arn[strings.LastIndex(arn, "/")+1:] + "/containers/app/logs"
		deadline := time.Now().Add(30 * time.Second)
		var last string
		for {
			resp, err := http.Get(u)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				last = string(body)
				missing := false
				for _, w := range want {
					missing = missing || !strings.Contains(last, w)
				}
				if resp.StatusCode == http.StatusOK && !missing {
					break
				}
			} else {
				last = err.Error()
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s's log never showed %q; last answer: %s", arn, want, last)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// checkNothingLeft checks through the API that the walk-through left
// nothing: the service not ACTIVE, every revision of family INACTIVE, no
// task of the cluster "default" running, the cluster it made INACTIVE,
// and no parameter under paramPath or secret named secretName (not even
// scheduled for deletion).
func (l *devLab) checkNothingLeft(t *testing.T, service, family, cluster, paramPath, secretName string) {
	t.Helper()
	ctx := t.Context()
	svcs, err := l.ecs.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("default"), Services: []string{service}})
	if err != nil {
		t.Fatalf("describe services: %v", err)
	}
	for _, s := range svcs.Services {
		if st := aws.ToString(s.Status); st == "ACTIVE" || st == "DRAINING" {
			t.Errorf("service %s is %s after the tear-down", service, st)
		}
	}
	active, err := l.ecs.ListTaskDefinitions(ctx, &ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String(family), Status: ecstypes.TaskDefinitionStatusActive})
	if err != nil || len(active.TaskDefinitionArns) != 0 {
		t.Errorf("ACTIVE task definitions of %s after the tear-down: %v %v", family, active, err)
	}
	inactive, err := l.ecs.ListTaskDefinitions(ctx, &ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String(family), Status: ecstypes.TaskDefinitionStatusInactive})
	if err != nil || len(inactive.TaskDefinitionArns) != 2 {
		t.Errorf("INACTIVE task definitions of %s: %v (%v), want the two revisions", family, inactive, err)
	}
	cl, err := l.ecs.DescribeClusters(ctx, &ecs.DescribeClustersInput{Clusters: []string{cluster}})
	if err != nil || len(cl.Clusters) != 1 || aws.ToString(cl.Clusters[0].Status) != "INACTIVE" {
		t.Errorf("cluster %s after the tear-down: %+v %v, want INACTIVE", cluster, cl, err)
	}
	// The service's tasks stop once the agent has stopped their containers.
	deadline := time.Now().Add(time.Minute)
	for {
		tasks, err := l.ecs.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("default")})
		if err != nil {
			t.Fatalf("list tasks: %v", err)
		}
		var notStopped []string
		if len(tasks.TaskArns) > 0 {
			desc, err := l.ecs.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("default"), Tasks: tasks.TaskArns})
			if err != nil {
				t.Fatalf("describe tasks: %v", err)
			}
			for _, task := range desc.Tasks {
				if aws.ToString(task.LastStatus) != "STOPPED" {
					notStopped = append(notStopped, aws.ToString(task.TaskArn)+" "+aws.ToString(task.LastStatus))
				}
			}
		}
		if len(notStopped) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("tasks not STOPPED a minute after the tear-down: %v", notStopped)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	params, err := l.ssm.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String(paramPath), Recursive: aws.Bool(true)})
	if err != nil || len(params.Parameters) != 0 {
		t.Errorf("parameters under %s after the tear-down: %+v %v", paramPath, params, err)
	}
	secrets, err := l.sm.ListSecrets(ctx, &sm.ListSecretsInput{IncludePlannedDeletion: aws.Bool(true)})
	if err != nil {
		t.Fatalf("list secrets: %v", err)
	}
	for _, s := range secrets.SecretList {
		if aws.ToString(s.Name) == secretName {
			t.Errorf("secret %s is left after the tear-down (deleted %v)", secretName, s.DeletedDate)
		}
	}
}
