// Package lbwire is the wire format of the load balancer data-plane API,
// which a berth-lb daemon calls on the cluster endpoint with an lb key:
// AWS JSON 1.1 on POST /, X-Amz-Target "BerthLoadBalancing_20250101.<Op>",
// signed with SigV4 for the service "elasticloadbalancing". The endpoint's
// pkg/cluster/elbv2 serves it; the data plane (pkg/lb) imports this
// package alone, so it links none of the endpoint. Load balancers, target
// groups, listeners and rules are the AWS SDK's ELBv2 types, encoded with
// encoding/json (Go field names).
package lbwire

import (
	"time"

	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// TargetPrefix is the X-Amz-Target prefix of the data-plane operations.
const TargetPrefix = "BerthLoadBalancing_20250101."

// The operations.
const (
	// OpGetLoadBalancerState: GetStateInput → State.
	OpGetLoadBalancerState = "GetLoadBalancerState"
	// OpReportTargetHealth: ReportInput → ReportOutput.
	OpReportTargetHealth = "ReportTargetHealth"
	// OpReportMetrics: MetricsInput → MetricsOutput.
	OpReportMetrics = "ReportLoadBalancerMetrics"
)

// GetStateInput names a load balancer by ARN or by name (one of them).
type GetStateInput struct {
	LoadBalancerArn  string `json:",omitempty"`
	LoadBalancerName string `json:",omitempty"`
}

// State is everything a data plane needs to serve one load balancer.
type State struct {
	LoadBalancer elbtypes.LoadBalancer
	// Attributes are all of the load balancer's attributes (defaults
	// included).
	Attributes   map[string]string
	Listeners    []Listener
	TargetGroups []TargetGroup
	// Version changes whenever anything above changes (a hash of it): a
	// poller compares it instead of the whole state.
	Version string
}

// Listener is one listener with its rules (by priority, the default rule
// last) and, for HTTPS, its certificate.
type Listener struct {
	Listener    elbtypes.Listener
	Attributes  map[string]string
	Rules       []elbtypes.Rule
	Certificate *Certificate `json:",omitempty"`
}

// Certificate is an HTTPS listener's certificate as PEM, read from the
// files cluster.toml names at each request (so a renewed file is served).
type Certificate struct {
	CertificateArn string
	CertificatePEM string // the chain
	PrivateKeyPEM  string
}

// TargetGroup is one target group the load balancer's rules forward to,
// with all of its attributes (defaults included) and targets.
type TargetGroup struct {
	TargetGroup elbtypes.TargetGroup
	Attributes  map[string]string
	Targets     []Target
}

// Target is a registered or draining target.
type Target struct {
	// ID and Port are as registered (a container instance id, or an IP).
	ID   string
	Port int32
	// Address is where to send traffic: the IP (ip targets) or the
	// instance's berth.host-address attribute (instance targets); empty
	// when the instance has none or is gone: such a target gets no
	// traffic, and DescribeTargetHealth shows it unused.
	Address string `json:",omitempty"`
	// HealthCheckPort is the port health checks go to.
	HealthCheckPort int32
	// Draining is set once the target was deregistered: it gets no new
	// connections and is removed at DrainingUntil.
	Draining      bool      `json:",omitempty"`
	DrainingUntil time.Time `json:",omitzero"`
}

// ReportInput reports the health the data plane's checks see for targets
// of one target group.
type ReportInput struct {
	TargetGroupArn string
	Targets        []TargetHealth
}

// TargetHealth is one target's health: State is initial, healthy,
// unhealthy or unavailable; Reason is an AWS reason code
// (Elb.InitialHealthChecking, Target.ResponseCodeMismatch, Target.Timeout,
// Target.FailedHealthChecks, Target.HealthCheckDisabled,
// Elb.InternalError; none when healthy); Description is free text
// (AWS's: "Health checks failed with these codes: [502]").
type TargetHealth struct {
	ID          string
	Port        int32
	State       string
	Reason      string `json:",omitempty"`
	Description string `json:",omitempty"`
}

// ReportOutput says how many reports were recorded and which targets are
// not registered (any more): the data plane drops those.
type ReportOutput struct {
	Recorded      int
	NotRegistered []TargetHealth `json:",omitempty"`
}

// MetricsInput is what one data plane counted for one load balancer since
// its previous report (counts are deltas; host counts are as seen now).
// The endpoint records it as the AWS/ApplicationELB metrics at its clock.
type MetricsInput struct {
	LoadBalancerArn string
	// RequestCount is the requests the load balancer's listeners received
	// (those answered by a rule's fixed response or redirect too).
	RequestCount int64
	TargetGroups []TargetGroupMetrics
}

// TargetGroupMetrics is one target group's figures.
type TargetGroupMetrics struct {
	TargetGroupArn string
	// RequestCount is the responses its targets sent; Target2XX..5XX split
	// them by status class.
	RequestCount                               int64
	Target2XX, Target3XX, Target4XX, Target5XX int64
	// ResponseTimeSum is the seconds from request sent to response
	// headers received, summed over RequestCount responses;
	// ResponseTimeMin and ResponseTimeMax bound a response's time.
	ResponseTimeSum, ResponseTimeMin, ResponseTimeMax float64
	// HealthyHostCount and UnHealthyHostCount count the targets (not
	// draining) healthy and unhealthy now.
	HealthyHostCount, UnHealthyHostCount int
}

// MetricsOutput says how many target groups were recorded (a target group
// deleted meanwhile is skipped).
type MetricsOutput struct {
	Recorded int
}
