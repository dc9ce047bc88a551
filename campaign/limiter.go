package campaign

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Lane is a share of an account's send rate. Service messages (points
// notices) have their own small lane, so a marketing blast cannot starve
// them; the two lanes together never exceed the account's rate.
type Lane int

// Lanes.
const (
	LaneMarketing Lane = iota
	LaneService
)

// Limiter paces sends per WeChat account.
type Limiter interface {
	// Wait blocks until one message may be sent for the account on the
	// lane, or ctx ends.
	Wait(ctx context.Context, account string, lane Lane) error
}

// RateSplit divides an account's rate between the lanes: the service lane
// gets ServicePct percent (at least one message a second), marketing the
// rest.
type RateSplit struct {
	PerSecond  float64
	ServicePct float64
}

func (s RateSplit) lane(l Lane) float64 {
	service := math.Max(1, s.PerSecond*s.ServicePct/100)
	if l == LaneService {
		return service
	}
	return math.Max(1, s.PerSecond-service)
}

// LocalLimiter paces sends within this process: enough for one instance,
// or for several when the rate is divided between them.
type LocalLimiter struct {
	split RateSplit
	mu    sync.Mutex
	lims  map[string]*rate.Limiter
}

// NewLocalLimiter returns an in-process limiter.
func NewLocalLimiter(split RateSplit) *LocalLimiter {
	return &LocalLimiter{split: split, lims: map[string]*rate.Limiter{}}
}

// Wait implements Limiter. The bucket holds one token: sends are spaced
// evenly, so no second ever carries more than the rate (plus one).
func (l *LocalLimiter) Wait(ctx context.Context, account string, lane Lane) error {
	key := fmt.Sprintf("%s/%d", account, lane)
	l.mu.Lock()
	lim := l.lims[key]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(l.split.lane(lane)), 1)
		l.lims[key] = lim
	}
	l.mu.Unlock()
	return lim.Wait(ctx)
}

// RedisLimiter paces sends across every instance sharing one Redis, with
// GCRA (redis_rate): the account's rate holds in total however many
// instances send. Within an instance one goroutine per account and lane
// asks Redis on behalf of the senders waiting at that moment, for as many
// permits as there are waiters (up to a small burst) in one call, and
// hands them out at once: a crowd of senders does not poll Redis, and no
// permit is held back to be used later.
//
// In any second GCRA grants at most its rate plus the burst; the rate asked
// of Redis is the lane's rate less twice the burst, so the sends of any
// second stay within the configured rate.
type RedisLimiter struct {
	split RateSplit
	lim   *redis_rate.Limiter
	mu    sync.Mutex
	keys  map[string]chan chan error
}

// NewRedisLimiter returns a limiter shared through rdb.
func NewRedisLimiter(rdb redis.UniversalClient, split RateSplit) *RedisLimiter {
	return &RedisLimiter{split: split, lim: redis_rate.NewLimiter(rdb), keys: map[string]chan chan error{}}
}

// Wait implements Limiter.
func (l *RedisLimiter) Wait(ctx context.Context, account string, lane Lane) error {
	reqs := l.queue(account, lane)
	reply := make(chan error, 1)
	select {
	case reqs <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err() // a permit granted now goes unused: never more than the rate
	}
}

// queue returns the request queue of an account's lane, starting its
// permit goroutine on first use.
func (l *RedisLimiter) queue(account string, lane Lane) chan chan error {
	key := fmt.Sprintf("loyalty:send:%s:%d", account, lane)
	l.mu.Lock()
	defer l.mu.Unlock()
	if q, ok := l.keys[key]; ok {
		return q
	}
	q := make(chan chan error, 1024)
	l.keys[key] = q
	rate := l.split.lane(lane)
	burst := int(math.Max(1, rate/100))
	limit := redis_rate.Limit{Rate: int(math.Max(1, rate-float64(2*burst))), Burst: burst, Period: time.Second}
	go func() {
		waiting := make([]chan error, 0, burst)
		for first := range q {
			waiting = append(waiting[:0], first)
		gather:
			for len(waiting) < burst {
				select {
				case r := <-q:
					waiting = append(waiting, r)
				default:
					break gather
				}
			}
			err := l.permits(key, limit, len(waiting))
			for _, r := range waiting {
				r <- err
			}
		}
	}()
	return q
}

// permits asks Redis until it grants n sends at once, sleeping as long as
// it says between tries.
func (l *RedisLimiter) permits(key string, limit redis_rate.Limit, n int) error {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := l.lim.AllowN(ctx, key, limit, n)
		cancel()
		if err != nil {
			return fmt.Errorf("campaign: rate limiter: %w", err)
		}
		if res.Allowed >= n {
			return nil
		}
		time.Sleep(res.RetryAfter)
	}
}

// Health says whether the shared (Redis) limiter is to be used, and hears
// of its failures (internal/redisx.Health).
type Health interface {
	Up() bool
	Failed(ctx context.Context, err error)
}

// FallbackLimiter is the shared limiter while health says Redis is up, and
// a LocalLimiter at the account's rate divided by the live instances while
// it is not: a Redis outage slows sends to a conservative share, never
// stops them, and the instances together stay within the rate.
//
// Switching either way, the permits of the two limiters never share a
// second: from the switch on, a permit the old limiter still grants (to a
// sender already waiting in it) is refused and asked for again, and the
// new limiter's first permit comes a second after the old one's last
// accepted permit. (A Redis that restarts empty would otherwise grant the
// full rate at once beside the local permits still queued.) Going back to
// the shared limiter also waits out settle, the time the other instances
// may take to see Redis back (their health probe's interval): until then
// they may still send their local share.
type FallbackLimiter struct {
	shared Limiter
	split  RateSplit
	health Health
	live   func(ctx context.Context) int
	settle time.Duration

	mu         sync.Mutex
	local      bool      // the limiter permits are accepted from
	lastPermit time.Time // the last permit accepted
	notBefore  time.Time // the first permit of the current limiter, at the earliest
	locals     *LocalLimiter
	localsFor  int // the live count locals divides the rate by
}

// NewFallbackLimiter returns shared with a local fallback; live counts the
// running instances, settle is how long every instance may take to see
// Redis back (the health probe's interval).
func NewFallbackLimiter(shared Limiter, split RateSplit, health Health, live func(ctx context.Context) int,
	settle time.Duration) *FallbackLimiter {
	return &FallbackLimiter{shared: shared, split: split, health: health, live: live, settle: settle}
}

// Wait implements Limiter.
func (f *FallbackLimiter) Wait(ctx context.Context, account string, lane Lane) error {
	for {
		local := !f.health.Up()
		if err := f.enter(ctx, local); err != nil {
			return err
		}
		var err error
		if local {
			err = f.localLimiter(ctx).Wait(ctx, account, lane)
		} else if err = f.shared.Wait(ctx, account, lane); err != nil && ctx.Err() == nil {
			f.health.Failed(ctx, err)
			continue // on the local limiter now
		}
		if err != nil {
			return err
		}
		if f.accept(local) {
			return nil
		}
		// The limiter changed while this permit was granted: ask the new one.
	}
}

// enter makes local (or shared) the limiter permits are accepted from, and
// waits until its first permit may come.
func (f *FallbackLimiter) enter(ctx context.Context, local bool) error {
	f.mu.Lock()
	if f.local != local {
		f.local = local
		f.notBefore = f.lastPermit.Add(time.Second)
		if !local {
			// Others may send locally until they see Redis back.
			f.notBefore = time.Now().Add(f.settle + time.Second)
		}
	}
	until := f.notBefore
	f.mu.Unlock()
	if wait := time.Until(until); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// accept takes a permit granted by the local (or shared) limiter if that
// is still the one permits are accepted from.
func (f *FallbackLimiter) accept(local bool) bool {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.local != local || now.Before(f.notBefore) {
		return false
	}
	f.lastPermit = now
	return true
}

// localLimiter returns the local limiter for the current live count.
func (f *FallbackLimiter) localLimiter(ctx context.Context) *LocalLimiter {
	n := max(1, f.live(ctx))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locals == nil || f.localsFor != n {
		f.locals = NewLocalLimiter(RateSplit{PerSecond: f.split.PerSecond / float64(n), ServicePct: f.split.ServicePct})
		f.localsFor = n
	}
	return f.locals
}
