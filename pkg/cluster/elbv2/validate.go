package elbv2

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
)

// The lab network: the endpoint's hosts are one network, which the API
// shows as one VPC with one subnet in the region's zone "a". Load
// balancers are in it; target groups name it (or nothing).
const (
	LabVPC    = "vpc-berth"
	LabSubnet = "subnet-berth"
	// dnsSuffix makes a load balancer's DNS name resolve to loopback
	// (RFC 6761: *.localhost), where a lab's berth-lb serves it.
	dnsSuffix = "elb.localhost"
	// hostedZone is the CanonicalHostedZoneId of every load balancer.
	hostedZone = "ZBERTHLOCALHOST"
	// defaultSSLPolicy is AWS's default for HTTPS listeners.
	defaultSSLPolicy = "ELBSecurityPolicy-2016-08"
)

func (s *Server) labZone() elbtypes.AvailabilityZone {
	return elbtypes.AvailabilityZone{ZoneName: aws.String(s.o.Region + "a"), SubnetId: aws.String(LabSubnet)}
}

var (
	lbNameRE = regexp.MustCompile(`^[a-zA-Z0-9-]{1,32}$`)
	tagKeyRE = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
)

// checkName applies AWS's rules for load balancer and target group names:
// 1-32 letters, digits and hyphens, not starting or ending with a hyphen,
// and (load balancers) not starting with "internal-".
func checkName(kind, name string, internalPrefixAllowed bool) error {
	switch {
	case name == "":
		return apiErr(errValidation, "%s name cannot be empty", kind)
	case len(name) > 32:
		return apiErr(errValidation, "%s name cannot be longer than '32' characters", kind)
	case !lbNameRE.MatchString(name):
		return apiErr(errValidation, "%s name '%s' can only contain characters that are alphanumeric characters and hyphens(-)", kind, name)
	case strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-"):
		return apiErr(errValidation, "%s name '%s' cannot begin or end with a hyphen", kind, name)
	case !internalPrefixAllowed && strings.HasPrefix(name, "internal-"):
		return apiErr(errValidation, "%s name '%s' cannot begin with 'internal-'", kind, name)
	}
	return nil
}

func checkPort(member string, p *int32) error {
	if p == nil {
		return nil
	}
	if *p < 1 || *p > 65535 {
		return apiErr(errValidation, "1 validation error detected: Value '%d' at '%s' failed to satisfy constraint: Member must have value between 1 and 65535", *p, member)
	}
	return nil
}

func checkRange(member string, v *int32, lo, hi int32) error {
	if v == nil {
		return nil
	}
	if *v < lo || *v > hi {
		return apiErr(errValidation, "1 validation error detected: Value '%d' at '%s' failed to satisfy constraint: Member must have value between %d and %d", *v, member, lo, hi)
	}
	return nil
}

// checkTags validates tags as AWS does: keys 1-128 characters, values at
// most 256, no "aws:" prefix, no key twice, at most 50 on a resource
// (have is how many it would have).
func checkTags(tags []elbtypes.Tag, have int) error {
	seen := map[string]bool{}
	for _, t := range tags {
		k := aws.ToString(t.Key)
		switch {
		case k == "" || len(k) > 128 || !tagKeyRE.MatchString(k):
			return apiErr(errValidation, "Tag key '%s' must be 1 to 128 letters, digits, spaces or _.:/=+-@", k)
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return apiErr(errValidation, "Tag key '%s' cannot start with 'aws:'", k)
		case len(aws.ToString(t.Value)) > 256:
			return apiErr(errValidation, "Tag value of key '%s' cannot be longer than 256 characters", k)
		case seen[k]:
			return apiErr(errDupTags, "Tag key '%s' is given more than once", k)
		}
		seen[k] = true
	}
	if have > 50 {
		return apiErr(errTooManyTags, "A resource can have at most 50 tags")
	}
	return nil
}

// mergeTags sets tags over have, key by key.
func mergeTags(have, set []elbtypes.Tag) []elbtypes.Tag {
	out := slices.Clone(have)
	for _, t := range set {
		i := slices.IndexFunc(out, func(o elbtypes.Tag) bool { return aws.ToString(o.Key) == aws.ToString(t.Key) })
		if i >= 0 {
			out[i] = t
		} else {
			out = append(out, t)
		}
	}
	return out
}

// albProtocols and nlbProtocols are the listener protocols served per
// load balancer type; tgProtocols those of target groups.
var (
	albProtocols = []elbtypes.ProtocolEnum{elbtypes.ProtocolEnumHttp, elbtypes.ProtocolEnumHttps}
	nlbProtocols = []elbtypes.ProtocolEnum{elbtypes.ProtocolEnumTcp}
	tgProtocols  = []elbtypes.ProtocolEnum{elbtypes.ProtocolEnumHttp, elbtypes.ProtocolEnumHttps, elbtypes.ProtocolEnumTcp}
)

func isHTTP(p elbtypes.ProtocolEnum) bool {
	return p == elbtypes.ProtocolEnumHttp || p == elbtypes.ProtocolEnumHttps
}

// healthCheck is a target group's health check settings as given.
type healthCheck struct {
	Enabled                               *bool
	Protocol                              elbtypes.ProtocolEnum
	Port, Path                            *string
	Interval, Timeout, Healthy, Unhealthy *int32
	Matcher                               *elbtypes.Matcher
}

// applyHealthCheck validates hc against the target group tg (whose
// protocol and type are set) and writes it, with AWS's defaults for what
// neither hc nor tg sets.
func applyHealthCheck(tg *elbtypes.TargetGroup, hc healthCheck) error {
	if hc.Enabled != nil {
		tg.HealthCheckEnabled = hc.Enabled
	}
	if tg.HealthCheckEnabled == nil {
		tg.HealthCheckEnabled = aws.Bool(true)
	}
	if hc.Protocol != "" {
		if !slices.Contains(tgProtocols, hc.Protocol) {
			return apiErr(errValidation, "Health check protocol '%s' must be one of HTTP, HTTPS, TCP", hc.Protocol)
		}
		if isHTTP(tg.Protocol) && hc.Protocol == elbtypes.ProtocolEnumTcp {
			return apiErr(errValidation, "Health check protocol 'TCP' is not supported for target groups with the %s protocol", tg.Protocol)
		}
		tg.HealthCheckProtocol = hc.Protocol
	}
	if tg.HealthCheckProtocol == "" {
		tg.HealthCheckProtocol = tg.Protocol
	}
	httpCheck := isHTTP(tg.HealthCheckProtocol)
	if hc.Port != nil {
		if p := *hc.Port; p != "traffic-port" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return apiErr(errValidation, "Health check port '%s' must be 'traffic-port' or a port from 1 to 65535", p)
			}
		}
		tg.HealthCheckPort = hc.Port
	}
	if tg.HealthCheckPort == nil {
		tg.HealthCheckPort = aws.String("traffic-port")
	}
	if hc.Path != nil {
		if !httpCheck {
			return apiErr(errValidation, "Health check path cannot be set with %s health checks", tg.HealthCheckProtocol)
		}
		if p := *hc.Path; p == "" || len(p) > 1024 || !strings.HasPrefix(p, "/") {
			return apiErr(errValidation, "Health check path '%s' must start with '/' and be 1 to 1024 characters", p)
		}
		tg.HealthCheckPath = hc.Path
	}
	if hc.Matcher != nil {
		if !httpCheck {
			return apiErr(errValidation, "Health check matcher cannot be set with %s health checks", tg.HealthCheckProtocol)
		}
		if hc.Matcher.GrpcCode != nil {
			return apiErr(errValidation, "A gRPC matcher needs the GRPC protocol version, which is not served")
		}
		if err := checkHTTPCodes(aws.ToString(hc.Matcher.HttpCode), isHTTP(tg.Protocol)); err != nil {
			return err
		}
		tg.Matcher = &elbtypes.Matcher{HttpCode: hc.Matcher.HttpCode}
	}
	if httpCheck {
		if tg.HealthCheckPath == nil {
			tg.HealthCheckPath = aws.String("/")
		}
		if tg.Matcher == nil {
			code := "200"
			if !isHTTP(tg.Protocol) {
				code = "200-399" // a Network Load Balancer's HTTP check
			}
			tg.Matcher = &elbtypes.Matcher{HttpCode: aws.String(code)}
		}
	} else {
		tg.HealthCheckPath, tg.Matcher = nil, nil
	}
	for _, c := range []struct {
		member   string
		v        *int32
		dst      **int32
		lo, hi   int32
		default_ int32
	}{
		{"healthCheckIntervalSeconds", hc.Interval, &tg.HealthCheckIntervalSeconds, 5, 300, 30},
		{"healthCheckTimeoutSeconds", hc.Timeout, &tg.HealthCheckTimeoutSeconds, 2, 120, map[bool]int32{true: 5, false: 10}[httpCheck && isHTTP(tg.Protocol)]},
		{"healthyThresholdCount", hc.Healthy, &tg.HealthyThresholdCount, 2, 10, 5},
		{"unhealthyThresholdCount", hc.Unhealthy, &tg.UnhealthyThresholdCount, 2, 10, 2},
	} {
		if err := checkRange(c.member, c.v, c.lo, c.hi); err != nil {
			return err
		}
		if c.v != nil {
			*c.dst = c.v
		}
		if *c.dst == nil {
			*c.dst = aws.Int32(c.default_)
		}
	}
	if *tg.HealthCheckTimeoutSeconds >= *tg.HealthCheckIntervalSeconds {
		return apiErr(errValidation, "Health check timeout '%d' must be smaller than the interval '%d'", *tg.HealthCheckTimeoutSeconds, *tg.HealthCheckIntervalSeconds)
	}
	return nil
}

// checkHTTPCodes checks a matcher's HttpCode: codes, lists ("200,202")
// and ranges ("200-299") from 200 to 499 (Application Load Balancer) or
// 200 to 599 (Network Load Balancer's HTTP checks).
func checkHTTPCodes(s string, alb bool) error {
	hi := 599
	if alb {
		hi = 499
	}
	bad := apiErr(errValidation, "Health check matcher HttpCode '%s' must be codes, lists or ranges from 200 to %d", s, hi)
	if s == "" {
		return bad
	}
	for _, part := range strings.Split(s, ",") {
		lo, up, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 200 || a > hi {
			return bad
		}
		if isRange {
			b, err := strconv.Atoi(up)
			if err != nil || b < a || b > hi {
				return bad
			}
		}
	}
	return nil
}

// lbKind is the ARN path kind of a load balancer type.
func lbKind(t elbtypes.LoadBalancerTypeEnum) string {
	if t == elbtypes.LoadBalancerTypeEnumNetwork {
		return "net"
	}
	return "app"
}

// lbArnOfListener is the load balancer ARN of a listener or rule ARN of
// this endpoint.
func (s *Server) lbArnOfListener(listenerArn string) string {
	typ := "listener"
	if strings.Contains(listenerArn, ":listener-rule/") {
		typ = "listener-rule"
	}
	path, ok := s.arns.Own(listenerArn, typ)
	if !ok || len(path) < 3 {
		return ""
	}
	return s.arns.LoadBalancer(path[0], path[1], path[2])
}

// listenerArnOfRule is the listener ARN of a rule ARN of this endpoint.
func (s *Server) listenerArnOfRule(ruleArn string) string {
	path, ok := s.arns.Own(ruleArn, "listener-rule")
	if !ok || len(path) != 5 {
		return ""
	}
	return s.arns.Listener(s.arns.LoadBalancer(path[0], path[1], path[2]), path[3])
}

// newID is 16 hex digits, the form of ELB resource ids.
func newID() (string, error) {
	id, err := records.NewID()
	if err != nil {
		return "", err
	}
	return id[:16], nil
}
