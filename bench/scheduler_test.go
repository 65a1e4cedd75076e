package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/internal/simfleet"
	"github.com/berth-dev/berth/pkg/cluster/scheduler"
	"github.com/berth-dev/berth/pkg/cluster/servicectl"
)

// schedulerFleet is 1,000 instances (4096 CPU, 16384 MiB) over zones a, b
// and c; every tenth is stack=dev, the rest stack=prod.
func schedulerFleet() []*scheduler.Instance {
	out := make([]*scheduler.Instance, 1000)
	for i := range out {
		stack := "prod"
		if i%10 == 0 {
			stack = "dev"
		}
		out[i] = &scheduler.Instance{
			Arn: fmt.Sprintf("i-%04d", i), ID: fmt.Sprintf("i-%04d", i), RemainingCPU: 4096, RemainingMemory: 16384,
			Attributes:     map[string]string{"ecs.availability-zone": string(rune('a' + i%3)), "stack": stack},
			AgentConnected: true, Groups: map[string]int{},
		}
	}
	return out
}

// BenchmarkSchedulerPlacement places 10,000 tasks (64 CPU, 256 MiB) on
// 1,000 instances with spread(attribute:ecs.availability-zone) then
// binpack(memory) under memberOf(attribute:stack == prod and
// agentConnected == true). The raw baseline is first-fit over the same
// instances in the same run; the ratio is pipeline time / first-fit time.
func BenchmarkSchedulerPlacement(b *testing.B) {
	const tasks = 10000
	strats, err := scheduler.ParseStrategies([]string{"spread", "binpack"}, []string{"attribute:ecs.availability-zone", "memory"})
	if err != nil {
		b.Fatal(err)
	}
	mo, err := scheduler.ParseConstraint("memberOf", "attribute:stack == prod and agentConnected == true")
	if err != nil {
		b.Fatal(err)
	}
	d := scheduler.Demand{CPU: 64, Memory: 256}
	var pipeline, firstFit time.Duration
	for i := 0; i < b.N; i++ {
		p := &scheduler.Placer{Instances: schedulerFleet(), Rand: rand.New(rand.NewPCG(1, uint64(i)))}
		req := &scheduler.Request{Demand: d, Group: "service:bench", Constraints: []scheduler.Constraint{mo}, Strategies: strats}
		start := time.Now()
		for j := 0; j < tasks; j++ {
			if idx, _ := p.Place(req); idx < 0 {
				b.Fatalf("task %d not placed", j)
			}
		}
		pipeline += time.Since(start)

		raw := schedulerFleet()
		start = time.Now()
		for j := 0; j < tasks; j++ {
			if idx, _ := scheduler.FirstFit(raw, d); idx < 0 {
				b.Fatalf("first-fit task %d not placed", j)
			}
		}
		firstFit += time.Since(start)
	}
	b.ReportMetric(float64(tasks*b.N)/pipeline.Seconds(), "decisions/s")
	b.ReportMetric(float64(tasks*b.N)/firstFit.Seconds(), "firstfit-decisions/s")
	b.ReportMetric(pipeline.Seconds()/firstFit.Seconds(), "ratio-vs-firstfit")
}

// BenchmarkSchedulerServiceSteadyState measures how long a 100-task
// service takes from CreateService to its steady-state event on a
// simulated fleet of 100 instances in three zones (real endpoint, real ACS
// sessions, state changes through the ECS API; also on 1,000 instances;
// tasks report RUNNING 10 ms
// after their payload; the 40 s health grace is set to 1 ms so that the
// controller, not the grace, is measured). The raw baseline is 100 tasks
// started with RunTask (10 calls of 10) until all report RUNNING, on the
// same fleet in the same run.
func BenchmarkSchedulerServiceSteadyState(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) { benchServiceSteadyState(b, n) })
	}
}

func benchServiceSteadyState(b *testing.B, instances int) {
	env := simfleet.NewEnv(b, simfleet.EnvOptions{
		Services: servicectl.Timing{Interval: 50 * time.Millisecond, HealthyAfter: time.Millisecond},
		Fleet:    simfleet.Options{StartDelay: 10 * time.Millisecond},
	})
	ctx := context.Background()
	for i := 0; i < instances; i++ {
		if _, err := env.Fleet.Add(ctx, 1, simfleet.Zones(i, "a", "b", "c")); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := env.Admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
		Family:               aws.String("bench"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Cpu: 64, Memory: aws.Int32(128)}},
	}); err != nil {
		b.Fatal(err)
	}
	cluster := aws.String(env.Cluster)
	var service, raw time.Duration
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("svc-%d", i)
		start := time.Now()
		if _, err := env.Admin.CreateService(ctx, &ecs.CreateServiceInput{Cluster: cluster, ServiceName: aws.String(name),
			TaskDefinition: aws.String("bench"), DesiredCount: aws.Int32(100)}); err != nil {
			b.Fatal(err)
		}
		for {
			out, err := env.Admin.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: cluster, Services: []string{name}})
			if err != nil {
				b.Fatal(err)
			}
			svc := out.Services[0]
			if len(svc.Events) > 0 && aws.ToString(svc.Events[0].Message) == "(service "+name+") has reached a steady state." {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		service += time.Since(start)
		b.StopTimer()
		scaleDown(b, env, name)
		b.StartTimer()

		start = time.Now()
		var arns []string
		for j := 0; j < 10; j++ {
			out, err := env.Admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: cluster, TaskDefinition: aws.String("bench"), Count: aws.Int32(10),
				StartedBy: aws.String("bench")})
			if err != nil || len(out.Tasks) != 10 {
				b.Fatalf("RunTask: %v %+v", err, out)
			}
			for _, t := range out.Tasks {
				arns = append(arns, aws.ToString(t.TaskArn))
			}
		}
		for running := 0; running < len(arns); {
			running = 0
			for k := 0; k < len(arns); k += 100 {
				dt, err := env.Admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: cluster, Tasks: arns[k:min(k+100, len(arns))]})
				if err != nil {
					b.Fatal(err)
				}
				for _, t := range dt.Tasks {
					if aws.ToString(t.LastStatus) == "RUNNING" {
						running++
					}
				}
			}
			if running < len(arns) {
				time.Sleep(5 * time.Millisecond)
			}
		}
		raw += time.Since(start)
		b.StopTimer()
		for _, arn := range arns {
			if _, err := env.Admin.StopTask(ctx, &ecs.StopTaskInput{Cluster: cluster, Task: aws.String(arn)}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(service.Seconds()/float64(b.N), "s-to-steady")
	b.ReportMetric(raw.Seconds()/float64(b.N), "runtask-s-to-running")
	b.ReportMetric(service.Seconds()/raw.Seconds(), "ratio-vs-runtask")
}

// scaleDown deletes a benchmark service and waits until it is INACTIVE.
func scaleDown(b *testing.B, env *simfleet.Env, name string) {
	ctx := context.Background()
	if _, err := env.Admin.DeleteService(ctx, &ecs.DeleteServiceInput{Cluster: aws.String(env.Cluster), Service: aws.String(name), Force: aws.Bool(true)}); err != nil {
		b.Fatal(err)
	}
	for {
		out, err := env.Admin.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(env.Cluster), Services: []string{name}})
		if err != nil {
			b.Fatal(err)
		}
		if aws.ToString(out.Services[0].Status) == "INACTIVE" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
