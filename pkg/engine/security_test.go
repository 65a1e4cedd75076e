package engine_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
)

// securityTask is a task whose container has these dockerSecurityOptions,
// as ACS delivers them (dockerConfig.hostConfig.SecurityOpt).
func securityTask(t *testing.T, opts ...string) *api.Task {
	t.Helper()
	host, err := json.Marshal(map[string]any{"SecurityOpt": opts})
	if err != nil {
		t.Fatal(err)
	}
	return &api.Task{Arn: "arn:aws:ecs:us-east-1:000000000000:task/lab/5ec", Family: "s", Version: "1", DesiredStatus: "RUNNING",
		Containers: []*api.Container{{Name: "app", Image: "busybox", Essential: true, Memory: 32,
			DockerConfig: api.RawDockerConfig{HostConfig: string(host)}}}}
}

func TestSecurityOptionsFromAPI(t *testing.T) {
	def := engine.FromAPI(securityTask(t, "no-new-privileges", "apparmor:berth-web", "label:type:spc_t", "label=level:s0:c1,c2"), "lab")
	if def.Invalid != "" {
		t.Fatalf("invalid: %s", def.Invalid)
	}
	spec := def.Containers[0].Spec
	if !spec.NoNewPrivileges || spec.AppArmorProfile != "berth-web" || !slices.Equal(spec.SELinuxOptions, []string{"type:spc_t", "level:s0:c1,c2"}) {
		t.Errorf("spec: no_new_privs %v, apparmor %q, selinux %q", spec.NoNewPrivileges, spec.AppArmorProfile, spec.SELinuxOptions)
	}
	for opt, want := range map[string]string{
		"seccomp=unconfined":     `unsupported dockerSecurityOptions "seccomp=unconfined"`,
		"apparmor:":              "apparmor needs a profile name",
		"label:colour:red":       `dockerSecurityOptions "label:colour:red"`,
		"no-new-privileges:mayb": "no-new-privileges takes true or false",
	} {
		got := engine.FromAPI(securityTask(t, opt), "lab").Invalid
		if !strings.HasPrefix(got, "CannotCreateContainerError: container app") || !strings.Contains(got, want) {
			t.Errorf("%s: invalid %q, want it to contain %q", opt, got, want)
		}
	}
}

func TestSecurityOptionsNeedACapableInstance(t *testing.T) {
	for _, c := range []struct {
		opt, want string
		capable   func(o *engine.Options)
	}{
		{"apparmor:berth-web", "CannotCreateContainerError: container app: dockerSecurityOptions apparmor:berth-web: this instance is not AppArmor capable (ECS_APPARMOR_CAPABLE=false)",
			func(o *engine.Options) { o.Security.AppArmorCapable = true }},
		{"label:type:spc_t", "CannotCreateContainerError: container app: dockerSecurityOptions label:type:spc_t: this instance is not SELinux capable (ECS_SELINUX_CAPABLE=false)",
			func(o *engine.Options) { o.Security.SELinuxCapable = true }},
	} {
		t.Run(c.opt, func(t *testing.T) {
			def := engine.FromAPI(securityTask(t, c.opt), "lab")
			h := newHarness(t, nil)
			h.apply(def, engine.TaskRunning)
			if st := h.waitStatus(def.ARN, engine.TaskStopped); st.StoppedReason != c.want {
				t.Errorf("stopped with %q, want %q", st.StoppedReason, c.want)
			}
			if ev := h.rt.eventLog(); len(ev) > 0 {
				t.Errorf("the refused task reached the runtime: %q", ev)
			}
			capable := newHarness(t, c.capable)
			capable.apply(def, engine.TaskRunning)
			capable.waitStatus(def.ARN, engine.TaskRunning)
		})
	}
}
