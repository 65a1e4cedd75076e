package cluster_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// zoneLab is a cluster "z" with three instances in zones a, b and c, each
// with 1024 CPU and 1024 MiB, and a task definition "small" (128 CPU, 128 MiB).
type zoneLab struct {
	admin *ecs.Client
	inst  []string          // ARNs, zone a, b, c
	zone  map[string]string // ARN → zone
}

func buildZoneLab(t *testing.T, re *runningEndpoint) *zoneLab {
	t.Helper()
	ctx := context.Background()
	l := &zoneLab{admin: re.admin(), zone: map[string]string{}}
	if _, err := l.admin.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("z")}); err != nil {
		t.Fatal(err)
	}
	registerSmall(t, l.admin, "small", nil)
	for _, z := range []string{"a", "b", "c"} {
		id, secret := newKey(t, re.ep, auth.RoleAgent)
		out, err := re.client(id, secret).RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{
			Cluster: aws.String("z"), TotalResources: resources(1024, 1024),
			Attributes:  []types.Attribute{{Name: aws.String("ecs.availability-zone"), Value: aws.String(z)}},
			VersionInfo: &types.VersionInfo{AgentVersion: aws.String("1.2.3")},
		})
		if err != nil {
			t.Fatal(err)
		}
		arn := aws.ToString(out.ContainerInstance.ContainerInstanceArn)
		l.inst = append(l.inst, arn)
		l.zone[arn] = z
	}
	return l
}

func registerSmall(t *testing.T, c *ecs.Client, family string, edit func(*ecs.RegisterTaskDefinitionInput)) {
	t.Helper()
	in := &ecs.RegisterTaskDefinitionInput{
		Family: aws.String(family),
		ContainerDefinitions: []types.ContainerDefinition{{
			Name: aws.String("app"), Image: aws.String("busybox"), Cpu: 128, Memory: aws.Int32(128), Essential: aws.Bool(true),
		}},
	}
	if edit != nil {
		edit(in)
	}
	if _, err := c.RegisterTaskDefinition(context.Background(), in); err != nil {
		t.Fatalf("register %s: %v", family, err)
	}
}

func (l *zoneLab) zones(tasks []types.Task) string {
	var zs []string
	for _, tk := range tasks {
		zs = append(zs, l.zone[aws.ToString(tk.ContainerInstanceArn)])
	}
	sort.Strings(zs)
	return strings.Join(zs, "")
}

func reasons(fs []types.Failure) string {
	var rs []string
	for _, f := range fs {
		rs = append(rs, aws.ToString(f.Reason))
	}
	sort.Strings(rs)
	return strings.Join(rs, "|")
}

func TestRunTaskPlacementThroughTheAPI(t *testing.T) {
	re := startEndpoint(t, t.TempDir())
	ctx := context.Background()
	admin := re.admin()
	if _, err := admin.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("z")}); err != nil {
		t.Fatal(err)
	}
	registerSmall(t, admin, "small", nil)
	_, err := admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("z"), TaskDefinition: aws.String("small")})
	if errorCode(err) != "InvalidParameterException" || !strings.Contains(err.Error(), "No Container Instances were found in your cluster.") {
		t.Fatalf("RunTask on an empty cluster: %v", err)
	}
	l := buildZoneLab(t, re)
	spread := []types.PlacementStrategy{{Type: "spread", Field: aws.String("attribute:ecs.availability-zone")}}
	memberOf := func(e string) []types.PlacementConstraint {
		return []types.PlacementConstraint{{Type: "memberOf", Expression: aws.String(e)}}
	}
	cases := []struct {
		name       string
		in         ecs.RunTaskInput
		wantZones  string
		wantReason string
		wantErr    string
	}{
		{name: "spread by zone", in: ecs.RunTaskInput{Count: aws.Int32(6), PlacementStrategy: spread}, wantZones: "aabbcc"},
		{name: "memberOf zone b", in: ecs.RunTaskInput{Count: aws.Int32(3), PlacementConstraints: memberOf("attribute:ecs.availability-zone == b")}, wantZones: "bbb"},
		{name: "memberOf in list with spread", in: ecs.RunTaskInput{Count: aws.Int32(4), PlacementStrategy: spread,
			PlacementConstraints: memberOf("attribute:ecs.availability-zone in [a, 'c']")}, wantZones: "aacc"},
		{name: "memberOf nobody", in: ecs.RunTaskInput{PlacementConstraints: memberOf("attribute:ecs.availability-zone == d")},
			wantReason: "MemberOf placement constraint unsatisfied.|MemberOf placement constraint unsatisfied.|MemberOf placement constraint unsatisfied."},
		{name: "distinctInstance places 3 of 4", in: ecs.RunTaskInput{Count: aws.Int32(4), Group: aws.String("distinct"),
			PlacementConstraints: []types.PlacementConstraint{{Type: "distinctInstance"}}}, wantZones: "abc",
			wantReason: "DistinctInstance placement constraint unsatisfied.|DistinctInstance placement constraint unsatisfied.|DistinctInstance placement constraint unsatisfied."},
		{name: "malformed expression", in: ecs.RunTaskInput{PlacementConstraints: memberOf("attribute:ecs.availability-zone ==")}, wantErr: "position 35"},
		{name: "six strategies", in: ecs.RunTaskInput{PlacementStrategy: []types.PlacementStrategy{{Type: "random"}, {Type: "random"}, {Type: "random"}, {Type: "random"}, {Type: "random"}, {Type: "random"}}}, wantErr: "at most 5"},
		{name: "bad binpack field", in: ecs.RunTaskInput{PlacementStrategy: []types.PlacementStrategy{{Type: "binpack", Field: aws.String("disk")}}}, wantErr: "cpu or memory"},
	}
	for _, c := range cases {
		in := c.in
		in.Cluster, in.TaskDefinition = aws.String("z"), aws.String("small")
		out, err := l.admin.RunTask(ctx, &in)
		if c.wantErr != "" {
			if errorCode(err) != "InvalidParameterException" || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: error %v, want InvalidParameterException with %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := l.zones(out.Tasks); got != c.wantZones || reasons(out.Failures) != c.wantReason {
			t.Errorf("%s: zones %q failures %q, want %q and %q", c.name, got, reasons(out.Failures), c.wantZones, c.wantReason)
		}
		if c.name == "distinctInstance places 3 of 4" && aws.ToString(out.Tasks[0].Group) != "distinct" {
			t.Errorf("task group %q, want distinct", aws.ToString(out.Tasks[0].Group))
		}
		if c.name == "spread by zone" && aws.ToString(out.Tasks[0].Group) != "family:small" {
			t.Errorf("default task group %q, want family:small", aws.ToString(out.Tasks[0].Group))
		}
	}
}

func TestRunTaskFailureReasons(t *testing.T) {
	re := startEndpoint(t, t.TempDir())
	l := buildZoneLab(t, re)
	ctx := context.Background()
	registerSmall(t, l.admin, "needs-gpu", func(in *ecs.RegisterTaskDefinitionInput) {
		in.ContainerDefinitions[0].Privileged = aws.Bool(true) // requires the privileged-container capability
	})
	registerSmall(t, l.admin, "dns", func(in *ecs.RegisterTaskDefinitionInput) {
		in.ContainerDefinitions[0].PortMappings = []types.PortMapping{{ContainerPort: aws.Int32(53), HostPort: aws.Int32(53), Protocol: types.TransportProtocolUdp}}
	})
	registerSmall(t, l.admin, "huge", func(in *ecs.RegisterTaskDefinitionInput) { in.ContainerDefinitions[0].Cpu = 4096 })
	registerSmall(t, l.admin, "fat", func(in *ecs.RegisterTaskDefinitionInput) { in.ContainerDefinitions[0].Memory = aws.Int32(4096) })
	cases := []struct {
		family string
		count  int32
		want   string // reason, once per instance
		placed int
	}{
		{"needs-gpu", 1, "ATTRIBUTE", 0},
		{"dns", 4, "RESOURCE:PORTS_UDP", 3},
		{"huge", 1, "RESOURCE:CPU", 0},
		{"fat", 1, "RESOURCE:MEMORY", 0},
	}
	for _, c := range cases {
		out, err := l.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("z"), TaskDefinition: aws.String(c.family), Count: aws.Int32(c.count)})
		if err != nil {
			t.Fatalf("%s: %v", c.family, err)
		}
		want := strings.Repeat(c.want+"|", 3)
		if len(out.Tasks) != c.placed || reasons(out.Failures) != want[:len(want)-1] {
			t.Errorf("%s: %d tasks, failures %q; want %d and %q", c.family, len(out.Tasks), reasons(out.Failures), c.placed, want)
		}
		for _, f := range out.Failures {
			if l.zone[aws.ToString(f.Arn)] == "" {
				t.Errorf("%s: failure arn %q is not an instance", c.family, aws.ToString(f.Arn))
			}
		}
	}
	// A task definition may not carry distinctInstance, nor a bad memberOf.
	for _, tc := range []struct {
		c    types.TaskDefinitionPlacementConstraint
		want string
	}{
		{types.TaskDefinitionPlacementConstraint{Type: "distinctInstance"}, "ClientException"},
		{types.TaskDefinitionPlacementConstraint{Type: "memberOf", Expression: aws.String("(x")}, "InvalidParameterException"},
	} {
		_, err := l.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
			Family:               aws.String("bad"),
			ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Memory: aws.Int32(64)}},
			PlacementConstraints: []types.TaskDefinitionPlacementConstraint{tc.c},
		})
		if errorCode(err) != tc.want {
			t.Errorf("task definition with %s constraint: %v, want %s", tc.c.Type, err, tc.want)
		}
	}
	// A task definition's memberOf is ANDed with the request's.
	registerSmall(t, l.admin, "not-a", func(in *ecs.RegisterTaskDefinitionInput) {
		in.PlacementConstraints = []types.TaskDefinitionPlacementConstraint{{Type: "memberOf", Expression: aws.String("attribute:ecs.availability-zone != a")}}
	})
	out, err := l.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("z"), TaskDefinition: aws.String("not-a"), Count: aws.Int32(4),
		PlacementConstraints: []types.PlacementConstraint{{Type: "memberOf", Expression: aws.String("attribute:ecs.availability-zone != c")}}})
	if err != nil || l.zones(out.Tasks) != "bbbb" {
		t.Fatalf("task definition and request constraints together: %v %v, want all on b", l.zones(out.Tasks), err)
	}
}

func TestListContainerInstancesFilter(t *testing.T) {
	re := startEndpoint(t, t.TempDir())
	l := buildZoneLab(t, re)
	ctx := context.Background()
	if _, err := l.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("z"), TaskDefinition: aws.String("small"),
		PlacementConstraints: []types.PlacementConstraint{{Type: "memberOf", Expression: aws.String("attribute:ecs.availability-zone == c")}}}); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"attribute:ecs.availability-zone in [a, b]":         "ab",
		"attribute:ecs.availability-zone =~ '^[bc]$'":       "bc",
		"not attribute:ecs.availability-zone == a":          "bc",
		"task:group == family:small":                        "c",
		"agentVersion >= 1.2.0 and agentConnected == false": "abc",
		"registeredAt > 2000-01-01T00:00:00Z":               "abc",
		"runningTasksCount > 0":                             "",
	}
	for expr, want := range cases {
		out, err := l.admin.ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String("z"), Filter: aws.String(expr)})
		if err != nil {
			t.Errorf("filter %q: %v", expr, err)
			continue
		}
		var zs []string
		for _, a := range out.ContainerInstanceArns {
			zs = append(zs, l.zone[a])
		}
		sort.Strings(zs)
		if got := strings.Join(zs, ""); got != want {
			t.Errorf("filter %q lists zones %q, want %q", expr, got, want)
		}
	}
	_, err := l.admin.ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String("z"), Filter: aws.String("attribute:x ~= y")})
	if errorCode(err) != "InvalidParameterException" || !strings.Contains(err.Error(), "position") {
		t.Fatalf("malformed filter: %v, want InvalidParameterException naming the position", err)
	}
}

func TestAttributeLimits(t *testing.T) {
	re := startEndpoint(t, t.TempDir())
	l := buildZoneLab(t, re)
	ctx := context.Background()
	attrs := func(n int, target string) []types.Attribute {
		var out []types.Attribute
		for i := 0; i < n; i++ {
			out = append(out, types.Attribute{Name: aws.String(fmt.Sprintf("custom-%d", i)), Value: aws.String("v"), TargetId: aws.String(target)})
		}
		return out
	}
	put := func(as []types.Attribute) error {
		_, err := l.admin.PutAttributes(ctx, &ecs.PutAttributesInput{Cluster: aws.String("z"), Attributes: as})
		return err
	}
	if err := put(attrs(10, l.inst[0])); err != nil {
		t.Fatalf("10 custom attributes: %v", err)
	}
	if err := put(attrs(11, l.inst[1])); errorCode(err) != "InvalidParameterException" {
		t.Errorf("11 attributes in one call: %v, want InvalidParameterException", err)
	}
	extra := []types.Attribute{{Name: aws.String("one-more"), TargetId: aws.String(l.inst[0])}}
	if err := put(extra); errorCode(err) != "AttributeLimitExceededException" {
		t.Errorf("11th custom attribute: %v, want AttributeLimitExceededException", err)
	}
	// Overwriting an existing name stays within the limit.
	if err := put(attrs(1, l.inst[0])); err != nil {
		t.Errorf("overwrite: %v", err)
	}
	if err := put(attrs(1, "0123456789abcdef0123456789abcdef")); errorCode(err) != "TargetNotFoundException" {
		t.Errorf("unknown target: %v, want TargetNotFoundException", err)
	}
	for _, a := range []types.Attribute{
		{Name: aws.String("bad name!"), TargetId: aws.String(l.inst[1])},
		{Name: aws.String(strings.Repeat("n", 129)), TargetId: aws.String(l.inst[1])},
		{Name: aws.String("ok"), Value: aws.String(" leading"), TargetId: aws.String(l.inst[1])},
		{Name: aws.String("ok"), Value: aws.String("semi;colon"), TargetId: aws.String(l.inst[1])},
	} {
		if err := put([]types.Attribute{a}); errorCode(err) != "InvalidParameterException" {
			t.Errorf("attribute %q=%q: %v, want InvalidParameterException", aws.ToString(a.Name), aws.ToString(a.Value), err)
		}
	}
	// Custom attributes drive placement.
	if err := put([]types.Attribute{{Name: aws.String("stack"), Value: aws.String("prod"), TargetId: aws.String(l.inst[2])}}); err != nil {
		t.Fatal(err)
	}
	out, err := l.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("z"), TaskDefinition: aws.String("small"), Count: aws.Int32(2),
		PlacementConstraints: []types.PlacementConstraint{{Type: "memberOf", Expression: aws.String("attribute:stack == prod")}}})
	if err != nil || l.zones(out.Tasks) != "cc" {
		t.Fatalf("memberOf a custom attribute: %v %v, want both on c", l.zones(out.Tasks), err)
	}
}
