package ratelimit_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxloyalty/loyalty/internal/fakeclock"
	"github.com/wxloyalty/loyalty/internal/ratelimit"
	"github.com/wxloyalty/loyalty/internal/redisx"
	"github.com/wxloyalty/loyalty/internal/redisx/redisxtest"
)

// burst takes n events for key and returns how many were allowed and the
// last refusal's wait.
func burst(t *testing.T, l ratelimit.Limiter, key string, lim ratelimit.Limit, n int) (allowed int, wait time.Duration) {
	t.Helper()
	for range n {
		d, err := l.Allow(context.Background(), key, lim)
		if err != nil {
			t.Fatal(err)
		}
		if d == 0 {
			allowed++
		} else {
			wait = d
		}
	}
	return allowed, wait
}

func TestLocal(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	l := ratelimit.NewLocal(clock.Now)
	lim := ratelimit.Limit{N: 3, Per: time.Minute}
	if got, wait := burst(t, l, "a", lim, 5); got != 3 || wait != 20*time.Second {
		t.Fatalf("burst of 5 at 3/min: %d allowed, wait %v; want 3 and 20s", got, wait)
	}
	// Keys are counted apart.
	if got, _ := burst(t, l, "b", lim, 1); got != 1 {
		t.Fatal("another key was limited")
	}
	// Refusals take nothing: one more event after a third of the period.
	clock.Add(20 * time.Second)
	if got, _ := burst(t, l, "a", lim, 2); got != 1 {
		t.Fatalf("after 20s: %d allowed, want 1", got)
	}
	// Idle keys are dropped and start full again.
	clock.Add(2 * time.Minute)
	if got, _ := burst(t, l, "a", lim, 4); got != 3 {
		t.Fatalf("after idling: %d allowed, want 3", got)
	}
}

func TestRedis(t *testing.T) {
	addr := os.Getenv("LOYALTY_TEST_REDIS_ADDR")
	if addr == "" {
		if os.Getenv("LOYALTY_TEST_REQUIRE_REDIS") == "1" {
			t.Fatal("LOYALTY_TEST_REQUIRE_REDIS=1 but LOYALTY_TEST_REDIS_ADDR is not set")
		}
		t.Skip("needs LOYALTY_TEST_REDIS_ADDR (e.g. 127.0.0.1:6379); .ci/run sets it")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	key := fmt.Sprintf("test:%d", time.Now().UnixNano())
	lim := ratelimit.Limit{N: 3, Per: time.Hour}
	// Two instances share the count.
	a, b := ratelimit.NewRedis(rdb), ratelimit.NewRedis(rdb)
	got1, _ := burst(t, a, key, lim, 2)
	got2, wait := burst(t, b, key, lim, 3)
	if got1+got2 != 3 || wait <= 0 || wait > 20*time.Minute {
		t.Fatalf("allowed %d+%d, wait %v; want 3 in all and a wait of at most 20m", got1, got2, wait)
	}
}

// While Redis is away the limit goes on, in this instance's share: N
// divided by the live instances; once Redis is back the shared count
// rules again.
func TestFallbackWhileRedisIsAway(t *testing.T) {
	proxy := redisxtest.NewProxy(t, redisxtest.Addr(t))
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: -1})
	defer rdb.Close()
	h := redisx.NewHealth(rdb, slog.New(slog.NewTextHandler(io.Discard, nil)), 50*time.Millisecond)
	clock := fakeclock.New(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	l := ratelimit.NewFallback(ratelimit.NewRedis(rdb), ratelimit.NewLocal(clock.Now), h,
		func(context.Context) int { return 3 })
	lim := ratelimit.Limit{N: 6, Per: time.Minute}
	key := fmt.Sprintf("test:fallback:%d", time.Now().UnixNano())

	if got, _ := burst(t, l, key, lim, 4); got != 4 || !h.Up() {
		t.Fatalf("shared: %d of 4 allowed (up %v)", got, h.Up())
	}
	proxy.Cut()
	// No error reaches the caller: 6 per minute shared by 3 instances is 2
	// here.
	if got, wait := burst(t, l, key, lim, 5); got != 2 || wait <= 0 || h.Up() {
		t.Fatalf("while Redis is away: %d allowed (wait %v, up %v), want 2", got, wait, h.Up())
	}
	proxy.Restore()
	for deadline := time.Now().Add(10 * time.Second); !h.Up(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not back on Redis")
		}
	}
	// The shared count kept the 4 taken before the outage.
	if got, _ := burst(t, l, key, lim, 5); got != 2 {
		t.Fatalf("back on Redis: %d allowed, want the 2 left of 6", got)
	}
}
