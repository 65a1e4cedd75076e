package devmode_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-dev/berth/pkg/agent/devmode"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/network"
)

// TestDevModeStopRemovesNetwork stops dev mode twice on one directory, as
// a user does before deleting it: first with a task running, then with
// every task stopped. The built-in datapath's nftables table (named after
// the owner tag, which derives from the directory) and the bridge's
// iptables forward rules must stay while a sandbox needs them, and be gone
// after the stop with none left, each stop saying in the log what it did.
// Before, dev mode never removed them, so deleting the directory leaked
// them for good (issue 14, item 4).
func TestDevModeStopRemovesNetwork(t *testing.T) {
	e := newE2E(t, acs.Options{}) // containerd and registry; its endpoint is unused here
	s := e.spec()
	cfg, err := s.config()
	if err != nil {
		t.Fatal(err)
	}
	owner, err := network.OwnerForDir(s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	table := s.Prefix + owner
	dir := t.TempDir()
	present := func() (tableThere bool, fwdRules []string) {
		t.Helper()
		tableThere = exec.Command("nft", "list", "table", "ip", table).Run() == nil
		out, err := exec.Command("iptables-save", "-t", "filter").Output()
		if err != nil {
			t.Fatalf("iptables-save: %v", err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, `"berth:fwd:`+s.Bridge+`"`) {
				fwdRules = append(fwdRules, l)
			}
		}
		return tableThere, fwdRules
	}

	first := startDev(t, dir, cfg, s)
	dev := first.waitStarted(t)
	devE := &e2e{t: t, admin: devmode.NewECSClient(dev.Endpoint.URL, region, dev.Admin), image: e.image}
	task := devE.runTasks(devE.taskDef("web", 0), 1)[0]
	devE.waitStatus(task, "RUNNING", 90*time.Second)
	if err := first.stop(t); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("dev mode: %v", err)
	}
	if tableThere, rules := present(); !tableThere || len(rules) != 2 {
		t.Errorf("after a stop with a task running: table %s present %v, forward rules %q; want both kept for the task's sandbox", table, tableThere, rules)
	}
	if log := first.log.String(); !strings.Contains(log, "network left in place for the next start") || !strings.Contains(log, "sandbox "+s.Prefix+owner+"-") {
		t.Errorf("the stop with a task running does not say that it keeps the network, and for which sandbox:\n%s", log)
	}

	second := startDev(t, dir, cfg, s)
	dev = second.waitStarted(t)
	devE.admin = devmode.NewECSClient(dev.Endpoint.URL, region, dev.Admin)
	if _, err := devE.admin.StopTask(context.Background(), &ecs.StopTaskInput{Cluster: aws.String(devmode.ClusterName), Task: aws.String(task)}); err != nil {
		t.Fatal(err)
	}
	devE.waitStatus(task, "STOPPED", 60*time.Second)
	if err := second.stop(t); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("dev mode: %v", err)
	}
	if tableThere, rules := present(); tableThere || len(rules) != 0 {
		t.Errorf("after a stop with no task left: table %s present %v, forward rules %q; want none (log:\n%s)", table, tableThere, rules, second.log.String())
	}
	if log := second.log.String(); !strings.Contains(log, "removed the network's host-wide parts") || !strings.Contains(log, table) {
		t.Errorf("the stop with no task left does not say that it removed table %s:\n%s", table, log)
	}
}
