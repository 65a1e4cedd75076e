package acs

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/api"
)

// loadECSTaskDefinition reads a task definition as DescribeTaskDefinition
// returns it (ECS member names match the SDK's fields without regard to case).
func loadECSTaskDefinition(t *testing.T, path string) *types.TaskDefinition {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var td types.TaskDefinition
	if err := json.Unmarshal(b, &td); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return &td
}

func fixtureTask(t *testing.T) *api.Task {
	t.Helper()
	b, err := os.ReadFile("../../api/testdata/fixtures/PayloadMessage-berth-web-task.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := api.DecodeFrame(b)
	if err != nil {
		t.Fatalf("decode fixture: %v", err)
	}
	return f.(*api.PayloadMessage).Tasks[0]
}

func ecsTaskFor(td *types.TaskDefinition, ov *types.TaskOverride) *types.Task {
	task := &types.Task{
		TaskArn:       aws.String("arn:aws:ecs:us-east-1:000000000000:task/lab/3b2f9c1d7e6a4f0b8c5d2e1f0a9b8c7d"),
		ClusterArn:    aws.String("arn:aws:ecs:us-east-1:000000000000:cluster/lab"),
		DesiredStatus: aws.String("RUNNING"),
		LaunchType:    types.LaunchTypeEc2,
		Group:         aws.String("service:web"),
		Overrides:     ov,
	}
	for _, cd := range td.ContainerDefinitions {
		task.Containers = append(task.Containers, types.Container{Name: cd.Name, ContainerArn: aws.String("arn:aws:ecs:us-east-1:000000000000:container/lab/3b2f/" + aws.ToString(cd.Name))})
	}
	return task
}

// TestACSTaskMatchesFixture translates the ECS task definition of
// the shared web-task fixture and checks that the agent's decoder reads the
// same settings from our dockerConfig strings as from the fixture's.
func TestACSTaskMatchesFixture(t *testing.T) {
	td := loadECSTaskDefinition(t, "testdata/ecs_taskdef_web_v4.json")
	// The fixture's APP_MODE is production: an environment override supplies it.
	ov := &types.TaskOverride{ContainerOverrides: []types.ContainerOverride{{
		Name: aws.String("app"), Environment: []types.KeyValuePair{{Name: aws.String("APP_MODE"), Value: aws.String("production")}},
	}}}
	got, err := acsTask(td, ecsTaskFor(td, ov))
	if err != nil {
		t.Fatal(err)
	}
	// Through the wire and back, and valid for the agent.
	frame, err := api.EncodeFrame(&api.PayloadMessage{MessageID: "m1", Tasks: []*api.Task{got}})
	if err != nil {
		t.Fatalf("encode payload: %v", err)
	}
	back, err := api.DecodeFrame(frame)
	if err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	got = back.(*api.PayloadMessage).Tasks[0]
	if err := got.Validate(); err != nil {
		t.Fatalf("translated task does not validate: %v", err)
	}
	want := fixtureTask(t)
	if got.Arn != want.Arn || got.Family != want.Family || got.Version != want.Version || got.Cpu != want.Cpu ||
		got.Memory != want.Memory || got.NetworkMode != want.NetworkMode || got.ServiceName != want.ServiceName ||
		got.TaskDefinitionAccountID != want.TaskDefinitionAccountID || got.DesiredStatus != want.DesiredStatus {
		t.Errorf("task header = %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(got.Volumes, want.Volumes) {
		t.Errorf("volumes = %+v, want %+v", got.Volumes, want.Volumes)
	}
	for _, wc := range want.Containers {
		gc := got.Container(wc.Name)
		if gc == nil {
			t.Fatalf("container %s missing", wc.Name)
		}
		gs, err := gc.Settings()
		if err != nil {
			t.Fatalf("%s: agent decoder refused our dockerConfig: %v", wc.Name, err)
		}
		ws, err := wc.Settings()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gs, ws) {
			t.Errorf("%s: decoded settings differ\n got %+v\nwant %+v", wc.Name, gs, ws)
		}
		type plain struct {
			Image, HealthCheckType   string
			Cpu, Memory, Start, Stop int64
			Essential                bool
			EntryPoint, Command      []string
			Env                      map[string]string
			Ports                    []api.PortMapping
			Mounts                   []api.MountPoint
			Deps                     []api.ContainerDependency
		}
		p := func(c *api.Container) plain {
			env := c.Environment
			if len(env) == 0 {
				env = nil
			}
			// Empty and absent lists mean the same on the wire.
			return plain{c.Image, c.HealthCheckType, c.Cpu, c.Memory, c.StartTimeout, c.StopTimeout, c.Essential,
				emptyNil(c.EntryPoint), emptyNil(c.Command), env, emptyNil(c.PortMappings), emptyNil(c.MountPoints), emptyNil(c.DependsOn)}
		}
		if !reflect.DeepEqual(p(gc), p(wc)) {
			t.Errorf("%s: container differs\n got %+v\nwant %+v", wc.Name, p(gc), p(wc))
		}
		if gc.ContainerArn == "" {
			t.Errorf("%s: no container ARN", wc.Name)
		}
	}
}

// TestACSTaskOverridesAndSettings checks each translated setting as
// the agent's decoder reads it.
func TestACSTaskOverridesAndSettings(t *testing.T) {
	td := loadECSTaskDefinition(t, "testdata/ecs_taskdef_web_v4.json")
	ov := &types.TaskOverride{Cpu: aws.String("1024"), Memory: aws.String("2048"), ContainerOverrides: []types.ContainerOverride{{
		Name: aws.String("app"), Command: []string{"-f"}, Cpu: aws.Int32(512), Memory: aws.Int32(256), MemoryReservation: aws.Int32(64),
		Environment: []types.KeyValuePair{{Name: aws.String("EXTRA"), Value: aws.String("1")}},
	}}}
	got, err := acsTask(td, ecsTaskFor(td, ov))
	if err != nil {
		t.Fatal(err)
	}
	app := got.Container("app")
	if got.Cpu != 1024 || got.Memory != 2048 || app.Cpu != 512 || app.Memory != 256 || !reflect.DeepEqual(app.Command, []string{"-f"}) {
		t.Errorf("overrides not applied: task cpu %v memory %v, app cpu %d memory %d command %v", got.Cpu, got.Memory, app.Cpu, app.Memory, app.Command)
	}
	if want := map[string]string{"APP_MODE": "staging", "GREETING": "hello world", "EXTRA": "1"}; !reflect.DeepEqual(app.Environment, want) {
		t.Errorf("environment = %v, want %v", app.Environment, want)
	}
	s, err := app.Settings()
	if err != nil {
		t.Fatal(err)
	}
	hc := s.Config.Healthcheck
	if hc == nil || hc.Interval != 5*time.Second || hc.Timeout != 2*time.Second || hc.StartPeriod != time.Second || hc.Retries != 3 || hc.Test[0] != "CMD-SHELL" {
		t.Errorf("health check = %+v", hc)
	}
	h := s.HostConfig
	if h.MemoryReservation != 64<<20 || h.ShmSize != 64<<20 || h.Init == nil || !*h.Init || h.Tmpfs["/run"] != "rw,size=16m" ||
		!reflect.DeepEqual(h.Ulimits, []api.Ulimit{{Name: "nofile", Soft: 4096, Hard: 8192}}) || h.LogConfig.Type != "json-file" ||
		!reflect.DeepEqual(h.ExtraHosts, []string{"db.internal:10.0.0.9"}) || !reflect.DeepEqual(h.CapAdd, []string{"NET_BIND_SERVICE"}) {
		t.Errorf("host config = %+v", h)
	}
	if s.Config.User != "0" || s.Config.WorkingDir != "/www" || s.Config.Hostname != "web" {
		t.Errorf("config = %+v", s.Config)
	}
	if env := got.Container("shipper").Environment; env != nil {
		t.Errorf("shipper environment = %v, want none", env)
	}
}

// TestACSTaskReportsUnsupported: settings outside the agent's
// Docker subset are encoded, so the agent's decoder names them.
func TestACSTaskReportsUnsupported(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*types.ContainerDefinition)
		field string
	}{
		{"systemControls", func(cd *types.ContainerDefinition) {
			cd.SystemControls = []types.SystemControl{{Namespace: aws.String("net.core.somaxconn"), Value: aws.String("1024")}}
		}, "Sysctls"},
		{"pseudoTerminal", func(cd *types.ContainerDefinition) { cd.PseudoTerminal = aws.Bool(true) }, "Tty"},
		{"devices", func(cd *types.ContainerDefinition) {
			cd.LinuxParameters.Devices = []types.Device{{HostPath: aws.String("/dev/fuse")}}
		}, "linuxParameters.devices"},
	}
	for _, c := range cases {
		td := loadECSTaskDefinition(t, "testdata/ecs_taskdef_web_v4.json")
		c.edit(&td.ContainerDefinitions[0])
		got, err := acsTask(td, ecsTaskFor(td, nil))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		_, err = got.Container("app").Settings()
		var ue *api.UnsupportedFieldError
		if !errors.As(err, &ue) || ue.Field != c.field {
			t.Errorf("%s: decoder error %v, want unsupported field %s", c.name, err, c.field)
		}
	}
}

// TestACSTaskCarriesSecurityOptions: dockerSecurityOptions reach the agent
// as hostConfig.SecurityOpt, which its engine reads.
func TestACSTaskCarriesSecurityOptions(t *testing.T) {
	td := loadECSTaskDefinition(t, "testdata/ecs_taskdef_web_v4.json")
	td.ContainerDefinitions[0].DockerSecurityOptions = []string{"no-new-privileges", "apparmor:web"}
	got, err := acsTask(td, ecsTaskFor(td, nil))
	if err != nil {
		t.Fatal(err)
	}
	s, err := got.Container("app").Settings()
	if err != nil || !slices.Equal(s.HostConfig.SecurityOpt, []string{"no-new-privileges", "apparmor:web"}) {
		t.Fatalf("settings %+v, %v; want SecurityOpt no-new-privileges, apparmor:web", s, err)
	}
}

func emptyNil[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}
