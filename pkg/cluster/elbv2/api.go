// Package elbv2 is the cluster endpoint's Elastic Load Balancing v2 API: the
// AWS Query protocol (version 2015-12-01, SigV4 service
// elasticloadbalancing) for load balancers, target groups, listeners,
// rules, targets and tags, so that `aws elbv2`, the AWS SDKs and
// Terraform's aws_lb resources drive it; and the load balancer data-plane
// API (AWS JSON 1.1, target prefix BerthLoadBalancing_20250101.) by which
// a berth-lb daemon with an lb key reads its load balancer's state and
// reports target health.
//
// Requests decode into the AWS SDK's input structs and results are the
// SDK's output structs (awsproto.DecodeQuery, awsproto.EncodeQuery). Each
// operation is one store transaction over the records of
// pkg/cluster/records (lb.go), so a request that fails changes nothing. It
// never proxies traffic: the data plane does.
//
// pkg/cluster imports it; it imports awsproto, auth, records and store.
package elbv2

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/elbv2/lbwire"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// Version is the API version Query requests name; Namespace is the XML
// namespace of its results and errors.
const (
	Version   = "2015-12-01"
	Namespace = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
)

// Certificate is a TLS certificate an HTTPS listener may name by ARN: the
// operator declares it in cluster.toml with its PEM files.
type Certificate struct {
	ARN      string
	CertFile string // PEM certificate chain
	KeyFile  string // PEM private key
}

// Options configure a Server.
type Options struct {
	Store     store.Store
	Region    string
	AccountID string
	// Certificates are the certificates HTTPS listeners may name.
	Certificates []Certificate
	// Metrics, when set, records the data planes' metric reports
	// (ReportLoadBalancerMetrics); without it they are refused.
	Metrics MetricsRecorder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// MetricsRecorder records a data plane's metrics of a load balancer whose
// load balancer and target groups exist (*metrics.Store implements it).
type MetricsRecorder interface {
	RecordLoadBalancer(in *lbwire.MetricsInput) error
}

// Server serves the Elastic Load Balancing v2 API and the data-plane API.
type Server struct {
	o    Options
	arns records.LBARNs
}

var _ awsproto.Handler = (*Server)(nil)

// New returns a Server; Store, Region and AccountID are required.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Region == "" || o.AccountID == "" {
		return nil, errors.New("elbv2: Store, Region and AccountID are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Server{o: o, arns: records.LBARNs{Region: o.Region, AccountID: o.AccountID}}, nil
}

// API is the Elastic Load Balancing v2 API for the AWS protocol router.
func (s *Server) API() awsproto.API {
	return awsproto.API{Name: "ELBv2", Service: auth.LBService, Protocol: awsproto.Query, Version: Version,
		XMLNamespace: Namespace, Handler: s}
}

// AWS's error codes of the API.
const (
	errValidation         = "ValidationError"
	errLBNotFound         = "LoadBalancerNotFound"
	errTGNotFound         = "TargetGroupNotFound"
	errListenerNotFound   = "ListenerNotFound"
	errRuleNotFound       = "RuleNotFound"
	errDupLB              = "DuplicateLoadBalancerName"
	errDupTG              = "DuplicateTargetGroupName"
	errDupListener        = "DuplicateListener"
	errDupTags            = "DuplicateTagKeys"
	errTooManyTags        = "TooManyTags"
	errAssociationLimit   = "TargetGroupAssociationLimit"
	errIncompatible       = "IncompatibleProtocols"
	errInvalidConfig      = "InvalidConfigurationRequest"
	errInvalidAction      = "InvalidLoadBalancerAction"
	errInvalidTarget      = "InvalidTarget"
	errResourceInUse      = "ResourceInUse"
	errPriorityInUse      = "PriorityInUse"
	errCertNotFound       = "CertificateNotFound"
	errSSLPolicyNotFound  = "SSLPolicyNotFound"
	errSubnetNotFound     = "SubnetNotFound"
	errOperationForbidden = "OperationNotPermitted"
	errUnsupportedProto   = "UnsupportedProtocol"
	errAccessDenied       = "AccessDenied"
	errTooManyActions     = "TooManyActions"
	errTooManyTGs         = "TooManyTargetGroups"
)

func apiErr(code, format string, args ...any) error {
	return awsproto.ClientError(code, format, args...)
}

// readOps are the operations an lb key may call besides the data-plane
// API: reading load balancer state.
var readOps = []string{"DescribeLoadBalancers", "DescribeLoadBalancerAttributes", "DescribeTargetGroups",
	"DescribeTargetGroupAttributes", "DescribeListeners", "DescribeListenerAttributes", "DescribeRules",
	"DescribeTargetHealth", "DescribeTags", "DescribeSSLPolicies", "DescribeCapacityReservation"}

// operation runs one Query operation: it decodes its input into an I,
// runs fn in one transaction (an Update when write) and encodes the
// output fn built inside it.
type operation struct {
	write bool
	run   func(s *Server, r *awsproto.Request, tx store.Tx) (any, error)
}

// op builds an operation from a typed function.
func op[I any](write bool, fn func(s *Server, tx store.Tx, in *I) (any, error)) operation {
	return operation{write: write, run: func(s *Server, r *awsproto.Request, tx store.Tx) (any, error) {
		in := new(I)
		if err := awsproto.DecodeQuery(r.Params, in); err != nil {
			return nil, err
		}
		return fn(s, tx, in)
	}}
}

// ServeAWS runs one Elastic Load Balancing v2 operation for a verified
// caller: admin keys may call every operation, lb keys the read
// operations, agent keys none.
func (s *Server) ServeAWS(r *awsproto.Request) ([]byte, error) {
	switch r.Key.Role {
	case auth.RoleAdmin:
	case auth.RoleLB:
		if !slices.Contains(readOps, r.Operation) {
			return nil, &awsproto.Error{Type: errAccessDenied, Status: 403,
				Message: fmt.Sprintf("lb keys may only read load balancer state; %s is not allowed", r.Operation)}
		}
	default:
		return nil, &awsproto.Error{Type: errAccessDenied, Status: 403,
			Message: fmt.Sprintf("%s keys may not call the Elastic Load Balancing API", r.Key.Role)}
	}
	o, ok := lookup(r.Operation)
	if !ok {
		return nil, apiErr("InvalidAction", "The action %s is not valid for this web service.", r.Operation)
	}
	var out any
	run := func(tx store.Tx) error {
		var err error
		out, err = o.run(s, r, tx)
		return err
	}
	var err error
	if o.write {
		err = s.o.Store.Update(run)
	} else {
		err = s.o.Store.View(run)
	}
	if err != nil {
		return nil, err
	}
	b, err := awsproto.EncodeQuery(out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Operation, err)
	}
	return b, nil
}

// lookup returns the operation an Action names.
func lookup(action string) (operation, bool) {
	switch action {
	case "CreateLoadBalancer":
		return op(true, (*Server).createLoadBalancer), true
	case "DescribeLoadBalancers":
		return op(false, (*Server).describeLoadBalancers), true
	case "DeleteLoadBalancer":
		return op(true, (*Server).deleteLoadBalancer), true
	case "DescribeLoadBalancerAttributes":
		return op(false, (*Server).describeLoadBalancerAttributes), true
	case "ModifyLoadBalancerAttributes":
		return op(true, (*Server).modifyLoadBalancerAttributes), true
	case "SetSecurityGroups":
		return op(true, (*Server).setSecurityGroups), true
	case "SetSubnets":
		return op(true, (*Server).setSubnets), true
	case "CreateTargetGroup":
		return op(true, (*Server).createTargetGroup), true
	case "DescribeTargetGroups":
		return op(false, (*Server).describeTargetGroups), true
	case "ModifyTargetGroup":
		return op(true, (*Server).modifyTargetGroup), true
	case "DeleteTargetGroup":
		return op(true, (*Server).deleteTargetGroup), true
	case "DescribeTargetGroupAttributes":
		return op(false, (*Server).describeTargetGroupAttributes), true
	case "ModifyTargetGroupAttributes":
		return op(true, (*Server).modifyTargetGroupAttributes), true
	case "CreateListener":
		return op(true, (*Server).createListener), true
	case "DescribeListeners":
		return op(false, (*Server).describeListeners), true
	case "ModifyListener":
		return op(true, (*Server).modifyListener), true
	case "DeleteListener":
		return op(true, (*Server).deleteListener), true
	case "DescribeListenerAttributes":
		return op(false, (*Server).describeListenerAttributes), true
	case "ModifyListenerAttributes":
		return op(true, (*Server).modifyListenerAttributes), true
	case "CreateRule":
		return op(true, (*Server).createRule), true
	case "DescribeRules":
		return op(false, (*Server).describeRules), true
	case "ModifyRule":
		return op(true, (*Server).modifyRule), true
	case "DeleteRule":
		return op(true, (*Server).deleteRule), true
	case "SetRulePriorities":
		return op(true, (*Server).setRulePriorities), true
	case "RegisterTargets":
		return op(true, (*Server).registerTargets), true
	case "DeregisterTargets":
		return op(true, (*Server).deregisterTargets), true
	case "DescribeTargetHealth":
		return op(false, (*Server).describeTargetHealth), true
	case "AddTags":
		return op(true, (*Server).addTags), true
	case "RemoveTags":
		return op(true, (*Server).removeTags), true
	case "DescribeTags":
		return op(false, (*Server).describeTags), true
	case "DescribeCapacityReservation":
		return op(false, (*Server).describeCapacityReservation), true
	case "DescribeSSLPolicies":
		return op(false, (*Server).describeSSLPolicies), true
	}
	return operation{}, false
}
