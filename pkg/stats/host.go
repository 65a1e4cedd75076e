package stats

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// clockTicksPerSecond is USER_HZ, the unit of /proc/stat: 100 on every
// Linux architecture Berth runs on.
const clockTicksPerSecond = 100

// HostCPUNanos returns the host's cumulative CPU time over all CPUs (the
// "cpu" line of /proc/stat, idle included) in nanoseconds, as Docker
// computes system_cpu_usage; zero when it cannot be read.
func HostCPUNanos() uint64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	return parseProcStat(b)
}

func parseProcStat(b []byte) uint64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "cpu" {
			continue
		}
		var ticks uint64
		// user nice system idle iowait irq softirq steal: guest time is
		// already counted in user and nice.
		for _, v := range f[1:min(len(f), 9)] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0
			}
			ticks += n
		}
		return ticks * (1e9 / clockTicksPerSecond)
	}
	return 0
}
