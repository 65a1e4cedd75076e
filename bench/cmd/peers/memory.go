package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
)

// procGroup is the memory of one kind of process of an engine.
type procGroup struct {
	name string
	// own is set for the engine's own processes; containerd and its shims,
	// which every containerd-based engine has, are reported for scale.
	own bool
	mem testenv.Memory
}

// newGroup sums the memory of pids; a process that ended meanwhile is left
// out (its count shows it).
func newGroup(name string, own bool, pids []int) procGroup {
	g := procGroup{name: name, own: own}
	for _, pid := range pids {
		_ = g.mem.Add(pid)
	}
	return g
}

type memoryRow struct {
	peer   peer
	groups []procGroup
}

// settle is how long the engine idles with its containers running before
// the memory is read, so that start-up garbage is collected.
const settle = 5 * time.Second

// measureMemory starts containers (20 at a time, each batch until its
// ports answer) up to each of counts in turn (ascending), lets the engine
// settle there and reads the memory of its processes, then removes the
// containers again. The result has one entry per count.
func measureMemory(ctx context.Context, client *http.Client, p peer, counts []int) ([][]procGroup, error) {
	var out [][]procGroup
	start, running := time.Now(), 0
	for _, n := range counts {
		for running < n {
			batch := min(n-running, 20)
			if _, err := measure(ctx, client, p.e, batch); err != nil {
				_ = clearEngine(ctx, p.e)
				return nil, fmt.Errorf("memory, %s: %w", p.key, err)
			}
			running += batch
		}
		fmt.Printf("memory  %-7s %d containers answer after %s\n", p.key, n, formatDuration(time.Since(start)))
		select {
		case <-ctx.Done():
			_ = clearEngine(ctx, p.e)
			return nil, ctx.Err()
		case <-time.After(settle):
		}
		groups, err := p.e.memory()
		if err != nil {
			_ = clearEngine(ctx, p.e)
			return nil, fmt.Errorf("memory, %s, %d containers: %w", p.key, n, err)
		}
		out = append(out, groups)
	}
	if err := clearEngine(ctx, p.e); err != nil {
		return nil, fmt.Errorf("memory, %s: remove the containers: %w", p.key, err)
	}
	return out, nil
}

func mib(kib int64) string { return fmt.Sprintf("%.1f", float64(kib)/1024) }

// printMemory prints one row per process kind and, per engine, the total
// of its own processes and the total with containerd and its shims.
func printMemory(rows []memoryRow, n int) {
	fmt.Printf("Resident memory with %d containers running (smaps_rollup; PSS splits shared pages among the processes that map them):\n\n", n)
	fmt.Println("| engine | processes | count | RSS MiB | of it anonymous | PSS MiB |")
	fmt.Println("| --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		var own, all testenv.Memory
		for _, g := range r.groups {
			fmt.Printf("| %s | %s | %d | %s | %s | %s |\n", r.peer.key, g.name, g.mem.Procs, mib(g.mem.RSS), mib(g.mem.Anon), mib(g.mem.PSS))
			add(&all, g.mem)
			if g.own {
				add(&own, g.mem)
			}
		}
		if own.Procs > 0 {
			fmt.Printf("| %s | **engine's own processes** | %d | **%s** | %s | **%s** |\n", r.peer.key, own.Procs, mib(own.RSS), mib(own.Anon), mib(own.PSS))
		}
		fmt.Printf("| %s | all of the above | %d | %s | %s | %s |\n", r.peer.key, all.Procs, mib(all.RSS), mib(all.Anon), mib(all.PSS))
	}
}

func add(sum *testenv.Memory, m testenv.Memory) {
	sum.Procs += m.Procs
	sum.RSS += m.RSS
	sum.PSS += m.PSS
	sum.Anon += m.Anon
}
