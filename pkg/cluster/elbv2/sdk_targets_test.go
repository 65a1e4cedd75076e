package elbv2_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/elbv2/lbwire"
)

func (w *walk) targets(ctx context.Context, t *testing.T) {
	c := w.c
	ec := w.l.ecs()
	if _, err := ec.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("lab")}); err != nil {
		t.Fatal(err)
	}
	ri, err := ec.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("lab"),
		TotalResources: []ecstypes.Resource{{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: 1024},
			{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: 1024}},
		Attributes: []ecstypes.Attribute{{Name: aws.String("berth.host-address"), Value: aws.String("127.0.0.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	instArn := aws.ToString(ri.ContainerInstance.ContainerInstanceArn)
	w.instance = instArn[strings.LastIndex(instArn, "/")+1:]
	if _, err := c.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(w.web),
		Targets: []elbtypes.TargetDescription{{Id: aws.String(w.instance), Port: aws.Int32(32768)}, {Id: aws.String(instArn), Port: aws.Int32(32769)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(w.api),
		Targets: []elbtypes.TargetDescription{{Id: aws.String("10.203.0.7")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(w.other),
		Targets: []elbtypes.TargetDescription{{Id: aws.String(w.instance)}}}); err != nil {
		t.Fatal(err)
	}
	health := func(tg string, targets ...elbtypes.TargetDescription) map[string]elbtypes.TargetHealth {
		t.Helper()
		out, err := c.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg), Targets: targets})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]elbtypes.TargetHealth{}
		for _, d := range out.TargetHealthDescriptions {
			m[aws.ToString(d.Target.Id)+":"+aws.ToString(d.HealthCheckPort)] = *d.TargetHealth
		}
		return m
	}
	h := health(w.web)
	if len(h) != 2 || h[w.instance+":32768"].State != elbtypes.TargetHealthStateEnumInitial || h[w.instance+":32768"].Reason != elbtypes.TargetHealthReasonEnumRegistrationInProgress {
		t.Fatalf("new targets: %+v", h)
	}
	if h := health(w.other); h[w.instance+":80"].State != elbtypes.TargetHealthStateEnumUnused || h[w.instance+":80"].Reason != elbtypes.TargetHealthReasonEnumNotInUse {
		t.Errorf("a target of a group no load balancer uses: %+v", h)
	}
	if h := health(w.api, elbtypes.TargetDescription{Id: aws.String("10.203.0.8"), Port: aws.Int32(9000)}); h["10.203.0.8:9000"].Reason != elbtypes.TargetHealthReasonEnumNotRegistered {
		t.Errorf("an unregistered target: %+v", h)
	}

	// The data plane reads the load balancer with an lb key and reports.
	lbID, lbSecret := w.l.key(t, auth.RoleLB)
	var st lbwire.State
	w.dataPlane(t, lbID, lbSecret, lbwire.OpGetLoadBalancerState, lbwire.GetStateInput{LoadBalancerName: "web"}, &st, 200)
	if len(st.Listeners) != 2 || st.Listeners[1].Certificate == nil || !strings.Contains(st.Listeners[1].Certificate.PrivateKeyPEM, "PRIVATE KEY") ||
		len(st.TargetGroups) != 2 || st.Version == "" || st.Attributes["idle_timeout.timeout_seconds"] != "90" {
		t.Fatalf("data-plane state: %+v", st)
	}
	for _, tg := range st.TargetGroups {
		for _, tt := range tg.Targets {
			if tt.Address == "" {
				t.Errorf("target %s:%d of %s has no address", tt.ID, tt.Port, aws.ToString(tg.TargetGroup.TargetGroupName))
			}
		}
	}
	var rep lbwire.ReportOutput
	w.dataPlane(t, lbID, lbSecret, lbwire.OpReportTargetHealth, lbwire.ReportInput{TargetGroupArn: w.web, Targets: []lbwire.TargetHealth{
		{ID: w.instance, Port: 32768, State: "healthy"},
		{ID: w.instance, Port: 32769, State: "unhealthy", Reason: "Target.ResponseCodeMismatch", Description: "Health checks failed with these codes: [502]"},
		{ID: w.instance, Port: 1, State: "healthy"}}}, &rep, 200)
	if rep.Recorded != 2 || len(rep.NotRegistered) != 1 {
		t.Errorf("report: %+v", rep)
	}
	h = health(w.web)
	if h[w.instance+":32768"].State != elbtypes.TargetHealthStateEnumHealthy || h[w.instance+":32769"].Reason != elbtypes.TargetHealthReasonEnumResponseCodeMismatch {
		t.Errorf("reported health: %+v", h)
	}
	before := w.l.snapshot(t)
	w.dataPlane(t, lbID, lbSecret, lbwire.OpReportTargetHealth, lbwire.ReportInput{TargetGroupArn: w.web, Targets: []lbwire.TargetHealth{
		{ID: w.instance, Port: 32768, State: "healthy"}, {ID: w.instance, Port: 32769, State: "sick"}}}, nil, 400)
	if !equalSnap(before, w.l.snapshot(t)) {
		t.Error("a refused report changed the store")
	}
	// An lb key reads but does not write, and reaches no other API.
	lbc := w.l.elb(lbID, lbSecret)
	if _, err := lbc.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(w.web)}); err != nil {
		t.Errorf("lb key describing health: %v", err)
	}
	w.l.refused(t, "lb key registering", "AccessDenied", func() error {
		_, err := lbc.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(w.web), Targets: []elbtypes.TargetDescription{{Id: aws.String("10.0.0.1")}}})
		return err
	})

	// Draining: deregistration delay 5 s on web.
	if _, err := c.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: aws.String(w.web),
		Targets: []elbtypes.TargetDescription{{Id: aws.String(w.instance), Port: aws.Int32(32769)}}}); err != nil {
		t.Fatal(err)
	}
	if h := health(w.web); h[w.instance+":32769"].State != elbtypes.TargetHealthStateEnumDraining || h[w.instance+":32769"].Reason != elbtypes.TargetHealthReasonEnumDeregistrationInProgress {
		t.Errorf("a deregistered target: %+v", h)
	}
	w.dataPlane(t, lbID, lbSecret, lbwire.OpGetLoadBalancerState, lbwire.GetStateInput{LoadBalancerArn: w.lbArn}, &st, 200)
	draining := 0
	for _, tg := range st.TargetGroups {
		for _, tt := range tg.Targets {
			if tt.Draining && !tt.DrainingUntil.IsZero() {
				draining++
			}
		}
	}
	if draining != 1 {
		t.Errorf("the data plane sees %d draining targets, want 1", draining)
	}
	// Deregistering from a group no load balancer uses is immediate.
	if _, err := c.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: aws.String(w.other),
		Targets: []elbtypes.TargetDescription{{Id: aws.String(w.instance)}}}); err != nil {
		t.Fatal(err)
	}
	if h := health(w.other); len(h) != 0 {
		t.Errorf("targets left in an unused group: %+v", h)
	}

	for _, c2 := range []struct {
		what, code string
		call       func() error
	}{
		{"unknown instance", "InvalidTarget", func() error {
			_, err := c.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(w.web), Targets: []elbtypes.TargetDescription{
				{Id: aws.String(w.instance), Port: aws.Int32(40000)}, {Id: aws.String("0123456789abcdef0123456789abcdef")}}})
			return err
		}},
		{"not an IP", "InvalidTarget", func() error {
			_, err := c.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(w.api), Targets: []elbtypes.TargetDescription{{Id: aws.String("web.local")}}})
			return err
		}},
		{"target port 0", "ValidationError", func() error {
			_, err := c.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(w.api), Targets: []elbtypes.TargetDescription{{Id: aws.String("10.0.0.1"), Port: aws.Int32(0)}}})
			return err
		}},
		{"register to an unknown group", "TargetGroupNotFound", func() error {
			_, err := c.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(w.api[:len(w.api)-4] + "ffff"), Targets: []elbtypes.TargetDescription{{Id: aws.String("10.0.0.1")}}})
			return err
		}},
		{"anomaly detection", "ValidationError", func() error {
			_, err := c.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(w.web), Include: []elbtypes.DescribeTargetHealthInputIncludeEnum{"AnomalyDetection"}})
			return err
		}},
		{"deregister what is not registered", "InvalidTarget", func() error {
			_, err := c.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: aws.String(w.api), Targets: []elbtypes.TargetDescription{{Id: aws.String("10.0.0.2")}}})
			return err
		}},
	} {
		w.l.refused(t, c2.what, c2.code, c2.call)
	}
}

// dataPlane calls a data-plane operation signed with an lb key and
// decodes the answer into out when the status is 200.
func (w *walk) dataPlane(t *testing.T, id, secret, op string, in, out any, status int) {
	t.Helper()
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, w.l.url+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", lbwire.TargetPrefix+op)
	sum := sha256Hex(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, req, sum,
		auth.LBService, region, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s: HTTP %d %s, want %d", op, resp.StatusCode, b, status)
	}
	if out != nil && status == 200 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
	}
}

func (w *walk) tags(ctx context.Context, t *testing.T) {
	c := w.c
	arns := []string{w.lbArn, w.web, w.http, w.rule}
	if _, err := c.AddTags(ctx, &elb.AddTagsInput{ResourceArns: arns, Tags: []elbtypes.Tag{{Key: aws.String("team"), Value: aws.String("a")}, {Key: aws.String("env"), Value: aws.String("prod")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RemoveTags(ctx, &elb.RemoveTagsInput{ResourceArns: []string{w.web}, TagKeys: []string{"team"}}); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: arns})
	if err != nil || len(d.TagDescriptions) != 4 || len(d.TagDescriptions[0].Tags) != 2 || len(d.TagDescriptions[1].Tags) != 1 {
		t.Fatalf("tags: %v %+v", err, d)
	}
	for _, td := range d.TagDescriptions[:1] {
		for _, tag := range td.Tags {
			if aws.ToString(tag.Key) == "env" && aws.ToString(tag.Value) != "prod" {
				t.Errorf("AddTags did not overwrite env: %+v", td.Tags)
			}
		}
	}
	w.l.refused(t, "tag an unknown resource", "TargetGroupNotFound", func() error {
		_, err := c.AddTags(ctx, &elb.AddTagsInput{ResourceArns: []string{w.lbArn, w.web[:len(w.web)-4] + "ffff"}, Tags: []elbtypes.Tag{{Key: aws.String("x")}}})
		return err
	})
	w.l.refused(t, "aws: tag", "ValidationError", func() error {
		_, err := c.AddTags(ctx, &elb.AddTagsInput{ResourceArns: []string{w.lbArn}, Tags: []elbtypes.Tag{{Key: aws.String("aws:x")}}})
		return err
	})
}

func (w *walk) roles(ctx context.Context, t *testing.T) {
	agentID, agentSecret := w.l.key(t, auth.RoleAgent)
	w.l.refused(t, "agent key", "AccessDenied", func() error {
		_, err := w.l.elb(agentID, agentSecret).DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{})
		return err
	})
	lbID, lbSecret := w.l.key(t, auth.RoleLB)
	_, err := ecs.New(ecs.Options{Region: region, BaseEndpoint: aws.String(w.l.url), Retryer: aws.NopRetryer{},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: lbID, SecretAccessKey: lbSecret}, nil
		}), HTTPClient: w.l.ecsHTTP()}).ListClusters(ctx, &ecs.ListClustersInput{})
	if errorCode(err) != "AccessDeniedException" {
		t.Errorf("an lb key calling ECS: %v, want AccessDeniedException", err)
	}
}

func (w *walk) deletes(ctx context.Context, t *testing.T) {
	c := w.c
	if _, err := c.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerArn: aws.String(w.lbArn),
		Attributes: []elbtypes.LoadBalancerAttribute{{Key: aws.String("deletion_protection.enabled"), Value: aws.String("true")}}}); err != nil {
		t.Fatal(err)
	}
	w.l.refused(t, "deletion protection", "OperationNotPermitted", func() error {
		_, err := c.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(w.lbArn)})
		return err
	})
	if _, err := c.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerArn: aws.String(w.lbArn),
		Attributes: []elbtypes.LoadBalancerAttribute{{Key: aws.String("deletion_protection.enabled"), Value: aws.String("false")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteListener(ctx, &elb.DeleteListenerInput{ListenerArn: aws.String(w.https)}); err != nil {
		t.Fatal(err)
	}
	lbs, err := c.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{})
	if err != nil || len(lbs.LoadBalancers) != 3 {
		t.Fatalf("load balancers before the deletes: %v %+v", err, lbs)
	}
	for _, lb := range lbs.LoadBalancers {
		lb := aws.ToString(lb.LoadBalancerArn)
		if _, err := c.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(lb)}); err != nil {
			t.Fatal(err)
		}
	}
	// With the load balancers gone their groups are free to delete.
	for _, tg := range []string{w.web, w.api, w.tcp, w.other} {
		if _, err := c.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(tg)}); err != nil {
			t.Fatalf("delete %s: %v", tg, err)
		}
	}
	snap := w.l.snapshot(t)
	for b, recs := range snap {
		if strings.HasPrefix(string(b), "lb-") && len(recs) != 0 {
			t.Errorf("%s still holds %v", b, recs)
		}
	}
}
