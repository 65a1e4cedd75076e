package registration

import (
	"context"
	"math/rand/v2"
	"time"
)

// Clock is the time source of retries and timeouts; tests inject a fake.
type Clock interface {
	Now() time.Time
	// After delivers once d has passed.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

var _ Clock = SystemClock{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Backoff computes exponential retry delays: Min doubled per attempt up to
// Max, plus up to Jitter×delay of random extra so that many agents
// reconnecting after an endpoint outage do not arrive together.
type Backoff struct {
	Min, Max time.Duration
	// Jitter is the fraction of the delay added at random (0 to 1).
	Jitter float64
	// Rand returns a number in [0,1); nil means math/rand/v2.
	Rand func() float64
}

// Delay returns the wait before retry number attempt (0 is the first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Min
	if d <= 0 {
		d = 250 * time.Millisecond
	}
	for i := 0; i < attempt && (b.Max <= 0 || d < b.Max); i++ {
		d *= 2
	}
	if b.Max > 0 && d > b.Max {
		d = b.Max
	}
	if b.Jitter > 0 {
		r := b.Rand
		if r == nil {
			r = rand.Float64
		}
		d += time.Duration(float64(d) * b.Jitter * r())
	}
	return d
}

// sleep waits d on clock, or returns ctx's error when ctx ends first.
func sleep(ctx context.Context, clock Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-clock.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
