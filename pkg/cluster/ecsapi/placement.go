package ecsapi

import (
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/scheduler"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// failureList collects RunTask failures, one per instance and reason.
type failureList struct {
	seen map[string]bool
	out  []types.Failure
	// attributeDetail explains an ATTRIBUTE failure: the attributes the
	// task requires.
	attributeDetail string
}

// requiredDetail is the detail of an ATTRIBUTE failure for req.
func requiredDetail(req *scheduler.Request) string {
	var parts []string
	for _, a := range req.Required {
		if a.Value != nil {
			parts = append(parts, a.Name+"="+*a.Value)
		} else {
			parts = append(parts, a.Name)
		}
	}
	return "The task requires the instance attributes " + strings.Join(parts, ", ") +
		" (ecs.cpu-architecture and ecs.os-type or ecs.os-family come from the task definition's runtimePlatform)."
}

func (f *failureList) add(ms []scheduler.Misfit) {
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	for _, m := range ms {
		if k := m.Arn + "|" + m.Reason; !f.seen[k] {
			f.seen[k] = true
			fl := types.Failure{Arn: aws.String(m.Arn), Reason: aws.String(m.Reason)}
			if m.Reason == scheduler.ReasonAttribute && f.attributeDetail != "" {
				fl.Detail = aws.String(f.attributeDetail)
			}
			f.out = append(f.out, fl)
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
func (s *Server) filterInstances(tx store.Tx, cluster string, recs []*records.Instance, filter string) ([]*records.Instance, error) {
	if filter == "" {
		return recs, nil
	}
	e, err := scheduler.Parse(filter)
	if err != nil {
		return nil, invalidParam("%v", err)
	}
	views, err := s.opts.Launcher.Views(tx, cluster, recs)
	if err != nil {
		return nil, err
	}
	var out []*records.Instance
	for i, rec := range recs {
		if e.Eval(views[i]) {
			out = append(out, rec)
		}
	}
	return out, nil
}
