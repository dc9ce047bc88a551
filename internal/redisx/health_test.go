package redisx_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/wxloyalty/loyalty/internal/redisx"
	"github.com/wxloyalty/loyalty/internal/redisx/redisxtest"
)

func TestHealthFallsBackAndComesBack(t *testing.T) {
	proxy := redisxtest.NewProxy(t, redisxtest.Addr(t))
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: -1})
	defer rdb.Close()
	h := redisx.NewHealth(rdb, slog.New(slog.NewTextHandler(io.Discard, nil)), 50*time.Millisecond)
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.Collectors()...)
	metric := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
		t.Fatalf("no %s", name)
		return 0
	}
	gauge := func() float64 { return metric("loyalty_redis_fallback") }
	ctx := context.Background()
	if !h.Up() || gauge() != 0 {
		t.Fatal("a new Health is not up")
	}

	// The caller's own end and a missing key say nothing of Redis.
	done, cancel := context.WithCancel(ctx)
	cancel()
	h.Failed(done, rdb.Get(done, "k").Err())
	h.Failed(ctx, rdb.Get(ctx, "no-such-key-"+t.Name()).Err())
	if !h.Up() {
		t.Fatal("a cancelled call or a missing key took Redis down")
	}

	proxy.Cut()
	err := rdb.Get(ctx, "k").Err()
	if err == nil {
		t.Fatal("a cut Redis answered")
	}
	h.Failed(ctx, err)
	h.Failed(ctx, err) // a second failure while down switches nothing more
	if h.Up() || gauge() != 1 {
		t.Fatal("a failed call did not switch to the fallback")
	}
	time.Sleep(200 * time.Millisecond) // probes fail meanwhile
	if h.Up() {
		t.Fatal("up again while Redis is still cut")
	}

	proxy.Restore()
	deadline := time.Now().Add(10 * time.Second)
	for !h.Up() {
		if time.Now().After(deadline) {
			t.Fatal("not up again after Redis came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if gauge() != 0 {
		t.Fatal("the gauge still says fallback")
	}
	if n := metric("loyalty_redis_fallbacks_total"); n != 1 {
		t.Fatalf("loyalty_redis_fallbacks_total %v, want 1", n)
	}
}
