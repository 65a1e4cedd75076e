// Command peers measures how long the same small HTTP server (busybox-static
// httpd in an image built by internal/testenv and pushed to a loopback
// registry) takes from "start it" until its dynamic host port answers an
// HTTP GET, for 1 container and for 20 at once, on
//
//   - raw containerd: the containerd client's create+start, no network (the
//     floor; the server listens in the host's network namespace);
//   - containerd + CNI: the same plus a netns set up by go-cni with the CNI
//     plugins and configuration Berth's bridge mode uses;
//   - Berth: `berth-agent --dev`, RunTask of a bridge-mode task definition
//     with hostPort 0, the reported networkBinding's port;
//   - Berth as a cluster member: the same against berth-cluster, the
//     endpoint in a process of its own, so the agent's memory is its own;
//   - Docker (Debian's docker.io, a private dockerd): `docker run -d -p 80`;
//   - Podman (Debian's podman, rootful, private storage): `podman run -d -p 80`;
//
// interleaved round by round in one run, then the resident memory (RSS and
// PSS) of each engine's processes with 10 and then 100 of its containers
// running (-memory). It prints Markdown tables for docs/benchmarks.md.
//
// It runs as root, installs docker.io and podman when missing, uses the
// containerd and registry of the BERTHTEST_* variables when set and
// otherwise starts private ones (internal/testenv), and removes everything
// it started (containers, daemons, networks, iptables rules, bridges), also
// on Ctrl-C:
//
//	make bench-peers    # go run ./bench/cmd/peers -agent bin/berth-agent
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
)

func main() {
	var o options
	flag.StringVar(&o.agentBin, "agent", "bin/berth-agent", "berth-agent binary for the Berth side (make build; berth-logd next to it is used as the agent uses it)")
	flag.StringVar(&o.clusterBin, "cluster", "bin/berth-cluster", "berth-cluster binary, the endpoint of the berth-member engine (make build)")
	flag.IntVar(&o.rounds, "rounds", 5, "interleaved rounds per engine and count")
	counts := flag.String("counts", "1,20", "containers started at once, per measurement")
	memory := flag.String("memory", "10,100", "running containers per engine for the memory tables, ascending (the containers of one table stay for the next; 0: none)")
	engines := flag.String("engines", "raw,cni,berth,berth-member,docker,podman", "engines to measure, in this order")
	flag.StringVar(&o.berthPull, "berth-pull", "prefer-cached", "ECS_IMAGE_PULL_BEHAVIOR of the Berth agent (prefer-cached matches Docker's and Podman's pull-if-missing)")
	flag.DurationVar(&o.berthPoll, "berth-poll", 5*time.Millisecond, "DescribeTasks interval while Berth's tasks have no port yet (the measurement's resolution; 20 ms before)")
	flag.BoolVar(&o.install, "install", true, "apt-get install docker.io and podman when missing")
	flag.Parse()
	for _, c := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench peers: -counts: %q is not a positive number\n", c)
			os.Exit(2)
		}
		o.counts = append(o.counts, n)
	}
	for _, c := range strings.Split(*memory, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 0 || (len(o.memory) > 0 && n <= o.memory[len(o.memory)-1]) {
			fmt.Fprintf(os.Stderr, "bench peers: -memory: %q is not a number above the one before it\n", c)
			os.Exit(2)
		}
		if n > 0 {
			o.memory = append(o.memory, n)
		}
	}
	o.engines = strings.Split(*engines, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, o)
	var cerr *cleanupError
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled) && !errors.As(err, &cerr):
		fmt.Fprintln(os.Stderr, "bench peers: interrupted; what it started is removed")
	default:
		fmt.Fprintln(os.Stderr, "bench peers:", err)
		os.Exit(1)
	}
}

// cleanupError is a failure to remove what the benchmark started; it
// fails the run even when the run was interrupted.
type cleanupError struct{ err error }

func (e *cleanupError) Error() string { return e.err.Error() }
func (e *cleanupError) Unwrap() error { return e.err }

type options struct {
	agentBin, clusterBin, berthPull string
	berthPoll                       time.Duration
	rounds                          int
	counts, memory                  []int
	engines                         []string
	install                         bool
}

// engine starts containers of the benchmark image with a dynamic host port.
type engine interface {
	// launch starts n containers at once. It calls up (from any goroutine)
	// with a container's host address as soon as that is known and returns
	// when all n are started, or with the first failure; it never calls up
	// after returning.
	launch(ctx context.Context, n int, up func(addr string)) error
	// clear removes every container launched so far (not timed).
	clear(ctx context.Context) error
	// memory groups the engine's processes while its containers run.
	memory() ([]procGroup, error)
	// close stops what the engine started and removes what it left on the
	// host; it is safe after a failed start.
	close(ctx context.Context) error
}

// peer is one engine with its place in the tables.
type peer struct {
	key, label string
	e          engine
}

// setup is what every engine starts from.
type setup struct {
	dir        string // the run's scratch directory
	shared     *testenv.Shared
	image      string // reference in the loopback registry
	agentBin   string
	clusterBin string
	berthPull  string
	berthPoll  time.Duration
	names      names
}

// names are the host-wide names the engines use; none collides with
// Berth's defaults, the tests' names or another benchmark's.
type names struct {
	cniBridge, cniSubnet       string
	berthBridge, berthSubnet   string
	memberBridge, memberSubnet string
	dockerBridge, dockerSubnet string
	podmanBridge, podmanSubnet string
}

func defaultNames() names {
	return names{
		cniBridge: "bpeerscni0", cniSubnet: "10.232.1.0/24",
		berthBridge: "bpeersberth0", berthSubnet: "10.232.2.0/24",
		memberBridge: "bpeersbmem0", memberSubnet: "10.232.5.0/24",
		dockerBridge: "bpeersdock0", dockerSubnet: "10.232.3.0/24",
		podmanBridge: "bpeerspod0", podmanSubnet: "10.232.4.0/24",
	}
}

// page is the one file the benchmark's httpd serves.
const page = "<html><body>" + marker + "</body></html>\n"

// httpdArgs is the container's command: busybox httpd in the foreground.
func httpdArgs(port int) []string {
	return []string{"/bin/httpd", "-f", "-p", strconv.Itoa(port), "-h", "/srv"}
}

func run(ctx context.Context, o options) (retErr error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root (containerd, CNI, dockerd, podman); run make bench-peers as root")
	}
	agentBin, err := filepath.Abs(o.agentBin)
	if err != nil {
		return err
	}
	clusterBin, err := filepath.Abs(o.clusterBin)
	if err != nil {
		return err
	}
	if slices.Contains(o.engines, "berth") || slices.Contains(o.engines, "berth-member") {
		if _, err := os.Stat(agentBin); err != nil {
			return fmt.Errorf("-agent: %w (make build writes bin/berth-agent)", err)
		}
	}
	if slices.Contains(o.engines, "berth-member") {
		if _, err := os.Stat(clusterBin); err != nil {
			return fmt.Errorf("-cluster: %w (make build writes bin/berth-cluster)", err)
		}
	}
	if slices.Contains(o.engines, "docker") || slices.Contains(o.engines, "podman") {
		if err := ensurePackages(ctx, o.install); err != nil {
			return err
		}
	}
	// Clean-up runs after Ctrl-C too, with its own time limit.
	cleanupCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	}
	shared, err := testenv.AcquireShared(ctx)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := cleanupCtx()
		defer cancel()
		if err := shared.Close(cctx); err != nil {
			retErr = errors.Join(retErr, &cleanupError{err})
		}
	}()
	img, err := testenv.BuildAndPush(ctx, shared.Registry, "bench/peers", testenv.ImageSpec{
		Files:        []testenv.File{{Path: "/srv/index.html", Mode: 0o644, Data: []byte(page)}},
		Cmd:          httpdArgs(80),
		ExposedPorts: []string{"80/tcp"},
		// httpd as PID 1 ignores SIGTERM; every engine stops the
		// containers at once (teardown is not timed).
		StopSignal: "SIGKILL",
	})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "berth-bench-peers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s := &setup{dir: dir, shared: shared, image: img.Ref, agentBin: agentBin, clusterBin: clusterBin, berthPull: o.berthPull, berthPoll: o.berthPoll, names: defaultNames()}

	var peers []peer
	defer func() {
		cctx, cancel := cleanupCtx()
		defer cancel()
		for _, p := range slices.Backward(peers) {
			if err := p.e.close(cctx); err != nil {
				retErr = errors.Join(retErr, &cleanupError{fmt.Errorf("clean up %s: %w", p.key, err)})
			}
		}
	}()
	// After Ctrl-C, what failed because of it (killed clients, cancelled
	// calls) is not reported; clean-up failures still are.
	defer func() {
		if retErr != nil && ctx.Err() != nil {
			retErr = ctx.Err()
		}
	}()
	for _, key := range o.engines {
		p, err := startPeer(ctx, s, key)
		if p.e != nil {
			peers = append(peers, p)
		}
		if err != nil {
			return err
		}
	}
	fmt.Printf("containerd %s (snapshotter %s), image %s, load average %s\n", shared.Address, shared.Snapshotter, img.Ref, testenv.LoadAverage())
	fmt.Printf("versions: %s\n", versions(ctx))
	for _, p := range peers {
		fmt.Printf("  %-7s %s\n", p.key, p.label)
	}

	client := newAnswerClient()
	// One untimed container per engine first: images unpacked, bridges
	// created, binaries in the page cache.
	for _, p := range peers {
		if _, err := measureAndClear(ctx, client, p, 1); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	times := map[string]map[int][]time.Duration{}
	for _, p := range peers {
		times[p.key] = map[int][]time.Duration{}
	}
	for r := range o.rounds {
		// Each round starts with the next engine, so that none always
		// follows the same one.
		order := append(slices.Clone(peers[r%len(peers):]), peers[:r%len(peers)]...)
		for _, n := range o.counts {
			for _, p := range order {
				d, err := measureAndClear(ctx, client, p, n)
				if err != nil {
					return fmt.Errorf("round %d: %w", r+1, err)
				}
				times[p.key][n] = append(times[p.key][n], d)
				fmt.Printf("round %d  %-7s %3d at once  %s\n", r+1, p.key, n, formatDuration(d))
			}
		}
	}
	loadTimed := testenv.LoadAverage()

	mem := make([][]memoryRow, len(o.memory)) // by count, then engine
	if len(o.memory) > 0 {
		for _, p := range peers {
			byCount, err := measureMemory(ctx, client, p, o.memory)
			if err != nil {
				return err
			}
			for i, groups := range byCount {
				mem[i] = append(mem[i], memoryRow{p, groups})
			}
		}
	}
	fmt.Println()
	printTimes(peers, o.counts, times, o.rounds)
	for i, rows := range mem {
		fmt.Println()
		printMemory(rows, o.memory[i])
	}
	fmt.Printf("\nload average after the timed rounds %s, at the end %s\n", loadTimed, testenv.LoadAverage())
	return nil
}

// versions names the version of every program measured (first line of
// its version output).
func versions(ctx context.Context) string {
	var out []string
	for _, v := range [][]string{
		{"containerd", "--version"}, {"runc", "--version"}, {"/usr/sbin/dockerd", "--version"},
		{"/usr/bin/podman", "--version"}, {"conmon", "--version"}, {"/usr/lib/podman/netavark", "--version"},
	} {
		o, err := command(ctx, nil, v[0], v[1:]...)
		if err != nil {
			continue
		}
		line, _, _ := strings.Cut(strings.TrimSpace(o), "\n")
		out = append(out, line)
	}
	return strings.Join(out, "; ")
}

func startPeer(ctx context.Context, s *setup, key string) (peer, error) {
	p := peer{key: key}
	var err error
	switch key {
	case "raw":
		p.label = "raw containerd: create+start, host netns, no network (the floor)"
		p.e, err = started(startContainerdEngine(ctx, s, false))
	case "cni":
		p.label = "containerd + CNI (bridge, host-local, portmap, firewall via go-cni)"
		p.e, err = started(startContainerdEngine(ctx, s, true))
	case "berth":
		p.label = "Berth dev mode: RunTask, bridge, hostPort 0"
		p.e, err = started(startBerth(ctx, s))
	case "berth-member":
		p.label = "Berth agent as a cluster member of berth-cluster: RunTask, bridge, hostPort 0"
		p.e, err = started(startBerthMember(ctx, s))
	case "docker":
		p.label = "Docker: docker run -d -p 80"
		p.e, err = started(startDocker(ctx, s))
	case "podman":
		p.label = "Podman: podman run -d -p 80"
		p.e, err = started(startPodman(ctx, s))
	default:
		return p, fmt.Errorf("-engines: unknown engine %q (raw, cni, berth, berth-member, docker, podman)", key)
	}
	return p, err
}

// started hands back what a start function returned as an engine, or nil
// when it returned none (a nil pointer must not become a non-nil engine).
func started[E interface {
	engine
	comparable
}](e E, err error) (engine, error) {
	var none E
	if e == none {
		return nil, err
	}
	return e, err
}

// answerLimit is how long a container's port may take to answer.
const answerLimit = 3 * time.Minute

// measureAndClear starts n containers at once, returns the time until the
// last of them answered, and removes them again.
func measureAndClear(ctx context.Context, client *http.Client, p peer, n int) (time.Duration, error) {
	d, err := measure(ctx, client, p.e, n)
	if cerr := clearEngine(ctx, p.e); cerr != nil {
		err = errors.Join(err, fmt.Errorf("remove the containers: %w", cerr))
	}
	if err != nil {
		return 0, fmt.Errorf("%s, %d at once: %w", p.key, n, err)
	}
	return d, nil
}

// clearEngine removes the engine's containers also after Ctrl-C (ctx ended).
func clearEngine(ctx context.Context, e engine) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	return e.clear(cctx)
}

// measure starts n containers at once and returns the time from the start
// until the last of their ports answered.
func measure(ctx context.Context, client *http.Client, e engine, n int) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex // guards the three below
		last     time.Time
		answered int
		errs     []error
	)
	start := time.Now()
	up := func(addr string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at, err := waitAnswer(ctx, client, addr, answerLimit)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				cancel()
				return
			}
			answered++
			if at.After(last) {
				last = at
			}
		}()
	}
	err := e.launch(ctx, n, up)
	if err != nil {
		cancel()
	}
	wg.Wait()
	if err != nil {
		return 0, err
	}
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	if answered != n {
		return 0, fmt.Errorf("%d of %d containers answered", answered, n)
	}
	return last.Sub(start), nil
}

// formatDuration prints milliseconds below 10 s and seconds above.
func formatDuration(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// printTimes prints the time table: median, fastest and slowest round, and
// the ratio of the medians to raw containerd's.
func printTimes(peers []peer, counts []int, times map[string]map[int][]time.Duration, rounds int) {
	fmt.Printf("Time from start until the host port answers an HTTP GET (median of %d rounds, fastest–slowest):\n\n", rounds)
	fmt.Print("| engine |")
	for _, n := range counts {
		if n == 1 {
			fmt.Print(" 1 container | ratio to raw |")
		} else {
			fmt.Printf(" %d at once | ratio to raw |", n)
		}
	}
	fmt.Print("\n| --- |" + strings.Repeat(" --- | --- |", len(counts)) + "\n")
	for _, p := range peers {
		fmt.Printf("| %s |", p.label)
		for _, n := range counts {
			ds := times[p.key][n]
			s := slices.Clone(ds)
			slices.Sort(s)
			fmt.Printf(" %s (%s–%s) |", formatDuration(median(ds)), formatDuration(s[0]), formatDuration(s[len(s)-1]))
			if raw, ok := times["raw"]; ok {
				fmt.Printf(" %.2fx |", float64(median(ds))/float64(median(raw[n])))
			} else {
				fmt.Print(" — |")
			}
		}
		fmt.Println()
	}
}
