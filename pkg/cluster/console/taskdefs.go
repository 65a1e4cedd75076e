package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

type familyRow struct {
	Family string
	Latest int32
}

func taskDefinitionCrumbs() []crumb {
	return []crumb{{Name: "Clusters", Href: Prefix}, {Name: "Task definitions", Href: Prefix + "task-definitions"}}
}

// familiesPage lists the task definition families with their latest
// revision.
func (s *Server) familiesPage(w http.ResponseWriter, r *http.Request) {
	var rows []familyRow
	err := s.o.Store.View(func(tx store.Tx) error {
		rows = nil
		return records.Each(tx, records.Families, "", func(f *records.Family) error {
			rows = append(rows, familyRow{Family: f.Family, Latest: f.LatestRevision})
			return nil
		})
	})
	if s.viewFailed(w, r, "task definitions", err) {
		return
	}
	s.render(w, http.StatusOK, "families", "layout.html", &page{Title: "Task definitions", Session: sessionOf(r),
		Crumbs: taskDefinitionCrumbs(), Data: rows})
}

type revisionRow struct {
	Revision   int32
	Status     string
	Containers []string
	Registered *time.Time
}

type familyData struct {
	Family    string
	Revisions []revisionRow
}

// familyPage lists a family's revisions, newest first.
func (s *Server) familyPage(w http.ResponseWriter, r *http.Request) {
	d := familyData{Family: r.PathValue("family")}
	err := s.o.Store.View(func(tx store.Tx) error {
		d.Revisions = nil
		return records.Each(tx, records.TaskDefinitions, d.Family+":", func(td *records.TaskDefinition) error {
			row := revisionRow{Revision: td.TaskDefinition.Revision, Status: string(td.TaskDefinition.Status), Registered: td.TaskDefinition.RegisteredAt}
			for _, c := range td.TaskDefinition.ContainerDefinitions {
				row.Containers = append(row.Containers, aws.ToString(c.Name))
			}
			d.Revisions = append([]revisionRow{row}, d.Revisions...)
			return nil
		})
	})
	if err == nil && len(d.Revisions) == 0 {
		err = fmt.Errorf("%w: task definition family %s", errNotFound, d.Family)
	}
	if s.viewFailed(w, r, "task definition family", err) {
		return
	}
	s.render(w, http.StatusOK, "family", "layout.html", &page{Title: "Task definition " + d.Family, Session: sessionOf(r),
		Crumbs: append(taskDefinitionCrumbs(), crumb{Name: d.Family, Href: Prefix + "task-definitions/" + d.Family}), Data: &d})
}

type revisionData struct {
	Family   string
	Revision int32
	TD       types.TaskDefinition
	// JSON is the revision as DescribeTaskDefinition's member names would
	// show it (the SDK's field names), indented.
	JSON     string
	Clusters []string
}

// revisionPage shows one revision: a readable view of its containers,
// its JSON, and (for an operator who may act) a form to run it.
func (s *Server) revisionPage(w http.ResponseWriter, r *http.Request) {
	family := r.PathValue("family")
	rev, err := strconv.ParseInt(r.PathValue("revision"), 10, 32)
	if err != nil || rev < 1 {
		http.Error(w, "a revision is a number from 1", http.StatusNotFound)
		return
	}
	d := revisionData{Family: family, Revision: int32(rev)}
	err = s.o.Store.View(func(tx store.Tx) error {
		td, ok, err := records.Get[records.TaskDefinition](tx, records.TaskDefinitions, records.TaskDefinitionKey(family, int32(rev)))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: task definition %s:%d", errNotFound, family, rev)
		}
		d.TD = td.TaskDefinition
		d.Clusters = nil
		return records.Each(tx, records.Clusters, "", func(c *records.Cluster) error {
			d.Clusters = append(d.Clusters, aws.ToString(c.Cluster.ClusterName))
			return nil
		})
	})
	if s.viewFailed(w, r, "task definition", err) {
		return
	}
	b, err := json.MarshalIndent(d.TD, "", "  ")
	if err != nil {
		s.internalError(w, fmt.Errorf("task definition %s:%d: %w", family, rev, err))
		return
	}
	d.JSON = string(b)
	name := family + ":" + strconv.Itoa(int(rev))
	s.render(w, http.StatusOK, "revision", "layout.html", &page{Title: "Task definition " + name, Session: sessionOf(r),
		Crumbs: append(taskDefinitionCrumbs(), crumb{Name: family, Href: Prefix + "task-definitions/" + family},
			crumb{Name: name, Href: Prefix + "task-definitions/" + family + "/" + strconv.Itoa(int(rev))}), Data: &d})
}

// runTask runs a revision in a cluster (RunTask): the form's cluster and
// count.
func (s *Server) runTask(w http.ResponseWriter, r *http.Request) {
	family, rev := r.PathValue("family"), r.PathValue("revision")
	cluster := r.PostFormValue("cluster")
	back := Prefix + "task-definitions/" + family + "/" + rev
	count, err := strconv.ParseInt(strings.TrimSpace(r.PostFormValue("count")), 10, 32)
	var fl *flash
	if err != nil {
		fl = &flash{Error: true, Message: fmt.Sprintf("InvalidParameterException: count %q is not a whole number", r.PostFormValue("count"))}
	} else {
		out, err := s.callOut(r, s.o.ECS, "RunTask", map[string]any{"cluster": cluster, "taskDefinition": family + ":" + rev, "count": count,
			"startedBy": "console/" + sessionOf(r).Key.AccessKeyID})
		if err != nil {
			s.internalError(w, err)
			return
		}
		fl = out.flash
		if fl == nil {
			var res struct {
				Tasks    []struct{ TaskArn string } `json:"tasks"`
				Failures []struct{ Arn, Reason string }
			}
			if err := json.Unmarshal(out.body, &res); err != nil {
				s.internalError(w, fmt.Errorf("RunTask: decode output: %w", err))
				return
			}
			msg := fmt.Sprintf("%d task(s) of %s:%s started in %s.", len(res.Tasks), family, rev, cluster)
			for _, f := range res.Failures {
				msg += " Not placed: " + f.Reason + "."
			}
			fl = &flash{Error: len(res.Tasks) == 0, Message: msg}
			if len(res.Tasks) > 0 {
				back = Prefix + "clusters/" + cluster
			}
		}
	}
	s.answerAction(w, r, fl, back)
}
