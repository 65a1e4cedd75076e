package records

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/pkg/api/arn"
)

// NameRE is what ECS allows in cluster, service and family names.
var NameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,255}$`)

// ARNs formats and resolves the ECS ARNs of one endpoint, which names
// every resource in its Region and AccountID:
// arn:aws:ecs:<region>:<account>:cluster/<name>,
// task-definition/<family>:<revision>, container-instance/<cluster>/<id>,
// task/<cluster>/<id>, container/<cluster>/<task id>/<uuid> and
// service/<cluster>/<name>.
type ARNs struct {
	Region    string
	AccountID string
}

func (a ARNs) format(resource string) string {
	return arn.ARN{Partition: "aws", Service: "ecs", Region: a.Region, AccountID: a.AccountID, Resource: resource}.String()
}

// Cluster is a cluster's ARN.
func (a ARNs) Cluster(name string) string { return a.format("cluster/" + name) }

// TaskDefinition is a task definition revision's ARN.
func (a ARNs) TaskDefinition(family string, rev int32) string {
	return a.format("task-definition/" + family + ":" + strconv.Itoa(int(rev)))
}

// Instance is a container instance's ARN.
func (a ARNs) Instance(cluster, id string) string {
	return a.format("container-instance/" + cluster + "/" + id)
}

// Task is a task's ARN.
func (a ARNs) Task(cluster, id string) string { return a.format("task/" + cluster + "/" + id) }

// Container is the ARN of one container of a task.
func (a ARNs) Container(cluster, taskID, id string) string {
	return a.format("container/" + cluster + "/" + taskID + "/" + id)
}

// Service is a service's ARN.
func (a ARNs) Service(cluster, name string) string {
	return a.format("service/" + cluster + "/" + name)
}

// ServiceDeployment is the ARN of a service's deployment deploymentID
// ("ecs-svc/<digits>").
func (a ARNs) ServiceDeployment(cluster, service, deploymentID string) string {
	return a.format("service-deployment/" + cluster + "/" + service + "/" + strings.TrimPrefix(deploymentID, "ecs-svc/"))
}

// ServiceRevision is the ARN of the service revision deployment
// deploymentID deploys.
func (a ARNs) ServiceRevision(cluster, service, deploymentID string) string {
	return a.format("service-revision/" + cluster + "/" + service + "/" + strings.TrimPrefix(deploymentID, "ecs-svc/"))
}

// DeploymentRef resolves this endpoint's service deployment or service
// revision ARN (typ "service-deployment" or "service-revision") to the
// cluster, the service and the deployment id; ok is false otherwise.
func (a ARNs) DeploymentRef(typ, ref string) (cluster, service, deploymentID string, ok bool) {
	resource, own := a.own(ref)
	rest, isTyp := strings.CutPrefix(resource, typ+"/")
	parts := strings.Split(rest, "/")
	if !own || !isTyp || len(parts) != 3 || !NameRE.MatchString(parts[0]) || !NameRE.MatchString(parts[1]) || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], "ecs-svc/" + parts[2], true
}

// IAMUser is the ARN ECS shows as a resource's creator for an access key.
func (a ARNs) IAMUser(accessKeyID string) string {
	return arn.ARN{Partition: "aws", Service: "iam", AccountID: a.AccountID, Resource: "user/" + accessKeyID}.String()
}

// own parses ref as an ECS ARN of this endpoint and returns its resource;
// ok is false for anything else.
func (a ARNs) own(ref string) (resource string, ok bool) {
	p, err := arn.Parse(ref)
	if err != nil || p.Partition != "aws" || p.Service != "ecs" || p.Region != a.Region || p.AccountID != a.AccountID {
		return "", false
	}
	return p.Resource, true
}

// ClusterName resolves a cluster name or ARN; ok is false when no cluster
// of this endpoint can have it.
func (a ARNs) ClusterName(ref string) (string, bool) {
	name := ref
	if strings.HasPrefix(ref, "arn:") {
		resource, own := a.own(ref)
		var isCluster bool
		if name, isCluster = strings.CutPrefix(resource, "cluster/"); !own || !isCluster {
			return "", false
		}
	}
	return name, NameRE.MatchString(name)
}

// ResourceID resolves an id or an ARN of the given type ("task",
// "container-instance", "service") in cluster to its id (a service's name);
// ok is false when an ARN names another type, cluster, region or account.
// Old-style ARNs without the cluster ("task/<id>") are accepted.
func (a ARNs) ResourceID(typ, cluster, ref string) (string, bool) {
	if !strings.HasPrefix(ref, "arn:") {
		return ref, ref != "" && !strings.Contains(ref, "/")
	}
	resource, ok := a.own(ref)
	if !ok {
		return "", false
	}
	rest, ok := strings.CutPrefix(resource, typ+"/")
	if !ok {
		return "", false
	}
	c, id, ok := strings.Cut(rest, "/")
	if !ok {
		// Old-style ARNs without the cluster name.
		return c, c != ""
	}
	return id, c == cluster && id != "" && !strings.Contains(id, "/")
}

// TaskDefinitionRef splits a task definition reference ("family",
// "family:revision" or this endpoint's ARN) into family and revision (0 when
// the reference names none); ok is false when it cannot name one.
func (a ARNs) TaskDefinitionRef(ref string) (family string, rev int32, ok bool) {
	if strings.HasPrefix(ref, "arn:") {
		resource, own := a.own(ref)
		rest, isTD := strings.CutPrefix(resource, "task-definition/")
		if !own || !isTD || !strings.Contains(rest, ":") {
			return "", 0, false
		}
		ref = rest
	}
	family, revStr, hasRev := strings.Cut(ref, ":")
	if !NameRE.MatchString(family) {
		return "", 0, false
	}
	if !hasRev {
		return family, 0, true
	}
	n, err := strconv.ParseInt(revStr, 10, 32)
	if err != nil || n < 1 {
		return "", 0, false
	}
	return family, int32(n), true
}

// The ARNs stored in records name their resources' keys: these read them
// back, whatever region and account the ARN carries.

// clusterScoped splits "<typ>/<cluster>/<id>" ARNs.
func clusterScoped(s, typ string) (cluster, id string, ok bool) {
	p, err := arn.Parse(s)
	if err != nil {
		return "", "", false
	}
	t, path := arn.SplitResource(p.Resource)
	if t != typ || len(path) != 2 || path[0] == "" || path[1] == "" {
		return "", "", false
	}
	return path[0], path[1], true
}

// TaskKeyOf is the key of the task a task ARN names.
func TaskKeyOf(taskArn string) (key string, ok bool) {
	cluster, id, ok := clusterScoped(taskArn, "task")
	return TaskKey(cluster, id), ok
}

// InstanceKeyOf is the key of the container instance an instance ARN names,
// and the cluster it is in.
func InstanceKeyOf(instanceArn string) (key, cluster string, ok bool) {
	cluster, id, ok := clusterScoped(instanceArn, "container-instance")
	return InstanceKey(cluster, id), cluster, ok
}

// ClusterArnOfInstance is the ARN of the cluster a container instance ARN
// names, in the instance ARN's region and account.
func ClusterArnOfInstance(instanceArn string) (string, bool) {
	p, err := arn.Parse(instanceArn)
	if err != nil {
		return "", false
	}
	t, path := arn.SplitResource(p.Resource)
	if t != "container-instance" || len(path) != 2 || path[0] == "" || path[1] == "" {
		return "", false
	}
	p.Resource = "cluster/" + path[0]
	return p.String(), true
}

// TaskDefinitionKeyOf is the key of the revision a task definition ARN
// names.
func TaskDefinitionKeyOf(tdArn string) (string, bool) {
	p, err := arn.Parse(tdArn)
	if err != nil {
		return "", false
	}
	famRev, ok := strings.CutPrefix(p.Resource, "task-definition/")
	family, revStr, ok2 := strings.Cut(famRev, ":")
	rev, err := strconv.ParseInt(revStr, 10, 32)
	if !ok || !ok2 || err != nil {
		return "", false
	}
	return TaskDefinitionKey(family, int32(rev)), true
}
