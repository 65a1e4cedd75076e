package console

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// pageSize is how many rows a list shows at once; the next rows are a
// link away (?after=), so a page costs the same with 10 tasks or 10,000.
const pageSize = 100

// eventsShown is how many of a service's events its page shows.
const eventsShown = 20

// taskCounts are the running and pending tasks among some active ones, as
// DescribeServices and DescribeClusters count them: a task told to stop
// counts no more.
type taskCounts struct{ Running, Pending int }

func (c *taskCounts) add(lastStatus, desiredStatus string) {
	switch {
	case desiredStatus == "STOPPED" || lastStatus == "STOPPED":
	case lastStatus == "RUNNING":
		c.Running++
	default:
		c.Pending++
	}
}

type clusterRow struct {
	Name, Status     string
	Services         int
	Instances        int
	Running, Pending int
}

func (s *Server) clustersPage(w http.ResponseWriter, r *http.Request) {
	var rows []clusterRow
	err := s.o.Store.View(func(tx store.Tx) error {
		rows = nil
		return records.Each(tx, records.Clusters, "", func(c *records.Cluster) error {
			row := clusterRow{Name: aws.ToString(c.Cluster.ClusterName), Status: aws.ToString(c.Cluster.Status)}
			if err := records.Each(tx, records.Services, records.ClusterPrefix(row.Name), func(sv *records.Service) error {
				if aws.ToString(sv.Service.Status) == "ACTIVE" {
					row.Services++
				}
				return nil
			}); err != nil {
				return err
			}
			if err := records.Each(tx, records.Instances, records.ClusterPrefix(row.Name), func(in *records.Instance) error {
				if st := in.Status(); st == "ACTIVE" || st == "DRAINING" {
					row.Instances++
				}
				return nil
			}); err != nil {
				return err
			}
			var counts taskCounts
			if err := records.EachActiveTask(tx, row.Name, func(_ string, a *records.ActiveTask) error {
				counts.add(a.LastStatus, a.DesiredStatus)
				return nil
			}); err != nil {
				return err
			}
			row.Running, row.Pending = counts.Running, counts.Pending
			rows = append(rows, row)
			return nil
		})
	})
	if err != nil {
		s.internalError(w, fmt.Errorf("clusters page: %w", err))
		return
	}
	s.render(w, http.StatusOK, "clusters", "layout.html", &page{Title: "Clusters", Session: sessionOf(r),
		Crumbs: []crumb{{Name: "Clusters", Href: Prefix}}, Data: rows})
}

type serviceRow struct {
	Name, Status, TaskDefinition string
	Desired                      int32
	taskCounts
}

type instanceRow struct {
	ID, Status, AgentVersion                          string
	Connected                                         bool
	CPU, Memory, RemainingCPU, RemainingMemory, Tasks int64
}

// taskRow is a task in a list, from the active tasks' index.
type taskRow struct {
	ID, LastStatus, DesiredStatus, Group, Instance string
}

type clusterData struct {
	Name      string
	Services  []serviceRow
	Instances []instanceRow
	Tasks     []taskRow
	// TasksTotal counts the cluster's active tasks; NextTasks is the
	// ?after= of the tasks list's next page ("" when all are shown).
	TasksTotal int
	NextTasks  string
	// ServicesTotal and InstancesTotal count all (the page shows the
	// first pageSize).
	ServicesTotal, InstancesTotal int
}

func clusterCrumbs(cluster string) []crumb {
	return []crumb{{Name: "Clusters", Href: Prefix}, {Name: cluster, Href: Prefix + "clusters/" + cluster}}
}

// errNotFound is a page whose record does not exist (404).
var errNotFound = errors.New("not found")

// countTasks walks the cluster's active-task index once: the running and
// pending tasks of each group, and the tasks not stopped of each
// instance (by ARN); each, when not nil, sees every task too.
func countTasks(tx store.Tx, cluster string, each func(key string, a *records.ActiveTask)) (map[string]*taskCounts, map[string]int64, error) {
	counts := map[string]*taskCounts{}
	perInstance := map[string]int64{}
	err := records.EachActiveTask(tx, cluster, func(key string, a *records.ActiveTask) error {
		c := counts[a.Group]
		if c == nil {
			c = &taskCounts{}
			counts[a.Group] = c
		}
		c.add(a.LastStatus, a.DesiredStatus)
		if a.Unstopped() {
			perInstance[a.InstanceArn]++
		}
		if each != nil {
			each(key, a)
		}
		return nil
	})
	return counts, perInstance, err
}

func newServiceRow(sv *records.Service, counts map[string]*taskCounts) serviceRow {
	row := serviceRow{Name: sv.Name(), Status: aws.ToString(sv.Service.Status), Desired: sv.Service.DesiredCount,
		TaskDefinition: arn.ResourceID(aws.ToString(sv.Service.TaskDefinition))}
	if c := counts[sv.Group()]; c != nil {
		row.taskCounts = *c
	}
	return row
}

func newInstanceRow(in *records.Instance, perInstance map[string]int64) instanceRow {
	ci := in.Instance
	row := instanceRow{ID: arn.ResourceID(aws.ToString(ci.ContainerInstanceArn)), Status: in.Status(), Connected: ci.AgentConnected,
		CPU: records.ResourceInt(ci.RegisteredResources, "CPU"), Memory: records.ResourceInt(ci.RegisteredResources, "MEMORY"),
		Tasks: perInstance[aws.ToString(ci.ContainerInstanceArn)]}
	if ci.VersionInfo != nil {
		row.AgentVersion = aws.ToString(ci.VersionInfo.AgentVersion)
	}
	row.RemainingCPU, row.RemainingMemory = row.CPU-in.UsedCPU, row.Memory-in.UsedMemory
	return row
}

// clusterPage shows the first pageSize of a cluster's services, instances
// and tasks (the list pages page and filter them all).
func (s *Server) clusterPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("cluster")
	var d clusterData
	err := s.o.Store.View(func(tx store.Tx) error {
		d = clusterData{Name: name}
		if err := clusterExists(tx, name); err != nil {
			return err
		}
		counts, perInstance, err := countTasks(tx, name, func(key string, a *records.ActiveTask) {
			d.TasksTotal++
			if len(d.Tasks) < pageSize {
				d.Tasks = append(d.Tasks, taskRow{ID: strings.TrimPrefix(key, records.ClusterPrefix(name)), LastStatus: a.LastStatus,
					DesiredStatus: a.DesiredStatus, Group: a.Group, Instance: arn.ResourceID(a.InstanceArn)})
			} else if d.NextTasks == "" {
				d.NextTasks = d.Tasks[len(d.Tasks)-1].ID
			}
		})
		if err != nil {
			return err
		}
		if err := records.Each(tx, records.Services, records.ClusterPrefix(name), func(sv *records.Service) error {
			d.ServicesTotal++
			if len(d.Services) < pageSize {
				d.Services = append(d.Services, newServiceRow(sv, counts))
			}
			return nil
		}); err != nil {
			return err
		}
		return records.Each(tx, records.Instances, records.ClusterPrefix(name), func(in *records.Instance) error {
			d.InstancesTotal++
			if len(d.Instances) < pageSize {
				d.Instances = append(d.Instances, newInstanceRow(in, perInstance))
			}
			return nil
		})
	})
	if s.viewFailed(w, r, "cluster page", err) {
		return
	}
	s.render(w, http.StatusOK, "cluster", "layout.html", &page{Title: "Cluster " + name, Session: sessionOf(r), Crumbs: clusterCrumbs(name), Data: &d})
}

// viewFailed answers a failed page read: 404 for a missing record, 500
// otherwise. It reports whether err was one.
func (s *Server) viewFailed(w http.ResponseWriter, r *http.Request, what string, err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errNotFound) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return true
	}
	s.internalError(w, fmt.Errorf("%s %s: %w", what, r.URL.Path, err))
	return true
}

type deploymentRow struct {
	ID, Status, TaskDefinition, Rollout, RolloutReason string
	Desired                                            int32
	taskCounts
	Created *time.Time
}

type serviceTask struct {
	taskRow
	Deployment string
	Health     string
	StartedAt  *time.Time
}

type serviceData struct {
	Cluster, Name, Status, TaskDefinition string
	Desired                               int32
	taskCounts
	Deployments []deploymentRow
	Events      []types.ServiceEvent
	Tasks       []serviceTask
	// TasksTotal counts the service's active tasks; the page shows the
	// first pageSize.
	TasksTotal int
	// Graphs is set when the endpoint keeps metrics (the page draws them).
	Graphs bool
	// LoadBalancers are the service's target groups; Targets their
	// targets with their health.
	LoadBalancers []serviceLB
	Targets       []targetRow
	// Scaling is the service's Application Auto Scaling (nil when the
	// endpoint has none).
	Scaling *scalingData
	// Revisions are the ACTIVE revisions of the service's task definition
	// family ("app:3"), newest first: the choices of its update.
	Revisions []string
}

// targetRow is a registered target of a target group with its health:
// State, the reason code and its description.
type targetRow struct {
	TargetGroup                        lbLink
	Target, State, Reason, Description string
}

// serviceLB is one of a service's load balancers entries: a target group
// and the container port it sends traffic to.
type serviceLB struct {
	TargetGroup lbLink
	Container   string
	Port        int32
}

// serviceTargetGroups returns the service's load balancers entries and
// the target groups they name (each once, those that exist).
func serviceTargetGroups(tx store.Tx, sv *records.Service) ([]serviceLB, []*records.TargetGroup, error) {
	var lbs []serviceLB
	var groups []*records.TargetGroup
	seen := map[string]bool{}
	for _, lb := range sv.Service.LoadBalancers {
		id := records.LBResourceID(aws.ToString(lb.TargetGroupArn))
		if id == "" {
			continue
		}
		tg, ok, err := records.Get[records.TargetGroup](tx, records.TargetGroups, id)
		if err != nil {
			return nil, nil, err
		}
		link := lbLink{ID: id, Name: id}
		if ok {
			link = tgLink(tg)
		}
		lbs = append(lbs, serviceLB{TargetGroup: link, Container: aws.ToString(lb.ContainerName), Port: aws.ToInt32(lb.ContainerPort)})
		if ok && !seen[id] {
			seen[id] = true
			groups = append(groups, tg)
		}
	}
	return lbs, groups, nil
}

// serviceTargets returns the service's load balancers entries and the
// live targets of its target groups with their health.
func serviceTargets(tx store.Tx, sv *records.Service, now time.Time) ([]serviceLB, []targetRow, error) {
	lbs, groups, err := serviceTargetGroups(tx, sv)
	if err != nil {
		return nil, nil, err
	}
	var rows []targetRow
	for _, tg := range groups {
		targets, err := groupTargets(tx, tg, now)
		if err != nil {
			return nil, nil, err
		}
		rows = append(rows, targets...)
	}
	return lbs, rows, nil
}

// activeRevisions returns the ACTIVE revisions of the family of the task
// definition taskDefinition ("family:revision"), newest first.
func activeRevisions(tx store.Tx, taskDefinition string) ([]string, error) {
	family, _, ok := strings.Cut(taskDefinition, ":")
	if !ok {
		return nil, nil
	}
	var revs []int32
	err := records.Each(tx, records.TaskDefinitions, family+":", func(td *records.TaskDefinition) error {
		if td.TaskDefinition.Status == types.TaskDefinitionStatusActive {
			revs = append(revs, td.TaskDefinition.Revision)
		}
		return nil
	})
	slices.Sort(revs)
	slices.Reverse(revs)
	out := make([]string, len(revs))
	for i, r := range revs {
		out[i] = fmt.Sprintf("%s:%d", family, r)
	}
	return out, err
}

// loadService reads what a service's page shows.
func (s *Server) loadService(cluster, name string) (*serviceData, error) {
	var d *serviceData
	err := s.o.Store.View(func(tx store.Tx) error {
		sv, ok, err := records.Get[records.Service](tx, records.Services, records.ServiceKey(cluster, name))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: service %s in cluster %s", errNotFound, name, cluster)
		}
		d = &serviceData{Cluster: cluster, Name: name, Status: aws.ToString(sv.Service.Status),
			TaskDefinition: arn.ResourceID(aws.ToString(sv.Service.TaskDefinition)), Desired: sv.Service.DesiredCount}
		byDeployment := map[string]*taskCounts{}
		var keys []string
		if err := records.EachActiveTask(tx, cluster, func(key string, a *records.ActiveTask) error {
			if a.Group == sv.Group() && a.Unstopped() {
				keys = append(keys, key)
			}
			return nil
		}); err != nil {
			return err
		}
		d.TasksTotal = len(keys)
		for _, key := range keys {
			t, ok, err := records.Get[records.Task](tx, records.Tasks, key)
			if err != nil || !ok {
				return err
			}
			last, desired := aws.ToString(t.Task.LastStatus), aws.ToString(t.Task.DesiredStatus)
			d.add(last, desired)
			dep := aws.ToString(t.Task.StartedBy)
			if byDeployment[dep] == nil {
				byDeployment[dep] = &taskCounts{}
			}
			byDeployment[dep].add(last, desired)
			if len(d.Tasks) < pageSize {
				d.Tasks = append(d.Tasks, serviceTask{taskRow: taskRow{ID: arn.ResourceID(aws.ToString(t.Task.TaskArn)), LastStatus: last,
					DesiredStatus: desired, Instance: arn.ResourceID(aws.ToString(t.Task.ContainerInstanceArn))},
					Deployment: dep, Health: string(t.Task.HealthStatus), StartedAt: t.Task.StartedAt})
			}
		}
		for _, dp := range sv.Service.Deployments {
			row := deploymentRow{ID: aws.ToString(dp.Id), Status: aws.ToString(dp.Status), TaskDefinition: arn.ResourceID(aws.ToString(dp.TaskDefinition)),
				Rollout: string(dp.RolloutState), RolloutReason: aws.ToString(dp.RolloutStateReason), Desired: dp.DesiredCount, Created: dp.CreatedAt}
			if c := byDeployment[row.ID]; c != nil {
				row.taskCounts = *c
			}
			d.Deployments = append(d.Deployments, row)
		}
		d.Events = slices.Clone(sv.Service.Events[:min(len(sv.Service.Events), eventsShown)])
		if d.Revisions, err = activeRevisions(tx, d.TaskDefinition); err != nil {
			return err
		}
		d.LoadBalancers, d.Targets, err = serviceTargets(tx, sv, s.o.Now())
		return err
	})
	return d, err
}

func serviceCrumbs(cluster, name string) []crumb {
	return append(clusterCrumbs(cluster), crumb{Name: name, Href: Prefix + "clusters/" + cluster + "/services/" + name})
}

// servicePage renders a service's page, or only its live part for htmx's
// polling (?part=live).
func (s *Server) servicePage(w http.ResponseWriter, r *http.Request) {
	cluster, name := r.PathValue("cluster"), r.PathValue("service")
	d, err := s.loadService(cluster, name)
	if s.viewFailed(w, r, "service page", err) {
		return
	}
	d.Graphs = s.o.Metrics != nil
	if s.o.Scaling != nil {
		if d.Scaling, err = s.loadScaling(r, cluster, name); err != nil {
			s.internalError(w, fmt.Errorf("service page %s: %w", r.URL.Path, err))
			return
		}
	}
	s.renderPage(w, r, "service", &page{Title: "Service " + name, Session: sessionOf(r), Crumbs: serviceCrumbs(cluster, name), Data: d})
}

type containerRow struct {
	Name, LastStatus, Reason, Health, Image string
	// Logs is set when the container's lines go to the log store.
	Logs     bool
	ExitCode *int32
	Bindings []types.NetworkBinding
}

type taskData struct {
	Cluster, ID, LastStatus, DesiredStatus, TaskDefinition, Group, Instance, StoppedReason, Health string
	StartedAt, StoppedAt                                                                           *time.Time
	Containers                                                                                     []containerRow
	// Service is the service the task belongs to ("" for a standalone
	// task).
	Service string
	// Host is the instance's address (its berth.host-address attribute),
	// which network bindings link to; "" when the agent did not say.
	Host string
}

func (s *Server) loadTask(cluster, id string) (*taskData, error) {
	var d *taskData
	err := s.o.Store.View(func(tx store.Tx) error {
		t, err := getTask(tx, cluster, id)
		if err != nil {
			return err
		}
		tk := t.Task
		d = &taskData{Cluster: cluster, ID: id, LastStatus: aws.ToString(tk.LastStatus), DesiredStatus: aws.ToString(tk.DesiredStatus),
			TaskDefinition: arn.ResourceID(aws.ToString(tk.TaskDefinitionArn)), Group: aws.ToString(tk.Group),
			Instance: arn.ResourceID(aws.ToString(tk.ContainerInstanceArn)), StoppedReason: aws.ToString(tk.StoppedReason),
			Health: string(tk.HealthStatus), StartedAt: tk.StartedAt, StoppedAt: tk.StoppedAt}
		d.Service, _ = strings.CutPrefix(d.Group, "service:")
		if d.Service == d.Group {
			d.Service = ""
		}
		in, ok, err := records.Get[records.Instance](tx, records.Instances, records.InstanceKey(cluster, d.Instance))
		if err != nil {
			return err
		}
		if ok {
			d.Host = in.HostAddress()
		}
		var targets map[string]logTarget
		if s.o.Logs != nil {
			if targets, err = taskLogTargets(tx, t, id); err != nil {
				return err
			}
		}
		for _, c := range tk.Containers {
			_, logs := targets[aws.ToString(c.Name)]
			d.Containers = append(d.Containers, containerRow{Name: aws.ToString(c.Name), LastStatus: aws.ToString(c.LastStatus), Logs: logs,
				Reason: aws.ToString(c.Reason), Health: string(c.HealthStatus), Image: aws.ToString(c.Image), ExitCode: c.ExitCode,
				Bindings: c.NetworkBindings})
		}
		return nil
	})
	return d, err
}

// getTask reads a task's record; errNotFound when there is none.
func getTask(tx store.Tx, cluster, id string) (*records.Task, error) {
	t, ok, err := records.Get[records.Task](tx, records.Tasks, records.TaskKey(cluster, id))
	if err == nil && !ok {
		err = fmt.Errorf("%w: task %s in cluster %s", errNotFound, id, cluster)
	}
	return t, err
}

func (s *Server) taskPage(w http.ResponseWriter, r *http.Request) {
	cluster, id := r.PathValue("cluster"), r.PathValue("task")
	d, err := s.loadTask(cluster, id)
	if s.viewFailed(w, r, "task page", err) {
		return
	}
	crumbs := clusterCrumbs(cluster)
	if d.Service != "" {
		crumbs = serviceCrumbs(cluster, d.Service)
	}
	crumbs = append(crumbs, crumb{Name: "task " + id, Href: Prefix + "clusters/" + cluster + "/tasks/" + id})
	s.renderPage(w, r, "task", &page{Title: "Task " + id, Session: sessionOf(r), Crumbs: crumbs, Data: d})
}
