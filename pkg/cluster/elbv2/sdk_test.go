package elbv2_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// walk is the state the SDK walk-through builds.
type walk struct {
	l                    *lab
	c                    *elb.Client
	lbArn, netArn        string
	web, api, tcp, other string // target group ARNs
	http, https, tcpL    string // listener ARNs
	rule                 string
	instance             string // container instance id
}

func TestSDKWalkThrough(t *testing.T) {
	l := startLab(t)
	w := &walk{l: l, c: l.elb(l.id, l.secret)}
	ctx := context.Background()
	w.loadBalancers(ctx, t)
	w.targetGroups(ctx, t)
	w.listeners(ctx, t)
	w.rules(ctx, t)
	w.targets(ctx, t)
	w.tags(ctx, t)
	w.roles(ctx, t)
	w.deletes(ctx, t)
}

func (w *walk) loadBalancers(ctx context.Context, t *testing.T) {
	c := w.c
	out, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web"), Subnets: []string{"subnet-berth"},
		Tags: []elbtypes.Tag{{Key: aws.String("env"), Value: aws.String("lab")}}})
	if err != nil {
		t.Fatal(err)
	}
	lb := out.LoadBalancers[0]
	w.lbArn = aws.ToString(lb.LoadBalancerArn)
	if !strings.HasPrefix(w.lbArn, "arn:aws:elasticloadbalancing:us-test-1:123456789012:loadbalancer/app/web/") ||
		lb.State.Code != elbtypes.LoadBalancerStateEnumActive || lb.Type != elbtypes.LoadBalancerTypeEnumApplication ||
		!strings.HasSuffix(aws.ToString(lb.DNSName), ".us-test-1.elb.localhost") || aws.ToString(lb.VpcId) != "vpc-berth" ||
		lb.CreatedTime == nil || len(lb.AvailabilityZones) != 1 {
		t.Fatalf("created load balancer %+v", lb)
	}
	net, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("tcp"), Type: elbtypes.LoadBalancerTypeEnumNetwork,
		Scheme: elbtypes.LoadBalancerSchemeEnumInternal})
	if err != nil {
		t.Fatal(err)
	}
	w.netArn = aws.ToString(net.LoadBalancers[0].LoadBalancerArn)
	if !strings.Contains(w.netArn, ":loadbalancer/net/tcp/") || !strings.HasPrefix(aws.ToString(net.LoadBalancers[0].DNSName), "internal-tcp-") {
		t.Errorf("network load balancer %s %s", w.netArn, aws.ToString(net.LoadBalancers[0].DNSName))
	}
	d, err := c.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{PageSize: aws.Int32(1)})
	if err != nil || len(d.LoadBalancers) != 1 || d.NextMarker == nil || aws.ToString(d.LoadBalancers[0].LoadBalancerName) != "tcp" {
		t.Fatalf("first page: %v %+v", err, d)
	}
	d2, err := c.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{PageSize: aws.Int32(1), Marker: d.NextMarker})
	if err != nil || len(d2.LoadBalancers) != 1 || d2.NextMarker != nil || aws.ToString(d2.LoadBalancers[0].LoadBalancerName) != "web" {
		t.Fatalf("second page: %v %+v", err, d2)
	}
	attrs, err := c.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerArn: aws.String(w.lbArn),
		Attributes: []elbtypes.LoadBalancerAttribute{{Key: aws.String("idle_timeout.timeout_seconds"), Value: aws.String("90")}}})
	if err != nil || attrValue(attrs.Attributes, "idle_timeout.timeout_seconds") != "90" || attrValue(attrs.Attributes, "routing.http2.enabled") != "true" {
		t.Fatalf("modify attributes: %v %+v", err, attrs)
	}
	da, err := c.DescribeLoadBalancerAttributes(ctx, &elb.DescribeLoadBalancerAttributesInput{LoadBalancerArn: aws.String(w.lbArn)})
	if err != nil || attrValue(da.Attributes, "idle_timeout.timeout_seconds") != "90" || attrValue(da.Attributes, "deletion_protection.enabled") != "false" {
		t.Fatalf("describe attributes: %v %+v", err, da)
	}

	bogus := w.lbArn[:len(w.lbArn)-4] + "ffff"
	for _, c2 := range []struct {
		what, code string
		call       func() error
	}{
		{"name taken", "DuplicateLoadBalancerName", func() error {
			_, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web")})
			return err
		}},
		{"name too long", "ValidationError", func() error {
			_, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String(strings.Repeat("a", 33))})
			return err
		}},
		{"name ends with a hyphen", "ValidationError", func() error {
			_, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web-")})
			return err
		}},
		{"name starts with internal-", "ValidationError", func() error {
			_, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("internal-web")})
			return err
		}},
		{"name with an underscore", "ValidationError", func() error {
			_, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web_1")})
			return err
		}},
		{"unknown subnet", "SubnetNotFound", func() error {
			_, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web2"), Subnets: []string{"subnet-1234"}})
			return err
		}},
		{"gateway type", "ValidationError", func() error {
			_, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web2"), Type: elbtypes.LoadBalancerTypeEnumGateway})
			return err
		}},
		{"tag key twice", "DuplicateTagKeys", func() error {
			_, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web2"),
				Tags: []elbtypes.Tag{{Key: aws.String("a")}, {Key: aws.String("a")}}})
			return err
		}},
		{"unknown load balancer", "LoadBalancerNotFound", func() error {
			_, err := c.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{bogus}})
			return err
		}},
		{"unknown name", "LoadBalancerNotFound", func() error {
			_, err := c.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{"nope"}})
			return err
		}},
		{"delete unknown", "LoadBalancerNotFound", func() error {
			_, err := c.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(bogus)})
			return err
		}},
		{"unknown attribute", "ValidationError", func() error {
			_, err := c.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerArn: aws.String(w.lbArn),
				Attributes: []elbtypes.LoadBalancerAttribute{{Key: aws.String("idle_timeout.timeout_seconds"), Value: aws.String("30")}, {Key: aws.String("no.such"), Value: aws.String("1")}}})
			return err
		}},
		{"attribute out of range", "ValidationError", func() error {
			_, err := c.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerArn: aws.String(w.lbArn),
				Attributes: []elbtypes.LoadBalancerAttribute{{Key: aws.String("idle_timeout.timeout_seconds"), Value: aws.String("0")}}})
			return err
		}},
	} {
		w.l.refused(t, c2.what, c2.code, c2.call)
	}
}

func (w *walk) targetGroups(ctx context.Context, t *testing.T) {
	c := w.c
	web, err := c.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("web"), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(8080), VpcId: aws.String("vpc-berth"), HealthCheckPath: aws.String("/healthz"), HealthCheckIntervalSeconds: aws.Int32(10)})
	if err != nil {
		t.Fatal(err)
	}
	tg := web.TargetGroups[0]
	w.web = aws.ToString(tg.TargetGroupArn)
	if tg.TargetType != elbtypes.TargetTypeEnumInstance || aws.ToString(tg.HealthCheckPort) != "traffic-port" || aws.ToInt32(tg.HealthCheckTimeoutSeconds) != 5 ||
		aws.ToInt32(tg.HealthyThresholdCount) != 5 || aws.ToInt32(tg.UnhealthyThresholdCount) != 2 || aws.ToString(tg.Matcher.HttpCode) != "200" ||
		!strings.Contains(w.web, ":targetgroup/web/") {
		t.Errorf("defaults of an HTTP target group: %+v", tg)
	}
	api, err := c.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("api"), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(9000), VpcId: aws.String("vpc-berth"), TargetType: elbtypes.TargetTypeEnumIp})
	if err != nil {
		t.Fatal(err)
	}
	w.api = aws.ToString(api.TargetGroups[0].TargetGroupArn)
	tcp, err := c.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("tcp"), Protocol: elbtypes.ProtocolEnumTcp,
		Port: aws.Int32(5432), VpcId: aws.String("vpc-berth")})
	if err != nil {
		t.Fatal(err)
	}
	w.tcp = aws.ToString(tcp.TargetGroups[0].TargetGroupArn)
	if tg := tcp.TargetGroups[0]; tg.HealthCheckProtocol != elbtypes.ProtocolEnumTcp || tg.HealthCheckPath != nil || tg.Matcher != nil {
		t.Errorf("a TCP group's health check: %+v", tg)
	}
	other, err := c.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("other"), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), VpcId: aws.String("vpc-berth")})
	if err != nil {
		t.Fatal(err)
	}
	w.other = aws.ToString(other.TargetGroups[0].TargetGroupArn)
	m, err := c.ModifyTargetGroup(ctx, &elb.ModifyTargetGroupInput{TargetGroupArn: aws.String(w.web), HealthyThresholdCount: aws.Int32(3),
		Matcher: &elbtypes.Matcher{HttpCode: aws.String("200-299")}})
	if err != nil || aws.ToInt32(m.TargetGroups[0].HealthyThresholdCount) != 3 || aws.ToString(m.TargetGroups[0].HealthCheckPath) != "/healthz" {
		t.Fatalf("modify target group: %v %+v", err, m)
	}
	a, err := c.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(w.web),
		Attributes: []elbtypes.TargetGroupAttribute{
			{Key: aws.String("deregistration_delay.timeout_seconds"), Value: aws.String("5")},
			{Key: aws.String("slow_start.duration_seconds"), Value: aws.String("30")},
			{Key: aws.String("stickiness.enabled"), Value: aws.String("true")}}})
	if err != nil {
		t.Fatal(err)
	}
	da, err := c.DescribeTargetGroupAttributes(ctx, &elb.DescribeTargetGroupAttributesInput{TargetGroupArn: aws.String(w.web)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, x := range da.Attributes {
		got[aws.ToString(x.Key)] = aws.ToString(x.Value)
	}
	if got["deregistration_delay.timeout_seconds"] != "5" || got["slow_start.duration_seconds"] != "30" || got["stickiness.enabled"] != "true" ||
		got["stickiness.type"] != "lb_cookie" || got["load_balancing.algorithm.type"] != "round_robin" || len(a.Attributes) != len(da.Attributes) {
		t.Errorf("target group attributes: %v", got)
	}
	d, err := c.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{Names: []string{"web", "tcp"}})
	if err != nil || len(d.TargetGroups) != 2 {
		t.Fatalf("describe by names: %v %+v", err, d)
	}

	bogus := w.web[:len(w.web)-4] + "ffff"
	hc := func(in elb.CreateTargetGroupInput) func() error {
		return func() error {
			in.Name, in.Protocol, in.Port, in.VpcId = aws.String("hc"), elbtypes.ProtocolEnumHttp, aws.Int32(80), aws.String("vpc-berth")
			_, err := c.CreateTargetGroup(ctx, &in)
			return err
		}
	}
	for _, c2 := range []struct {
		what, code string
		call       func() error
	}{
		{"name taken", "DuplicateTargetGroupName", func() error {
			_, err := c.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("web"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80), VpcId: aws.String("vpc-berth")})
			return err
		}},
		{"port 0", "ValidationError", func() error {
			_, err := c.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("p"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(0), VpcId: aws.String("vpc-berth")})
			return err
		}},
		{"port 65536", "ValidationError", func() error {
			_, err := c.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("p"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(65536), VpcId: aws.String("vpc-berth")})
			return err
		}},
		{"unknown VPC", "ValidationError", func() error {
			_, err := c.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("p"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80), VpcId: aws.String("vpc-other")})
			return err
		}},
		{"UDP", "ValidationError", func() error {
			_, err := c.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("p"), Protocol: elbtypes.ProtocolEnumUdp, Port: aws.Int32(53), VpcId: aws.String("vpc-berth")})
			return err
		}},
		{"lambda targets", "ValidationError", func() error {
			_, err := c.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("p"), TargetType: elbtypes.TargetTypeEnumLambda})
			return err
		}},
		{"timeout not below interval", "ValidationError", hc(elb.CreateTargetGroupInput{HealthCheckIntervalSeconds: aws.Int32(10), HealthCheckTimeoutSeconds: aws.Int32(10)})},
		{"interval 4", "ValidationError", hc(elb.CreateTargetGroupInput{HealthCheckIntervalSeconds: aws.Int32(4)})},
		{"healthy threshold 11", "ValidationError", hc(elb.CreateTargetGroupInput{HealthyThresholdCount: aws.Int32(11)})},
		{"path without slash", "ValidationError", hc(elb.CreateTargetGroupInput{HealthCheckPath: aws.String("healthz")})},
		{"health check port 70000", "ValidationError", hc(elb.CreateTargetGroupInput{HealthCheckPort: aws.String("70000")})},
		{"matcher 600", "ValidationError", hc(elb.CreateTargetGroupInput{Matcher: &elbtypes.Matcher{HttpCode: aws.String("200,600")}})},
		{"TCP check on HTTP", "ValidationError", hc(elb.CreateTargetGroupInput{HealthCheckProtocol: elbtypes.ProtocolEnumTcp})},
		{"unknown group", "TargetGroupNotFound", func() error {
			_, err := c.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{bogus}})
			return err
		}},
		{"modify unknown", "TargetGroupNotFound", func() error {
			_, err := c.ModifyTargetGroup(ctx, &elb.ModifyTargetGroupInput{TargetGroupArn: aws.String(bogus), HealthyThresholdCount: aws.Int32(3)})
			return err
		}},
		{"modify: timeout above interval", "ValidationError", func() error {
			_, err := c.ModifyTargetGroup(ctx, &elb.ModifyTargetGroupInput{TargetGroupArn: aws.String(w.web), HealthCheckTimeoutSeconds: aws.Int32(20)})
			return err
		}},
		{"deregistration delay 3601", "ValidationError", func() error {
			_, err := c.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(w.web),
				Attributes: []elbtypes.TargetGroupAttribute{{Key: aws.String("deregistration_delay.timeout_seconds"), Value: aws.String("3601")}}})
			return err
		}},
		{"slow start 10", "ValidationError", func() error {
			_, err := c.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(w.web),
				Attributes: []elbtypes.TargetGroupAttribute{{Key: aws.String("slow_start.duration_seconds"), Value: aws.String("10")}}})
			return err
		}},
		{"source_ip stickiness on HTTP", "ValidationError", func() error {
			_, err := c.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(w.web),
				Attributes: []elbtypes.TargetGroupAttribute{{Key: aws.String("stickiness.type"), Value: aws.String("source_ip")}}})
			return err
		}},
	} {
		w.l.refused(t, c2.what, c2.code, c2.call)
	}
}

func forward(arn string) []elbtypes.Action {
	return []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(arn)}}
}

func (w *walk) listeners(ctx context.Context, t *testing.T) {
	c := w.c
	h, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(w.lbArn), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(8080), DefaultActions: forward(w.web)})
	if err != nil {
		t.Fatal(err)
	}
	w.http = aws.ToString(h.Listeners[0].ListenerArn)
	if fc := h.Listeners[0].DefaultActions[0].ForwardConfig; !strings.Contains(w.http, ":listener/app/web/") || fc == nil ||
		aws.ToInt32(fc.TargetGroups[0].Weight) != 1 || aws.ToInt32(h.Listeners[0].DefaultActions[0].Order) != 1 {
		t.Errorf("HTTP listener %+v", h.Listeners[0])
	}
	s, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(w.lbArn), Protocol: elbtypes.ProtocolEnumHttps,
		Port: aws.Int32(8443), Certificates: []elbtypes.Certificate{{CertificateArn: aws.String(certArn)}},
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumFixedResponse, FixedResponseConfig: &elbtypes.FixedResponseActionConfig{
			StatusCode: aws.String("404"), ContentType: aws.String("text/plain"), MessageBody: aws.String("no")}}}})
	if err != nil {
		t.Fatal(err)
	}
	w.https = aws.ToString(s.Listeners[0].ListenerArn)
	if aws.ToString(s.Listeners[0].SslPolicy) != "ELBSecurityPolicy-2016-08" {
		t.Errorf("HTTPS listener %+v", s.Listeners[0])
	}
	tl, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(w.netArn), Protocol: elbtypes.ProtocolEnumTcp,
		Port: aws.Int32(5432), DefaultActions: forward(w.tcp)})
	if err != nil {
		t.Fatal(err)
	}
	w.tcpL = aws.ToString(tl.Listeners[0].ListenerArn)
	tgs, err := c.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{LoadBalancerArn: aws.String(w.lbArn)})
	if err != nil || len(tgs.TargetGroups) != 1 || aws.ToString(tgs.TargetGroups[0].TargetGroupArn) != w.web ||
		len(tgs.TargetGroups[0].LoadBalancerArns) != 1 || tgs.TargetGroups[0].LoadBalancerArns[0] != w.lbArn {
		t.Fatalf("target groups of the load balancer: %v %+v", err, tgs)
	}
	d, err := c.DescribeListeners(ctx, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(w.lbArn)})
	if err != nil || len(d.Listeners) != 2 || aws.ToInt32(d.Listeners[0].Port) != 8080 {
		t.Fatalf("describe listeners: %v %+v", err, d)
	}
	m, err := c.ModifyListener(ctx, &elb.ModifyListenerInput{ListenerArn: aws.String(w.http), Port: aws.Int32(8081)})
	if err != nil || aws.ToInt32(m.Listeners[0].Port) != 8081 || aws.ToString(m.Listeners[0].DefaultActions[0].TargetGroupArn) != w.web {
		t.Fatalf("modify listener: %v %+v", err, m)
	}
	la, err := c.DescribeListenerAttributes(ctx, &elb.DescribeListenerAttributesInput{ListenerArn: aws.String(w.tcpL)})
	if err != nil || len(la.Attributes) != 1 || aws.ToString(la.Attributes[0].Value) != "350" {
		t.Errorf("TCP listener attributes: %v %+v", err, la)
	}

	sideLB, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("side")})
	if err != nil {
		t.Fatal(err)
	}
	side := aws.ToString(sideLB.LoadBalancers[0].LoadBalancerArn)
	bogus := w.http[:len(w.http)-4] + "ffff"
	for _, c2 := range []struct {
		what, code string
		call       func() error
	}{
		{"port taken", "DuplicateListener", func() error {
			_, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(w.lbArn), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(8081), DefaultActions: forward(w.web)})
			return err
		}},
		{"TCP on an application load balancer", "UnsupportedProtocol", func() error {
			_, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(w.lbArn), Protocol: elbtypes.ProtocolEnumTcp, Port: aws.Int32(9), DefaultActions: forward(w.tcp)})
			return err
		}},
		{"HTTP listener to a TCP group", "IncompatibleProtocols", func() error {
			_, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(w.lbArn), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(9), DefaultActions: forward(w.tcp)})
			return err
		}},
		{"group of another load balancer", "TargetGroupAssociationLimit", func() error {
			_, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(side), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(9), DefaultActions: forward(w.web)})
			return err
		}},
		{"unknown target group", "TargetGroupNotFound", func() error {
			_, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(w.lbArn), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(9), DefaultActions: forward(w.web[:len(w.web)-4] + "ffff")})
			return err
		}},
		{"HTTPS without a certificate", "ValidationError", func() error {
			_, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(w.lbArn), Protocol: elbtypes.ProtocolEnumHttps, Port: aws.Int32(9), DefaultActions: forward(w.web)})
			return err
		}},
		{"HTTPS with an undeclared certificate", "CertificateNotFound", func() error {
			_, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(w.lbArn), Protocol: elbtypes.ProtocolEnumHttps, Port: aws.Int32(9), DefaultActions: forward(w.web),
				Certificates: []elbtypes.Certificate{{CertificateArn: aws.String(certArn + "x")}}})
			return err
		}},
		{"no default action", "ValidationError", func() error {
			_, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(w.lbArn), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(9), DefaultActions: []elbtypes.Action{}})
			return err
		}},
		{"listener port 0", "ValidationError", func() error {
			_, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(w.lbArn), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(0), DefaultActions: forward(w.web)})
			return err
		}},
		{"weight 1000", "ValidationError", func() error {
			_, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(w.lbArn), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(9),
				DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, ForwardConfig: &elbtypes.ForwardActionConfig{
					TargetGroups: []elbtypes.TargetGroupTuple{{TargetGroupArn: aws.String(w.web), Weight: aws.Int32(1000)}}}}}})
			return err
		}},
		{"unknown listener", "ListenerNotFound", func() error {
			_, err := c.DescribeListeners(ctx, &elb.DescribeListenersInput{ListenerArns: []string{bogus}})
			return err
		}},
		{"modify to a taken port", "DuplicateListener", func() error {
			_, err := c.ModifyListener(ctx, &elb.ModifyListenerInput{ListenerArn: aws.String(w.http), Port: aws.Int32(8443)})
			return err
		}},
		{"a group in use cannot be deleted", "ResourceInUse", func() error {
			_, err := c.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(w.web)})
			return err
		}},
	} {
		w.l.refused(t, c2.what, c2.code, c2.call)
	}
}

func (w *walk) rules(ctx context.Context, t *testing.T) {
	c := w.c
	cond := []elbtypes.RuleCondition{
		{Field: aws.String("path-pattern"), PathPatternConfig: &elbtypes.PathPatternConditionConfig{Values: []string{"/api/*"}}},
		{Field: aws.String("host-header"), Values: []string{"web.lab.localhost"}}}
	weighted := []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, ForwardConfig: &elbtypes.ForwardActionConfig{
		TargetGroups: []elbtypes.TargetGroupTuple{{TargetGroupArn: aws.String(w.api), Weight: aws.Int32(90)}, {TargetGroupArn: aws.String(w.web), Weight: aws.Int32(10)}}}}}
	r, err := c.CreateRule(ctx, &elb.CreateRuleInput{ListenerArn: aws.String(w.http), Priority: aws.Int32(10), Conditions: cond, Actions: weighted})
	if err != nil {
		t.Fatal(err)
	}
	w.rule = aws.ToString(r.Rules[0].RuleArn)
	if rr := r.Rules[0]; !strings.Contains(w.rule, ":listener-rule/app/web/") || aws.ToString(rr.Priority) != "10" ||
		rr.Conditions[1].HostHeaderConfig == nil || rr.Conditions[0].Values[0] != "/api/*" || rr.Actions[0].TargetGroupArn != nil {
		t.Errorf("created rule %+v", rr)
	}
	r2, err := c.CreateRule(ctx, &elb.CreateRuleInput{ListenerArn: aws.String(w.http), Priority: aws.Int32(20),
		Conditions: []elbtypes.RuleCondition{{Field: aws.String("path-pattern"), Values: []string{"/old/*"}}},
		Actions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumRedirect, RedirectConfig: &elbtypes.RedirectActionConfig{
			StatusCode: elbtypes.RedirectActionStatusCodeEnumHttp301, Path: aws.String("/new/#{path}")}}}})
	if err != nil || aws.ToString(r2.Rules[0].Actions[0].RedirectConfig.Host) != "#{host}" {
		t.Fatalf("redirect rule: %v %+v", err, r2)
	}
	d, err := c.DescribeRules(ctx, &elb.DescribeRulesInput{ListenerArn: aws.String(w.http)})
	if err != nil || len(d.Rules) != 3 || aws.ToString(d.Rules[2].Priority) != "default" || !aws.ToBool(d.Rules[2].IsDefault) {
		t.Fatalf("describe rules: %v %+v", err, d)
	}
	tgs, err := c.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{w.api}})
	if err != nil || len(tgs.TargetGroups[0].LoadBalancerArns) != 1 {
		t.Fatalf("the rule's group is not associated with the load balancer: %v %+v", err, tgs)
	}
	sp, err := c.SetRulePriorities(ctx, &elb.SetRulePrioritiesInput{RulePriorities: []elbtypes.RulePriorityPair{
		{RuleArn: aws.String(w.rule), Priority: aws.Int32(20)}, {RuleArn: r2.Rules[0].RuleArn, Priority: aws.Int32(10)}}})
	if err != nil || len(sp.Rules) != 2 {
		t.Fatalf("swap priorities: %v %+v", err, sp)
	}
	mr, err := c.ModifyRule(ctx, &elb.ModifyRuleInput{RuleArn: aws.String(w.rule),
		Conditions: []elbtypes.RuleCondition{{Field: aws.String("path-pattern"), Values: []string{"/v2/*"}}}})
	if err != nil || len(mr.Rules[0].Conditions) != 1 || mr.Rules[0].Conditions[0].Values[0] != "/v2/*" {
		t.Fatalf("modify rule: %v %+v", err, mr)
	}
	if _, err := c.DeleteRule(ctx, &elb.DeleteRuleInput{RuleArn: r2.Rules[0].RuleArn}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateRule(ctx, &elb.CreateRuleInput{ListenerArn: aws.String(w.http), Priority: aws.Int32(40), Conditions: cond, Actions: forward(w.web)}); err != nil {
		t.Fatal(err)
	}
	def := aws.ToString(d.Rules[2].RuleArn)
	bogus := w.rule[:len(w.rule)-4] + "ffff"
	for _, c2 := range []struct {
		what, code string
		call       func() error
	}{
		{"priority taken", "PriorityInUse", func() error {
			_, err := c.CreateRule(ctx, &elb.CreateRuleInput{ListenerArn: aws.String(w.http), Priority: aws.Int32(20), Conditions: cond, Actions: forward(w.web)})
			return err
		}},
		{"priority 0", "ValidationError", func() error {
			_, err := c.CreateRule(ctx, &elb.CreateRuleInput{ListenerArn: aws.String(w.http), Priority: aws.Int32(0), Conditions: cond, Actions: forward(w.web)})
			return err
		}},
		{"no condition", "ValidationError", func() error {
			_, err := c.CreateRule(ctx, &elb.CreateRuleInput{ListenerArn: aws.String(w.http), Priority: aws.Int32(30), Actions: forward(w.web), Conditions: []elbtypes.RuleCondition{}})
			return err
		}},
		{"query-string condition", "ValidationError", func() error {
			_, err := c.CreateRule(ctx, &elb.CreateRuleInput{ListenerArn: aws.String(w.http), Priority: aws.Int32(30), Actions: forward(w.web),
				Conditions: []elbtypes.RuleCondition{{Field: aws.String("query-string"), QueryStringConfig: &elbtypes.QueryStringConditionConfig{}}}})
			return err
		}},
		{"six condition values", "ValidationError", func() error {
			_, err := c.CreateRule(ctx, &elb.CreateRuleInput{ListenerArn: aws.String(w.http), Priority: aws.Int32(30), Actions: forward(w.web),
				Conditions: []elbtypes.RuleCondition{{Field: aws.String("path-pattern"), Values: []string{"/1", "/2", "/3", "/4", "/5", "/6"}}}})
			return err
		}},
		{"rule on an unknown listener", "ListenerNotFound", func() error {
			_, err := c.CreateRule(ctx, &elb.CreateRuleInput{ListenerArn: aws.String(w.http[:len(w.http)-4] + "ffff"), Priority: aws.Int32(30), Conditions: cond, Actions: forward(w.web)})
			return err
		}},
		{"rule to a group of another protocol", "IncompatibleProtocols", func() error {
			_, err := c.CreateRule(ctx, &elb.CreateRuleInput{ListenerArn: aws.String(w.http), Priority: aws.Int32(30), Conditions: cond, Actions: forward(w.tcp)})
			return err
		}},
		{"unknown rule", "RuleNotFound", func() error {
			_, err := c.DescribeRules(ctx, &elb.DescribeRulesInput{RuleArns: []string{bogus}})
			return err
		}},
		{"delete the default rule", "OperationNotPermitted", func() error {
			_, err := c.DeleteRule(ctx, &elb.DeleteRuleInput{RuleArn: aws.String(def)})
			return err
		}},
		{"priorities collide", "PriorityInUse", func() error {
			r3, err := c.DescribeRules(ctx, &elb.DescribeRulesInput{ListenerArn: aws.String(w.http)})
			if err != nil {
				return err
			}
			_, err = c.SetRulePriorities(ctx, &elb.SetRulePrioritiesInput{RulePriorities: []elbtypes.RulePriorityPair{{RuleArn: r3.Rules[0].RuleArn, Priority: aws.Int32(40)}}})
			if len(r3.Rules) != 3 || aws.ToString(r3.Rules[0].RuleArn) != w.rule {
				t.Errorf("rules after the delete: %+v", r3.Rules)
			}
			return err
		}},
	} {
		w.l.refused(t, c2.what, c2.code, c2.call)
	}
}
