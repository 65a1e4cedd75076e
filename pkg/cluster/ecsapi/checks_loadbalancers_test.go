package ecsapi

import (
	"encoding/json"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

var testLBARNs = records.LBARNs{Region: "us-test-1", AccountID: "123456789012"}

// targetGroup stores a target group (as the Elastic Load Balancing API
// would) and returns its ARN; attached puts it behind a load balancer.
func (e *env) targetGroup(name string, typ elbtypes.TargetTypeEnum, proto elbtypes.ProtocolEnum, attached bool) string {
	e.t.Helper()
	tgArn := testLBARNs.TargetGroup(name, "0123456789abcdef"[:len(name)%16]+strings.Repeat("0", 16-len(name)%16))
	tg := &records.TargetGroup{TargetGroup: elbtypes.TargetGroup{TargetGroupArn: aws.String(tgArn), TargetGroupName: aws.String(name),
		TargetType: typ, Protocol: proto, Port: aws.Int32(80), LoadBalancerArns: []string{}}}
	if attached {
		tg.TargetGroup.LoadBalancerArns = []string{testLBARNs.LoadBalancer("app", "lb", "1111111111111111")}
	}
	e.ok(e.s.opts.Store.Update(func(tx store.Tx) error { return records.Put(tx, tg) }), "store target group")
	return tgArn
}

// lbTaskDefs registers "web" with container app mapping tcp 8080 (bridge)
// and "vpc" in awsvpc mode.
func (e *env) lbTaskDefs() {
	e.cluster("c")
	e.instance("c")
	mapPort := func(in *ecs.RegisterTaskDefinitionInput) {
		in.ContainerDefinitions[0].PortMappings = []types.PortMapping{{ContainerPort: aws.Int32(8080)}, {ContainerPort: aws.Int32(5353), Protocol: types.TransportProtocolUdp}}
	}
	e.taskDef("web", mapPort)
	e.taskDef("vpc", func(in *ecs.RegisterTaskDefinitionInput) { mapPort(in); in.NetworkMode = types.NetworkModeAwsvpc })
}

func lbEntry(tgArn, container string, port int32) []types.LoadBalancer {
	return []types.LoadBalancer{{TargetGroupArn: aws.String(tgArn), ContainerName: aws.String(container), ContainerPort: aws.Int32(port)}}
}

// loadBalancerRefusals are the loadBalancers ECS refuses, each with the
// member its error must name; nothing is written by any of them.
func (e *env) loadBalancerRefusals(call func(lbs []types.LoadBalancer, td string) error) {
	e.t.Helper()
	good := e.targetGroup("good", elbtypes.TargetTypeEnumInstance, elbtypes.ProtocolEnumHttp, true)
	loose := e.targetGroup("loose", elbtypes.TargetTypeEnumInstance, elbtypes.ProtocolEnumHttp, false)
	ip := e.targetGroup("ip", elbtypes.TargetTypeEnumIp, elbtypes.ProtocolEnumHttp, true)
	udp := e.targetGroup("udp", elbtypes.TargetTypeEnumInstance, elbtypes.ProtocolEnumUdp, true)
	// The Elastic Load Balancing API refuses lambda and alb target groups;
	// stored anyway (a store written by another version), a service still
	// refuses them by name.
	lambda := e.targetGroup("lambda", elbtypes.TargetTypeEnumLambda, "", true)
	alb := e.targetGroup("alb-group", elbtypes.TargetTypeEnumAlb, elbtypes.ProtocolEnumTcp, true)
	six := []types.LoadBalancer{}
	for range 6 {
		six = append(six, lbEntry(good, "app", 8080)...)
	}
	cases := []struct {
		lbs    []types.LoadBalancer
		td     string
		member string
		msg    string
	}{
		{lbEntry(testLBARNs.TargetGroup("nope", "ffffffffffffffff"), "app", 8080), "web", "loadBalancers[0].targetGroupArn", "does not exist"},
		{lbEntry("arn:aws:elasticloadbalancing:us-test-1:123456789012:loadbalancer/app/x/1", "app", 8080), "web", "loadBalancers[0].targetGroupArn", "does not exist"},
		{lbEntry(loose, "app", 8080), "web", "loadBalancers[0].targetGroupArn", "does not have an associated load balancer"},
		{lbEntry(good, "db", 8080), "web", "loadBalancers[0].containerName", "The container db does not exist in the task definition"},
		{lbEntry(good, "app", 9090), "web", "loadBalancers[0].containerPort", "did not have a container port 9090 defined"},
		{lbEntry(good, "app", 8080), "vpc", "loadBalancers[0].targetGroupArn", "incompatible with the awsvpc network mode"},
		{lbEntry(ip, "app", 8080), "web", "loadBalancers[0].targetGroupArn", "incompatible with the bridge network mode"},
		{lbEntry(ip, "app", 8080), "vpc", "loadBalancers[0].targetGroupArn", "target type ip is not supported"},
		{lbEntry(lambda, "app", 8080), "web", "loadBalancers[0].targetGroupArn", "has target type lambda, which a service cannot register tasks in"},
		{lbEntry(alb, "app", 8080), "web", "loadBalancers[0].targetGroupArn", "has target type alb, which a service cannot register tasks in"},
		{lbEntry(udp, "app", 8080), "web", "loadBalancers[0].containerPort", "protocol tcp"},
		{lbEntry(good, "app", 5353), "web", "loadBalancers[0].containerPort", "protocol udp"},
		{lbEntry("", "app", 8080), "web", "loadBalancers[0].targetGroupArn", "can not be blank"},
		{lbEntry(good, "", 8080), "web", "loadBalancers[0].containerName", "can not be blank"},
		{[]types.LoadBalancer{{TargetGroupArn: aws.String(good), ContainerName: aws.String("app")}}, "web", "loadBalancers[0].containerPort", "can not be blank"},
		{[]types.LoadBalancer{{LoadBalancerName: aws.String("classic"), ContainerName: aws.String("app"), ContainerPort: aws.Int32(8080)}}, "web", "loadBalancers[0].loadBalancerName", "Classic"},
		{append(lbEntry(good, "app", 8080), lbEntry(good, "app", 8080)...), "web", "loadBalancers[1]", "already names"},
		{six, "web", "loadBalancers", "at most 5"},
	}
	for _, c := range cases {
		before := e.snapshot()
		err := call(c.lbs, c.td)
		e.refusedNaming(err, c.member)
		e.fails(err, "InvalidParameterException", c.msg)
		if after := e.snapshot(); after != before {
			e.t.Fatalf("refused %s (%s) changed the store", c.member, c.msg)
		}
	}
}

// snapshot is the services' records as JSON: a refused call changes none.
func (e *env) snapshot() string {
	e.t.Helper()
	var all []*records.Service
	e.ok(e.s.opts.Store.View(func(tx store.Tx) error {
		all = nil
		return records.Each(tx, records.Services, "", func(r *records.Service) error { all = append(all, r); return nil })
	}), "read services")
	b, err := json.Marshal(all)
	e.ok(err, "marshal services")
	return string(b)
}

func loadBalancerChecks() map[string]func(*env) {
	return map[string]func(*env){
		"CreateService.loadBalancers": func(e *env) {
			e.lbTaskDefs()
			tg := e.targetGroup("good", elbtypes.TargetTypeEnumInstance, elbtypes.ProtocolEnumHttp, true)
			e.service("svc", func(in *ecs.CreateServiceInput) { in.LoadBalancers = lbEntry(tg, "app", 8080) })
			got := e.describeService("svc").LoadBalancers
			if len(got) != 1 || aws.ToString(got[0].TargetGroupArn) != tg || aws.ToString(got[0].ContainerName) != "app" || aws.ToInt32(got[0].ContainerPort) != 8080 {
				e.t.Fatalf("loadBalancers read back %+v", got)
			}
			wantEq(e, "without", len(e.service("plain", nil).LoadBalancers), 0)
			e.loadBalancerRefusals(func(lbs []types.LoadBalancer, td string) error {
				_, err := e.c.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String("c"), ServiceName: aws.String("bad"),
					TaskDefinition: aws.String(td), DesiredCount: aws.Int32(1), LoadBalancers: lbs})
				return err
			})
		},
		"UpdateService.loadBalancers": func(e *env) {
			e.lbTaskDefs()
			tg := e.targetGroup("good", elbtypes.TargetTypeEnumInstance, elbtypes.ProtocolEnumHttp, true)
			first := e.service("svc", nil)
			after := e.updateService(func(in *ecs.UpdateServiceInput) { in.LoadBalancers = lbEntry(tg, "app", 8080) })
			if len(after.LoadBalancers) != 1 || aws.ToString(e.describeService("svc").LoadBalancers[0].TargetGroupArn) != tg {
				e.t.Fatalf("loadBalancers after update %+v", after.LoadBalancers)
			}
			// A new load balancer configuration is a new deployment.
			if aws.ToString(after.Deployments[0].Id) == aws.ToString(first.Deployments[0].Id) {
				e.t.Fatal("changing loadBalancers started no deployment")
			}
			same := e.updateService(func(in *ecs.UpdateServiceInput) { in.LoadBalancers = lbEntry(tg, "app", 8080) })
			wantEq(e, "same loadBalancers, same deployment", aws.ToString(same.Deployments[0].Id), aws.ToString(after.Deployments[0].Id))
			// Nil keeps them; an empty list removes them.
			wantEq(e, "kept", len(e.updateService(func(in *ecs.UpdateServiceInput) { in.DesiredCount = aws.Int32(0) }).LoadBalancers), 1)
			wantEq(e, "removed", len(e.updateService(func(in *ecs.UpdateServiceInput) { in.LoadBalancers = []types.LoadBalancer{} }).LoadBalancers), 0)
			e.loadBalancerRefusals(func(lbs []types.LoadBalancer, td string) error {
				_, err := e.c.UpdateService(e.ctx, &ecs.UpdateServiceInput{Cluster: aws.String("c"), Service: aws.String("svc"),
					TaskDefinition: aws.String(td), LoadBalancers: lbs})
				return err
			})
			// A new revision whose container no longer maps the port is
			// refused while the service keeps its load balancer.
			e.updateService(func(in *ecs.UpdateServiceInput) { in.LoadBalancers = lbEntry(tg, "app", 8080) })
			_, err := e.c.UpdateService(e.ctx, &ecs.UpdateServiceInput{Cluster: aws.String("c"), Service: aws.String("svc"), TaskDefinition: aws.String(e.taskDef("web", nil))})
			e.refusedNaming(err, "loadBalancers[0].containerPort")
		},
	}
}
