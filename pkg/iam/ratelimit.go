package iam

import (
	"net/netip"
	"sync"
	"time"
)

// RateLimit is ECS_TASK_METADATA_RPS_LIMIT: a steady rate and a burst,
// applied to each client IP separately. A zero RPS disables the limit.
type RateLimit struct {
	RPS   float64
	Burst int
}

// bucket is a token bucket for one client IP.
type bucket struct {
	tokens float64
	last   time.Time
}

// ipLimiter hands out tokens per client IP. Buckets that have refilled
// completely are dropped on the way so the map cannot grow without bound
// from many clients.
type ipLimiter struct {
	limit RateLimit
	now   func() time.Time

	mu sync.Mutex
	// guarded by mu
	buckets map[netip.Addr]*bucket
	sweeps  int
}

func newIPLimiter(l RateLimit, now func() time.Time) *ipLimiter {
	if l.Burst < 1 {
		l.Burst = 1
	}
	return &ipLimiter{limit: l, now: now, buckets: make(map[netip.Addr]*bucket)}
}

// allow takes one token from ip's bucket; false means the request is over
// the limit.
func (l *ipLimiter) allow(ip netip.Addr) bool {
	if l.limit.RPS <= 0 {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[ip]
	if !ok {
		b = &bucket{tokens: float64(l.limit.Burst), last: now}
		l.buckets[ip] = b
	}
	b.tokens += now.Sub(b.last).Seconds() * l.limit.RPS
	if max := float64(l.limit.Burst); b.tokens > max {
		b.tokens = max
	}
	b.last = now
	l.sweeps++
	if l.sweeps >= 1024 {
		l.sweepLocked(now)
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweepLocked drops buckets that would be full by now.
func (l *ipLimiter) sweepLocked(now time.Time) {
	l.sweeps = 0
	full := time.Duration(float64(l.limit.Burst) / l.limit.RPS * float64(time.Second))
	for ip, b := range l.buckets {
		if now.Sub(b.last) > full {
			delete(l.buckets, ip)
		}
	}
}
