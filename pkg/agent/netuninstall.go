package agent

import (
	"context"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/network"
)

// WithNetworkUninstallOnStop makes a clean stop (Run's context ended)
// remove the host-wide parts of the agent's network — the built-in
// datapath's nftables table and its bridge's forward rules
// (network.Sandboxer.Uninstall) — when nothing needs them any more: no
// sandbox of the agent is left (every task stopped and torn down), nothing
// is pending removal and no other interface is on the bridge. Otherwise
// they stay for the next start, and the log says why. Dev mode sets it,
// because its owner tag derives from a directory the user may delete; a
// system agent keeps them, as its sandboxes outlive it.
func WithNetworkUninstallOnStop() Option { return func(o *options) { o.uninstallNetwork = true } }

// uninstallNetwork is WithNetworkUninstallOnStop's step, run after every
// component stopped. It fails nothing: what it cannot remove is logged,
// and the next start's Cleanup and Setup work with or without it.
func (a *Agent) uninstallNetwork(ctx context.Context, nm *network.Sandboxer, bridge string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	inUse, err := nm.InUse()
	if err != nil {
		a.log.Warn("network left in place: cannot tell whether it is still used", "table", nm.TableName(), "bridge", bridge, "err", err)
		return
	}
	if len(inUse) > 0 {
		a.log.Info("network left in place for the next start: still used", "table", nm.TableName(), "bridge", bridge,
			"by", strings.Join(inUse, ", "))
		return
	}
	if err := nm.Uninstall(ctx); err != nil {
		a.log.Warn("could not remove the network's host-wide parts", "table", nm.TableName(), "bridge", bridge, "err", err)
		return
	}
	a.log.Info("removed the network's host-wide parts: no sandbox left", "table", nm.TableName(), "forwardRules", bridge)
}
