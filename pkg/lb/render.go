package lb

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/elbv2/lbwire"
)

// plan is what one load balancer's state means for its HAProxy: the
// configuration's structure (frontends, backends, health checks: what a
// reload applies), the files it names, and the servers each backend
// should have (what the runtime API applies).
type plan struct {
	// structure is the configuration without server lines; hash is a
	// hash of it and of the files.
	structure string
	hash      string
	// files are written before HAProxy reads the configuration (listener
	// certificates, fixed-response bodies), by path.
	files    map[string][]byte
	backends []*backend
	// problems are the parts of the state HAProxy cannot be told (logged;
	// the rest is served).
	problems []string
}

// backend is one target group.
type backend struct {
	name           string
	targetGroupArn string
	// serverArgs are the server keywords every target of the group gets
	// (health check, slow start, TLS).
	serverArgs string
	checked    bool
	targets    []desiredServer
}

// desiredServer is one target as a server.
type desiredServer struct {
	name      string
	id        string
	port      int32
	addr      string
	checkPort int32
	draining  bool
}

// args are the keywords of the server's line (and of `add server`).
func (s desiredServer) args(b *backend) string {
	a := fmt.Sprintf("%s:%d %s", s.addr, s.port, b.serverArgs)
	if b.checked && s.checkPort != 0 && s.checkPort != s.port {
		a += fmt.Sprintf(" port %d", s.checkPort)
	}
	return a
}

// structureMarker starts the first line of every configuration berth-lb
// writes; the hash that follows tells whether a running HAProxy has the
// structure a state asks for.
const structureMarker = "# berth-lb structure "

// serversMarker ends each backend section; server lines follow it.
const serversMarker = "    # servers of "

// planFor turns a load balancer's state into a plan for the HAProxy in
// dir. bind is the address listeners bind ("" for all).
func planFor(st *lbwire.State, dir, bind string) *plan {
	p := &plan{files: map[string][]byte{}}
	lbName := aws.ToString(st.LoadBalancer.LoadBalancerName)
	idle := atoiOr(st.Attributes["idle_timeout.timeout_seconds"], 60)
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by berth-lb for load balancer %s (%s); berth-lb rewrites it.\n", lbName, aws.ToString(st.LoadBalancer.LoadBalancerArn))
	fmt.Fprintf(&b, "global\n")
	fmt.Fprintf(&b, "    stats socket %s mode 600 level admin expose-fd listeners\n", filepath.Join(dir, "admin.sock"))
	fmt.Fprintf(&b, "    server-state-file %s\n", filepath.Join(dir, "server-state"))
	// Workers left by a reload finish their connections within this.
	fmt.Fprintf(&b, "    hard-stop-after %ds\n", max(idle, 60)+30)
	fmt.Fprintf(&b, "defaults\n")
	fmt.Fprintf(&b, "    timeout connect 10s\n")
	// A connection refused or unanswered by a target that has just died
	// (before its health checks or its deregistration take it out) is
	// retried on another target at once: the request is not lost.
	fmt.Fprintf(&b, "    retries 3\n")
	fmt.Fprintf(&b, "    option redispatch 1\n")
	fmt.Fprintf(&b, "    timeout client %ds\n", idle)
	fmt.Fprintf(&b, "    timeout server %ds\n", idle)
	fmt.Fprintf(&b, "    load-server-state-from-file global\n")

	groups := map[string]*lbwire.TargetGroup{}
	names := map[string]string{}
	for i := range st.TargetGroups {
		tg := &st.TargetGroups[i]
		arn := aws.ToString(tg.TargetGroup.TargetGroupArn)
		groups[arn] = tg
		names[arn] = "tg-" + safeName(aws.ToString(tg.TargetGroup.TargetGroupName))
	}
	for _, l := range st.Listeners {
		p.frontend(&b, l, names, dir, bind)
	}
	for i := range st.TargetGroups {
		tg := &st.TargetGroups[i]
		be := p.backend(&b, tg, names[aws.ToString(tg.TargetGroup.TargetGroupArn)])
		p.backends = append(p.backends, be)
	}
	p.structure = b.String()
	h := sha256.New()
	h.Write([]byte(p.structure))
	paths := make([]string, 0, len(p.files))
	for path := range p.files {
		paths = append(paths, path)
	}
	slices.Sort(paths)
	for _, path := range paths {
		fmt.Fprintf(h, "\x00%s\x00%s", path, p.files[path])
	}
	p.hash = hex.EncodeToString(h.Sum(nil)[:12])
	return p
}

// config is the whole configuration: the structure and, after each
// backend's marker, a line for each server in servers (by backend).
func (p *plan) config(servers map[string][]string) string {
	var b strings.Builder
	b.WriteString(structureMarker + p.hash + "\n")
	for _, line := range strings.SplitAfter(p.structure, "\n") {
		b.WriteString(line)
		if be, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), serversMarker); ok {
			for _, s := range servers[be] {
				b.WriteString("    server " + s + "\n")
			}
		}
	}
	return b.String()
}

// runningHash reads the structure hash of a configuration file's first
// line; "" when it has none.
func runningHash(config []byte) string {
	line, _, _ := strings.Cut(string(config), "\n")
	h, _ := strings.CutPrefix(line, structureMarker)
	return strings.TrimSpace(h)
}

func (p *plan) problem(format string, args ...any) {
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
}

// frontend writes one listener: its bind, and its rules in priority order
// (the default rule last). The first rule whose conditions match sets
// txn.berth_rule to its index; each action is conditioned on it, so the
// order holds across HAProxy's kinds of rules (http-request actions run
// before use_backend).
func (p *plan) frontend(b *strings.Builder, l lbwire.Listener, names map[string]string, dir, bind string) {
	port := aws.ToInt32(l.Listener.Port)
	name := fmt.Sprintf("l%d", port)
	tcp := l.Listener.Protocol == elbtypes.ProtocolEnumTcp
	fmt.Fprintf(b, "frontend %s\n", name)
	addr := fmt.Sprintf("%s:%d", bind, port)
	if strings.Contains(bind, ":") {
		addr = fmt.Sprintf("[%s]:%d", bind, port)
	}
	switch {
	case tcp:
		fmt.Fprintf(b, "    mode tcp\n    bind %s\n", addr)
		fmt.Fprintf(b, "    timeout client %ds\n", atoiOr(l.Attributes["tcp.idle_timeout.seconds"], 350))
	case l.Listener.Protocol == elbtypes.ProtocolEnumHttps:
		if l.Certificate == nil {
			p.problem("listener %d: HTTPS without a certificate in the state; not served", port)
			return
		}
		cert := filepath.Join(dir, "certs", name+".pem")
		p.files[cert] = []byte(strings.TrimSpace(l.Certificate.CertificatePEM) + "\n" + strings.TrimSpace(l.Certificate.PrivateKeyPEM) + "\n")
		fmt.Fprintf(b, "    mode http\n    bind %s ssl crt %s\n", addr, cert)
	default:
		fmt.Fprintf(b, "    mode http\n    bind %s\n", addr)
	}
	if !tcp {
		proto := strings.ToLower(string(l.Listener.Protocol))
		fmt.Fprintf(b, "    option forwardfor\n")
		fmt.Fprintf(b, "    http-request set-header X-Forwarded-Proto %s\n", proto)
		fmt.Fprintf(b, "    http-request set-header X-Forwarded-Port %d\n", port)
	}
	req := "http-request"
	if tcp {
		req = "tcp-request content"
	}
	for i, r := range l.Rules {
		conds, err := ruleConditions(r.Conditions)
		if err != nil {
			p.problem("listener %d rule %s: %v; the rule is left out", port, aws.ToString(r.Priority), err)
			continue
		}
		fmt.Fprintf(b, "    %s set-var(txn.berth_rule) int(%d) if !{ var(txn.berth_rule) -m found }%s\n", req, i, conds)
	}
	var useBackends []string
	for i, r := range l.Rules {
		on := fmt.Sprintf("{ var(txn.berth_rule) -m int eq %d }", i)
		act, ok := terminalAction(r.Actions)
		if !ok {
			p.problem("listener %d rule %s: no action", port, aws.ToString(r.Priority))
			continue
		}
		switch act.Type {
		case elbtypes.ActionTypeEnumForward:
			useBackends = append(useBackends, p.forward(b, req, act, names, i, on)...)
		case elbtypes.ActionTypeEnumFixedResponse:
			if tcp {
				continue
			}
			p.fixedResponse(b, act.FixedResponseConfig, filepath.Join(dir, "bodies", fmt.Sprintf("%s-%d", name, i)), on)
		case elbtypes.ActionTypeEnumRedirect:
			if tcp {
				continue
			}
			fmt.Fprintf(b, "    http-request redirect location %s code %s if %s\n",
				quoteWord(redirectLocation(act.RedirectConfig)), redirectCode(act.RedirectConfig), on)
		default:
			p.problem("listener %d rule %s: action %s is not served", port, aws.ToString(r.Priority), act.Type)
		}
	}
	for _, u := range useBackends {
		b.WriteString(u)
	}
}

// forward writes a forward action: one group, or several chosen by weight
// (a random draw below the weights' sum per request).
func (p *plan) forward(b *strings.Builder, req string, act elbtypes.Action, names map[string]string, i int, on string) []string {
	type weighted struct {
		be     string
		weight int32
	}
	var groups []weighted
	if act.ForwardConfig != nil && len(act.ForwardConfig.TargetGroups) > 0 {
		for _, t := range act.ForwardConfig.TargetGroups {
			w := int32(1)
			if t.Weight != nil {
				w = *t.Weight
			}
			if be, ok := names[aws.ToString(t.TargetGroupArn)]; ok && w > 0 {
				groups = append(groups, weighted{be, w})
			}
		}
	} else if be, ok := names[aws.ToString(act.TargetGroupArn)]; ok {
		groups = append(groups, weighted{be, 1})
	}
	if len(groups) == 0 {
		return nil // nothing to forward to: HAProxy answers 503
	}
	if len(groups) == 1 {
		return []string{fmt.Sprintf("    use_backend %s if %s\n", groups[0].be, on)}
	}
	var sum int32
	for _, g := range groups {
		sum += g.weight
	}
	fmt.Fprintf(b, "    %s set-var(txn.berth_w) rand(%d) if %s\n", req, sum, on)
	var out []string
	var lo int32
	for _, g := range groups {
		out = append(out, fmt.Sprintf("    use_backend %s if %s { var(txn.berth_w) -m int ge %d } { var(txn.berth_w) -m int lt %d }\n",
			g.be, on, lo, lo+g.weight))
		lo += g.weight
	}
	return out
}

func (p *plan) fixedResponse(b *strings.Builder, c *elbtypes.FixedResponseActionConfig, bodyPath, on string) {
	if c == nil {
		return
	}
	fmt.Fprintf(b, "    http-request return status %s", aws.ToString(c.StatusCode))
	if body := aws.ToString(c.MessageBody); body != "" {
		ct := aws.ToString(c.ContentType)
		if ct == "" {
			ct = "text/plain"
		}
		p.files[bodyPath] = []byte(body)
		fmt.Fprintf(b, " content-type %s file %s", quoteWord(ct), bodyPath)
	}
	fmt.Fprintf(b, " if %s\n", on)
}

// terminalAction is the rule's last action (the one that answers).
func terminalAction(actions []elbtypes.Action) (elbtypes.Action, bool) {
	if len(actions) == 0 {
		return elbtypes.Action{}, false
	}
	last := actions[0]
	for _, a := range actions[1:] {
		if aws.ToInt32(a.Order) >= aws.ToInt32(last.Order) {
			last = a
		}
	}
	return last, true
}

// ruleConditions renders a rule's conditions as anonymous ACLs (ANDed);
// the values of one condition are ORed, as AWS does.
func ruleConditions(conds []elbtypes.RuleCondition) (string, error) {
	var out strings.Builder
	for _, c := range conds {
		field := aws.ToString(c.Field)
		values := c.Values
		switch field {
		case "path-pattern":
			if c.PathPatternConfig != nil && len(c.PathPatternConfig.Values) > 0 {
				values = c.PathPatternConfig.Values
			}
			out.WriteString(" { path -m reg")
		case "host-header":
			if c.HostHeaderConfig != nil && len(c.HostHeaderConfig.Values) > 0 {
				values = c.HostHeaderConfig.Values
			}
			out.WriteString(" { req.hdr(host),field(1,:) -m reg -i")
		default:
			return "", fmt.Errorf("condition %s is not served", field)
		}
		if len(values) == 0 {
			return "", fmt.Errorf("condition %s has no values", field)
		}
		for _, v := range values {
			out.WriteString(" " + quoteWord(wildcardRegexp(v)))
		}
		out.WriteString(" }")
	}
	return out.String(), nil
}

// wildcardRegexp turns an AWS pattern (* any characters, ? one) into an
// anchored regular expression.
func wildcardRegexp(pattern string) string {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return b.String()
}

// redirectLocation renders a redirect as a log-format location, AWS's
// #{protocol}, #{host}, #{port}, #{path} (without its leading slash) and
// #{query} taken from the request.
func redirectLocation(c *elbtypes.RedirectActionConfig) string {
	if c == nil {
		return "/"
	}
	or := func(v *string, def string) string {
		if s := aws.ToString(v); s != "" {
			return s
		}
		return def
	}
	expand := func(s string) string {
		s = strings.ReplaceAll(s, "%", "%%")
		return strings.NewReplacer(
			"#{protocol}", "%[ssl_fc,iif(https,http)]",
			"#{host}", "%[req.hdr(host),field(1,:)]",
			"#{port}", "%[dst_port]",
			"#{path}", "%[path,regsub(^/,)]",
			"#{query}", "%[query]").Replace(s)
	}
	proto := or(c.Protocol, "#{protocol}")
	if proto != "#{protocol}" {
		proto = strings.ToLower(proto)
	}
	loc := expand(proto) + "://" + expand(or(c.Host, "#{host}")) + ":" + expand(or(c.Port, "#{port}")) + expand(or(c.Path, "/#{path}"))
	if q := or(c.Query, "#{query}"); q != "" {
		loc += "?" + expand(q)
	}
	return loc
}

func redirectCode(c *elbtypes.RedirectActionConfig) string {
	if c != nil && c.StatusCode == elbtypes.RedirectActionStatusCodeEnumHttp301 {
		return "301"
	}
	return "302"
}

// backend writes one target group: balancing, health check, stickiness;
// its servers follow the marker.
func (p *plan) backend(b *strings.Builder, tg *lbwire.TargetGroup, name string) *backend {
	g := tg.TargetGroup
	be := &backend{name: name, targetGroupArn: aws.ToString(g.TargetGroupArn)}
	tcp := g.Protocol == elbtypes.ProtocolEnumTcp
	fmt.Fprintf(b, "backend %s\n", name)
	if tcp {
		fmt.Fprintf(b, "    mode tcp\n")
	} else {
		fmt.Fprintf(b, "    mode http\n")
	}
	algo := "roundrobin"
	switch tg.Attributes["load_balancing.algorithm.type"] {
	case "least_outstanding_requests":
		algo = "leastconn"
	case "weighted_random":
		algo = "random"
	}
	fmt.Fprintf(b, "    balance %s\n", algo)
	var args []string
	if g.Protocol == elbtypes.ProtocolEnumHttps {
		// As AWS, the load balancer does not verify targets' certificates.
		args = append(args, "ssl verify none")
	}
	if aws.ToBool(g.HealthCheckEnabled) || g.HealthCheckEnabled == nil {
		be.checked = true
		fmt.Fprintf(b, "    timeout check %ds\n", aws.ToInt32(g.HealthCheckTimeoutSeconds))
		if g.HealthCheckProtocol == elbtypes.ProtocolEnumHttp || g.HealthCheckProtocol == elbtypes.ProtocolEnumHttps {
			path := aws.ToString(g.HealthCheckPath)
			if path == "" {
				path = "/"
			}
			fmt.Fprintf(b, "    option httpchk\n")
			fmt.Fprintf(b, "    http-check send meth GET uri %s\n", quoteWord(path))
			codes := "200"
			if g.Matcher != nil && aws.ToString(g.Matcher.HttpCode) != "" {
				codes = aws.ToString(g.Matcher.HttpCode)
			}
			fmt.Fprintf(b, "    http-check expect rstatus %s\n", quoteWord(matcherRegexp(codes)))
		}
		args = append(args, fmt.Sprintf("check inter %ds rise %d fall %d", aws.ToInt32(g.HealthCheckIntervalSeconds),
			aws.ToInt32(g.HealthyThresholdCount), aws.ToInt32(g.UnhealthyThresholdCount)))
		if g.HealthCheckProtocol == elbtypes.ProtocolEnumHttps {
			args = append(args, "check-ssl verify none")
		}
	}
	if s := atoiOr(tg.Attributes["slow_start.duration_seconds"], 0); s > 0 {
		args = append(args, fmt.Sprintf("slowstart %ds", s))
	}
	// A dynamic server takes nothing from defaults: without a purge
	// delay HAProxy closes its idle connections at once and opens one per
	// request (measured: BenchmarkLBHAProxy went from 20109 reuses of 40
	// connections to none); these are HAProxy's defaults for servers of
	// the configuration.
	args = append(args, "weight 100 pool-max-conn -1 pool-purge-delay 5s")
	be.serverArgs = strings.Join(args, " ")
	if tg.Attributes["stickiness.enabled"] == "true" {
		d := atoiOr(tg.Attributes["stickiness.lb_cookie.duration_seconds"], 86400)
		if tcp {
			fmt.Fprintf(b, "    stick-table type ip size 1m expire %ds\n    stick on src\n", d)
		} else {
			// Dynamic servers take no "cookie" keyword (HAProxy 2.6), so
			// the cookie is an id of berth-lb's own that a stick table maps
			// to the server that served it.
			fmt.Fprintf(b, "    stick-table type string len 40 size 1m expire %ds\n", d)
			fmt.Fprintf(b, "    http-request set-var(txn.berth_sticky) req.cook(AWSALB) if { req.cook(AWSALB) -m len 36 }\n")
			fmt.Fprintf(b, "    http-request set-var(txn.berth_sticky_new) uuid if !{ var(txn.berth_sticky) -m found }\n")
			fmt.Fprintf(b, "    http-request set-var(txn.berth_sticky) var(txn.berth_sticky_new) if { var(txn.berth_sticky_new) -m found }\n")
			fmt.Fprintf(b, "    stick on var(txn.berth_sticky)\n")
			fmt.Fprintf(b, "    http-response add-header Set-Cookie \"AWSALB=%%[var(txn.berth_sticky_new)]; Max-Age=%d; Path=/\" if { var(txn.berth_sticky_new) -m found }\n", d)
		}
	}
	b.WriteString(serversMarker + name + "\n")
	for _, t := range tg.Targets {
		if t.Address == "" {
			continue // unknown address: no traffic (DescribeTargetHealth shows it unused)
		}
		be.targets = append(be.targets, desiredServer{name: serverName(t.ID, t.Port), id: t.ID, port: t.Port,
			addr: t.Address, checkPort: t.HealthCheckPort, draining: t.Draining})
	}
	return be
}

// matcherRegexp turns AWS's matcher ("200", "200,202", "200-299") into a
// regular expression over the status code.
func matcherRegexp(codes string) string {
	var alts []string
	for _, part := range strings.Split(codes, ",") {
		part = strings.TrimSpace(part)
		if lo, hi, ok := strings.Cut(part, "-"); ok {
			l, _ := strconv.Atoi(lo)
			h, _ := strconv.Atoi(hi)
			for c := l; c <= h && h-l < 1000; c++ {
				alts = append(alts, strconv.Itoa(c))
			}
			continue
		}
		alts = append(alts, part)
	}
	return "^(" + strings.Join(alts, "|") + ")$"
}

// quoteWord quotes s as one word of HAProxy's configuration: strong
// (single) quotes, with quotes and control characters escaped outside them
// as the configuration parser reads them (docs: "Quoting and escaping").
func quoteWord(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'':
			b.WriteString(`'\''`)
		case '\n':
			b.WriteString(`'\n'`)
		case '\r':
			b.WriteString(`'\r'`)
		case '\t':
			b.WriteString(`'\t'`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `'\x%02x'`, r)
				continue
			}
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// safeName keeps the characters HAProxy allows in proxy and server names.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == ':':
			return r
		}
		return '_'
	}, s)
}

// serverName is a target's server name: its id and port.
func serverName(id string, port int32) string { return fmt.Sprintf("%s_%d", safeName(id), port) }

func atoiOr(s string, def int) int {
	if v, err := strconv.Atoi(s); err == nil {
		return v
	}
	return def
}
