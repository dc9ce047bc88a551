// Package redisx keeps the service working while its optional Redis is
// away. The shared pieces that use Redis (the WeChat token and nonce
// caches, the login limits, the send rate) each have an in-process twin;
// Health says which to use. The first failed Redis call switches every
// user to its twin at once and starts probing; the first probe that Redis
// answers switches them back. Each switch is logged and counted.
package redisx

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Health tracks whether Redis answers.
type Health struct {
	rdb   redis.UniversalClient
	log   *slog.Logger
	probe time.Duration

	down      atomic.Bool
	fallbacks atomic.Int64
}

// NewHealth returns the health of rdb, probed every probe (default 2 s)
// while it is down. It starts up: a Redis that does not answer at start
// is reported by the first call that fails.
func NewHealth(rdb redis.UniversalClient, log *slog.Logger, probe time.Duration) *Health {
	if probe <= 0 {
		probe = 2 * time.Second
	}
	return &Health{rdb: rdb, log: log, probe: probe}
}

// ProbeInterval is how often a down Redis is probed: every instance sees
// Redis back within it.
func (h *Health) ProbeInterval() time.Duration { return h.probe }

// Up tells whether Redis is to be used.
func (h *Health) Up() bool { return !h.down.Load() }

// Failed reports the error of a Redis call made for ctx. An error of the
// caller's own (its context ended) says nothing of Redis; any other
// switches the users to their fallbacks until a probe succeeds.
func (h *Health) Failed(ctx context.Context, err error) {
	if err == nil || ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, redis.Nil) {
		return
	}
	if !h.down.CompareAndSwap(false, true) {
		return
	}
	h.fallbacks.Add(1)
	h.log.Warn("redis: not answering; shared limits and caches fall back to this instance's own "+
		"(the send rate and login limits divided by the live instances) until it is back", "error", err)
	go h.watch()
}

// watch probes Redis until it answers.
func (h *Health) watch() {
	t := time.NewTicker(h.probe)
	defer t.Stop()
	for range t.C {
		ctx, cancel := context.WithTimeout(context.Background(), h.probe)
		err := h.rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			h.down.Store(false)
			h.log.Info("redis: answering again; shared limits and caches are used again")
			return
		}
	}
}

// Collectors are the metrics of the fallback: loyalty_redis_fallback is 1
// while the instance works without Redis, loyalty_redis_fallbacks_total
// counts the switches.
func (h *Health) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "loyalty_redis_fallback",
			Help: "1 while this instance works without Redis (local limits and caches), else 0."},
			func() float64 {
				if h.down.Load() {
					return 1
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "loyalty_redis_fallbacks_total",
			Help: "Times this instance lost Redis and fell back to local limits and caches."},
			func() float64 { return float64(h.fallbacks.Load()) }),
	}
}
