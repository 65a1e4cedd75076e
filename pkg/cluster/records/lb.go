package records

import (
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The buckets of the Elastic Load Balancing v2 records. Load balancers and
// target groups are keyed by their id (the last part of their ARN);
// listeners by "<load balancer id>/<listener id>", rules by "<listener
// id>/<rule id>" and targets by "<target group id>/<target id>:<port>", so
// a parent's children are one prefix scan.
const (
	LoadBalancers store.Bucket = "lb-load-balancers"
	TargetGroups  store.Bucket = "lb-target-groups"
	Listeners     store.Bucket = "lb-listeners"
	Rules         store.Bucket = "lb-rules"
	Targets       store.Bucket = "lb-targets"
)

// LBBuckets lists the buckets of the load balancing records.
func LBBuckets() []store.Bucket {
	return []store.Bucket{LoadBalancers, TargetGroups, Listeners, Rules, Targets}
}

// LoadBalancer is an Application or Network Load Balancer, stored in
// LoadBalancers under its id.
type LoadBalancer struct {
	LoadBalancer elbtypes.LoadBalancer
	// Attributes are the attributes set by ModifyLoadBalancerAttributes;
	// the others have AWS's defaults.
	Attributes map[string]string `json:",omitempty"`
	Tags       []elbtypes.Tag    `json:",omitempty"`
}

// TargetGroup is stored in TargetGroups under its id. Its
// LoadBalancerArns are kept up to date by every writer of listeners and
// rules.
type TargetGroup struct {
	TargetGroup elbtypes.TargetGroup
	Attributes  map[string]string `json:",omitempty"`
	Tags        []elbtypes.Tag    `json:",omitempty"`
}

// Listener is stored in Listeners under "<load balancer id>/<listener id>".
type Listener struct {
	Listener   elbtypes.Listener
	Attributes map[string]string `json:",omitempty"`
	Tags       []elbtypes.Tag    `json:",omitempty"`
}

// Rule is a listener rule, stored in Rules under "<listener id>/<rule id>".
// Every listener has one default rule (IsDefault, priority "default")
// whose actions are the listener's default actions.
type Rule struct {
	Rule        elbtypes.Rule
	ListenerArn string
	Tags        []elbtypes.Tag `json:",omitempty"`
}

// Target is one registered target of a target group, stored in Targets
// under TargetKey. Health is what the load balancer's data plane last
// reported; a deregistered target drains until DrainingUntil and is then
// gone.
type Target struct {
	TargetGroupArn string
	// ID is the container instance id (target type instance) or the IP
	// address (ip), as registered.
	ID           string
	Port         int32
	RegisteredAt time.Time
	// DrainingUntil is set by DeregisterTargets: the target drains until
	// then (the target group's deregistration delay).
	DrainingUntil time.Time `json:",omitzero"`
	// Health is the data plane's last report; none yet means initial.
	Health *TargetReport `json:",omitempty"`
}

// TargetReport is a target's health as a load balancer data plane
// (berth-lb) reported it.
type TargetReport struct {
	State       string // healthy, unhealthy, unavailable, initial
	Reason      string `json:",omitempty"`
	Description string `json:",omitempty"`
	ReportedAt  time.Time
	// Reporter is the access key id of the data plane that reported.
	Reporter string
}

// TargetKey is "<target group id>/<target id>:<port>".
func TargetKey(tgID, id string, port int32) string {
	return tgID + "/" + id + ":" + strconv.Itoa(int(port))
}

var (
	_ Record = (*LoadBalancer)(nil)
	_ Record = (*TargetGroup)(nil)
	_ Record = (*Listener)(nil)
	_ Record = (*Rule)(nil)
	_ Record = (*Target)(nil)
)

// Bucket is LoadBalancers.
func (*LoadBalancer) Bucket() store.Bucket { return LoadBalancers }

// Key is the load balancer's id.
func (r *LoadBalancer) Key() string {
	return LBResourceID(aws.ToString(r.LoadBalancer.LoadBalancerArn))
}

// Bucket is TargetGroups.
func (*TargetGroup) Bucket() store.Bucket { return TargetGroups }

// Key is the target group's id.
func (r *TargetGroup) Key() string { return LBResourceID(aws.ToString(r.TargetGroup.TargetGroupArn)) }

// Bucket is Listeners.
func (*Listener) Bucket() store.Bucket { return Listeners }

// Key is "<load balancer id>/<listener id>".
func (r *Listener) Key() string { return ListenerKey(aws.ToString(r.Listener.ListenerArn)) }

// Bucket is Rules.
func (*Rule) Bucket() store.Bucket { return Rules }

// Key is "<listener id>/<rule id>".
func (r *Rule) Key() string {
	return LBResourceID(r.ListenerArn) + "/" + LBResourceID(aws.ToString(r.Rule.RuleArn))
}

// Order is the rule's place among its listener's rules, as the load
// balancer tries them: its priority, the default rule's last.
func (r *Rule) Order() int {
	if aws.ToBool(r.Rule.IsDefault) {
		return 1 << 30
	}
	n, _ := strconv.Atoi(aws.ToString(r.Rule.Priority))
	return n
}

// Bucket is Targets.
func (*Target) Bucket() store.Bucket { return Targets }

// Key is TargetKey of the target.
func (r *Target) Key() string { return TargetKey(LBResourceID(r.TargetGroupArn), r.ID, r.Port) }

// LBARNs formats the Elastic Load Balancing ARNs of one endpoint:
// arn:aws:elasticloadbalancing:<region>:<account>:loadbalancer/<app|net>/<name>/<id>,
// targetgroup/<name>/<id>, listener/<app|net>/<lb name>/<lb id>/<id> and
// listener-rule/<app|net>/<lb name>/<lb id>/<listener id>/<id>.
type LBARNs struct {
	Region    string
	AccountID string
}

func (a LBARNs) format(resource string) string {
	return arn.ARN{Partition: "aws", Service: "elasticloadbalancing", Region: a.Region, AccountID: a.AccountID, Resource: resource}.String()
}

// LoadBalancer is a load balancer's ARN; kind is "app" or "net".
func (a LBARNs) LoadBalancer(kind, name, id string) string {
	return a.format("loadbalancer/" + kind + "/" + name + "/" + id)
}

// TargetGroup is a target group's ARN.
func (a LBARNs) TargetGroup(name, id string) string {
	return a.format("targetgroup/" + name + "/" + id)
}

// Listener is the ARN of a listener of the load balancer lbArn.
func (a LBARNs) Listener(lbArn, id string) string {
	return a.format("listener/" + lbPath(lbArn) + "/" + id)
}

// Rule is the ARN of a rule of the listener listenerArn.
func (a LBARNs) Rule(listenerArn, id string) string {
	p, _ := arn.Parse(listenerArn)
	return a.format("listener-rule/" + strings.TrimPrefix(p.Resource, "listener/") + "/" + id)
}

// lbPath is "<app|net>/<name>/<id>" of a load balancer ARN.
func lbPath(lbArn string) string {
	p, _ := arn.Parse(lbArn)
	return strings.TrimPrefix(p.Resource, "loadbalancer/")
}

// Own parses ref as an Elastic Load Balancing ARN of this endpoint of the
// given resource type ("loadbalancer", "targetgroup", "listener",
// "listener-rule") and returns the parts of its resource path after the
// type; ok is false for anything else.
func (a LBARNs) Own(ref, typ string) (path []string, ok bool) {
	p, err := arn.Parse(ref)
	if err != nil || p.Partition != "aws" || p.Service != "elasticloadbalancing" || p.Region != a.Region || p.AccountID != a.AccountID {
		return nil, false
	}
	t, path := arn.SplitResource(p.Resource)
	if t != typ {
		return nil, false
	}
	for _, s := range path {
		if s == "" {
			return nil, false
		}
	}
	return path, true
}

// LBResourceID is the last part of an Elastic Load Balancing ARN: the id of
// the load balancer, target group, listener or rule it names.
func LBResourceID(s string) string { return arn.ResourceID(s) }

// ListenerKey is the key of the listener a listener ARN names.
func ListenerKey(listenerArn string) string {
	p, _ := arn.Parse(listenerArn)
	_, path := arn.SplitResource(p.Resource)
	if len(path) < 2 {
		return ""
	}
	return path[len(path)-2] + "/" + path[len(path)-1]
}
