package devmode_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/berth-dev/berth/internal/testenv"
)

// Who answered, and was it healthy then: every web task writes "task <random
// id>" into the page it serves (webTaskDef) and the slow CGI answers "slow "
// and that page, so each answer through HAProxy names the task that served
// it. A healthWatch learns which target each id is (it asks each RUNNING task
// directly on its host port, not through HAProxy) and records the target
// group's DescribeTargetHealth with the time of each reading.

// healthLag bounds how far apart HAProxy's view and DescribeTargetHealth may
// be: berth-lb reads HAProxy's check results and reports a change on its
// next step (poll_interval 200ms here), and the watch reads
// DescribeTargetHealth every watchEvery. A request sent at s counts as sent
// to a healthy target if a reading in [s-healthLag, s+healthLag], or the
// last one before that window, shows the target healthy. A target answering
// before its checks passed (10 s after it was added) or after it was
// deregistered (it drains 3 s) is far outside that window.
const (
	healthLag  = time.Second
	watchEvery = 150 * time.Millisecond
)

type healthReading struct {
	at    time.Time
	state string
}

// healthWatch samples the web service's tasks and tg's target health until
// stopped (at test cleanup).
type healthWatch struct {
	mu       sync.Mutex
	readings map[string][]healthReading // by target "<instance id>:<port>"
	ids      map[string]string          // task id (the page's "task ...") → target
	probed   map[string]bool            // task ARNs whose id is known
	errs     []string
	cancel   context.CancelFunc
	done     chan struct{}
}

func (l *lbLab) watchHealth(t *testing.T, service, tg string) *healthWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &healthWatch{readings: map[string][]healthReading{}, ids: map[string]string{}, probed: map[string]bool{},
		cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		c := &http.Client{Timeout: 2 * time.Second}
		for ctx.Err() == nil {
			w.read(ctx, l, c, service, tg)
			select {
			case <-ctx.Done():
			case <-time.After(watchEvery):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	return w
}

func (w *healthWatch) fail(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) < 10 {
		w.errs = append(w.errs, fmt.Sprintf(format, args...))
	}
}

// read takes one reading of target health and learns the ids of the
// service's RUNNING tasks it has not asked yet.
func (w *healthWatch) read(ctx context.Context, l *lbLab, c *http.Client, service, tg string) {
	out, err := l.elb.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg)})
	at := time.Now()
	if err != nil {
		if ctx.Err() == nil {
			w.fail("DescribeTargetHealth: %v", err)
		}
		return
	}
	w.mu.Lock()
	seen := map[string]bool{}
	for _, d := range out.TargetHealthDescriptions {
		k := fmt.Sprintf("%s:%d", aws.ToString(d.Target.Id), aws.ToInt32(d.Target.Port))
		seen[k] = true
		w.readings[k] = append(w.readings[k], healthReading{at, string(d.TargetHealth.State)})
	}
	for k, rs := range w.readings {
		if !seen[k] && rs[len(rs)-1].state != "gone" {
			w.readings[k] = append(rs, healthReading{at, "gone"})
		}
	}
	w.mu.Unlock()

	lt, err := l.admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("default"), ServiceName: aws.String(service)})
	if err != nil || len(lt.TaskArns) == 0 {
		return
	}
	dt, err := l.admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("default"), Tasks: lt.TaskArns})
	if err != nil {
		return
	}
	for _, task := range dt.Tasks {
		arn := aws.ToString(task.TaskArn)
		w.mu.Lock()
		known := w.probed[arn]
		w.mu.Unlock()
		if known || aws.ToString(task.LastStatus) != "RUNNING" || testenv.FirstHostPort(task) == 0 {
			continue
		}
		// Straight to the task's host port on the instance's address.
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", testenv.FirstHostPort(task)), nil)
		resp, err := c.Do(req)
		if err != nil {
			continue // not listening yet: asked again next time
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := strings.TrimSpace(string(b))
		if !strings.HasPrefix(id, "task ") {
			continue // the page is written before httpd starts; this is not it
		}
		w.mu.Lock()
		w.probed[arn], w.ids[id] = true, taskTarget(task)
		w.mu.Unlock()
	}
}

// healthyAt says whether target k read healthy within healthLag of s.
func (w *healthWatch) healthyAt(k string, s time.Time) bool {
	rs := w.readings[k]
	i := sort.Search(len(rs), func(i int) bool { return !rs[i].at.Before(s.Add(-healthLag)) })
	if i > 0 {
		i-- // the state the window starts in
	}
	for ; i < len(rs) && !rs[i].at.After(s.Add(healthLag)); i++ {
		if rs[i].state == "healthy" {
			return true
		}
	}
	return false
}

// answeredByHealthy checks every answer ld recorded: the task that answered
// is one of the service's, and its target read healthy when the request was
// sent. It logs how many answers each target gave.
func (w *healthWatch) answeredByHealthy(t *testing.T, what string, ld *lbLoad) {
	t.Helper()
	// The last answers may have come in after the last reading.
	time.Sleep(healthLag + watchEvery)
	ld.mu.Lock()
	answers := ld.answers
	ld.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	per := map[string]int{}
	var bad []string
	for _, a := range answers {
		k, ok := w.ids[a.id]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("sent %s: answered by %q, no task of the service seen with that id", a.sent.Format("15:04:05.000"), a.id))
		case !w.healthyAt(k, a.sent):
			bad = append(bad, fmt.Sprintf("sent %s: answered by %q (target %s), not healthy then: %v", a.sent.Format("15:04:05.000"), a.id, k,
				w.around(k, a.sent)))
		default:
			per[k]++
		}
	}
	t.Logf("%s: %d answers from %d targets, each healthy when its request was sent: %v", what, len(answers)-len(bad), len(per), per)
	if len(bad) > 0 {
		t.Errorf("%s: %d of %d answers not from a task healthy at the time; first: %v", what, len(bad), len(answers), bad[:min(len(bad), 5)])
	}
	if len(w.errs) > 0 {
		t.Errorf("watching target health: %v", w.errs)
	}
}

// around is k's readings within 3 s of s, for a failure's message.
func (w *healthWatch) around(k string, s time.Time) []string {
	var out []string
	for _, r := range w.readings[k] {
		if d := r.at.Sub(s); d > -3*time.Second && d < 3*time.Second {
			out = append(out, fmt.Sprintf("%+.2fs %s", d.Seconds(), r.state))
		}
	}
	return out
}
