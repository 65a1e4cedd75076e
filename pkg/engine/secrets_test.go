package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/engine"
)

// fakeSecrets answers Fetch from a map of valueFrom to value; a missing
// one fails naming it, as the agent's SSM and Secrets Manager source does.
type fakeSecrets struct {
	mu      sync.Mutex
	values  map[string]string
	fetches []string // task ARN + the refs' names, per call
}

func (f *fakeSecrets) Fetch(_ context.Context, taskARN string, refs []container.SecretRef) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	var out []string
	for _, r := range refs {
		names = append(names, r.Name)
		v, ok := f.values[r.ValueFrom]
		if !ok {
			return nil, fmt.Errorf("secret %s: %s: ParameterNotFound", r.Name, r.ValueFrom)
		}
		out = append(out, v)
	}
	f.fetches = append(f.fetches, taskARN+" "+strings.Join(names, ","))
	return out, nil
}

func (f *fakeSecrets) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.fetches)
}

const (
	dbPassword = "db-password-value-5b1e"
	logToken   = "log-prefix-value-77aa"
)

// secretTask is webTask with a secret environment variable on app and a
// secret log option on shipper (awslogs).
func secretTask(t *testing.T, dbFrom string) engine.TaskDef {
	def := webTask(t)
	def.Volumes[0].SourcePath = t.TempDir()
	for i := range def.Containers {
		c := &def.Containers[i]
		switch c.Name {
		case "app":
			c.Secrets = []container.SecretRef{{Name: "DB_PASSWORD", ValueFrom: dbFrom}}
		case "shipper":
			c.Secrets = []container.SecretRef{{Name: "awslogs-stream-prefix", ValueFrom: "arn:aws:secretsmanager:us-east-1:000000000000:secret:logprefix-AbCdEf", Log: true}}
		}
	}
	return def
}

// TestSecretsInjected: a container's secret becomes an environment
// variable of the created container and a log secretOption an option of
// its log shipping, fetched once per container create with the task's
// ARN; neither value is in the task's record. After a restart the running
// shipper's log option is fetched again before shipping resumes.
func TestSecretsInjected(t *testing.T) {
	calls := &callLog{}
	src := &fakeSecrets{values: map[string]string{
		"/app/db/password": dbPassword,
		"arn:aws:secretsmanager:us-east-1:000000000000:secret:logprefix-AbCdEf": logToken,
	}}
	h := newHarness(t, func(o *engine.Options) {
		o.Secrets = src
		o.LogShipper = fakeShipper{calls}
		o.LogDrivers = []string{"awslogs"}
	})
	def := secretTask(t, "/app/db/password")
	h.apply(def, engine.TaskRunning)
	h.waitStatus(def.ARN, engine.TaskRunning)

	h.rt.mu.Lock()
	env := slices.Clone(h.rt.containers[engine.ContainerID(def.ARN, "app")].spec.Env)
	shipperEnv := slices.Clone(h.rt.containers[engine.ContainerID(def.ARN, "shipper")].spec.Env)
	h.rt.mu.Unlock()
	if !slices.Contains(env, "DB_PASSWORD="+dbPassword) {
		t.Errorf("app's environment %v lacks DB_PASSWORD", env)
	}
	if slices.ContainsFunc(shipperEnv, func(e string) bool { return strings.Contains(e, logToken) }) {
		t.Errorf("a log secretOption became an environment variable: %v", shipperEnv)
	}
	calls.mu.Lock()
	logs := slices.Clone(calls.logs)
	calls.mu.Unlock()
	if len(logs) != 1 || logs[0].Log.Options["awslogs-stream-prefix"] != logToken || logs[0].Log.Options["awslogs-group"] != "/berth/web" {
		t.Fatalf("log shipping started with %+v, want the secret option added", logs)
	}
	if got := src.calls(); len(got) != 2 || !slices.Contains(got, def.ARN+" DB_PASSWORD") || !slices.Contains(got, def.ARN+" awslogs-stream-prefix") {
		t.Errorf("fetches %v, want one per container with secrets, for the task", got)
	}
	checkRecord := func() {
		t.Helper()
		h.store.mu.Lock()
		rec := string(h.store.records[def.ARN])
		h.store.mu.Unlock()
		if strings.Contains(rec, dbPassword) || strings.Contains(rec, logToken) {
			t.Fatalf("the task's record holds a secret value: %s", rec)
		}
		if !strings.Contains(rec, "/app/db/password") {
			t.Fatalf("the task's record lacks the secret's reference: %s", rec)
		}
	}
	checkRecord()

	h.stop()
	h.start()
	h.waitStatus(def.ARN, engine.TaskRunning)
	deadline := time.Now().Add(5 * time.Second)
	for len(calls.snapshot()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	calls.mu.Lock()
	logs = slices.Clone(calls.logs)
	calls.mu.Unlock()
	if len(logs) != 2 || logs[1].Log.Options["awslogs-stream-prefix"] != logToken {
		t.Fatalf("after a restart log shipping started with %+v, want the secret option fetched again", logs)
	}
	if got := src.calls(); len(got) != 3 || got[2] != def.ARN+" awslogs-stream-prefix" {
		t.Errorf("fetches after a restart %v, want the log option fetched again (and no environment secret: app runs)", got)
	}
	checkRecord()
}

// TestSecretFetchFails: a secret that cannot be fetched stops the task
// with ECS's reason naming it, before its container is created; without a
// secret source the task stops the same way.
func TestSecretFetchFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  engine.SecretSource
		want []string
	}{
		{"not found", &fakeSecrets{values: map[string]string{}}, []string{"DB_PASSWORD", "/app/missing", "ParameterNotFound"}},
		{"no source", nil, []string{"no way to fetch secrets"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *engine.Options) { o.Secrets = tc.src })
			def := secretTask(t, "/app/missing")
			def.ARN += "-" + strings.ReplaceAll(tc.name, " ", "-")
			for i := range def.Containers {
				def.Containers[i].Spec.Log = container.LogConfig{} // json-file
				if def.Containers[i].Name == "shipper" {
					def.Containers[i].Secrets = nil
				}
			}
			h.apply(def, engine.TaskRunning)
			st := h.waitStatus(def.ARN, engine.TaskStopped)
			const prefix = "ResourceInitializationError: unable to pull secrets or registry auth: "
			if !strings.HasPrefix(st.StoppedReason, prefix) {
				t.Fatalf("stopped reason %q, want %q...", st.StoppedReason, prefix)
			}
			for _, w := range tc.want {
				if !strings.Contains(st.StoppedReason, w) {
					t.Errorf("stopped reason %q does not name %q", st.StoppedReason, w)
				}
			}
			if slices.Contains(h.rt.eventLog(), "create "+engine.ContainerID(def.ARN, "app")) {
				t.Errorf("the container whose secret failed was created: %v", h.rt.eventLog())
			}
		})
	}
}

// TestSecretsFromAPI: the payload's secrets become references (the log
// driver's by their LOG_DRIVER target); a secret mounted as a file and a
// name given twice are refused by name.
func TestSecretsFromAPI(t *testing.T) {
	task := func(secrets ...api.Secret) *api.Task {
		return &api.Task{Arn: "arn:aws:ecs:us-east-1:000000000000:task/lab/0123456789abcdef", Family: "s", Version: "1", DesiredStatus: "RUNNING",
			Containers: []*api.Container{{Name: "app", Image: "busybox", Essential: true, Memory: 32, Secrets: secrets}}}
	}
	def := engine.FromAPI(task(
		api.Secret{Name: "DB", ValueFrom: "arn:aws:ssm:us-east-1:000000000000:parameter/db", Type: api.SecretTypeEnv, Provider: api.SecretProviderSSM, Region: "us-east-1"},
		api.Secret{Name: "splunk-token", ValueFrom: "tok", Target: api.SecretTargetLogDriver, Provider: api.SecretProviderSSM},
	), "lab")
	want := []container.SecretRef{
		{Name: "DB", ValueFrom: "arn:aws:ssm:us-east-1:000000000000:parameter/db", Region: "us-east-1"},
		{Name: "splunk-token", ValueFrom: "tok", Log: true},
	}
	if def.Invalid != "" || !slices.Equal(def.Containers[0].Secrets, want) {
		t.Fatalf("FromAPI: invalid %q, secrets %+v", def.Invalid, def.Containers[0].Secrets)
	}
	for _, tc := range []struct {
		secrets []api.Secret
		want    string
	}{
		{[]api.Secret{{Name: "F", ValueFrom: "x", Type: "MOUNT_POINT"}}, `secret F: unsupported type "MOUNT_POINT"`},
		{[]api.Secret{{Name: "A", ValueFrom: "x"}, {Name: "A", ValueFrom: "y"}}, "secret A: named twice"},
		{[]api.Secret{{Name: "B"}}, `valueFrom (name "B")`},
	} {
		if got := engine.FromAPI(task(tc.secrets...), "lab").Invalid; !strings.Contains(got, tc.want) || !strings.HasPrefix(got, "CannotCreateContainerError: container app") {
			t.Errorf("secrets %+v: invalid %q, want it to contain %q", tc.secrets, got, tc.want)
		}
	}
}
