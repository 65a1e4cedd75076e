package runtime

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// NetworkCounters are one interface's cumulative counters, as the kernel
// keeps them in /proc/<pid>/net/dev (and Docker reports them).
type NetworkCounters struct {
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// netDevCounters reads the interfaces of the network namespace that
// process pid lives in. cgroups hold no network counters, so this is the
// one figure not read through containerd's task metrics. Loopback is left
// out (Docker leaves it out too). It returns nil when the file cannot be
// read (the process is gone): stats then carry no network figures rather
// than failing.
func netDevCounters(pid uint32) map[string]NetworkCounters {
	if pid == 0 {
		return nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return nil
	}
	out, err := parseNetDev(b)
	if err != nil {
		return nil
	}
	return out
}

// parseNetDev parses the /proc/net/dev table: two header lines, then
// "iface: rx_bytes rx_packets rx_errs rx_drop fifo frame compressed
// multicast tx_bytes tx_packets tx_errs tx_drop ...".
func parseNetDev(b []byte) (map[string]NetworkCounters, error) {
	out := map[string]NetworkCounters{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 0; sc.Scan(); line++ {
		if line < 2 {
			continue
		}
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			return nil, fmt.Errorf("net/dev line %d: no interface name", line+1)
		}
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if len(f) < 12 {
			return nil, fmt.Errorf("net/dev line %d: %d fields, want 16", line+1, len(f))
		}
		var v [12]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("net/dev line %d: %w", line+1, err)
			}
			v[i] = n
		}
		if name == "lo" {
			continue
		}
		out[name] = NetworkCounters{RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11]}
	}
	return out, sc.Err()
}
