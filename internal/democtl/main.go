// Command berth-democtl drives `make demo` (scripts/demo.sh) through the
// AWS SDK for Go, so the demo needs no AWS CLI. It reads the endpoint,
// region and credentials the way every AWS tool does, from the variables in
// the dev mode's DIR/env.
//
//	berth-democtl free-port             print a free loopback TCP port
//	berth-democtl lb PORT RUNDIR CONF   create load balancer berth-demo, its
//	    target group and an HTTP listener on 127.0.0.1:PORT, and write
//	    berth-lb's configuration for it (HAProxy's files under RUNDIR) to CONF
//	berth-democtl run [--follow-for D] IMAGE INTROSPECT URL  register a task
//	    definition with hostPort 0, create service berth-demo of two tasks
//	    behind the target group, curl each task, wait until URL (the
//	    listener) answers, replace both tasks with a new deployment while
//	    requesting URL, then stream one container's log (from the agent's
//	    introspection API at INTROSPECT, host:port) for D, or until SIGINT
//	    or SIGTERM (then exit 130), leaving the tasks running
//	berth-democtl stop                  delete every service of the
//	    cluster, stop every task and wait until each is STOPPED
//
// Stopping is separate from run because the demo's clean-up, not the
// process that Ctrl-C happens to interrupt, owns the order of the stop:
// tasks first, then berth-lb and its HAProxy, then the agent, then its
// bridge (scripts/demo.sh). Dev mode, stopped with no task left, removes
// its network's rules itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: berth-democtl free-port | lb PORT RUNDIR CONF | run [--follow-for DURATION] IMAGE INTROSPECTION-ADDR URL | stop")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "free-port":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
	case "lb":
		port := 0
		if len(os.Args) != 5 {
			fmt.Fprintln(os.Stderr, "usage: berth-democtl lb PORT RUNDIR CONF")
			os.Exit(2)
		}
		if _, err := fmt.Sscan(os.Args[2], &port); err != nil || port < 1 || port > 65535 {
			fmt.Fprintf(os.Stderr, "demo: load balancer port %q: want 1-65535\n", os.Args[2])
			os.Exit(2)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := setUpLB(ctx, port, os.Args[3], os.Args[4])
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "demo: %v\n", err)
			os.Exit(1)
		}
	case "run":
		flags := flag.NewFlagSet("run", flag.ExitOnError)
		followFor := flags.Duration("follow-for", 0, "stop following the log after this long (0: until SIGINT)")
		_ = flags.Parse(os.Args[2:])
		if flags.NArg() != 3 {
			fmt.Fprintln(os.Stderr, "usage: berth-democtl run [--follow-for DURATION] IMAGE INTROSPECTION-ADDR URL")
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, flags.Arg(0), flags.Arg(1), flags.Arg(2), *followFor)
		interrupted := ctx.Err() != nil
		stop()
		if interrupted {
			// The demo's clean-up stops the tasks (berth-democtl stop).
			fmt.Printf("\n==> interrupted (%v)\n", context.Cause(ctx))
			if err != nil && !errors.Is(err, context.Canceled) {
				fmt.Fprintf(os.Stderr, "demo: %v\n", err)
			}
			os.Exit(130)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "demo: %v\n", err)
			os.Exit(1)
		}
	case "stop":
		// No signal handling: the demo's clean-up starts this with SIGINT
		// ignored, so a second Ctrl-C cannot cut the stop short.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err := stopAll(ctx)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "demo: %v\n", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "berth-democtl: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func say(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

// run is the demo up to the log stream, which it follows until ctx ends
// (Ctrl-C); it stops nothing: scripts/demo.sh's clean-up runs stop.
func run(ctx context.Context, image, introspection, url string, followFor time.Duration) error {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("load AWS configuration (did you source DIR/env?): %w", err)
	}
	client := ecs.NewFromConfig(cfg)
	if err := waitForInstance(ctx, client); err != nil {
		return err
	}
	tg, err := targetGroupArn(ctx, cfg)
	if err != nil {
		return err
	}
	say("registering task definition berth-demo (image %s, containerPort 80, hostPort 0)", image)
	td, err := client.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
		Family: aws.String("berth-demo"),
		ContainerDefinitions: []types.ContainerDefinition{{
			Name: aws.String("hello"), Image: aws.String(image), Memory: aws.Int32(64), Essential: aws.Bool(true),
			PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80), HostPort: aws.Int32(0), Protocol: types.TransportProtocolTcp}},
		}},
	})
	if err != nil {
		return fmt.Errorf("register task definition: %w", err)
	}
	say("running two tasks: service %s behind target group %s (container hello, port 80)", demoName, demoName)
	// Not cancelled by Ctrl-C: a request abandoned half-way could still
	// create the service, and the clean-up must find it.
	if _, err := client.CreateService(context.WithoutCancel(ctx), &ecs.CreateServiceInput{ServiceName: aws.String(demoName),
		TaskDefinition: td.TaskDefinition.TaskDefinitionArn, DesiredCount: aws.Int32(2),
		LoadBalancers: []types.LoadBalancer{{TargetGroupArn: aws.String(tg), ContainerName: aws.String("hello"), ContainerPort: aws.Int32(80)}},
	}); err != nil {
		return fmt.Errorf("create service: %w", err)
	}
	running, err := waitRunning(ctx, client, 2)
	if err != nil {
		return err
	}
	for _, t := range running {
		port := hostPort(t)
		fmt.Printf("\n$ curl http://127.0.0.1:%d   # task %s directly, at its dynamic host port\n", port, taskID(aws.ToString(t.TaskArn)))
		body, err := get(ctx, fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			fmt.Printf("(no answer: %v)\n", err)
		} else {
			fmt.Print(body)
		}
	}
	fmt.Println()
	say("waiting until HAProxy's health checks pass (every 5 s, twice) and %s answers", url)
	if err := waitHealthy(ctx, cfg, tg, 2); err != nil {
		return err
	}
	body, err := waitAnswers(ctx, url)
	if err != nil {
		return err
	}
	fmt.Printf("\n$ curl %s\n%s\n", url, body)
	say("the service answers at %s (berth-lb's HAProxy, one URL for every task)", url)
	sent, failed, err := replaceTasks(ctx, client, url)
	if err != nil {
		return err
	}
	say("tasks replaced: %d requests to %s, %d failed", sent, url, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d requests to %s failed while the tasks were replaced", failed, sent, url)
	}
	running, err = serviceTasks(ctx, client)
	if err != nil || len(running) == 0 {
		return fmt.Errorf("the service's tasks after the deployment: %d, %v", len(running), err)
	}
	id := taskID(aws.ToString(running[0].TaskArn))
	fmt.Println()
	say("streaming the log of task %s, container hello (Ctrl-C stops the tasks and ends the demo)", id)
	fctx, cancel := ctx, context.CancelFunc(func() {})
	if followFor > 0 {
		fctx, cancel = context.WithTimeout(ctx, followFor)
	}
	defer cancel()
	if err := follow(fctx, fmt.Sprintf("http://%s/v1/tasks/%s/containers/hello/logs?follow=true&tail=20", introspection, id)); err != nil && fctx.Err() == nil {
		fmt.Printf("(log stream ended: %v)\n", err)
		<-fctx.Done()
	}
	if ctx.Err() == nil {
		fmt.Println()
		say("followed the log for %v", followFor)
	}
	return ctx.Err()
}

// stopAll deletes every service of the cluster (their tasks drain from
// the load balancer first), stops every task that is not yet STOPPED and
// waits until each is.
func stopAll(ctx context.Context) error {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("load AWS configuration (did you source DIR/env?): %w", err)
	}
	client := ecs.NewFromConfig(cfg)
	if err := deleteServices(ctx, client); err != nil {
		return err
	}
	var arns []string
	// ListTasks lists RUNNING (desired) tasks by default, PENDING ones included.
	pages := ecs.NewListTasksPaginator(client, &ecs.ListTasksInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list tasks: %w", err)
		}
		arns = append(arns, page.TaskArns...)
	}
	if len(arns) == 0 {
		say("no task to stop")
		return nil
	}
	return stopTasks(ctx, client, arns)
}

func taskID(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }

func waitForInstance(ctx context.Context, client *ecs.Client) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		list, err := client.ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{})
		if err == nil && len(list.ContainerInstanceArns) > 0 {
			// RunTask places tasks only on instances whose agent is connected.
			out, derr := client.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{ContainerInstances: list.ContainerInstanceArns[:1]})
			if derr == nil && len(out.ContainerInstances) == 1 && out.ContainerInstances[0].AgentConnected {
				say("agent registered and connected: %s", list.ContainerInstanceArns[0])
				return nil
			}
			err = derr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no connected container instance within 2 minutes (last error: %v); see the agent log", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func waitStatus(ctx context.Context, client *ecs.Client, arn, want string) (types.Task, error) {
	last := ""
	for {
		out, err := client.DescribeTasks(ctx, &ecs.DescribeTasksInput{Tasks: []string{arn}})
		if err == nil && len(out.Tasks) == 1 {
			t := out.Tasks[0]
			if s := aws.ToString(t.LastStatus); s != last {
				last = s
				say("task %s: %s", taskID(arn), s)
			}
			if last == want {
				return t, nil
			}
			if last == "STOPPED" {
				return t, fmt.Errorf("task %s stopped: %s", arn, aws.ToString(t.StoppedReason))
			}
		}
		select {
		case <-ctx.Done():
			return types.Task{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func stopTasks(ctx context.Context, client *ecs.Client, arns []string) error {
	say("stopping the tasks")
	for _, arn := range arns {
		if _, err := client.StopTask(ctx, &ecs.StopTaskInput{Task: aws.String(arn), Reason: aws.String("demo finished")}); err != nil {
			return fmt.Errorf("stop task %s: %w", arn, err)
		}
	}
	for _, arn := range arns {
		t, err := waitStatus(ctx, client, arn, "STOPPED")
		if err != nil && aws.ToString(t.LastStatus) != "STOPPED" {
			return err
		}
		exit := "no exit code"
		if len(t.Containers) > 0 && t.Containers[0].ExitCode != nil {
			exit = fmt.Sprintf("exit code %d", aws.ToInt32(t.Containers[0].ExitCode))
		}
		say("task %s STOPPED: %s (%s)", taskID(arn), aws.ToString(t.StoppedReason), exit)
	}
	return nil
}

func hostPort(t types.Task) int32 {
	for _, c := range t.Containers {
		for _, nb := range c.NetworkBindings {
			return aws.ToInt32(nb.HostPort)
		}
	}
	return 0
}

// get fetches url, trying again for 5 s while it cannot connect (a
// container's httpd starts a moment after the task is RUNNING).
func get(ctx context.Context, url string) (string, error) {
	var lastErr error
	for i := 0; i < 50; i++ {
		_, body, err := fetch(ctx, http.DefaultClient, url)
		if err == nil {
			return body, nil
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	return "", lastErr
}

func follow(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}
