// Package ratelimit counts events per key against a rate: in memory for a
// single instance, in Redis when several instances must share the count.
// Callers name keys from closed sets (a prefix of their own and a parsed
// id or client address), never from free request text.
package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Limit allows N events per Per, in a burst of up to N, refilling evenly.
type Limit struct {
	N   int
	Per time.Duration
}

// Limiter takes one event for key under l. It returns 0 when the event is
// allowed, else how long until it would be.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) (retryAfter time.Duration, err error)
}

// Local is a Limiter in this process's memory: token buckets per key.
// Idle buckets (full again) are dropped, so memory follows the keys seen
// recently, not all keys ever seen.
type Local struct {
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim   *rate.Limiter
	limit Limit
}

// NewLocal returns an in-memory limiter reading time from now.
func NewLocal(now func() time.Time) *Local {
	return &Local{now: now, buckets: map[string]*bucket{}}
}

// Allow implements Limiter.
func (l *Local) Allow(_ context.Context, key string, lim Limit) (time.Duration, error) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b := l.buckets[key]
	if b == nil || b.limit != lim {
		b = &bucket{lim: rate.NewLimiter(rate.Every(lim.Per/time.Duration(max(1, lim.N))), lim.N), limit: lim}
		l.buckets[key] = b
	}
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return lim.Per, nil
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, nil
	}
	return 0, nil
}

// sweep drops full buckets, at most once a minute. Callers hold mu.
func (l *Local) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	for k, b := range l.buckets {
		if b.lim.TokensAt(now) >= float64(b.limit.N) {
			delete(l.buckets, k)
		}
	}
}

// Redis is a Limiter shared by every instance using the same Redis (GCRA,
// github.com/go-redis/redis_rate): the count is one key per limited key.
type Redis struct {
	lim *redis_rate.Limiter
}

// NewRedis returns a limiter on rdb.
func NewRedis(rdb redis.UniversalClient) *Redis { return &Redis{lim: redis_rate.NewLimiter(rdb)} }

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (time.Duration, error) {
	res, err := r.lim.Allow(ctx, key, redis_rate.Limit{Rate: l.N, Burst: l.N, Period: l.Per})
	if err != nil {
		return 0, fmt.Errorf("ratelimit: %s: %w", key, err)
	}
	if res.Allowed > 0 {
		return 0, nil
	}
	return max(res.RetryAfter, time.Millisecond), nil
}

// Health says whether the shared (Redis) limiter is to be used, and hears
// of its failures (internal/redisx.Health).
type Health interface {
	Up() bool
	Failed(ctx context.Context, err error)
}

// Fallback is the shared limiter while health says it is up, and a Local
// one while it is not, so a Redis outage does not stop logins. Each
// instance then allows its share of a limit: N divided by the live
// instances (at least 1), so together they stay near the shared limit.
type Fallback struct {
	shared Limiter
	local  *Local
	health Health
	live   func(ctx context.Context) int
}

// NewFallback returns shared with a local fallback; live counts the
// running instances.
func NewFallback(shared Limiter, local *Local, health Health, live func(ctx context.Context) int) *Fallback {
	return &Fallback{shared: shared, local: local, health: health, live: live}
}

// Allow implements Limiter.
func (f *Fallback) Allow(ctx context.Context, key string, l Limit) (time.Duration, error) {
	if f.health.Up() {
		d, err := f.shared.Allow(ctx, key, l)
		if err == nil {
			return d, nil
		}
		f.health.Failed(ctx, err)
	}
	return f.local.Allow(ctx, key, Limit{N: max(1, l.N/max(1, f.live(ctx))), Per: l.Per})
}
