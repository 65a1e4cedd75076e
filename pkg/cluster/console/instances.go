package console

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

type attributeRow struct{ Name, Value string }

// instanceData is what a container instance's page shows.
type instanceData struct {
	Cluster string
	instanceRow
	EC2InstanceID, DockerVersion, HostAddress string
	RegisteredAt                              *time.Time
	// RegisteredTCP and RegisteredUDP are the host ports the agent
	// reserved at registration; UsedTCP and UsedUDP those taken now
	// (reserved or used by the instance's tasks), as DescribeContainerInstances'
	// remainingResources lists them.
	RegisteredTCP, RegisteredUDP, UsedTCP, UsedUDP string
	Attributes                                     []attributeRow
	// Tasks are the instance's tasks not yet stopped (the first
	// pageSize); TasksTotal counts them all, Running and Pending by
	// status.
	Tasks      []taskRow
	TasksTotal int
	taskCounts
}

// portList is a port set as "22, 2375, 51678", or "none".
func portList(ports []string) string {
	if len(ports) == 0 {
		return "none"
	}
	return strings.Join(ports, ", ")
}

func sortedPorts(set map[int]bool) []string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(set)) {
		out = append(out, strconv.Itoa(p))
	}
	return out
}

func instanceCrumbs(cluster, id string) []crumb {
	return append(clusterCrumbs(cluster), crumb{Name: "instance " + id, Href: Prefix + "clusters/" + cluster + "/instances/" + id})
}

func (s *Server) loadInstance(cluster, id string) (*instanceData, error) {
	var d *instanceData
	err := s.o.Store.View(func(tx store.Tx) error {
		in, ok, err := records.Get[records.Instance](tx, records.Instances, records.InstanceKey(cluster, id))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: container instance %s in cluster %s", errNotFound, id, cluster)
		}
		ci := in.Instance
		capacity := in.Capacity()
		d = &instanceData{Cluster: cluster, instanceRow: instanceRow{ID: id, Status: in.Status(), Connected: ci.AgentConnected,
			CPU: records.ResourceInt(ci.RegisteredResources, "CPU"), Memory: records.ResourceInt(ci.RegisteredResources, "MEMORY"),
			RemainingCPU: capacity.RemainingCPU, RemainingMemory: capacity.RemainingMemory},
			EC2InstanceID: aws.ToString(ci.Ec2InstanceId), HostAddress: in.HostAddress(), RegisteredAt: ci.RegisteredAt,
			UsedTCP: portList(sortedPorts(capacity.UsedTCP)), UsedUDP: portList(sortedPorts(capacity.UsedUDP))}
		if ci.VersionInfo != nil {
			d.AgentVersion, d.DockerVersion = aws.ToString(ci.VersionInfo.AgentVersion), aws.ToString(ci.VersionInfo.DockerVersion)
		}
		d.RegisteredTCP, d.RegisteredUDP = "none", "none"
		for _, r := range ci.RegisteredResources {
			set := map[int]bool{}
			for _, p := range r.StringSetValue {
				if n, err := strconv.Atoi(p); err == nil {
					set[n] = true
				}
			}
			switch aws.ToString(r.Name) {
			case "PORTS":
				d.RegisteredTCP = portList(sortedPorts(set))
			case "PORTS_UDP":
				d.RegisteredUDP = portList(sortedPorts(set))
			}
		}
		for _, a := range ci.Attributes {
			d.Attributes = append(d.Attributes, attributeRow{Name: aws.ToString(a.Name), Value: aws.ToString(a.Value)})
		}
		slices.SortFunc(d.Attributes, func(a, b attributeRow) int { return strings.Compare(a.Name, b.Name) })
		instanceArn := aws.ToString(ci.ContainerInstanceArn)
		return records.EachActiveTask(tx, cluster, func(key string, a *records.ActiveTask) error {
			if a.InstanceArn != instanceArn || !a.Unstopped() {
				return nil
			}
			d.add(a.LastStatus, a.DesiredStatus)
			d.TasksTotal++
			if len(d.Tasks) < pageSize {
				d.Tasks = append(d.Tasks, taskRow{ID: strings.TrimPrefix(key, records.ClusterPrefix(cluster)), LastStatus: a.LastStatus,
					DesiredStatus: a.DesiredStatus, Group: a.Group, Instance: arn.ResourceID(a.InstanceArn)})
			}
			return nil
		})
	})
	return d, err
}

func (s *Server) instancePage(w http.ResponseWriter, r *http.Request) {
	cluster, id := r.PathValue("cluster"), r.PathValue("instance")
	d, err := s.loadInstance(cluster, id)
	if s.viewFailed(w, r, "instance page", err) {
		return
	}
	s.renderPage(w, r, "instance", &page{Title: "Instance " + id, Session: sessionOf(r), Crumbs: instanceCrumbs(cluster, id), Data: d})
}
