package testenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Memory is what a set of processes holds, summed from their
// /proc/<pid>/smaps_rollup, in KiB: the benchmark programs report it.
type Memory struct {
	Procs int
	// RSS counts every resident page of each process, shared ones in
	// every process that maps them; PSS splits shared pages among their
	// processes; Anon is the private memory (heap, stacks) within RSS.
	RSS, PSS, Anon int64
}

// Add adds the memory of process pid.
func (m *Memory) Add(pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	m.Procs++
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			m.RSS += v
		case "Pss:":
			m.PSS += v
		case "Anonymous:":
			m.Anon += v
		}
	}
	return nil
}

// String is "<n> processes  RSS … MiB (anon …, file …)  PSS … MiB".
func (m Memory) String() string {
	mib := func(k int64) float64 { return float64(k) / 1024 }
	return fmt.Sprintf("%3d processes  RSS %7.1f MiB (anon %6.1f, file %6.1f)  PSS %7.1f MiB",
		m.Procs, mib(m.RSS), mib(m.Anon), mib(m.RSS-m.Anon), mib(m.PSS))
}

// FindProcs returns the PIDs of the processes (this one excluded) whose
// command line satisfies match.
func FindProcs(match func(args []string) bool) ([]int, error) {
	all, err := listProcs()
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, p := range all {
		if p.pid != os.Getpid() && len(p.args) > 0 && match(p.args) {
			pids = append(pids, p.pid)
		}
	}
	return pids, nil
}

// LoadAverage is /proc/loadavg's first three fields ("?" if unreadable),
// which the benchmark programs print with their figures.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
