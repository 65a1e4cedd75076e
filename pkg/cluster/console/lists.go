package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// listFilter is a list page's filter, from its query: the rows whose
// fields match are counted, and pageSize of them after After shown.
type listFilter struct {
	// Q is a part of the row's name or id.
	Q string
	// Status is the row's status exactly (a task's last status).
	Status string
	// Group (tasks: "service:api", "family:web") and Instance (tasks: an
	// instance id) match exactly.
	Group, Instance string
	// After is the name or id the page starts after (exclusive).
	After string
}

func filterOf(r *http.Request) listFilter {
	q := r.URL.Query()
	trim := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	return listFilter{Q: trim("q"), Status: trim("status"), Group: trim("group"), Instance: trim("instance"), After: q.Get("after")}
}

// matches reports whether a row with this name or id, status, group and
// instance passes the filter.
func (f listFilter) matches(name, status, group, instance string) bool {
	return strings.Contains(name, f.Q) && (f.Status == "" || f.Status == status) && (f.Group == "" || f.Group == group) &&
		(f.Instance == "" || f.Instance == instance)
}

// next is the query of the page after the one that ends at last.
func (f listFilter) next(last string) string {
	v := url.Values{}
	for k, s := range map[string]string{"q": f.Q, "status": f.Status, "group": f.Group, "instance": f.Instance, "after": last} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v.Encode()
}

// Any reports whether the filter narrows the list.
func (f listFilter) Any() bool {
	return f.Q != "" || f.Status != "" || f.Group != "" || f.Instance != ""
}

// pager collects a filtered list's page: it counts every row that
// matches and keeps pageSize of those after the filter's After.
type pager[T any] struct {
	f     listFilter
	Rows  []T
	Total int
	// NextAfter is the last row's name when more rows follow.
	NextAfter string
	last      string
}

// add offers a matching row whose name orders it in the list.
func (p *pager[T]) add(name string, row func() T) {
	p.Total++
	if p.f.After != "" && name <= p.f.After {
		return
	}
	if len(p.Rows) < pageSize {
		p.Rows = append(p.Rows, row())
		p.last = name
	} else if p.NextAfter == "" {
		p.NextAfter = p.last
	}
}

// listData is a list page: its rows, the filter, and the counts.
type listData[T any] struct {
	Cluster string
	Filter  listFilter
	pager[T]
	// Statuses are the choices of the status filter.
	Statuses []string
	// Path is the list's page; NextHref the link to the page after this
	// one, with the same filter ("" on the last).
	Path, NextHref string
	// ByGroup: the list filters by group and instance too (tasks).
	ByGroup bool
}

func newList[T any](cluster, what string, f listFilter, statuses ...string) listData[T] {
	return listData[T]{Cluster: cluster, Filter: f, pager: pager[T]{f: f}, Statuses: statuses, Path: Prefix + "clusters/" + cluster + "/" + what}
}

// render answers the list page (tmpl) once its rows were read.
func (d *listData[T]) render(s *Server, w http.ResponseWriter, r *http.Request, tmpl, title string) {
	if d.NextAfter != "" {
		d.NextHref = d.Path + "?" + d.Filter.next(d.NextAfter)
	}
	s.render(w, http.StatusOK, tmpl, "layout.html", &page{Title: title, Session: sessionOf(r),
		Crumbs: append(clusterCrumbs(d.Cluster), crumb{Name: tmpl, Href: d.Path}), Data: d})
}

// clusterExists fails with errNotFound for a cluster that does not exist.
func clusterExists(tx store.Tx, cluster string) error {
	_, ok, err := records.Get[records.Cluster](tx, records.Clusters, cluster)
	if err == nil && !ok {
		err = fmt.Errorf("%w: cluster %s", errNotFound, cluster)
	}
	return err
}

// tasksPage lists a cluster's tasks not yet deleted, filtered by a part
// of the id, the last status, the group and the instance.
func (s *Server) tasksPage(w http.ResponseWriter, r *http.Request) {
	cluster := r.PathValue("cluster")
	f := filterOf(r)
	var d listData[taskRow]
	err := s.o.Store.View(func(tx store.Tx) error {
		d = newList[taskRow](cluster, "tasks", f, "PROVISIONING", "PENDING", "ACTIVATING", "RUNNING", "DEACTIVATING", "STOPPING",
			"DEPROVISIONING", "STOPPED")
		d.ByGroup = true
		if err := clusterExists(tx, cluster); err != nil {
			return err
		}
		return records.EachActiveTask(tx, cluster, func(key string, a *records.ActiveTask) error {
			id, instance := strings.TrimPrefix(key, records.ClusterPrefix(cluster)), arn.ResourceID(a.InstanceArn)
			if f.matches(id, a.LastStatus, a.Group, instance) {
				d.add(id, func() taskRow {
					return taskRow{ID: id, LastStatus: a.LastStatus, DesiredStatus: a.DesiredStatus, Group: a.Group, Instance: instance}
				})
			}
			return nil
		})
	})
	if s.viewFailed(w, r, "tasks page", err) {
		return
	}
	d.render(s, w, r, "tasks", "Tasks of "+cluster)
}

// servicesPage lists a cluster's services, filtered by a part of the
// name and the status.
func (s *Server) servicesPage(w http.ResponseWriter, r *http.Request) {
	cluster := r.PathValue("cluster")
	f := filterOf(r)
	var d listData[serviceRow]
	err := s.o.Store.View(func(tx store.Tx) error {
		d = newList[serviceRow](cluster, "services", f, "ACTIVE", "DRAINING", "INACTIVE")
		if err := clusterExists(tx, cluster); err != nil {
			return err
		}
		counts, _, err := countTasks(tx, cluster, nil)
		if err != nil {
			return err
		}
		return records.Each(tx, records.Services, records.ClusterPrefix(cluster), func(sv *records.Service) error {
			if f.matches(sv.Name(), aws.ToString(sv.Service.Status), "", "") {
				d.add(sv.Name(), func() serviceRow { return newServiceRow(sv, counts) })
			}
			return nil
		})
	})
	if s.viewFailed(w, r, "services page", err) {
		return
	}
	d.render(s, w, r, "services", "Services of "+cluster)
}

// instancesPage lists a cluster's container instances, filtered by a
// part of the id and the status.
func (s *Server) instancesPage(w http.ResponseWriter, r *http.Request) {
	cluster := r.PathValue("cluster")
	f := filterOf(r)
	var d listData[instanceRow]
	err := s.o.Store.View(func(tx store.Tx) error {
		d = newList[instanceRow](cluster, "instances", f, "ACTIVE", "DRAINING", "INACTIVE")
		if err := clusterExists(tx, cluster); err != nil {
			return err
		}
		_, perInstance, err := countTasks(tx, cluster, nil)
		if err != nil {
			return err
		}
		return records.Each(tx, records.Instances, records.ClusterPrefix(cluster), func(in *records.Instance) error {
			id := arn.ResourceID(aws.ToString(in.Instance.ContainerInstanceArn))
			if f.matches(id, in.Status(), "", "") {
				d.add(id, func() instanceRow { return newInstanceRow(in, perInstance) })
			}
			return nil
		})
	})
	if s.viewFailed(w, r, "instances page", err) {
		return
	}
	d.render(s, w, r, "instances", "Container instances of "+cluster)
}
