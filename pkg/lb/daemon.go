package lb

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/pkg/cluster/elbv2/lbwire"
)

// Options configure Run.
type Options struct {
	Config Config
	Logger *slog.Logger
}

// maxBackoff bounds the wait between failed steps.
const maxBackoff = 30 * time.Second

// Run serves every configured load balancer until ctx ends, each with its
// own HAProxy. It returns nil when ctx ends (HAProxy keeps serving the
// last known targets) and an error only when it cannot start: an unusable
// run directory, a load balancer another berth-lb serves from the same
// directory, a missing haproxy binary. Failures to reach the endpoint or
// to program HAProxy are logged and retried with backoff.
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if _, err := os.Stat(o.Config.HAProxy); err != nil {
		return fmt.Errorf("haproxy binary: %w (apt-get install haproxy)", err)
	}
	client, err := newEndpointClient(o.Config)
	if err != nil {
		return err
	}
	var balancers []*balancer
	defer func() {
		for _, b := range balancers {
			b.unlock()
		}
	}()
	for _, name := range o.Config.LoadBalancers {
		b, err := newBalancer(o.Config, name, client, log)
		if err != nil {
			return err
		}
		balancers = append(balancers, b)
	}
	var wg sync.WaitGroup
	for _, b := range balancers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// balancer serves one load balancer.
type balancer struct {
	name     string
	h        *haproxy
	client   *endpointClient
	bind     string
	interval time.Duration
	log      *slog.Logger
	lock     *os.File

	// Only the run goroutine touches the fields below.
	version         string // of the last state applied
	reportedVersion string
	reported        map[string]lbwire.TargetHealth // by backend/server
	removing        map[string]time.Time           // backend/server in maintenance, waiting to be deleted
	reloads         int

	metricsInterval time.Duration
	metricsAt       time.Time // of the last report (or of the base)
	metricsBase     *counters // counted up to the last report
	metricsReloads  int       // reloads at metricsBase
	metricsErr      string    // the last report's failure, logged once
}

func newBalancer(cfg Config, name string, client *endpointClient, log *slog.Logger) (*balancer, error) {
	dir := filepath.Join(cfg.RunDir, dirName(name))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("load balancer %s: run directory: %w", name, err)
	}
	// Two berth-lb processes on one directory would fight over one
	// HAProxy: the second refuses to start.
	lock, err := os.OpenFile(filepath.Join(dir, "berth-lb.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("load balancer %s: %w", name, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("load balancer %s: another berth-lb serves it from %s: %w", name, dir, err)
	}
	return &balancer{name: name, h: &haproxy{bin: cfg.HAProxy, dir: dir}, client: client, bind: cfg.BindAddress,
		interval: cfg.PollInterval.Duration, metricsInterval: cfg.MetricsInterval.Duration, log: log.With("load_balancer", name), lock: lock,
		reported: map[string]lbwire.TargetHealth{}, removing: map[string]time.Time{}}, nil
}

func (b *balancer) unlock() { b.lock.Close() }

// dirName is a load balancer's directory under the run directory: its
// name (from an ARN, the name part), kept short for the socket paths.
func dirName(lb string) string {
	if strings.HasPrefix(lb, "arn:") {
		// arn:...:loadbalancer/app/<name>/<id>
		parts := strings.Split(lb, "/")
		if len(parts) >= 3 {
			return safeName(parts[len(parts)-2])
		}
	}
	return safeName(lb)
}

// run steps until ctx ends: a step reads the state, applies it and
// reports health; a failed step is logged and tried again after a backoff
// that doubles up to maxBackoff.
func (b *balancer) run(ctx context.Context) {
	if p, err := b.h.status(ctx); err == nil {
		b.log.Info("adopting the running haproxy", "pid", b.h.masterPID(), "worker", p.worker, "reloads", p.reloads)
	}
	delay := b.interval
	lastErr := ""
	for {
		err := b.step(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if msg := err.Error(); msg != lastErr {
				b.log.Warn("step failed; haproxy keeps serving what it has", "err", err, "retryIn", delay)
				lastErr = msg
			}
			delay = min(2*delay, maxBackoff)
		default:
			if lastErr != "" {
				b.log.Info("recovered")
				lastErr = ""
			}
			delay = b.interval
		}
		if sleepCtx(ctx, delay) != nil {
			return
		}
	}
}

func (b *balancer) step(ctx context.Context) error {
	st, err := b.client.State(ctx, b.name)
	if err != nil {
		return fmt.Errorf("read load balancer state: %w", err)
	}
	p := planFor(st, b.h.dir, b.bind)
	if st.Version != b.version {
		for _, pr := range p.problems {
			b.log.Error("not served", "problem", pr)
		}
	}
	if err := b.apply(ctx, p); err != nil {
		return err
	}
	b.version = st.Version
	if err := b.report(ctx, p, st.Version); err != nil {
		return err
	}
	b.sendMetrics(ctx, p, aws.ToString(st.LoadBalancer.LoadBalancerArn))
	return nil
}
