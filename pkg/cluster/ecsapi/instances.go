package ecsapi

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/scheduler"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

func portStrings(set map[int]bool) []string {
	ps := scheduler.SortedPorts(set)
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = strconv.Itoa(p)
	}
	return out
}

// instanceView returns the instance as ECS describes it, with remaining
// resources and task counts.
func instanceView(tx store.Tx, rec *records.Instance) (types.ContainerInstance, error) {
	ci := rec.Instance
	c := rec.Capacity()
	ci.RemainingResources = []types.Resource{
		{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: int32(c.RemainingCPU)},
		{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: int32(c.RemainingMemory)},
		{Name: aws.String("PORTS"), Type: aws.String("STRINGSET"), StringSetValue: portStrings(c.UsedTCP)},
		{Name: aws.String("PORTS_UDP"), Type: aws.String("STRINGSET"), StringSetValue: portStrings(c.UsedUDP)},
	}
	var running, pending int32
	arn := aws.ToString(ci.ContainerInstanceArn)
	err := records.Each(tx, records.Tasks, rec.Cluster+"/", func(t *records.Task) error {
		if aws.ToString(t.Task.ContainerInstanceArn) != arn {
			return nil
		}
		switch aws.ToString(t.Task.LastStatus) {
		case "RUNNING":
			running++
		case "PROVISIONING", "PENDING", "ACTIVATING":
			pending++
		}
		return nil
	})
	ci.RunningTasksCount, ci.PendingTasksCount = running, pending
	if ci.Attributes == nil {
		ci.Attributes = []types.Attribute{}
	}
	return ci, err
}

// loadInstance resolves an id or ARN in cluster. ok is false when it does
// not exist.
func (s *Server) loadInstance(tx store.Tx, cluster, ref string) (*records.Instance, bool, error) {
	id, ok := s.arns.ResourceID("container-instance", cluster, ref)
	if !ok {
		return nil, false, nil
	}
	return records.Get[records.Instance](tx, records.Instances, records.InstanceKey(cluster, id))
}

// mayActOn enforces that an agent key acts only on the instances it registered.
func mayActOn(c *call, rec *records.Instance) error {
	if c.isAgent() && rec.AgentKeyID != c.key.AccessKeyID {
		return accessDenied("User: %s is not authorized to act on container instance %s", c.key.AccessKeyID, aws.ToString(rec.Instance.ContainerInstanceArn))
	}
	return nil
}

func validateResources(rs []types.Resource) error {
	for _, r := range rs {
		switch aws.ToString(r.Name) {
		case "CPU", "MEMORY":
			if r.IntegerValue < 0 || r.LongValue < 0 {
				return invalidParam("Resource %s must not be negative.", aws.ToString(r.Name))
			}
		case "PORTS", "PORTS_UDP":
			for _, p := range r.StringSetValue {
				if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
					return invalidParam("Resource %s has an invalid port %q.", aws.ToString(r.Name), p)
				}
			}
		}
	}
	if records.ResourceInt(rs, "CPU") == 0 || records.ResourceInt(rs, "MEMORY") == 0 {
		return invalidParam("totalResources must include CPU and MEMORY.")
	}
	return nil
}

func (s *Server) registerContainerInstance(c *call, in *ecs.RegisterContainerInstanceInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	if err := validateResources(in.TotalResources); err != nil {
		return nil, err
	}
	if err := validateAttributes(in.Attributes, false); err != nil {
		return nil, err
	}
	doc, err := readIdentityDocument(in.InstanceIdentityDocument)
	if err != nil {
		return nil, err
	}
	out := &ecs.RegisterContainerInstanceOutput{}
	err = s.opts.Store.Update(func(tx store.Tx) error {
		if _, err := activeCluster(tx, cluster); err != nil {
			return err
		}
		var rec *records.Instance
		if ref := aws.ToString(in.ContainerInstanceArn); ref != "" {
			existing, ok, err := s.loadInstance(tx, cluster, ref)
			if err != nil {
				return err
			}
			if !ok {
				return invalidParam("Container instance %s is not registered in cluster %s.", ref, cluster)
			}
			if aws.ToString(existing.Instance.Status) == "INACTIVE" {
				// A deregistered instance stays gone: the operator removed it,
				// and the agent must register as a new instance.
				return invalidParam("Container instance %s is not registered in cluster %s: it was deregistered.", ref, cluster)
			}
			if c.isAgent() && existing.AgentKeyID != c.key.AccessKeyID {
				// After a key rotation the host's new agent key takes over the
				// instance, but only once the key it was bound to is revoked.
				active, err := auth.KeyActive(tx, existing.AgentKeyID)
				if err != nil {
					return err
				}
				if active || existing.AgentKeyID == "" {
					return mayActOn(c, existing)
				}
				existing.AgentKeyID = c.key.AccessKeyID
			}
			rec = existing
		} else {
			id, err := records.NewID()
			if err != nil {
				return err
			}
			rec = &records.Instance{Cluster: cluster}
			rec.Instance = types.ContainerInstance{
				ContainerInstanceArn: aws.String(s.arns.Instance(cluster, id)),
				RegisteredAt:         aws.Time(c.now),
			}
			if c.isAgent() {
				rec.AgentKeyID = c.key.AccessKeyID
			}
		}
		ci := &rec.Instance
		if ci.Status == nil {
			// New; a re-registered instance keeps its status (DRAINING stays).
			ci.Status = aws.String("ACTIVE")
		}
		ci.RegisteredResources = in.TotalResources
		if in.VersionInfo != nil {
			// The upstream agent sends none; its ACS handshake records it
			// (pkg/cluster/acs), and a re-registration keeps that.
			ci.VersionInfo = in.VersionInfo
		}
		ci.Attributes = mergeAttributes(ci.Attributes, in.Attributes)
		if doc != nil {
			ci.Ec2InstanceId = aws.String(doc.InstanceID)
			ci.Attributes = mergeAttributes(ci.Attributes, doc.attributes())
		}
		ci.Tags = in.Tags
		ci.Version++
		if err := records.Put(tx, rec); err != nil {
			return err
		}
		v, err := instanceView(tx, rec)
		out.ContainerInstance = &v
		return err
	})
	if err != nil {
		return nil, err
	}
	c.wake = true
	return out, nil
}

func (s *Server) deregisterContainerInstance(c *call, in *ecs.DeregisterContainerInstanceInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	ref := aws.ToString(in.ContainerInstance)
	if ref == "" {
		return nil, invalidParam("ContainerInstance is required.")
	}
	out := &ecs.DeregisterContainerInstanceOutput{}
	err = s.opts.Store.Update(func(tx store.Tx) error {
		if _, err := activeCluster(tx, cluster); err != nil {
			return err
		}
		rec, ok, err := s.loadInstance(tx, cluster, ref)
		if err != nil {
			return err
		}
		if !ok {
			return invalidParam("The referenced container instance %s was not found.", ref)
		}
		if err := mayActOn(c, rec); err != nil {
			return err
		}
		v, err := instanceView(tx, rec)
		if err != nil {
			return err
		}
		if (v.RunningTasksCount > 0 || v.PendingTasksCount > 0) && !aws.ToBool(in.Force) {
			return invalidParam("The specified container instance has tasks running on it: stop them or use force.")
		}
		rec.Instance.Status = aws.String("INACTIVE")
		rec.Instance.Version++
		if err := records.Put(tx, rec); err != nil {
			return err
		}
		v.Status, v.Version = rec.Instance.Status, rec.Instance.Version
		out.ContainerInstance = &v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Server) listContainerInstances(c *call, in *ecs.ListContainerInstancesInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{"ACTIVE": true, "DRAINING": true}
	if in.Status != "" {
		switch in.Status {
		case types.ContainerInstanceStatusActive, types.ContainerInstanceStatusDraining, "INACTIVE",
			types.ContainerInstanceStatusRegistering, types.ContainerInstanceStatusDeregistering, types.ContainerInstanceStatusRegistrationFailed:
		default:
			return nil, invalidParam("Invalid status %q.", in.Status)
		}
		want = map[string]bool{string(in.Status): true}
	}
	page, next, err := s.listPage(in.MaxResults, in.NextToken, func(tx store.Tx) ([]string, error) {
		if _, err := activeCluster(tx, cluster); err != nil {
			return nil, err
		}
		var recs []*records.Instance
		err := records.Each(tx, records.Instances, cluster+"/", func(rec *records.Instance) error {
			if want[aws.ToString(rec.Instance.Status)] {
				recs = append(recs, rec)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		recs, err = s.filterInstances(tx, cluster, recs, aws.ToString(in.Filter))
		var arns []string
		for _, rec := range recs {
			arns = append(arns, *rec.Instance.ContainerInstanceArn)
		}
		return arns, err
	})
	if err != nil {
		return nil, err
	}
	return &ecs.ListContainerInstancesOutput{ContainerInstanceArns: page, NextToken: next}, nil
}

func (s *Server) describeContainerInstances(c *call, in *ecs.DescribeContainerInstancesInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	if len(in.ContainerInstances) == 0 || len(in.ContainerInstances) > 100 {
		return nil, invalidParam("containerInstances must have between 1 and 100 items.")
	}
	withTags, withHealth := false, false
	for _, f := range in.Include {
		switch f {
		case types.ContainerInstanceFieldTags:
			withTags = true
		case types.ContainerInstanceFieldContainerInstanceHealth:
			withHealth = true
		default:
			return nil, invalidParam("include value %q is not one of TAGS, CONTAINER_INSTANCE_HEALTH.", f)
		}
	}
	out := &ecs.DescribeContainerInstancesOutput{ContainerInstances: []types.ContainerInstance{}}
	err = s.opts.Store.View(func(tx store.Tx) error {
		if _, err := activeCluster(tx, cluster); err != nil {
			return err
		}
		out.Failures, err = lookupEach(in.ContainerInstances, func(ref string) (*records.Instance, bool, error) {
			return s.loadInstance(tx, cluster, ref)
		}, asGiven, func(rec *records.Instance) error {
			v, err := instanceView(tx, rec)
			if err != nil {
				return err
			}
			if !withTags {
				v.Tags = nil
			} else if v.Tags == nil {
				v.Tags = []types.Tag{}
			}
			if withHealth {
				v.HealthStatus = instanceHealth(&v, c.now)
			}
			out.ContainerInstances = append(out.ContainerInstances, v)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// instanceHealth is the health ECS reports for an instance: its agent's
// connection is what the endpoint knows of the container runtime.
func instanceHealth(ci *types.ContainerInstance, now time.Time) *types.ContainerInstanceHealthStatus {
	st := types.InstanceHealthCheckStateInsufficientData
	if ci.AgentConnected {
		st = types.InstanceHealthCheckStateOk
	}
	return &types.ContainerInstanceHealthStatus{
		OverallStatus: st,
		Details: []types.InstanceHealthCheckResult{{
			Type: types.InstanceHealthCheckTypeContainerRuntime, Status: st, LastUpdated: aws.Time(now),
		}},
	}
}

func (s *Server) updateContainerInstancesState(c *call, in *ecs.UpdateContainerInstancesStateInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	if in.Status != types.ContainerInstanceStatusActive && in.Status != types.ContainerInstanceStatusDraining {
		return nil, invalidParam("Container instance status must be ACTIVE or DRAINING.")
	}
	if len(in.ContainerInstances) == 0 || len(in.ContainerInstances) > 10 {
		return nil, invalidParam("containerInstances must have between 1 and 10 items.")
	}
	var out *ecs.UpdateContainerInstancesStateOutput
	err = s.opts.Store.Update(func(tx store.Tx) error {
		out = &ecs.UpdateContainerInstancesStateOutput{ContainerInstances: []types.ContainerInstance{}}
		if _, err := activeCluster(tx, cluster); err != nil {
			return err
		}
		out.Failures, err = lookupEach(in.ContainerInstances, func(ref string) (*records.Instance, bool, error) {
			// A deregistered instance is gone as far as its state goes.
			rec, ok, err := s.loadInstance(tx, cluster, ref)
			return rec, ok && aws.ToString(rec.Instance.Status) != "INACTIVE", err
		}, asGiven, func(rec *records.Instance) error {
			if aws.ToString(rec.Instance.Status) != string(in.Status) {
				rec.Instance.Status = aws.String(string(in.Status))
				rec.Instance.Version++
				if err := records.Put(tx, rec); err != nil {
					return err
				}
			}
			v, err := instanceView(tx, rec)
			if err != nil {
				return err
			}
			out.ContainerInstances = append(out.ContainerInstances, v)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	c.wake = true
	return out, nil
}

// TelemetryPath is where the TCS websocket lives under the endpoint: the
// telemetryEndpoint is the poll endpoint plus this, and agents append /ws.
const TelemetryPath = "/tcs"

func (s *Server) discoverPollEndpoint(c *call, in *ecs.DiscoverPollEndpointInput) (smithy.Serializable, error) {
	ep := s.opts.PollEndpoint
	if ep == "" {
		ep = c.baseURL
	}
	return &ecs.DiscoverPollEndpointOutput{
		Endpoint:               aws.String(ep),
		TelemetryEndpoint:      aws.String(strings.TrimRight(ep, "/") + TelemetryPath),
		ServiceConnectEndpoint: aws.String(ep),
	}, nil
}

// sortedAttributes orders attributes by name for stable output.
func sortedAttributes(as []types.Attribute) []types.Attribute {
	sort.Slice(as, func(i, j int) bool { return aws.ToString(as[i].Name) < aws.ToString(as[j].Name) })
	return as
}

// identityDocument is the part of an EC2 instance identity document ECS
// reads at registration.
type identityDocument struct {
	InstanceID       string `json:"instanceId"`
	AvailabilityZone string `json:"availabilityZone"`
	InstanceType     string `json:"instanceType"`
	ImageID          string `json:"imageId"`
}

// readIdentityDocument parses RegisterContainerInstance's
// instanceIdentityDocument; nil when there is none.
func readIdentityDocument(raw *string) (*identityDocument, error) {
	if raw == nil || strings.TrimSpace(*raw) == "" {
		return nil, nil
	}
	var doc identityDocument
	if err := json.Unmarshal([]byte(*raw), &doc); err != nil {
		return nil, invalidParam("instanceIdentityDocument is not an EC2 instance identity document: %v.", err)
	}
	if doc.InstanceID == "" {
		return nil, invalidParam("instanceIdentityDocument has no instanceId.")
	}
	return &doc, nil
}

// attributes are the ecs.* attributes ECS derives from the document, which
// placement constraints and strategies use.
func (d *identityDocument) attributes() []types.Attribute {
	var out []types.Attribute
	for _, a := range []struct{ name, value string }{
		{"ecs.availability-zone", d.AvailabilityZone}, {"ecs.instance-type", d.InstanceType}, {"ecs.ami-id", d.ImageID},
	} {
		if a.value != "" {
			out = append(out, types.Attribute{Name: aws.String(a.name), Value: aws.String(a.value)})
		}
	}
	return out
}
