package elbv2

import (
	"maps"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
)

// attrSpec is one attribute a resource has: AWS's default and what a value
// must be.
type attrSpec struct {
	def   string
	check func(v string) bool
	want  string // what check accepts, for the error
}

func boolAttr(def bool) attrSpec {
	return attrSpec{def: strconv.FormatBool(def), want: "true or false",
		check: func(v string) bool { return v == "true" || v == "false" }}
}

func intAttr(def, lo, hi int) attrSpec {
	return attrSpec{def: strconv.Itoa(def), want: "an integer from " + strconv.Itoa(lo) + " to " + strconv.Itoa(hi),
		check: func(v string) bool { n, err := strconv.Atoi(v); return err == nil && n >= lo && n <= hi }}
}

func enumAttr(def string, values ...string) attrSpec {
	return attrSpec{def: def, want: "one of " + joinQuoted(values),
		check: func(v string) bool { return slices.Contains(values, v) }}
}

func strAttr(def string, maxLen int) attrSpec {
	return attrSpec{def: def, want: "at most " + strconv.Itoa(maxLen) + " characters",
		check: func(v string) bool { return len(v) <= maxLen }}
}

func joinQuoted(vs []string) string {
	out := ""
	for i, v := range vs {
		if i > 0 {
			out += ", "
		}
		out += "'" + v + "'"
	}
	return out
}

// lbAttrs are a load balancer's attributes with AWS's defaults.
func lbAttrs(t elbtypes.LoadBalancerTypeEnum) map[string]attrSpec {
	m := map[string]attrSpec{
		"access_logs.s3.enabled":            boolAttr(false),
		"access_logs.s3.bucket":             strAttr("", 255),
		"access_logs.s3.prefix":             strAttr("", 1024),
		"deletion_protection.enabled":       boolAttr(false),
		"zonal_shift.config.enabled":        boolAttr(false),
		"load_balancing.cross_zone.enabled": boolAttr(t != elbtypes.LoadBalancerTypeEnumNetwork),
	}
	if t == elbtypes.LoadBalancerTypeEnumNetwork {
		m["dns_record.client_routing_policy"] = enumAttr("any_availability_zone", "availability_zone_affinity",
			"partial_availability_zone_affinity", "any_availability_zone")
		m["secondary_ips.auto_assigned.per_subnet"] = intAttr(0, 0, 7)
		return m
	}
	maps.Copy(m, map[string]attrSpec{
		"idle_timeout.timeout_seconds":                             intAttr(60, 1, 4000),
		"client_keep_alive.seconds":                                intAttr(3600, 60, 604800),
		"connection_logs.s3.enabled":                               boolAttr(false),
		"connection_logs.s3.bucket":                                strAttr("", 255),
		"connection_logs.s3.prefix":                                strAttr("", 1024),
		"health_check_logs.s3.enabled":                             boolAttr(false),
		"health_check_logs.s3.bucket":                              strAttr("", 255),
		"health_check_logs.s3.prefix":                              strAttr("", 1024),
		"routing.http.desync_mitigation_mode":                      enumAttr("defensive", "monitor", "defensive", "strictest"),
		"routing.http.drop_invalid_header_fields.enabled":          boolAttr(false),
		"routing.http.preserve_host_header.enabled":                boolAttr(false),
		"routing.http.x_amzn_tls_version_and_cipher_suite.enabled": boolAttr(false),
		"routing.http.xff_client_port.enabled":                     boolAttr(false),
		"routing.http.xff_header_processing.mode":                  enumAttr("append", "append", "preserve", "remove"),
		"routing.http2.enabled":                                    boolAttr(true),
		"waf.fail_open.enabled":                                    boolAttr(false),
	})
	return m
}

// tgAttrs are a target group's attributes with AWS's defaults for its
// protocol and target type.
func tgAttrs(tg *elbtypes.TargetGroup) map[string]attrSpec {
	m := map[string]attrSpec{
		records.DeregistrationDelayAttribute:                                             intAttr(records.DefaultDeregistrationDelay, 0, 3600),
		"stickiness.enabled":                                                             boolAttr(false),
		"load_balancing.cross_zone.enabled":                                              enumAttr("use_load_balancer_configuration", "true", "false", "use_load_balancer_configuration"),
		"target_group_health.dns_failover.minimum_healthy_targets.count":                 {def: "1", want: "'off' or an integer from 1", check: offOrMin(1, 1<<30)},
		"target_group_health.dns_failover.minimum_healthy_targets.percentage":            {def: "off", want: "'off' or an integer from 1 to 100", check: offOrMin(1, 100)},
		"target_group_health.unhealthy_state_routing.minimum_healthy_targets.count":      {def: "1", want: "an integer from 1", check: offOrMin(1, 1<<30)},
		"target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage": {def: "off", want: "'off' or an integer from 1 to 100", check: offOrMin(1, 100)},
	}
	if !isHTTP(tg.Protocol) {
		maps.Copy(m, map[string]attrSpec{
			"stickiness.type": enumAttr("source_ip", "source_ip"),
			"deregistration_delay.connection_termination.enabled":          boolAttr(false),
			"preserve_client_ip.enabled":                                   boolAttr(true),
			"proxy_protocol_v2.enabled":                                    boolAttr(false),
			"target_health_state.unhealthy.connection_termination.enabled": boolAttr(true),
			"target_health_state.unhealthy.draining_interval_seconds":      intAttr(0, 0, 360000),
		})
		return m
	}
	maps.Copy(m, map[string]attrSpec{
		"stickiness.type":                             enumAttr("lb_cookie", "lb_cookie", "app_cookie"),
		"stickiness.lb_cookie.duration_seconds":       intAttr(86400, 1, 604800),
		"stickiness.app_cookie.cookie_name":           strAttr("", 256),
		"stickiness.app_cookie.duration_seconds":      intAttr(86400, 1, 604800),
		"slow_start.duration_seconds":                 {def: "0", want: "0 or an integer from 30 to 900", check: func(v string) bool { return v == "0" || offOrMin(30, 900)(v) && v != "off" }},
		"load_balancing.algorithm.type":               enumAttr("round_robin", "round_robin", "least_outstanding_requests", "weighted_random"),
		"load_balancing.algorithm.anomaly_mitigation": enumAttr("off", "on", "off"),
	})
	return m
}

func offOrMin(lo, hi int) func(string) bool {
	return func(v string) bool {
		if v == "off" {
			return true
		}
		n, err := strconv.Atoi(v)
		return err == nil && n >= lo && n <= hi
	}
}

// listenerAttrs are a listener's attributes with AWS's defaults.
func listenerAttrs(p elbtypes.ProtocolEnum) map[string]attrSpec {
	if !isHTTP(p) {
		return map[string]attrSpec{"tcp.idle_timeout.seconds": intAttr(350, 60, 6000)}
	}
	m := map[string]attrSpec{
		"routing.http.response.server.enabled": boolAttr(true),
	}
	for _, h := range []string{"strict_transport_security", "access_control_allow_origin", "access_control_allow_methods",
		"access_control_allow_headers", "access_control_allow_credentials", "access_control_expose_headers",
		"access_control_max_age", "content_security_policy", "x_content_type_options", "x_frame_options"} {
		m["routing.http.response."+h+".header_value"] = strAttr("", 1024)
	}
	for _, h := range []string{"x_amzn_mtls_clientcert_serial_number", "x_amzn_mtls_clientcert_issuer",
		"x_amzn_mtls_clientcert_subject", "x_amzn_mtls_clientcert_validity", "x_amzn_mtls_clientcert_leaf",
		"x_amzn_mtls_clientcert", "x_amzn_tls_version", "x_amzn_tls_cipher_suite"} {
		m["routing.http.request."+h+".header_name"] = strAttr("", 40)
	}
	return m
}

// kv is one attribute, whatever the resource's SDK attribute type.
type kv struct{ key, value string }

// attrList is every attribute of specs, set values over defaults, sorted
// by key, made into the SDK's attribute type by mk.
func attrList[A any](specs map[string]attrSpec, set map[string]string, mk func(k, v *string) A) []A {
	keys := slices.Sorted(maps.Keys(specs))
	out := make([]A, 0, len(keys))
	for _, k := range keys {
		v, ok := set[k]
		if !ok {
			v = specs[k].def
		}
		out = append(out, mk(aws.String(k), aws.String(v)))
	}
	return out
}

// kvs reads the SDK's attributes of a request.
func kvs[A any](in []A, get func(A) (k, v *string)) []kv {
	out := make([]kv, 0, len(in))
	for _, a := range in {
		k, v := get(a)
		out = append(out, kv{aws.ToString(k), aws.ToString(v)})
	}
	return out
}

// setAttrs validates in against specs and returns set with them applied;
// set itself is not changed. kind names the resource in errors.
func setAttrs(kind string, specs map[string]attrSpec, set map[string]string, in []kv) (map[string]string, error) {
	if len(in) == 0 {
		return nil, apiErr(errValidation, "At least one attribute must be specified")
	}
	out := maps.Clone(set)
	if out == nil {
		out = map[string]string{}
	}
	for _, a := range in {
		spec, ok := specs[a.key]
		if !ok {
			return nil, apiErr(errValidation, "%s attribute key '%s' is not recognized", kind, a.key)
		}
		if !spec.check(a.value) {
			return nil, apiErr(errValidation, "%s attribute '%s' value '%s' is not valid: must be %s", kind, a.key, a.value, spec.want)
		}
		out[a.key] = a.value
	}
	return out, nil
}
