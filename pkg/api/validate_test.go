package api

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// validTask is a small, valid task that the cases below break one way each.
func validTask() *Task {
	return &Task{
		Arn:           "arn:aws:ecs:us-east-1:000000000000:task/lab/abc",
		DesiredStatus: StatusRunning,
		Volumes: []*Volume{
			{Name: "data", Type: VolumeTypeHost, Host: &HostVolumeProperties{SourcePath: "/srv"}},
			{Name: "scratch", Type: VolumeTypeDocker, DockerVolumeConfiguration: &DockerVolumeConfiguration{Scope: VolumeScopeTask}},
		},
		Containers: []*Container{
			{Name: "db", Image: "db:1", Essential: true,
				PortMappings: []PortMapping{{ContainerPort: 5432, HostPort: 5432}}},
			{Name: "web", Image: "web:1", Essential: true,
				DependsOn:    []ContainerDependency{{ContainerName: "db", Condition: ConditionHealthy}},
				Links:        []string{"db:database"},
				MountPoints:  []MountPoint{{SourceVolume: "data", ContainerPath: "/data"}},
				PortMappings: []PortMapping{{ContainerPort: 80}, {ContainerPort: 53, HostPort: 5432, Protocol: ProtocolUDP}, {ContainerPortRange: "7000-7010"}}},
			{Name: "sidecar", Image: "side:1",
				VolumesFrom: []VolumeFrom{{SourceContainer: "web", ReadOnly: true}}},
		},
	}
}

func TestValidateAcceptsValidTask(t *testing.T) {
	if err := validTask().Validate(); err != nil {
		t.Fatal(err)
	}
	// A stop payload carries container names only; that is valid.
	stop := &Task{Arn: "a", DesiredStatus: StatusStopped, Containers: []*Container{{Name: "app"}, {Name: "shipper"}}}
	if err := stop.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Task)
		want   string
	}{
		{"no arn", func(t *Task) { t.Arn = "" }, "no arn"},
		{"no containers", func(t *Task) { t.Containers = nil }, "no containers"},
		{"unnamed container", func(t *Task) { t.Containers[2].Name = "" }, "container 2 has no name"},
		{"duplicate name", func(t *Task) { t.Containers[2].Name = "web" }, `container "web" appears twice`},
		{"no image", func(t *Task) { t.Containers[0].Image = "" }, `container "db" has no image`},
		{"unknown dependency", func(t *Task) { t.Containers[1].DependsOn[0].ContainerName = "cache" }, `depends on unknown container "cache"`},
		{"self dependency", func(t *Task) { t.Containers[1].DependsOn[0].ContainerName = "web" }, `container "web" depends on itself`},
		{"bad condition", func(t *Task) { t.Containers[1].DependsOn[0].Condition = "READY" }, `unknown condition "READY"`},
		{"cycle", func(t *Task) {
			t.Containers[0].DependsOn = []ContainerDependency{{ContainerName: "sidecar", Condition: ConditionStart}}
		}, "dependency cycle db -> sidecar -> web -> db"},
		{"unknown link", func(t *Task) { t.Containers[1].Links = []string{"cache:c"} }, `links to unknown container "cache"`},
		{"unknown volumesFrom", func(t *Task) { t.Containers[2].VolumesFrom[0].SourceContainer = "x" }, `volumesFrom unknown container "x"`},
		{"unknown volume", func(t *Task) { t.Containers[1].MountPoints[0].SourceVolume = "logs" }, `mounts unknown volume "logs"`},
		{"relative mount", func(t *Task) { t.Containers[1].MountPoints[0].ContainerPath = "data" }, "is not absolute"},
		{"duplicate volume", func(t *Task) { t.Volumes[1].Name = "data" }, `volume "data" appears twice`},
		{"volume type", func(t *Task) { t.Volumes[0].Type = "nfs" }, `unknown type "nfs"`},
		{"volume scope", func(t *Task) { t.Volumes[1].DockerVolumeConfiguration.Scope = "global" }, `unknown scope "global"`},
		{"protocol", func(t *Task) { t.Containers[0].PortMappings[0].Protocol = "sctp" }, `protocol "sctp"`},
		{"container port 0", func(t *Task) { t.Containers[0].PortMappings[0].ContainerPort = 0 }, "containerPort 0 is out of range"},
		{"container port high", func(t *Task) { t.Containers[0].PortMappings[0].ContainerPort = 70000 }, "containerPort 70000"},
		{"host port high", func(t *Task) { t.Containers[0].PortMappings[0].HostPort = 65536 }, "hostPort 65536"},
		{"host port twice", func(t *Task) { t.Containers[1].PortMappings[0].HostPort = 5432 }, `host port 5432/tcp is already used by container "db"`},
		{"bad range", func(t *Task) { t.Containers[1].PortMappings[2].ContainerPortRange = "7010-7000" }, `port range "7010-7000"`},
		{"range with port", func(t *Task) { t.Containers[1].PortMappings[2].ContainerPort = 7000 }, "both containerPort and containerPortRange"},
		{"range with host port", func(t *Task) { t.Containers[1].PortMappings[2].HostPort = 7000 }, "cannot have a hostPort"},
		{"bad arn", func(t *Task) { t.Arn = "arn:aws:ecs:r:1:task/lab/.." }, "does not end in a task ID"},
		{"empty task id", func(t *Task) { t.Arn = "arn:aws:ecs:r:1:task/lab/" }, "does not end in a task ID"},
		{"path in container name", func(t *Task) { t.Containers[2].Name = "../etc" }, `container name "../etc"`},
		{"long container name", func(t *Task) { t.Containers[2].Name = strings.Repeat("a", 256) }, "at most 255"},
		{"path in volume name", func(t *Task) { t.Volumes[1].Name = "a/b"; t.Containers[1].MountPoints = nil }, `volume name "a/b"`},
		{"relative host path", func(t *Task) { t.Volumes[0].Host.SourcePath = "srv" }, `host sourcePath "srv" is not absolute`},
		{"negative timeout", func(t *Task) { t.Containers[0].StopTimeout = -1 }, "negative start or stop timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			task := validTask()
			c.mutate(task)
			err := task.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalidTask) {
				t.Fatalf("Validate() = %v; want an ErrInvalidTask error containing %q", err, c.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	task := validTask()
	task.Arn = ""
	task.Containers[0].Image = ""
	err := task.Validate()
	if err == nil || !strings.Contains(err.Error(), "no arn") || !strings.Contains(err.Error(), `container "db" has no image`) {
		t.Fatalf("Validate() = %v; want both problems", err)
	}
}

func TestTaskID(t *testing.T) {
	for arn, want := range map[string]string{
		"arn:aws:ecs:us-east-1:000000000000:task/lab/3b2f9c1d": "3b2f9c1d",
		"arn:aws:ecs:us-east-1:000000000000:task/3b2f9c1d":     "3b2f9c1d",
		"arn1": "arn1",
		"":     "",
	} {
		if got := (&Task{Arn: arn}).ID(); got != want {
			t.Errorf("ID of %q = %q, want %q", arn, got, want)
		}
	}
}

func TestStartOrder(t *testing.T) {
	order, err := validTask().StartOrder()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"db", "web", "sidecar"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("StartOrder = %v, want %v", order, want)
	}
	// Independent containers keep the task's order; a dependency pulls its
	// target ahead.
	task := &Task{Containers: []*Container{
		{Name: "a", DependsOn: []ContainerDependency{{ContainerName: "c", Condition: ConditionStart}}},
		{Name: "b"},
		{Name: "c"},
	}}
	order, err = task.StartOrder()
	if err != nil || !reflect.DeepEqual(order, []string{"c", "a", "b"}) {
		t.Fatalf("StartOrder = %v, %v; want [c a b]", order, err)
	}
	task.Containers[2].DependsOn = []ContainerDependency{{ContainerName: "a", Condition: ConditionStart}}
	if _, err := task.StartOrder(); err == nil || !strings.Contains(err.Error(), "a -> c -> a") {
		t.Fatalf("cycle not reported: %v", err)
	}
}

func TestParsePortRange(t *testing.T) {
	for in, want := range map[string][2]int{"1-1": {1, 1}, "7000-7010": {7000, 7010}, " 80 - 81 ": {80, 81}} {
		a, b, err := ParsePortRange(in)
		if err != nil || a != want[0] || b != want[1] {
			t.Fatalf("ParsePortRange(%q) = %d, %d, %v", in, a, b, err)
		}
	}
	for _, in := range []string{"", "80", "0-5", "5-70000", "b-a", "9-8"} {
		if _, _, err := ParsePortRange(in); err == nil {
			t.Fatalf("ParsePortRange(%q) succeeded", in)
		}
	}
}
