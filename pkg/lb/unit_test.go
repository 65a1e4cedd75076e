package lb

import (
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/elbv2/lbwire"
)

func TestParseConfig(t *testing.T) {
	good := "endpoint = \"https://cluster:8443\"\naccess_key_id = \"AK\"\nsecret_access_key = \"S\"\nload_balancers = [\"web\"]\n"
	cfg, err := ParseConfig("lb.toml", []byte(good))
	if err != nil || cfg.HAProxy != "/usr/sbin/haproxy" || cfg.RunDir != "/run/berth-lb" || cfg.PollInterval.Seconds() != 2 || cfg.MetricsInterval.Seconds() != 10 {
		t.Fatalf("good config: %+v %v", cfg, err)
	}
	tests := []struct{ name, text, want string }{
		{"unknown key", good + "colour = \"red\"\n", "lb.toml:5: colour: unknown setting; allowed: endpoint"},
		{"bad endpoint", strings.Replace(good, "https://cluster:8443", "cluster", 1), "lb.toml:1: endpoint: \"cluster\" is not the endpoint's URL"},
		{"no key", "endpoint = \"http://x:1\"\nload_balancers = [\"web\"]\n", "lb.toml: access_key_id: required"},
		{"no load balancer", strings.Replace(good, "[\"web\"]", "[]", 1), "lb.toml:4: load_balancers: required"},
		{"bad name", strings.Replace(good, "[\"web\"]", "[\"-web\"]", 1), "lb.toml:4: load_balancers: \"-web\" is not a load balancer name"},
		{"twice", strings.Replace(good, "[\"web\"]", "[\"web\", \"web\"]", 1), "\"web\" is listed twice"},
		{"bind", good + "bind_address = \"localhost\"\n", "lb.toml:5: bind_address: \"localhost\" is not an IP address"},
		{"interval", good + "poll_interval = \"10ms\"\n", "lb.toml:5: poll_interval: 10ms: allowed from 100ms to 5m"},
		{"metrics interval", good + "metrics_interval = \"2m\"\n", "lb.toml:5: metrics_interval: 2m0s: allowed from 1s to 1m"},
		{"interval type", good + "poll_interval = \"soon\"\n", "lb.toml:5: poll_interval"},
		{"syntax", good + "x = \n", "lb.toml:5: TOML syntax"},
		{"relative haproxy", good + "haproxy = \"haproxy\"\n", "lb.toml:5: haproxy: \"haproxy\" is not an absolute path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("lb.toml", []byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestWildcardRegexp(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		miss    []string
	}{
		{"/api/*", []string{"/api/", "/api/v1/x"}, []string{"/api", "/apix", "/x/api/"}},
		{"/img/?.png", []string{"/img/a.png"}, []string{"/img/ab.png", "/img/aXpng"}},
		{"*.example.com", []string{"www.example.com", "a.b.example.com"}, []string{"example.com", "wwwXexample.com"}},
		{"/a+b(c)$", []string{"/a+b(c)$"}, []string{"/aab(c)"}},
	}
	for _, tc := range tests {
		re := regexp.MustCompile(wildcardRegexp(tc.pattern))
		for _, s := range tc.match {
			if !re.MatchString(s) {
				t.Errorf("%q does not match %q", tc.pattern, s)
			}
		}
		for _, s := range tc.miss {
			if re.MatchString(s) {
				t.Errorf("%q matches %q", tc.pattern, s)
			}
		}
	}
}

func TestQuoteWordAndMatcher(t *testing.T) {
	if got := quoteWord("it's\n"); got != `'it'\''s'\n''` {
		t.Errorf("quoteWord: %s", got)
	}
	if got := matcherRegexp("200,202-204"); got != "^(200|202|203|204)$" {
		t.Errorf("matcher: %s", got)
	}
}

func TestHealthOf(t *testing.T) {
	initial := lbwire.TargetHealth{State: "initial", Reason: "Elb.InitialHealthChecking", Description: "Initial health checks in progress"}
	unhealthy500 := lbwire.TargetHealth{State: "unhealthy", Reason: "Target.ResponseCodeMismatch", Description: "Health checks failed with these codes: [500]"}
	tests := []struct {
		name    string
		checked bool
		stat    serverStat
		prev    lbwire.TargetHealth
		want    lbwire.TargetHealth
	}{
		{"up", true, serverStat{status: "UP", checkStatus: "L7OK"}, initial, lbwire.TargetHealth{State: "healthy"}},
		{"going down is still healthy", true, serverStat{status: "UP 1/2", checkStatus: "L7STS", checkCode: "500"}, lbwire.TargetHealth{State: "healthy"}, lbwire.TargetHealth{State: "healthy"}},
		{"new, counting up", true, serverStat{status: "DOWN 1/2", checkStatus: "L7OK"}, lbwire.TargetHealth{}, initial},
		{"new, not checked yet", true, serverStat{status: "DOWN", checkStatus: "INI"}, lbwire.TargetHealth{}, initial},
		{"status mismatch", true, serverStat{status: "DOWN", checkStatus: "L7STS", checkCode: "500"}, lbwire.TargetHealth{}, unhealthy500},
		{"timeout", true, serverStat{status: "DOWN", checkStatus: "L4TOUT"}, lbwire.TargetHealth{}, lbwire.TargetHealth{State: "unhealthy", Reason: "Target.Timeout", Description: "Request timed out"}},
		{"refused", true, serverStat{status: "DOWN", checkStatus: "L4CON"}, lbwire.TargetHealth{}, lbwire.TargetHealth{State: "unhealthy", Reason: "Target.FailedHealthChecks", Description: "Health checks failed (HAProxy check status L4CON)"}},
		{"recovering stays unhealthy", true, serverStat{status: "DOWN 1/2", checkStatus: "L7OK"}, unhealthy500, unhealthy500},
		{"not checked", false, serverStat{status: "no check"}, lbwire.TargetHealth{}, lbwire.TargetHealth{State: "unavailable", Reason: "Target.HealthCheckDisabled", Description: "Health checks are disabled"}},
	}
	for _, tc := range tests {
		if got := healthOf(tc.checked, tc.stat, tc.prev); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestParseShowProc(t *testing.T) {
	out := "#<PID>          <type>          <reloads>       <uptime>        <version>\n" +
		"24271           master          2 [failed: 1]   0d00h10m54s     2.6.12-1+deb12u4\n# workers\n" +
		"1216            worker          0               0d00h00m02s     2.6.12-1+deb12u4\n" +
		"1100            worker          1               0d00h01m02s     2.6.12-1+deb12u4\n# programs\n"
	p, err := parseShowProc(out)
	if err != nil || p != (process{reloads: 2, failed: 1, worker: 1216}) {
		t.Errorf("show proc: %+v %v", p, err)
	}
	if _, err := parseShowProc("Unknown command\n"); err == nil {
		t.Error("an answer without a master parsed")
	}
}

// TestPlanRules renders a listener's rules: the first matching rule wins
// whatever the kind of its action, weights split the draw.
func TestPlanRules(t *testing.T) {
	tgA, tgB := "arn:tg/a/1", "arn:tg/b/2"
	st := &lbwire.State{LoadBalancer: elbtypes.LoadBalancer{LoadBalancerName: aws.String("web")},
		Listeners: []lbwire.Listener{{Listener: elbtypes.Listener{Port: aws.Int32(80), Protocol: elbtypes.ProtocolEnumHttp},
			Rules: []elbtypes.Rule{
				{Priority: aws.String("5"), Conditions: []elbtypes.RuleCondition{{Field: aws.String("host-header"), Values: []string{"*.example.com"}}},
					Actions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumFixedResponse, FixedResponseConfig: &elbtypes.FixedResponseActionConfig{StatusCode: aws.String("404"), MessageBody: aws.String("nope")}}}},
				{Priority: aws.String("10"), Conditions: []elbtypes.RuleCondition{{Field: aws.String("path-pattern"), Values: []string{"/api/*"}}},
					Actions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, ForwardConfig: &elbtypes.ForwardActionConfig{TargetGroups: []elbtypes.TargetGroupTuple{
						{TargetGroupArn: aws.String(tgA), Weight: aws.Int32(30)}, {TargetGroupArn: aws.String(tgB), Weight: aws.Int32(70)}}}}}},
				{Priority: aws.String("default"), IsDefault: aws.Bool(true),
					Actions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(tgA)}}},
			}}},
		TargetGroups: []lbwire.TargetGroup{
			{TargetGroup: elbtypes.TargetGroup{TargetGroupArn: aws.String(tgA), TargetGroupName: aws.String("a"), Protocol: elbtypes.ProtocolEnumHttp,
				HealthCheckEnabled: aws.Bool(true), HealthCheckProtocol: elbtypes.ProtocolEnumHttp, HealthCheckPath: aws.String("/health"),
				HealthCheckIntervalSeconds: aws.Int32(5), HealthCheckTimeoutSeconds: aws.Int32(2), HealthyThresholdCount: aws.Int32(3), UnhealthyThresholdCount: aws.Int32(2)},
				Attributes: map[string]string{"slow_start.duration_seconds": "30"},
				Targets:    []lbwire.Target{{ID: "10.0.0.1", Port: 8080, Address: "10.0.0.1", HealthCheckPort: 9000}, {ID: "i-1", Port: 80}}},
			{TargetGroup: elbtypes.TargetGroup{TargetGroupArn: aws.String(tgB), TargetGroupName: aws.String("b"), Protocol: elbtypes.ProtocolEnumHttp, HealthCheckEnabled: aws.Bool(false)}},
		}}
	p := planFor(st, "/run/berth-lb/web", "127.0.0.1")
	for _, want := range []string{
		"http-request set-var(txn.berth_rule) int(0) if !{ var(txn.berth_rule) -m found } { req.hdr(host),field(1,:) -m reg -i '^.*\\.example\\.com$' }",
		"http-request set-var(txn.berth_rule) int(1) if !{ var(txn.berth_rule) -m found } { path -m reg '^/api/.*$' }",
		"http-request set-var(txn.berth_rule) int(2) if !{ var(txn.berth_rule) -m found }\n",
		"http-request return status 404 content-type 'text/plain' file /run/berth-lb/web/bodies/l80-0 if { var(txn.berth_rule) -m int eq 0 }",
		"http-request set-var(txn.berth_w) rand(100) if { var(txn.berth_rule) -m int eq 1 }",
		"use_backend tg-a if { var(txn.berth_rule) -m int eq 1 } { var(txn.berth_w) -m int ge 0 } { var(txn.berth_w) -m int lt 30 }",
		"use_backend tg-b if { var(txn.berth_rule) -m int eq 1 } { var(txn.berth_w) -m int ge 30 } { var(txn.berth_w) -m int lt 100 }",
		"use_backend tg-a if { var(txn.berth_rule) -m int eq 2 }",
		"bind 127.0.0.1:80\n",
		"http-check send meth GET uri '/health'",
		"http-check expect rstatus '^(200)$'",
	} {
		if !strings.Contains(p.structure, want) {
			t.Errorf("structure lacks %q:\n%s", want, p.structure)
		}
	}
	if string(p.files["/run/berth-lb/web/bodies/l80-0"]) != "nope" {
		t.Errorf("body file: %q", p.files["/run/berth-lb/web/bodies/l80-0"])
	}
	a := p.backends[0]
	if len(a.targets) != 1 || a.targets[0].args(a) != "10.0.0.1:8080 check inter 5s rise 3 fall 2 slowstart 30s weight 100 pool-max-conn -1 pool-purge-delay 5s port 9000" {
		t.Errorf("targets of a (the one without an address left out): %+v %q", a.targets, a.targets[0].args(a))
	}
	if b := p.backends[1]; b.checked || b.serverArgs != "weight 100 pool-max-conn -1 pool-purge-delay 5s" {
		t.Errorf("unchecked group b: %+v", b)
	}
	if p.hash != planFor(st, "/run/berth-lb/web", "127.0.0.1").hash {
		t.Error("the same state gave two structure hashes")
	}
	st.TargetGroups[0].Targets = nil
	if p.hash != planFor(st, "/run/berth-lb/web", "127.0.0.1").hash {
		t.Error("targets changed the structure hash (they must not cause a reload)")
	}
	if got := p.config(map[string][]string{"tg-a": {"s1 10.0.0.1:8080 weight 100"}}); !strings.Contains(got, "    # servers of tg-a\n    server s1 10.0.0.1:8080 weight 100\n") ||
		runningHash([]byte(got)) != p.hash {
		t.Errorf("config with servers:\n%s", got)
	}
}
