package agent

import (
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/berth-dev/berth/pkg/config"
)

// HostAddressAttribute is the container instance attribute that the load
// balancing API resolves instance targets with (pkg/cluster/elbv2).
const HostAddressAttribute = "berth.host-address"

// hostAddress is where load balancers reach this host's task host ports:
// BERTH_HOST_ADDRESS; else 127.0.0.1 when the endpoint is on loopback (dev
// mode, a single-host lab: berth-lb runs here too); else the first
// non-loopback IPv4 address of an interface that is up; "" when there is
// none (instance targets on this host then get no traffic, and
// DescribeTargetHealth says why).
func hostAddress(cfg *config.Config, addrs func() ([]net.Interface, error)) string {
	if cfg.Network.HostAddress.IsValid() {
		return cfg.Network.HostAddress.String()
	}
	if endpointOnLoopback(cfg.BackendHost) {
		return "127.0.0.1"
	}
	ifaces, err := addrs()
	if err != nil {
		return ""
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range as {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
				return p.Addr().String()
			}
		}
	}
	return ""
}

// endpointOnLoopback tells whether ECS_BACKEND_HOST (a URL or a bare host,
// the first of a list of replicas) names a loopback address.
func endpointOnLoopback(backend string) bool {
	backend, _, _ = strings.Cut(backend, ",")
	host := backend
	if u, err := url.Parse(backend); err == nil && u.Host != "" {
		host = u.Hostname()
	} else if h, _, err := net.SplitHostPort(backend); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
