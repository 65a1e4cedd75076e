package ecsapi

import (
	"errors"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// operations is the table of every ECS operation served. Operations marked
// agent may be called with an agent key.
func (s *Server) operations() map[string]operation {
	return map[string]operation{
		"CreateCluster":                 op(false, s.createCluster),
		"DeleteCluster":                 op(false, s.deleteCluster),
		"ListClusters":                  op(false, s.listClusters),
		"DescribeClusters":              op(false, s.describeClusters),
		"RegisterTaskDefinition":        op(false, s.registerTaskDefinition),
		"DeregisterTaskDefinition":      op(false, s.deregisterTaskDefinition),
		"DescribeTaskDefinition":        op(false, s.describeTaskDefinition),
		"ListTaskDefinitions":           op(false, s.listTaskDefinitions),
		"ListTaskDefinitionFamilies":    op(false, s.listTaskDefinitionFamilies),
		"RegisterContainerInstance":     op(true, s.registerContainerInstance),
		"DeregisterContainerInstance":   op(true, s.deregisterContainerInstance),
		"ListContainerInstances":        op(false, s.listContainerInstances),
		"DescribeContainerInstances":    op(false, s.describeContainerInstances),
		"UpdateContainerInstancesState": op(false, s.updateContainerInstancesState),
		"PutAttributes":                 op(false, s.putAttributes),
		"ListAttributes":                op(false, s.listAttributes),
		"DeleteAttributes":              op(false, s.deleteAttributes),
		"DiscoverPollEndpoint":          op(true, s.discoverPollEndpoint),
		"RunTask":                       op(false, s.runTask),
		"StartTask":                     op(false, s.startTask),
		"StopTask":                      op(false, s.stopTask),
		"ListTasks":                     op(false, s.listTasks),
		"DescribeTasks":                 op(false, s.describeTasks),
		"SubmitTaskStateChange":         op(true, s.submitTaskStateChange),
		"SubmitContainerStateChange":    op(true, s.submitContainerStateChange),
		"CreateService":                 op(false, s.createService),
		"UpdateService":                 op(false, s.updateService),
		"DeleteService":                 op(false, s.deleteService),
		"DescribeServices":              op(false, s.describeServices),
		"ListServices":                  op(false, s.listServices),
		"DeleteTaskDefinitions":         op(false, s.deleteTaskDefinitions),
		"UpdateCluster":                 op(false, s.updateCluster),
		"UpdateClusterSettings":         op(false, s.updateClusterSettings),
		"PutClusterCapacityProviders":   op(false, s.putClusterCapacityProviders),
		"DescribeServiceDeployments":    op(false, s.describeServiceDeployments),
		"ListServiceDeployments":        op(false, s.listServiceDeployments),
		"DescribeServiceRevisions":      op(false, s.describeServiceRevisions),
		"StopServiceDeployment":         op(false, s.stopServiceDeployment),
		"TagResource":                   op(false, s.tagResource),
		"UntagResource":                 op(false, s.untagResource),
		"ListTagsForResource":           op(false, s.listTagsForResource),
	}
}

// withCounts fills the instance and task counts of a cluster.
func withCounts(tx store.Tx, rec *records.Cluster) (types.Cluster, error) {
	c := rec.Cluster
	name := aws.ToString(c.ClusterName)
	var instances, running, pending int32
	err := records.Each(tx, records.Instances, name+"/", func(in *records.Instance) error {
		if st := aws.ToString(in.Instance.Status); st == "ACTIVE" || st == "DRAINING" {
			instances++
		}
		return nil
	})
	if err != nil {
		return c, err
	}
	err = records.Each(tx, records.Tasks, name+"/", func(t *records.Task) error {
		switch aws.ToString(t.Task.LastStatus) {
		case "RUNNING":
			running++
		case "PROVISIONING", "PENDING", "ACTIVATING":
			pending++
		}
		return nil
	})
	if err != nil {
		return c, err
	}
	var services int32
	err = records.Each(tx, records.Services, name+"/", func(sr *records.Service) error {
		if aws.ToString(sr.Service.Status) == "ACTIVE" {
			services++
		}
		return nil
	})
	if err != nil {
		return c, err
	}
	c.ActiveServicesCount = services
	c.RegisteredContainerInstancesCount = instances
	c.RunningTasksCount = running
	c.PendingTasksCount = pending
	return c, nil
}

func (s *Server) createCluster(c *call, in *ecs.CreateClusterInput) (smithy.Serializable, error) {
	name := aws.ToString(in.ClusterName)
	if name == "" {
		name = "default"
	}
	if !records.NameRE.MatchString(name) {
		return nil, invalidParam("Cluster name can have up to 255 characters: letters (upper and lower case), numbers, underscores and hyphens.")
	}
	if err := validateSettings(in.Settings); err != nil {
		return nil, err
	}
	out := &ecs.CreateClusterOutput{}
	err := s.opts.Store.Update(func(tx store.Tx) error {
		var rec records.Cluster
		err := tx.Get(records.Clusters, name, &rec)
		switch {
		case err == nil && aws.ToString(rec.Cluster.Status) == "ACTIVE":
			// ECS answers a create of an existing cluster with that cluster.
		case err == nil || errors.Is(err, store.ErrNotFound):
			rec.Cluster = types.Cluster{
				ClusterArn:  aws.String(s.arns.Cluster(name)),
				ClusterName: aws.String(name),
				Status:      aws.String("ACTIVE"),
				Tags:        in.Tags,
				Settings:    in.Settings,
			}
			if err := records.Put(tx, &rec); err != nil {
				return err
			}
		default:
			return err
		}
		cl, err := withCounts(tx, &rec)
		out.Cluster = &cl
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Server) deleteCluster(c *call, in *ecs.DeleteClusterInput) (smithy.Serializable, error) {
	if in.Cluster == nil {
		return nil, invalidParam("Cluster is required.")
	}
	name, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	out := &ecs.DeleteClusterOutput{}
	err = s.opts.Store.Update(func(tx store.Tx) error {
		rec, err := activeCluster(tx, name)
		if err != nil {
			return err
		}
		cl, err := withCounts(tx, rec)
		if err != nil {
			return err
		}
		if cl.RegisteredContainerInstancesCount > 0 {
			return clientErr("ClusterContainsContainerInstancesException", "The Cluster cannot be deleted while Container Instances are active or draining.")
		}
		if cl.RunningTasksCount+cl.PendingTasksCount > 0 {
			return clientErr("ClusterContainsTasksException", "The Cluster cannot be deleted while Tasks are active.")
		}
		if cl.ActiveServicesCount > 0 {
			return clientErr("ClusterContainsServicesException", "The Cluster cannot be deleted while Services are active.")
		}
		rec.Cluster.Status = aws.String("INACTIVE")
		if err := records.Put(tx, rec); err != nil {
			return err
		}
		cl.Status = rec.Cluster.Status
		out.Cluster = &cl
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Server) listClusters(c *call, in *ecs.ListClustersInput) (smithy.Serializable, error) {
	page, next, err := s.listPage(in.MaxResults, in.NextToken, func(tx store.Tx) ([]string, error) {
		var arns []string
		err := records.Each(tx, records.Clusters, "", func(rec *records.Cluster) error {
			if aws.ToString(rec.Cluster.Status) == "ACTIVE" {
				arns = append(arns, aws.ToString(rec.Cluster.ClusterArn))
			}
			return nil
		})
		return arns, err
	})
	if err != nil {
		return nil, err
	}
	return &ecs.ListClustersOutput{ClusterArns: page, NextToken: next}, nil
}

func (s *Server) describeClusters(c *call, in *ecs.DescribeClustersInput) (smithy.Serializable, error) {
	refs := in.Clusters
	if len(refs) == 0 {
		refs = []string{"default"}
	}
	if len(refs) > 100 {
		return nil, invalidParam("Clusters can have at most 100 items.")
	}
	include, err := clusterInclude(in.Include)
	if err != nil {
		return nil, err
	}
	out := &ecs.DescribeClustersOutput{Clusters: []types.Cluster{}}
	err = s.opts.Store.View(func(tx store.Tx) error {
		var err error
		out.Failures, err = lookupEach(refs, func(ref string) (*records.Cluster, bool, error) {
			return s.loadCluster(tx, ref)
		}, asGiven, func(rec *records.Cluster) error {
			cl, err := withCounts(tx, rec)
			if err != nil {
				return err
			}
			out.Clusters = append(out.Clusters, include.apply(cl))
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// loadCluster resolves a cluster name or ARN to its record, of any status
// (DescribeClusters shows INACTIVE ones too); ok is false when it names none.
func (s *Server) loadCluster(tx store.Tx, ref string) (*records.Cluster, bool, error) {
	name, err := s.clusterName(aws.String(ref))
	if err != nil {
		// clusterName fails only for a reference no cluster can have.
		return nil, false, nil
	}
	return records.Get[records.Cluster](tx, records.Clusters, name)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// clusterFields is what DescribeClusters' include asks for beyond the
// members ECS always returns.
type clusterFields map[types.ClusterField]bool

// clusterInclude validates DescribeClusters' include.
func clusterInclude(in []types.ClusterField) (clusterFields, error) {
	f := clusterFields{}
	for _, v := range in {
		switch v {
		case types.ClusterFieldTags, types.ClusterFieldSettings, types.ClusterFieldStatistics,
			types.ClusterFieldConfigurations, types.ClusterFieldAttachments:
			f[v] = true
		default:
			return nil, invalidParam("include value %q is not one of ATTACHMENTS, CONFIGURATIONS, SETTINGS, STATISTICS, TAGS.", v)
		}
	}
	return f, nil
}

// apply leaves out of cl the members include did not ask for, and fills
// the ones it asked for as ECS does (an empty list rather than none).
func (f clusterFields) apply(cl types.Cluster) types.Cluster {
	if !f[types.ClusterFieldTags] {
		cl.Tags = nil
	} else if cl.Tags == nil {
		cl.Tags = []types.Tag{}
	}
	if !f[types.ClusterFieldSettings] {
		cl.Settings = nil
	} else if cl.Settings == nil {
		cl.Settings = []types.ClusterSetting{}
	}
	if !f[types.ClusterFieldConfigurations] {
		cl.Configuration = nil
	}
	if f[types.ClusterFieldAttachments] {
		cl.Attachments = []types.Attachment{}
		cl.AttachmentsStatus = nil
	}
	if f[types.ClusterFieldStatistics] {
		cl.Statistics = []types.KeyValuePair{
			{Name: aws.String("runningEC2TasksCount"), Value: aws.String(strconv.Itoa(int(cl.RunningTasksCount)))},
			{Name: aws.String("pendingEC2TasksCount"), Value: aws.String(strconv.Itoa(int(cl.PendingTasksCount)))},
			{Name: aws.String("activeEC2ServiceCount"), Value: aws.String(strconv.Itoa(int(cl.ActiveServicesCount)))},
		}
	}
	return cl
}
