package api

import (
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/scheduler"
	"github.com/berth-dev/berth/pkg/cluster/store"

	"github.com/berth-dev/berth/pkg/api/arn"
)

// placementSet is a cluster's ACTIVE instances as the scheduler sees them,
// in registration order, with the groups of their unstopped tasks.
type placementSet struct {
	records []*instanceRecord
	placer  *scheduler.Placer
}

// unstopped reports whether a task still holds (or will hold) its place.
func unstopped(t *taskRecord) bool {
	return aws.ToString(t.Task.LastStatus) != "STOPPED" && aws.ToString(t.Task.DesiredStatus) != "STOPPED"
}

// loadPlacementSet reads the cluster's ACTIVE instances and counts their
// tasks per group. Unless requireAgent is false, an instance without a
// connected agent is marked unavailable (reason AGENT).
func (s *Server) loadPlacementSet(tx store.Tx, cluster string) (*placementSet, error) {
	recs, err := activeInstances(tx, cluster)
	if err != nil {
		return nil, err
	}
	ps := &placementSet{records: recs, placer: &scheduler.Placer{Rand: s.opts.Rand}}
	byArn := map[string]*scheduler.Instance{}
	for _, rec := range recs {
		in := s.schedulerInstance(rec)
		byArn[in.Arn] = in
		ps.placer.Instances = append(ps.placer.Instances, in)
	}
	err = eachRecord(tx, store.Tasks, cluster+"/", func(t *taskRecord) error {
		in := byArn[aws.ToString(t.Task.ContainerInstanceArn)]
		if in == nil || !unstopped(t) {
			return nil
		}
		in.Groups[aws.ToString(t.Task.Group)]++
		if aws.ToString(t.Task.LastStatus) == "RUNNING" {
			in.RunningTasks++
		}
		return nil
	})
	return ps, err
}

// schedulerInstance is the scheduler's view of one instance record.
func (s *Server) schedulerInstance(rec *instanceRecord) *scheduler.Instance {
	in := rec.candidate()
	in.ID = arn.ResourceID(in.Arn)
	in.EC2InstanceID = aws.ToString(rec.Instance.Ec2InstanceId)
	in.Attributes = map[string]string{}
	for _, a := range rec.Instance.Attributes {
		in.Attributes[aws.ToString(a.Name)] = aws.ToString(a.Value)
	}
	in.AgentConnected = rec.Instance.AgentConnected
	if rec.Instance.VersionInfo != nil {
		in.AgentVersion = aws.ToString(rec.Instance.VersionInfo.AgentVersion)
	}
	in.RegisteredAt = aws.ToTime(rec.Instance.RegisteredAt)
	in.Groups = map[string]int{}
	if s.opts.RequireConnectedAgent && !rec.Instance.AgentConnected {
		in.Unavailable = scheduler.ReasonAgent
	}
	return in
}

// placementRequest builds the scheduler's request for a task of td from the
// task definition's constraints and required attributes and the caller's
// constraints and strategies (defaultStrategies when none are given).
func placementRequest(td *types.TaskDefinition, d scheduler.Demand, group string, cons []types.PlacementConstraint,
	strats []types.PlacementStrategy, defaultStrategies []scheduler.Strategy) (*scheduler.Request, error) {
	r := &scheduler.Request{Demand: d, Group: group, Strategies: defaultStrategies}
	if len(td.PlacementConstraints)+len(cons) > scheduler.MaxConstraints {
		return nil, invalidParam("A maximum of %d placement constraints (task definition and request together) may be given.", scheduler.MaxConstraints)
	}
	for _, c := range td.PlacementConstraints {
		pc, err := scheduler.ParseConstraint(string(c.Type), aws.ToString(c.Expression))
		if err != nil {
			return nil, invalidParam("%v", err)
		}
		r.Constraints = append(r.Constraints, pc)
	}
	for _, c := range cons {
		pc, err := scheduler.ParseConstraint(string(c.Type), aws.ToString(c.Expression))
		if err != nil {
			return nil, invalidParam("%v", err)
		}
		r.Constraints = append(r.Constraints, pc)
	}
	if len(strats) > 0 {
		var ts, fs []string
		for _, s := range strats {
			ts, fs = append(ts, string(s.Type)), append(fs, aws.ToString(s.Field))
		}
		parsed, err := scheduler.ParseStrategies(ts, fs)
		if err != nil {
			return nil, invalidParam("%v", err)
		}
		r.Strategies = parsed
	}
	for _, a := range td.RequiresAttributes {
		r.Required = append(r.Required, scheduler.RequiredAttribute{Name: aws.ToString(a.Name), Value: a.Value})
	}
	return r, nil
}

// failureList collects RunTask failures, one per instance and reason.
type failureList struct {
	seen map[string]bool
	out  []types.Failure
}

func (f *failureList) add(ms []scheduler.Misfit) {
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	for _, m := range ms {
		if k := m.Arn + "|" + m.Reason; !f.seen[k] {
			f.seen[k] = true
			f.out = append(f.out, types.Failure{Arn: aws.String(m.Arn), Reason: aws.String(m.Reason)})
		}
	}
}

// validateTaskDefConstraints refuses what ECS refuses in a task definition:
// distinctInstance (ClientException), bad types and malformed expressions.
func validateTaskDefConstraints(cs []types.TaskDefinitionPlacementConstraint) error {
	if len(cs) > scheduler.MaxConstraints {
		return clientException("A maximum of %d placement constraints may be given.", scheduler.MaxConstraints)
	}
	for _, c := range cs {
		if c.Type == "distinctInstance" {
			return clientException("The distinctInstance placement constraint is not supported in task definitions; give it when running the task or creating the service.")
		}
		if _, err := scheduler.ParseConstraint(string(c.Type), aws.ToString(c.Expression)); err != nil {
			var se *scheduler.SyntaxError
			if errors.As(err, &se) {
				return invalidParam("%v", err)
			}
			return clientException("%v", err)
		}
	}
	return nil
}

// filterInstances returns the records the filter expression matches (all
// when filter is empty); task:group and runningTasksCount see their tasks.
func (s *Server) filterInstances(tx store.Tx, cluster string, recs []*instanceRecord, filter string) ([]*instanceRecord, error) {
	if filter == "" {
		return recs, nil
	}
	e, err := scheduler.Parse(filter)
	if err != nil {
		return nil, invalidParam("%v", err)
	}
	byArn := map[string]*scheduler.Instance{}
	views := make([]*scheduler.Instance, len(recs))
	for i, rec := range recs {
		views[i] = s.schedulerInstance(rec)
		byArn[views[i].Arn] = views[i]
	}
	err = eachRecord(tx, store.Tasks, cluster+"/", func(t *taskRecord) error {
		if in := byArn[aws.ToString(t.Task.ContainerInstanceArn)]; in != nil && unstopped(t) {
			in.Groups[aws.ToString(t.Task.Group)]++
			if aws.ToString(t.Task.LastStatus) == "RUNNING" {
				in.RunningTasks++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []*instanceRecord
	for i, rec := range recs {
		if e.Eval(views[i]) {
			out = append(out, rec)
		}
	}
	return out, nil
}
