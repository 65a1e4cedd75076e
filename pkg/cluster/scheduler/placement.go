package scheduler

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Limits ECS puts on a placement request.
const (
	MaxStrategies  = 5
	MaxConstraints = 10
)

// Strategy is one placement strategy: Type binpack (Field cpu or memory),
// spread (instanceId, host or attribute:<name>) or random.
type Strategy struct {
	Type  string
	Field string
}

// Constraint is one placement constraint: distinctInstance, or memberOf with
// a parsed query-language expression.
type Constraint struct {
	Type string
	Expr Expr
	// Source is the expression text, for messages.
	Source string
}

// RequiredAttribute is an attribute the task needs (a task definition's
// requiresAttributes); a nil Value only needs the name.
type RequiredAttribute struct {
	Name  string
	Value *string
}

// Request is one task to place.
type Request struct {
	Demand Demand
	// Group is the task group: the scope of spread and distinctInstance.
	Group       string
	Required    []RequiredAttribute
	Constraints []Constraint
	Strategies  []Strategy
}

// CountsTasks reports whether placing r looks at the instances' tasks
// (their groups or running count): spread, distinctInstance, or a
// memberOf expression on runningTasksCount or task:group. When it does
// not, the instances' records alone (capacity, attributes, agent) decide,
// and the caller need not count every unstopped task of the cluster.
func (r *Request) CountsTasks() bool {
	for _, s := range r.Strategies {
		if s.Type == "spread" {
			return true
		}
	}
	for _, c := range r.Constraints {
		if c.Type == "distinctInstance" || c.Type == "memberOf" && ReadsTasks(c.Expr) {
			return true
		}
	}
	return false
}

// ParseStrategies validates strategy types and fields as ECS does.
func ParseStrategies(types, fields []string) ([]Strategy, error) {
	if len(types) > MaxStrategies {
		return nil, fmt.Errorf("placementStrategy may have at most %d items", MaxStrategies)
	}
	out := make([]Strategy, len(types))
	for i, t := range types {
		f := fields[i]
		switch t {
		case "random":
			if f != "" {
				return nil, fmt.Errorf("the random placement strategy takes no field")
			}
		case "binpack":
			f = strings.ToLower(f)
			if f != "cpu" && f != "memory" {
				return nil, fmt.Errorf("the binpack placement strategy needs field cpu or memory, not %q", fields[i])
			}
		case "spread":
			switch {
			case f == "instanceId", f == "host":
			case strings.HasPrefix(f, "attribute:") && len(f) > len("attribute:"):
			default:
				return nil, fmt.Errorf("the spread placement strategy needs field instanceId, host or attribute:<name>, not %q", f)
			}
		default:
			return nil, fmt.Errorf("unknown placement strategy type %q (binpack, spread or random)", t)
		}
		out[i] = Strategy{Type: t, Field: f}
	}
	return out, nil
}

// ParseConstraint validates one constraint and parses its expression.
func ParseConstraint(typ, expr string) (Constraint, error) {
	switch typ {
	case "distinctInstance":
		if expr != "" {
			return Constraint{}, fmt.Errorf("the distinctInstance placement constraint takes no expression")
		}
		return Constraint{Type: typ}, nil
	case "memberOf":
		e, err := Parse(expr)
		if err != nil {
			return Constraint{}, err
		}
		return Constraint{Type: typ, Expr: e, Source: expr}, nil
	}
	return Constraint{}, fmt.Errorf("unknown placement constraint type %q (distinctInstance or memberOf)", typ)
}

// Check returns "" when the instance can take the task, else the first
// reason it cannot, in ECS's order: agent, resources, attributes,
// constraints.
func Check(in *Instance, r *Request) string { return check(in, r, -1, nil) }

// check is Check with, for memberOf constraints that read no tasks,
// static[k][i] (when static[k] is not nil) standing for
// r.Constraints[k].Expr.Eval(in), in being instance i.
func check(in *Instance, r *Request, i int, static [][]bool) string {
	if in.Unavailable != "" {
		return in.Unavailable
	}
	if reason := Fits(in, r.Demand); reason != "" {
		return reason
	}
	for _, a := range r.Required {
		v, ok := in.Attributes[a.Name]
		if !ok || a.Value != nil && *a.Value != v {
			return ReasonAttribute
		}
	}
	for k, c := range r.Constraints {
		switch c.Type {
		case "memberOf":
			var ok bool
			if k < len(static) && static[k] != nil {
				ok = static[k][i]
			} else {
				ok = c.Expr.Eval(in)
			}
			if !ok {
				return ReasonMemberOf
			}
		case "distinctInstance":
			if in.Groups[r.Group] > 0 {
				return ReasonDistinct
			}
		}
	}
	return ""
}

// Placer places tasks on a set of instances. It keeps each value's task
// count per spread field so that a placement costs O(instances), and it
// evaluates once what placing does not change (memberOf expressions that
// read no tasks, spread values): a service pass or a RunTask of many tasks
// places them all on one Placer. So Instances' attributes, agent fields
// and Unavailable must not change while it is used.
type Placer struct {
	Instances []*Instance
	// Rand breaks ties; tests inject a seeded one.
	Rand *rand.Rand

	// counts caches the tasks per spread value, by field and group, once
	// computed; Place, ScaleIn and Forget keep it current. Change
	// Instances' Groups only through them.
	counts map[spreadKey]map[string]int
	// matches caches, by the source text of a memberOf expression that
	// reads no tasks, whether each instance matches it.
	matches map[string][]bool
	// values caches each instance's value of a spread field.
	values map[string][]string
	// cands is Place's reused candidate list.
	cands []int
}

type spreadKey struct{ field, group string }

// adjust moves the instance's group count by delta, in the cache too.
func (p *Placer) adjust(in *Instance, group string, delta int) {
	if in.Groups == nil {
		in.Groups = map[string]int{}
	}
	if in.Groups[group]+delta < 0 {
		delta = -in.Groups[group]
	}
	in.Groups[group] += delta
	for k, m := range p.counts {
		if k.group == group {
			m[SpreadValue(in, k.field)] += delta
		}
	}
}

// Forget takes one of group's tasks off instance i (it is stopping), so
// spread and distinctInstance no longer count it.
func (p *Placer) Forget(i int, group string) {
	p.adjust(p.Instances[i], group, -1)
}

// staticMatches returns, per constraint of r, the cached matches of a
// memberOf expression that reads no tasks (nil for the others).
func (p *Placer) staticMatches(r *Request) [][]bool {
	var out [][]bool
	for k, c := range r.Constraints {
		if c.Type != "memberOf" || c.Source == "" || ReadsTasks(c.Expr) {
			continue
		}
		m, ok := p.matches[c.Source]
		if !ok || len(m) != len(p.Instances) {
			m = make([]bool, len(p.Instances))
			for i, in := range p.Instances {
				m[i] = c.Expr.Eval(in)
			}
			if p.matches == nil {
				p.matches = map[string][]bool{}
			}
			p.matches[c.Source] = m
		}
		if out == nil {
			out = make([][]bool, len(r.Constraints))
		}
		out[k] = m
	}
	return out
}

// Place picks an instance for r, takes its resources and counts the task in
// its group, and returns its index. When no instance can take it, the index
// is -1 and each instance's reason is returned.
func (p *Placer) Place(r *Request) (int, []Misfit) {
	static := p.staticMatches(r)
	cands := p.cands[:0]
	for i, in := range p.Instances {
		if check(in, r, i, static) == "" {
			cands = append(cands, i)
		}
	}
	p.cands = cands
	if len(cands) == 0 {
		misfits := make([]Misfit, 0, len(p.Instances))
		for i, in := range p.Instances {
			misfits = append(misfits, Misfit{Arn: in.Arn, Reason: check(in, r, i, static)})
		}
		return -1, misfits
	}
	for _, s := range r.Strategies {
		if len(cands) == 1 {
			break
		}
		cands = p.narrow(cands, s, r)
	}
	pick := cands[0]
	if len(cands) > 1 {
		pick = cands[p.Rand.IntN(len(cands))]
	}
	in := p.Instances[pick]
	Take(in, r.Demand)
	p.adjust(in, r.Group, 1)
	in.RunningTasks++
	return pick, nil
}

// narrow keeps the candidates with the best score under s, in cands'
// own array.
func (p *Placer) narrow(cands []int, s Strategy, r *Request) []int {
	switch s.Type {
	case "random":
		return append(cands[:0], cands[p.Rand.IntN(len(cands))])
	case "binpack":
		// Least remaining amount that still fits.
		return best(cands[:0], cands, func(i int) int64 { return p.remaining(i, s.Field) })
	case "spread":
		counts := p.spreadCounts(s.Field, r.Group)
		values := p.spreadValues(s.Field)
		return best(cands[:0], cands, func(i int) int64 { return int64(counts[values[i]]) })
	}
	return cands
}

// spreadValues returns each instance's value of a spread field, computed
// once.
func (p *Placer) spreadValues(field string) []string {
	if v, ok := p.values[field]; ok && len(v) == len(p.Instances) {
		return v
	}
	v := make([]string, len(p.Instances))
	for i, in := range p.Instances {
		v[i] = SpreadValue(in, field)
	}
	if p.values == nil {
		p.values = map[string][]string{}
	}
	p.values[field] = v
	return v
}

func (p *Placer) remaining(i int, field string) int64 {
	if field == "cpu" {
		return p.Instances[i].RemainingCPU
	}
	return p.Instances[i].RemainingMemory
}

// spreadCounts counts the group's tasks per value of field over all
// instances (candidates or not: a zone's tasks count even where no more fit).
func (p *Placer) spreadCounts(field, group string) map[string]int {
	k := spreadKey{field, group}
	if c, ok := p.counts[k]; ok {
		return c
	}
	counts := map[string]int{}
	for _, in := range p.Instances {
		counts[SpreadValue(in, field)] += in.Groups[group]
	}
	if p.counts == nil {
		p.counts = map[spreadKey]map[string]int{}
	}
	p.counts[k] = counts
	return counts
}

// SpreadValue is the instance's value of a spread field; an instance
// without the attribute spreads as its own empty value.
func SpreadValue(in *Instance, field string) string {
	switch field {
	case "instanceId":
		return in.Arn
	case "host":
		return in.Host()
	}
	return in.Attributes[strings.TrimPrefix(field, "attribute:")]
}

// best appends to out the candidates with the lowest score and returns
// it; out may be cands[:0] (it never overtakes the candidate being read).
func best(out, cands []int, score func(int) int64) []int {
	var low int64
	start := len(out)
	for _, c := range cands {
		v := score(c)
		switch {
		case len(out) == start || v < low:
			out, low = append(out[:start], c), v
		case v == low:
			out = append(out, c)
		}
	}
	return out
}

// TaskRef is a running task a scale-in may stop: its index in the Placer's
// instances and its demand.
type TaskRef struct {
	ID       string
	Instance int
	Demand   Demand
}

// ScaleIn picks n of tasks (all of group) to stop, following the strategies
// as ECS does: binpack stops tasks on the instance left with the most free
// resources, spread stops where the field's value has the most tasks, random
// at random; a final tie is random. The chosen tasks' resources are given
// back to their instances. It returns the chosen tasks' indexes in tasks.
func (p *Placer) ScaleIn(tasks []TaskRef, group string, strategies []Strategy, n int) []int {
	alive := make([]int, len(tasks))
	for i := range tasks {
		alive[i] = i
	}
	var chosen []int
	for ; n > 0 && len(alive) > 0; n-- {
		cands := alive
		for _, s := range strategies {
			if len(cands) == 1 {
				break
			}
			switch s.Type {
			case "random":
				cands = []int{cands[p.Rand.IntN(len(cands))]}
			case "binpack":
				cands = best(nil, cands, func(t int) int64 { return -p.remaining(tasks[t].Instance, s.Field) })
			case "spread":
				counts := p.spreadCounts(s.Field, group)
				cands = best(nil, cands, func(t int) int64 {
					return -int64(counts[SpreadValue(p.Instances[tasks[t].Instance], s.Field)])
				})
			}
		}
		pick := cands[0]
		if len(cands) > 1 {
			pick = cands[p.Rand.IntN(len(cands))]
		}
		chosen = append(chosen, pick)
		in := p.Instances[tasks[pick].Instance]
		Release(in, tasks[pick].Demand)
		p.adjust(in, group, -1)
		in.RunningTasks = max(0, in.RunningTasks-1)
		kept := alive[:0:0]
		for _, a := range alive {
			if a != pick {
				kept = append(kept, a)
			}
		}
		alive = kept
	}
	return chosen
}

// Matches reports whether the instance meets r's required attributes and
// constraints, whatever its free resources and agent: the instances a
// DAEMON service should cover.
func Matches(in *Instance, r *Request) bool {
	for _, a := range r.Required {
		v, ok := in.Attributes[a.Name]
		if !ok || a.Value != nil && *a.Value != v {
			return false
		}
	}
	for _, c := range r.Constraints {
		if c.Type == "memberOf" && !c.Expr.Eval(in) {
			return false
		}
	}
	return true
}

// PlaceOn places r on instance i if it can take it (a DAEMON task, or
// StartTask's named instance) and returns "" or the reason it cannot.
func (p *Placer) PlaceOn(i int, r *Request) string {
	in := p.Instances[i]
	if reason := Check(in, r); reason != "" {
		return reason
	}
	Take(in, r.Demand)
	p.adjust(in, r.Group, 1)
	in.RunningTasks++
	return ""
}
