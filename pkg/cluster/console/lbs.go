package console

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// lbLink names a load balancer or target group and the id its page is
// under.
type lbLink struct{ ID, Name string }

type lbRow struct {
	lbLink
	Type, Scheme, State, DNSName string
	Listeners                    int
}

// targetGroupRow is a target group in a list, with its targets' health
// counted as DescribeTargetHealth reports it.
type targetGroupRow struct {
	lbLink
	Protocol, TargetType string
	Port                 int32
	LoadBalancers        []lbLink
	Healthy, Targets     int
}

type loadBalancersData struct {
	LoadBalancers []lbRow
	TargetGroups  []targetGroupRow
}

func lbCrumbs() []crumb { return []crumb{{Name: "Load balancers", Href: Prefix + "load-balancers"}} }

// lbLinks names the load balancers of ARNs (those still there).
func lbLinks(tx store.Tx, arns []string) ([]lbLink, error) {
	var out []lbLink
	for _, a := range arns {
		lb, ok, err := records.Get[records.LoadBalancer](tx, records.LoadBalancers, records.LBResourceID(a))
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, lbLink{ID: lb.Key(), Name: aws.ToString(lb.LoadBalancer.LoadBalancerName)})
		}
	}
	return out, nil
}

func tgLink(tg *records.TargetGroup) lbLink {
	return lbLink{ID: tg.Key(), Name: aws.ToString(tg.TargetGroup.TargetGroupName)}
}

func (s *Server) loadBalancersPage(w http.ResponseWriter, r *http.Request) {
	var d loadBalancersData
	now := s.o.Now()
	err := s.o.Store.View(func(tx store.Tx) error {
		d = loadBalancersData{}
		if err := records.Each(tx, records.LoadBalancers, "", func(lb *records.LoadBalancer) error {
			l := lb.LoadBalancer
			row := lbRow{lbLink: lbLink{ID: lb.Key(), Name: aws.ToString(l.LoadBalancerName)}, Type: string(l.Type), Scheme: string(l.Scheme),
				DNSName: aws.ToString(l.DNSName)}
			if l.State != nil {
				row.State = string(l.State.Code)
			}
			if err := store.ForEach(tx, records.Listeners, row.ID+"/", func(string, []byte) error { row.Listeners++; return nil }); err != nil {
				return err
			}
			d.LoadBalancers = append(d.LoadBalancers, row)
			return nil
		}); err != nil {
			return err
		}
		return records.Each(tx, records.TargetGroups, "", func(tg *records.TargetGroup) error {
			g := tg.TargetGroup
			row := targetGroupRow{lbLink: tgLink(tg), Protocol: string(g.Protocol), TargetType: string(g.TargetType), Port: aws.ToInt32(g.Port)}
			var err error
			if row.LoadBalancers, err = lbLinks(tx, g.LoadBalancerArns); err != nil {
				return err
			}
			targets, err := groupTargets(tx, tg, now)
			if err != nil {
				return err
			}
			row.Targets = len(targets)
			for _, t := range targets {
				if t.State == string(elbtypes.TargetHealthStateEnumHealthy) {
					row.Healthy++
				}
			}
			d.TargetGroups = append(d.TargetGroups, row)
			return nil
		})
	})
	if s.viewFailed(w, r, "load balancers page", err) {
		return
	}
	s.render(w, http.StatusOK, "loadbalancers", "layout.html", &page{Title: "Load balancers", Session: sessionOf(r), Crumbs: lbCrumbs(), Data: &d})
}

// groupTargets returns the live targets of a target group with their
// health, as DescribeTargetHealth reports it (records.Target.State).
func groupTargets(tx store.Tx, tg *records.TargetGroup, now time.Time) ([]targetRow, error) {
	targets, err := records.LiveTargets(tx, tg, now)
	if err != nil {
		return nil, err
	}
	rows := make([]targetRow, 0, len(targets))
	for _, t := range targets {
		h, err := t.State(tx, tg)
		if err != nil {
			return nil, err
		}
		rows = append(rows, targetRow{TargetGroup: tgLink(tg), Target: fmt.Sprintf("%s:%d", t.ID, t.Port), State: string(h.State),
			Reason: string(h.Reason), Description: aws.ToString(h.Description)})
	}
	return rows, nil
}

// ruleRow is a listener rule: when it applies and what it does.
type ruleRow struct {
	Priority   string
	Conditions []string
	Actions    []actionRow
}

// actionRow is a rule action: Text says what it does, Forward lists the
// target groups it forwards to (with their weights when several).
type actionRow struct {
	Text    string
	Forward []weightedGroup
}

type weightedGroup struct {
	lbLink
	Weight *int32
}

type listenerRow struct {
	ID, Protocol string
	Port         int32
	Rules        []ruleRow
}

// targetGroupData is a target group with its targets and their health.
type targetGroupData struct {
	lbLink
	Protocol, TargetType, HealthCheck string
	Port                              int32
	LoadBalancers                     []lbLink
	Targets                           []targetRow
}

type loadBalancerData struct {
	lbRow
	ARN          string
	ListenerRows []listenerRow
	TargetGroups []targetGroupData
}

// loadTargetGroup reads what a target group's section shows.
func loadTargetGroup(tx store.Tx, tg *records.TargetGroup, now time.Time) (targetGroupData, error) {
	g := tg.TargetGroup
	d := targetGroupData{lbLink: tgLink(tg), Protocol: string(g.Protocol), TargetType: string(g.TargetType), Port: aws.ToInt32(g.Port),
		HealthCheck: healthCheckText(&g)}
	var err error
	if d.LoadBalancers, err = lbLinks(tx, g.LoadBalancerArns); err != nil {
		return d, err
	}
	d.Targets, err = groupTargets(tx, tg, now)
	return d, err
}

// healthCheckText says how the group's targets are checked.
func healthCheckText(g *elbtypes.TargetGroup) string {
	if g.HealthCheckEnabled != nil && !*g.HealthCheckEnabled {
		return "off"
	}
	port := aws.ToString(g.HealthCheckPort)
	if port == "" || port == "traffic-port" {
		port = "the traffic port"
	}
	t := fmt.Sprintf("%s %s on %s every %d s, healthy after %d, unhealthy after %d", g.HealthCheckProtocol, aws.ToString(g.HealthCheckPath), port,
		aws.ToInt32(g.HealthCheckIntervalSeconds), aws.ToInt32(g.HealthyThresholdCount), aws.ToInt32(g.UnhealthyThresholdCount))
	if g.Matcher != nil && aws.ToString(g.Matcher.HttpCode) != "" {
		t += ", expecting " + aws.ToString(g.Matcher.HttpCode)
	}
	return t
}

// conditionText says when a rule condition holds.
func conditionText(c elbtypes.RuleCondition) string {
	values := c.Values
	name := aws.ToString(c.Field)
	switch {
	case c.HostHeaderConfig != nil:
		values = c.HostHeaderConfig.Values
	case c.PathPatternConfig != nil:
		values = c.PathPatternConfig.Values
	case c.HttpRequestMethodConfig != nil:
		values = c.HttpRequestMethodConfig.Values
	case c.SourceIpConfig != nil:
		values = c.SourceIpConfig.Values
	case c.HttpHeaderConfig != nil:
		name = "header " + aws.ToString(c.HttpHeaderConfig.HttpHeaderName)
		values = c.HttpHeaderConfig.Values
	case c.QueryStringConfig != nil:
		values = nil
		for _, kv := range c.QueryStringConfig.Values {
			values = append(values, aws.ToString(kv.Key)+"="+aws.ToString(kv.Value))
		}
	}
	return name + " is " + strings.Join(values, " or ")
}

// ruleActions says what a rule's actions do, in their order.
func ruleActions(tx store.Tx, actions []elbtypes.Action) ([]actionRow, error) {
	slices.SortStableFunc(actions, func(a, b elbtypes.Action) int { return int(aws.ToInt32(a.Order)) - int(aws.ToInt32(b.Order)) })
	var out []actionRow
	for _, a := range actions {
		row := actionRow{Text: string(a.Type)}
		switch a.Type {
		case elbtypes.ActionTypeEnumForward:
			row.Text = "forward to"
			var groups []elbtypes.TargetGroupTuple
			if a.ForwardConfig != nil {
				groups = a.ForwardConfig.TargetGroups
			}
			if len(groups) == 0 && a.TargetGroupArn != nil {
				groups = []elbtypes.TargetGroupTuple{{TargetGroupArn: a.TargetGroupArn}}
			}
			for _, g := range groups {
				id := records.LBResourceID(aws.ToString(g.TargetGroupArn))
				wg := weightedGroup{lbLink: lbLink{ID: id, Name: id}}
				if len(groups) > 1 {
					wg.Weight = g.Weight
				}
				tg, ok, err := records.Get[records.TargetGroup](tx, records.TargetGroups, id)
				if err != nil {
					return nil, err
				}
				if ok {
					wg.Name = aws.ToString(tg.TargetGroup.TargetGroupName)
				}
				row.Forward = append(row.Forward, wg)
			}
		case elbtypes.ActionTypeEnumRedirect:
			if c := a.RedirectConfig; c != nil {
				row.Text = fmt.Sprintf("redirect (%s) to %s://%s:%s%s?%s", c.StatusCode, aws.ToString(c.Protocol), aws.ToString(c.Host),
					aws.ToString(c.Port), aws.ToString(c.Path), aws.ToString(c.Query))
			}
		case elbtypes.ActionTypeEnumFixedResponse:
			if c := a.FixedResponseConfig; c != nil {
				row.Text = "fixed response " + aws.ToString(c.StatusCode)
				if ct := aws.ToString(c.ContentType); ct != "" {
					row.Text += " (" + ct + ")"
				}
			}
		}
		out = append(out, row)
	}
	return out, nil
}

// loadLoadBalancer reads what a load balancer's page shows.
func loadLoadBalancer(tx store.Tx, id string, now time.Time) (*loadBalancerData, error) {
	lb, ok, err := records.Get[records.LoadBalancer](tx, records.LoadBalancers, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: load balancer %s", errNotFound, id)
	}
	l := lb.LoadBalancer
	d := &loadBalancerData{lbRow: lbRow{lbLink: lbLink{ID: id, Name: aws.ToString(l.LoadBalancerName)}, Type: string(l.Type),
		Scheme: string(l.Scheme), DNSName: aws.ToString(l.DNSName)}, ARN: aws.ToString(l.LoadBalancerArn)}
	if l.State != nil {
		d.State = string(l.State.Code)
	}
	var listeners []*records.Listener
	if err := records.Each(tx, records.Listeners, id+"/", func(ls *records.Listener) error {
		listeners = append(listeners, ls)
		return nil
	}); err != nil {
		return nil, err
	}
	slices.SortFunc(listeners, func(a, b *records.Listener) int {
		return int(aws.ToInt32(a.Listener.Port)) - int(aws.ToInt32(b.Listener.Port))
	})
	groups := map[string]bool{}
	for _, ls := range listeners {
		row := listenerRow{ID: records.LBResourceID(aws.ToString(ls.Listener.ListenerArn)), Protocol: string(ls.Listener.Protocol),
			Port: aws.ToInt32(ls.Listener.Port)}
		var rules []*records.Rule
		if err := records.Each(tx, records.Rules, row.ID+"/", func(r *records.Rule) error {
			rules = append(rules, r)
			return nil
		}); err != nil {
			return nil, err
		}
		slices.SortFunc(rules, func(a, b *records.Rule) int { return a.Order() - b.Order() })
		for _, ru := range rules {
			rr := ruleRow{Priority: aws.ToString(ru.Rule.Priority)}
			for _, c := range ru.Rule.Conditions {
				rr.Conditions = append(rr.Conditions, conditionText(c))
			}
			if rr.Actions, err = ruleActions(tx, ru.Rule.Actions); err != nil {
				return nil, err
			}
			for _, a := range rr.Actions {
				for _, g := range a.Forward {
					groups[g.ID] = true
				}
			}
			row.Rules = append(row.Rules, rr)
		}
		d.ListenerRows = append(d.ListenerRows, row)
	}
	d.Listeners = len(d.ListenerRows)
	for _, gid := range slices.Sorted(maps.Keys(groups)) {
		tg, ok, err := records.Get[records.TargetGroup](tx, records.TargetGroups, gid)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		tgd, err := loadTargetGroup(tx, tg, now)
		if err != nil {
			return nil, err
		}
		d.TargetGroups = append(d.TargetGroups, tgd)
	}
	return d, nil
}

func (s *Server) loadBalancerPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("lb")
	var d *loadBalancerData
	err := s.o.Store.View(func(tx store.Tx) error {
		var err error
		d, err = loadLoadBalancer(tx, id, s.o.Now())
		return err
	})
	if s.viewFailed(w, r, "load balancer page", err) {
		return
	}
	crumbs := append(lbCrumbs(), crumb{Name: d.Name, Href: Prefix + "load-balancers/" + id})
	s.renderPage(w, r, "loadbalancer", &page{Title: "Load balancer " + d.Name, Session: sessionOf(r), Crumbs: crumbs, Data: d})
}

func (s *Server) targetGroupPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("tg")
	var d targetGroupData
	err := s.o.Store.View(func(tx store.Tx) error {
		tg, ok, err := records.Get[records.TargetGroup](tx, records.TargetGroups, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: target group %s", errNotFound, id)
		}
		d, err = loadTargetGroup(tx, tg, s.o.Now())
		return err
	})
	if s.viewFailed(w, r, "target group page", err) {
		return
	}
	crumbs := append(lbCrumbs(), crumb{Name: "target group " + d.Name, Href: Prefix + "target-groups/" + id})
	s.renderPage(w, r, "targetgroup", &page{Title: "Target group " + d.Name, Session: sessionOf(r), Crumbs: crumbs, Data: &d})
}
