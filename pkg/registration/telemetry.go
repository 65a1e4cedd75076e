package registration

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/container"
)

// HealthSource reports the health of the agent's tasks whose containers
// have a health check, in the neutral types of pkg/container (the engine's
// TaskHealth, through pkg/agent's Agent); Telemetry maps it onto the TCS
// wire types. Tasks without such a container are left out.
type HealthSource interface {
	TaskHealth() []container.TaskHealth
}

// TelemetryOptions configure a Telemetry session.
type TelemetryOptions struct {
	API         DiscoverAPI
	Credentials aws.CredentialsProvider
	Region      string
	// ClusterArn and ContainerInstanceArn come from registration.
	ClusterArn, ContainerInstanceArn string
	Health                           HealthSource
	AgentVersion, AgentHash          string
	// TLSConfig is used for wss:// endpoints (nil: system roots).
	TLSConfig *tls.Config
	// Poll is how often the health source is read; a change is published
	// at once. Zero means 1 second.
	Poll time.Duration
	// Republish is how often unchanged health is published again (the
	// upstream agent's interval). Zero means 20 seconds.
	Republish time.Duration
	// Metrics, when set, is published as PublishMetricsRequest frames
	// every MetricsInterval (zero: DefaultMetricsInterval); nil means
	// ECS_DISABLE_METRICS: no metrics frame is sent.
	Metrics         MetricsSource
	MetricsInterval time.Duration
	// Backoff paces reconnects (default 1 s to 2 minutes, 20% jitter).
	Backoff Backoff
	Clock   Clock
	Logger  *slog.Logger
}

// Telemetry keeps the TCS websocket (DiscoverPollEndpoint's
// telemetryEndpoint) open and publishes container health on it as
// PublishHealthRequest frames: the endpoint's service scheduler replaces
// tasks whose essential containers turn UNHEALTHY, and DescribeTasks shows
// the status. With a MetricsSource it also publishes task metrics
// (PublishMetricsRequest, metrics.go).
type Telemetry struct {
	o                TelemetryOptions
	published        atomic.Int64
	metricsPublished atomic.Int64
}

// NewTelemetry checks the options and returns a Telemetry; Run starts it.
func NewTelemetry(o TelemetryOptions) (*Telemetry, error) {
	if o.API == nil || o.Credentials == nil || o.Health == nil || o.Region == "" || o.ContainerInstanceArn == "" {
		return nil, errors.New("TCS session: API, Credentials, Health, Region and ContainerInstanceArn are required")
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Republish <= 0 {
		o.Republish = 20 * time.Second
	}
	if o.MetricsInterval <= 0 {
		o.MetricsInterval = DefaultMetricsInterval
	}
	if o.Backoff.Min == 0 {
		o.Backoff = Backoff{Min: time.Second, Max: 2 * time.Minute, Jitter: 0.2}
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Telemetry{o: o}, nil
}

// Published returns how many PublishHealthRequest frames were sent.
func (t *Telemetry) Published() int64 { return t.published.Load() }

// MetricsPublished returns how many PublishMetricsRequest frames were sent.
func (t *Telemetry) MetricsPublished() int64 { return t.metricsPublished.Load() }

// Run connects and reconnects until ctx ends (returning ctx's error) or the
// endpoint says the instance is inactive. Health is lost for nothing while
// disconnected: every connection starts by publishing the current health.
func (t *Telemetry) Run(ctx context.Context) error {
	return reconnectLoop(ctx, "TCS session", "", t.o.Clock, t.o.Backoff, t.o.Logger, nil, t.once)
}

// once runs one websocket connection to its end.
func (t *Telemetry) once(ctx context.Context) error {
	out, err := t.o.API.DiscoverPollEndpoint(ctx, &ecs.DiscoverPollEndpointInput{
		Cluster:           aws.String(t.o.ClusterArn),
		ContainerInstance: aws.String(t.o.ContainerInstanceArn),
	})
	if err != nil {
		return fmt.Errorf("discover telemetry endpoint: %w", err)
	}
	endpoint := aws.ToString(out.TelemetryEndpoint)
	if endpoint == "" {
		return errors.New("discover telemetry endpoint: the endpoint returned none")
	}
	q := url.Values{}
	q.Set("cluster", t.o.ClusterArn)
	q.Set("containerInstance", t.o.ContainerInstanceArn)
	q.Set("agentVersion", t.o.AgentVersion)
	q.Set("agentHash", t.o.AgentHash)
	q.Set("dockerVersion", "containerd")
	conn, httpURL, err := dialSigned(ctx, wsTarget{name: "TCS", endpoint: endpoint, query: q,
		creds: t.o.Credentials, region: t.o.Region, clock: t.o.Clock, tls: t.o.TLSConfig})
	if err != nil {
		return err
	}
	t.o.Logger.Info("TCS session connected", "endpoint", httpURL)
	c := &wsConn{conn: conn}
	// The reader owns reads: acknowledgements and heartbeats are only
	// logged, and a read error (the endpoint closed, or ctx ended and
	// closed the connection) ends the session.
	readErr := make(chan error, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		readErr <- t.read(c)
	}()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer func() {
		stop()
		conn.Close()
		<-readDone // publishLoop may have taken the reader's error already
	}()
	return t.publishLoop(ctx, c, readErr)
}

// read consumes the endpoint's frames until the connection fails.
func (t *Telemetry) read(c *wsConn) error {
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("read TCS frame: %w", err)
		}
		f, err := api.DecodeFrame(data)
		if err != nil {
			t.o.Logger.Warn("ignore malformed TCS frame", "err", err)
			continue
		}
		if e, ok := f.(*api.ErrorFrame); ok {
			if e.Type == api.TypeInactiveInstanceException {
				return fmt.Errorf("TCS: %w", ErrInactiveInstance)
			}
			t.o.Logger.Warn("TCS error frame", "type", e.Type, "message", e.Message)
		}
	}
}

// publishLoop publishes the health at once, on every change and every
// Republish interval, and the metrics every MetricsInterval (the first
// one interval after connecting, so that it covers samples taken while
// connected or waiting for the connection), until the connection or ctx
// ends.
func (t *Telemetry) publishLoop(ctx context.Context, c *wsConn, readErr <-chan error) error {
	var last []container.TaskHealth
	var lastAt time.Time
	first := true
	metricsAt := t.o.Clock.Now()
	for {
		now := t.o.Clock.Now()
		if t.o.Metrics != nil && now.Sub(metricsAt) >= t.o.MetricsInterval {
			if err := t.publishMetrics(c, now); err != nil {
				return err
			}
			metricsAt = now
		}
		cur := t.o.Health.TaskHealth()
		if first || !reflect.DeepEqual(cur, last) || now.Sub(lastAt) >= t.o.Republish {
			if err := t.publish(c, cur, now); err != nil {
				return err
			}
			last, lastAt, first = cur, now, false
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			return err
		case <-t.o.Clock.After(t.o.Poll):
		}
	}
}

// publishMetrics sends one publication of task metrics, in as many frames
// as it takes.
func (t *Telemetry) publishMetrics(c *wsConn, now time.Time) error {
	tasks, idle := t.o.Metrics.TaskMetrics()
	for _, f := range metricsFrames(t.o.ClusterArn, t.o.ContainerInstanceArn, tasks, idle, now) {
		if err := c.send(f); err != nil {
			return err
		}
		t.metricsPublished.Add(1)
	}
	return nil
}

// wireHealth is health as PublishHealthRequest carries it.
func wireHealth(tasks []container.TaskHealth) []*api.TaskHealth {
	var out []*api.TaskHealth
	for _, t := range tasks {
		th := &api.TaskHealth{TaskArn: t.TaskARN, ClusterArn: t.Cluster,
			TaskDefinitionFamily: t.Family, TaskDefinitionVersion: t.Version}
		for _, c := range t.Containers {
			th.Containers = append(th.Containers, &api.ContainerHealth{ContainerName: c.Name, HealthStatus: c.Status.String()})
		}
		out = append(out, th)
	}
	return out
}

func (t *Telemetry) publish(c *wsConn, tasks []container.TaskHealth, now time.Time) error {
	var id [16]byte
	_, _ = rand.Read(id[:])
	req := &api.PublishHealthRequest{
		Metadata: &api.HealthMetadata{Cluster: t.o.ClusterArn, ContainerInstance: t.o.ContainerInstanceArn,
			MessageID: hex.EncodeToString(id[:]), Fin: true},
		Tasks:     wireHealth(tasks),
		Timestamp: &api.ECSEpochTime{Time: now.UTC()},
	}
	if err := c.send(req); err != nil {
		return err
	}
	t.published.Add(1)
	return nil
}
