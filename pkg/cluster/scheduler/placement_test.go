package scheduler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// fleet returns n instances with 4096 CPU and 8192 MiB, zones a, b, c in
// turn, ids i0, i1, ...
func fleet(n int) []*Instance {
	out := make([]*Instance, n)
	for i := range out {
		out[i] = &Instance{
			Arn: fmt.Sprintf("i%d", i), ID: fmt.Sprintf("i%d", i),
			RemainingCPU: 4096, RemainingMemory: 8192,
			Attributes: map[string]string{"ecs.availability-zone": string(rune('a' + i%3))},
			Groups:     map[string]int{},
		}
	}
	return out
}

func mustStrategies(t *testing.T, spec ...string) []Strategy {
	t.Helper()
	var types, fields []string
	for i := 0; i < len(spec); i += 2 {
		types, fields = append(types, spec[i]), append(fields, spec[i+1])
	}
	s, err := ParseStrategies(types, fields)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func placeN(t *testing.T, p *Placer, r *Request, n int) []string {
	t.Helper()
	var got []string
	for i := 0; i < n; i++ {
		idx, misfits := p.Place(r)
		if idx < 0 {
			got = append(got, fmt.Sprintf("fail%v", misfits))
			continue
		}
		got = append(got, p.Instances[idx].Arn)
	}
	return got
}

func counts(arns []string) map[string]int {
	out := map[string]int{}
	for _, a := range arns {
		out[a]++
	}
	return out
}

func TestStrategies(t *testing.T) {
	cases := []struct {
		name  string
		setup func([]*Instance)
		strat []string
		n     int
		check func(t *testing.T, got []string, ins []*Instance)
	}{
		{
			name: "binpack memory fills the fullest instance first",
			setup: func(ins []*Instance) {
				ins[1].RemainingMemory = 1024 // least left: packed first
				ins[2].RemainingMemory = 2048
			},
			strat: []string{"binpack", "memory"}, n: 6,
			check: func(t *testing.T, got []string, _ []*Instance) {
				want := []string{"i1", "i1", "i2", "i2", "i2", "i2"}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("placements %v, want %v", got, want)
				}
			},
		},
		{
			name:  "binpack cpu",
			setup: func(ins []*Instance) { ins[3].RemainingCPU = 20 },
			strat: []string{"binpack", "cpu"}, n: 3,
			check: func(t *testing.T, got []string, _ []*Instance) {
				if got[0] != "i3" || got[1] != "i3" || got[2] == "i3" {
					t.Errorf("placements %v, want i3 twice then elsewhere", got)
				}
			},
		},
		{
			name:  "spread instanceId evens tasks out",
			strat: []string{"spread", "instanceId"}, n: 12,
			check: func(t *testing.T, got []string, _ []*Instance) {
				for a, n := range counts(got) {
					if n != 2 {
						t.Errorf("instance %s has %d tasks, want 2 (%v)", a, n, got)
					}
				}
			},
		},
		{
			name:  "spread host",
			setup: func(ins []*Instance) { ins[0].EC2InstanceID = "h" },
			strat: []string{"spread", "host"}, n: 6,
			check: func(t *testing.T, got []string, _ []*Instance) {
				if len(counts(got)) != 6 {
					t.Errorf("placements %v, want one per host", got)
				}
			},
		},
		{
			name: "spread zone counts existing group tasks",
			setup: func(ins []*Instance) {
				ins[0].Groups["g"] = 2 // zone a already has 2
			},
			strat: []string{"spread", "attribute:ecs.availability-zone"}, n: 4,
			check: func(t *testing.T, got []string, ins []*Instance) {
				zones := map[string]int{}
				for _, in := range ins {
					zones[in.Attributes["ecs.availability-zone"]] += in.Groups["g"]
				}
				if !reflect.DeepEqual(zones, map[string]int{"a": 2, "b": 2, "c": 2}) {
					t.Errorf("tasks per zone %v after %v, want 2/2/2", zones, got)
				}
			},
		},
		{
			name:  "spread zone then instanceId is even at both levels",
			strat: []string{"spread", "attribute:ecs.availability-zone", "spread", "instanceId"}, n: 6,
			check: func(t *testing.T, got []string, _ []*Instance) {
				if len(counts(got)) != 6 {
					t.Errorf("placements %v, want one per instance", got)
				}
			},
		},
		{
			name:  "spread zone then binpack memory packs within each zone",
			setup: func(ins []*Instance) { ins[3].RemainingMemory = 4096 }, // zone a: i3 fuller than i0
			strat: []string{"spread", "attribute:ecs.availability-zone", "binpack", "memory"}, n: 3,
			check: func(t *testing.T, got []string, _ []*Instance) {
				c := counts(got)
				if c["i3"] != 1 || c["i0"] != 0 {
					t.Errorf("placements %v, want zone a's task on i3", got)
				}
			},
		},
		{
			name:  "random uses every instance eventually",
			strat: []string{"random", ""}, n: 200,
			check: func(t *testing.T, got []string, _ []*Instance) {
				if len(counts(got)) != 6 {
					t.Errorf("random used %d instances, want 6", len(counts(got)))
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ins := fleet(6)
			if c.setup != nil {
				c.setup(ins)
			}
			p := &Placer{Instances: ins, Rand: rand.New(rand.NewPCG(1, 2))}
			r := &Request{Demand: Demand{CPU: 10, Memory: 512}, Group: "g", Strategies: mustStrategies(t, c.strat...)}
			if c.name == "random uses every instance eventually" {
				r.Demand = Demand{CPU: 1, Memory: 1}
			}
			c.check(t, placeN(t, p, r, c.n), ins)
		})
	}
}

func TestFailureReasonsInECSOrder(t *testing.T) {
	ins := fleet(7)
	ins[0].Unavailable = ReasonAgent
	ins[1].RemainingCPU = 1
	ins[2].RemainingMemory = 1
	ins[3].UsedTCP = map[int]bool{80: true}
	ins[4].UsedUDP = map[int]bool{53: true}
	delete(ins[5].Attributes, "ecs.availability-zone")
	ins[6].Attributes["ecs.availability-zone"] = "z"
	required := RequiredAttribute{Name: "ecs.availability-zone"}
	mo, err := ParseConstraint("memberOf", "attribute:ecs.availability-zone != z")
	if err != nil {
		t.Fatal(err)
	}
	p := &Placer{Instances: ins, Rand: rand.New(rand.NewPCG(1, 2))}
	idx, misfits := p.Place(&Request{Demand: Demand{CPU: 100, Memory: 100, TCPPorts: []int{80}, UDPPorts: []int{53}},
		Required: []RequiredAttribute{required}, Constraints: []Constraint{mo}, Group: "g"})
	want := []Misfit{{"i0", ReasonAgent}, {"i1", ReasonCPU}, {"i2", ReasonMemory}, {"i3", ReasonPorts},
		{"i4", ReasonUDP}, {"i5", ReasonAttribute}, {"i6", ReasonMemberOf}}
	if idx != -1 || !reflect.DeepEqual(misfits, want) {
		t.Fatalf("Place = %d %v, want -1 %v", idx, misfits, want)
	}
}

func TestDistinctInstanceAndGroups(t *testing.T) {
	ins := fleet(3)
	ins[0].Groups["family:other"] = 1 // another group does not count
	di, err := ParseConstraint("distinctInstance", "")
	if err != nil {
		t.Fatal(err)
	}
	p := &Placer{Instances: ins, Rand: rand.New(rand.NewPCG(3, 4))}
	r := &Request{Demand: Demand{CPU: 1, Memory: 1}, Group: "family:web", Constraints: []Constraint{di}}
	got := placeN(t, p, r, 4)
	sort.Strings(got[:3])
	if !reflect.DeepEqual(got[:3], []string{"i0", "i1", "i2"}) {
		t.Fatalf("first three placements %v, want one per instance", got)
	}
	if want := fmt.Sprint("fail", []Misfit{{"i0", ReasonDistinct}, {"i1", ReasonDistinct}, {"i2", ReasonDistinct}}); got[3] != want {
		t.Fatalf("fourth placement %s, want %s", got[3], want)
	}
	// A task of another group may still go anywhere.
	r2 := &Request{Demand: Demand{CPU: 1, Memory: 1}, Group: "family:db", Constraints: []Constraint{di}}
	if idx, m := p.Place(r2); idx < 0 {
		t.Fatalf("other group refused: %v", m)
	}
	// memberOf on task:group: only next to the web tasks' instances.
	mo, err := ParseConstraint("memberOf", "task:group == family:other")
	if err != nil {
		t.Fatal(err)
	}
	if idx, _ := p.Place(&Request{Demand: Demand{CPU: 1, Memory: 1}, Group: "x", Constraints: []Constraint{mo}}); idx != 0 {
		t.Fatalf("task:group memberOf placed on %d, want 0", idx)
	}
}

func TestParseStrategiesAndConstraints(t *testing.T) {
	bad := [][2][]string{
		{{"binpack"}, {"disk"}},
		{{"spread"}, {"zone"}},
		{{"spread"}, {"attribute:"}},
		{{"random"}, {"cpu"}},
		{{"roundrobin"}, {""}},
		{{"random", "random", "random", "random", "random", "random"}, {"", "", "", "", "", ""}},
	}
	for _, b := range bad {
		if _, err := ParseStrategies(b[0], b[1]); err == nil {
			t.Errorf("ParseStrategies(%v, %v) succeeded, want an error", b[0], b[1])
		}
	}
	if _, err := ParseConstraint("distinctInstance", "x == y"); err == nil {
		t.Error("distinctInstance with an expression accepted")
	}
	if _, err := ParseConstraint("sameZone", ""); err == nil {
		t.Error("unknown constraint type accepted")
	}
	if _, err := ParseConstraint("memberOf", "attribute:x =="); err == nil {
		t.Error("malformed memberOf accepted")
	}
}

func TestScaleInPerStrategy(t *testing.T) {
	setup := func() (*Placer, []TaskRef) {
		ins := fleet(3) // zones a, b, c
		p := &Placer{Instances: ins, Rand: rand.New(rand.NewPCG(5, 6))}
		// zone a: 3 tasks, b: 2, c: 1; i0 fullest in memory.
		var tasks []TaskRef
		for i, n := range []int{3, 2, 1} {
			for j := 0; j < n; j++ {
				d := Demand{CPU: 10, Memory: int64(1024 * (3 - i))}
				Take(ins[i], d)
				ins[i].Groups["service:s"]++
				tasks = append(tasks, TaskRef{ID: fmt.Sprintf("t%d%d", i, j), Instance: i, Demand: d})
			}
		}
		return p, tasks
	}
	cases := []struct {
		strat []string
		n     int
		want  map[string]int // tasks left per instance
	}{
		{[]string{"spread", "attribute:ecs.availability-zone"}, 3, map[string]int{"i0": 1, "i1": 1, "i2": 1}},
		{[]string{"spread", "instanceId"}, 1, map[string]int{"i0": 2, "i1": 2, "i2": 1}},
		// i2 has the most memory left (8192-1024), then i1: binpack empties them.
		{[]string{"binpack", "memory"}, 2, map[string]int{"i0": 3, "i1": 1, "i2": 0}},
	}
	for _, c := range cases {
		p, tasks := setup()
		chosen := p.ScaleIn(tasks, "service:s", mustStrategies(t, c.strat...), c.n)
		if len(chosen) != c.n {
			t.Fatalf("%v: chose %d tasks, want %d", c.strat, len(chosen), c.n)
		}
		got := map[string]int{}
		for _, in := range p.Instances {
			got[in.Arn] = in.Groups["service:s"]
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v scale-in by %d leaves %v, want %v", c.strat, c.n, got, c.want)
		}
	}
}

// TestCountsTasks: a request needs the instances' task counts exactly when
// a strategy or constraint looks at them, so RunTask's default (random,
// no constraints) and attribute-only constraints place from the instance
// records alone.
func TestCountsTasks(t *testing.T) {
	memberOf := func(expr string) Constraint {
		c, err := ParseConstraint("memberOf", expr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name string
		r    Request
		want bool
	}{
		{"random", Request{Strategies: []Strategy{{Type: "random"}}}, false},
		{"binpack", Request{Strategies: []Strategy{{Type: "binpack", Field: "memory"}}}, false},
		{"spread", Request{Strategies: []Strategy{{Type: "binpack", Field: "cpu"}, {Type: "spread", Field: "instanceId"}}}, true},
		{"distinctInstance", Request{Constraints: []Constraint{{Type: "distinctInstance"}}}, true},
		{"memberOf attributes", Request{Constraints: []Constraint{memberOf("attribute:stack == prod and agentConnected == true")}}, false},
		{"memberOf runningTasksCount", Request{Constraints: []Constraint{memberOf("attribute:stack == prod or runningTasksCount < 3")}}, true},
		{"memberOf task:group under not", Request{Constraints: []Constraint{memberOf("not(task:group == web)")}}, true},
	}
	for _, c := range cases {
		if got := c.r.CountsTasks(); got != c.want {
			t.Errorf("%s: CountsTasks = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestPlaceCachedMatchesEqualEvaluated: a Placer evaluates a memberOf
// expression that reads no tasks once per instance and reuses the result;
// its decisions (and its misfits once the fleet is full) are the same as
// those of a Placer evaluating the expression for every placement, with
// the same seeded ties, over a mixed fleet and a mix of constraints.
func TestPlaceCachedMatchesEqualEvaluated(t *testing.T) {
	mixed := func() []*Instance {
		f := fleet(30)
		for i, in := range f {
			in.Attributes["stack"] = []string{"prod", "dev", "prod"}[i%3]
			in.AgentConnected = i%7 != 0
			in.RemainingMemory = int64(512 * (1 + i%4))
		}
		return f
	}
	exprs := []string{"attribute:stack == prod and agentConnected == true", "not(attribute:ecs.availability-zone == b)"}
	var cons []Constraint
	for _, e := range exprs {
		c, err := ParseConstraint("memberOf", e)
		if err != nil {
			t.Fatal(err)
		}
		cons = append(cons, c)
	}
	cons = append(cons, Constraint{Type: "distinctInstance"})
	uncached := make([]Constraint, len(cons))
	copy(uncached, cons)
	for i := range uncached {
		uncached[i].Source = "" // no source: evaluated every time
	}
	strats := mustStrategies(t, "spread", "attribute:ecs.availability-zone", "binpack", "memory")
	for _, withDistinct := range []bool{false, true} {
		n := len(cons)
		if !withDistinct {
			n--
		}
		a := &Placer{Instances: mixed(), Rand: rand.New(rand.NewPCG(1, 2))}
		b := &Placer{Instances: mixed(), Rand: rand.New(rand.NewPCG(1, 2))}
		ra := &Request{Demand: Demand{CPU: 10, Memory: 256}, Group: "g", Constraints: cons[:n], Strategies: strats}
		rb := &Request{Demand: Demand{CPU: 10, Memory: 256}, Group: "g", Constraints: uncached[:n], Strategies: strats}
		got, want := placeN(t, a, ra, 100), placeN(t, b, rb, 100)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("distinctInstance %v: cached placements\n%v\nwant (evaluated each time)\n%v", withDistinct, got, want)
		}
		if len(a.matches) != len(exprs) {
			t.Errorf("cached %d expressions, want %d", len(a.matches), len(exprs))
		}
		if last := got[len(got)-1]; !strings.HasPrefix(last, "fail") {
			t.Errorf("distinctInstance %v: the fleet never filled (last %s); the misfits were not compared", withDistinct, last)
		}
	}
}
