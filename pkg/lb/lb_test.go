package lb

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// TestDataPlane runs berth-lb against a real endpoint, a real HAProxy and
// plain HTTP targets on loopback, with a client sending requests through
// HAProxy throughout each step: targets come and go without a reload,
// health follows HAProxy's checks into DescribeTargetHealth, a
// deregistered target drains and goes, a new rule reloads HAProxy
// seamlessly, and an HTTPS listener serves the endpoint's certificate.
// Every step must have zero failed requests.
func TestDataPlane(t *testing.T) {
	l := startLab(t)
	ctx := context.Background()
	tg := l.createLB(ctx, t, "web")
	a, b, c, sick := newTarget(t, "a"), newTarget(t, "b"), newTarget(t, "c"), newTarget(t, "sick")
	sick.health.Store(503)
	url := fmt.Sprintf("http://127.0.0.1:%d/", l.listenerPort)

	l.register(ctx, t, tg, a)
	l.runLB(t)
	l.waitHealth(ctx, t, tg, a, "healthy")
	waitServedBy(t, url, "a")
	h := l.haproxyOf()
	start, err := h.status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	noReload := func(t *testing.T, what string) {
		t.Helper()
		now, err := h.status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if now.reloads != start.reloads || now.worker != start.worker {
			t.Errorf("%s reloaded haproxy: %+v, before %+v", what, now, start)
		}
	}

	t.Run("targets added and removed without reload", func(t *testing.T) {
		ld := startLoad(t, url)
		l.register(ctx, t, tg, b, c, sick)
		if st, reason, _ := l.health(ctx, t, tg, b); st != "initial" {
			t.Errorf("a target just registered is %s (%s), want initial", st, reason)
		}
		l.waitHealth(ctx, t, tg, b, "healthy")
		l.waitHealth(ctx, t, tg, c, "healthy")
		// A new target gets traffic only once its checks pass: one whose
		// checks fail never gets any (its / would answer 200).
		if reason, _ := l.waitHealth(ctx, t, tg, sick, "unhealthy"); reason != "Target.ResponseCodeMismatch" {
			t.Errorf("sick target: reason %s", reason)
		}
		if n := sick.served.Load(); n != 0 {
			t.Errorf("a target whose health checks never passed got %d requests", n)
		}
		l.deregister(ctx, t, tg, sick)
		waitFor(t, "traffic to b and c", func() bool { return b.served.Load() > 0 && c.served.Load() > 0 }, func() string { return "" })
		l.deregister(ctx, t, tg, a)
		l.waitHealth(ctx, t, tg, a, "draining")
		waitFor(t, "a removed from haproxy", func() bool { return !l.hasServer(ctx, t, a) }, func() string { return "" })
		servedBefore := a.served.Load()
		for range 20 {
			if _, body, err := get(ctx, http.DefaultClient, url); err != nil || body == "a" {
				t.Fatalf("after a was removed: %q %v", body, err)
			}
		}
		if a.served.Load() != servedBefore {
			t.Errorf("a still served requests after its removal")
		}
		ld.check(t, "register b and c, deregister a")
		noReload(t, "registering and deregistering targets")
	})

	t.Run("draining target gets no new requests", func(t *testing.T) {
		l.register(ctx, t, tg, a)
		l.waitHealth(ctx, t, tg, a, "healthy")
		ld := startLoad(t, url)
		l.deregister(ctx, t, tg, c)
		waitFor(t, "c in drain", func() bool { return l.serverStatus(ctx, t, c) == "DRAIN" }, func() string { return l.serverStatus(ctx, t, c) })
		during := c.served.Load()
		for range 30 {
			if _, body, _ := get(ctx, http.DefaultClient, url); body == "c" {
				t.Errorf("a draining target answered a new request")
			}
		}
		if c.served.Load() != during {
			t.Errorf("c served %d requests while draining", c.served.Load()-during)
		}
		waitFor(t, "c removed after the deregistration delay", func() bool { return !l.hasServer(ctx, t, c) }, func() string { return l.serverStatus(ctx, t, c) })
		if st, _, _ := l.health(ctx, t, tg, c); st != "" {
			t.Errorf("c after the delay: DescribeTargetHealth %s, want it gone", st)
		}
		ld.check(t, "drain c")
		noReload(t, "draining")
	})

	t.Run("failing health check reported unhealthy, then healthy", func(t *testing.T) {
		ld := startLoad(t, url)
		b.health.Store(500)
		reason, desc := l.waitHealth(ctx, t, tg, b, "unhealthy")
		if reason != "Target.ResponseCodeMismatch" || desc != "Health checks failed with these codes: [500]" {
			t.Errorf("unhealthy b: reason %s %q", reason, desc)
		}
		served := b.served.Load()
		for range 20 {
			get(ctx, http.DefaultClient, url)
		}
		if b.served.Load() != served {
			t.Errorf("an unhealthy target got %d requests", b.served.Load()-served)
		}
		b.health.Store(200)
		l.waitHealth(ctx, t, tg, b, "healthy")
		ld.check(t, "b unhealthy and back")
		noReload(t, "health changes")
	})

	t.Run("new rule reloads seamlessly and keeps target states", func(t *testing.T) {
		api := newTarget(t, "api")
		tgAPI := l.createTG(ctx, t, "api")
		l.register(ctx, t, tgAPI, api)
		b.health.Store(500)
		l.waitHealth(ctx, t, tg, b, "unhealthy")
		ld := startLoad(t, url)
		if _, err := l.elb.CreateRule(ctx, &elb.CreateRuleInput{ListenerArn: aws.String(l.defaultListener), Priority: aws.Int32(10),
			Conditions: []elbtypes.RuleCondition{{Field: aws.String("path-pattern"), Values: []string{"/api/*"}}},
			Actions:    []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(tgAPI)}}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "reload", func() bool { p, err := h.status(ctx); return err == nil && p.reloads > start.reloads }, func() string { return "" })
		if st := l.serverStatus(ctx, t, b); !strings.HasPrefix(st, "DOWN") {
			t.Errorf("b after the reload: %s, want DOWN as before it", st)
		}
		if st := l.serverStatus(ctx, t, a); st != "UP" {
			t.Errorf("a after the reload: %s, want UP as before it", st)
		}
		l.waitHealth(ctx, t, tgAPI, api, "healthy")
		waitServedBy(t, url+"api/x", "api")
		if _, body, _ := get(ctx, http.DefaultClient, url+"other"); body != "a" {
			t.Errorf("/other answered by %q, want a (the default rule)", body)
		}
		ld.check(t, "create a rule (reload)")
		b.health.Store(200)
	})

	t.Run("HTTPS listener", func(t *testing.T) {
		port := freePort(t)
		if _, err := l.elb.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(l.lbArn), Protocol: elbtypes.ProtocolEnumHttps,
			Port: aws.Int32(int32(port)), Certificates: []elbtypes.Certificate{{CertificateArn: aws.String(testCertArn)}},
			DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(tg)}}}); err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: l.caPool, ServerName: "lab.localhost"}}}
		var last string
		waitFor(t, "HTTPS answer", func() bool {
			status, body, err := get(ctx, client, fmt.Sprintf("https://127.0.0.1:%d/", port))
			last = fmt.Sprint(status, body, err)
			return err == nil && status == 200 && (body == "a" || body == "b")
		}, func() string { return last })
		fi, err := os.Stat(l.haproxyOf().certDir() + fmt.Sprintf("/l%d.pem", port))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("certificate file: %v, mode %v; want 0600", err, fi)
		}
	})
}

// serverStatus is HAProxy's status of a target's server ("" when absent).
func (l *lab) serverStatus(ctx context.Context, t *testing.T, x *target) string {
	t.Helper()
	stats, err := l.haproxyOf().stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		if s.name == serverName("127.0.0.1", int32(x.port)) {
			return s.status
		}
	}
	return ""
}

func (l *lab) hasServer(ctx context.Context, t *testing.T, x *target) bool {
	return l.serverStatus(ctx, t, x) != ""
}
