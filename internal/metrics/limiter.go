package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxloyalty/loyalty/campaign"
)

// sendLimits are the configured pace of sends, exported so dashboards and
// alerts can set the observed rate against them.
type sendLimits struct {
	permits *prometheus.CounterVec
	wait    *prometheus.HistogramVec
}

// laneLabel names a send lane; a closed set.
func laneLabel(l campaign.Lane) string {
	if l == campaign.LaneService {
		return "service"
	}
	return "marketing"
}

// InstrumentLimiter exports the send limits (per WeChat account: the rate
// per second and the daily quota) and wraps lim so that every permit it
// grants, and how long the sender waited for it, is counted by lane. The
// permits are the sends the limiter let through: their rate against the
// configured one, and the wait, tell whether the limit is what holds a
// campaign back.
func (m *Metrics) InstrumentLimiter(lim campaign.Limiter, perSecond float64, dailyQuota int64) campaign.Limiter {
	rate := prometheus.NewGauge(prometheus.GaugeOpts{Name: "loyalty_send_rate_limit_per_second",
		Help: "Configured most messages per second per WeChat account (LOYALTY_SEND_RATE), across instances with Redis."})
	quota := prometheus.NewGauge(prometheus.GaugeOpts{Name: "loyalty_send_daily_quota",
		Help: "Configured daily message quota per WeChat account (LOYALTY_SEND_DAILY_QUOTA)."})
	rate.Set(perSecond)
	quota.Set(float64(dailyQuota))
	s := &sendLimits{
		permits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loyalty_send_permits_total",
			Help: "Sends the rate limiter let through, by lane (marketing, service)."}, []string{"lane"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "loyalty_send_limiter_wait_seconds",
			Help:    "How long a send waited for the rate limiter, by lane.",
			Buckets: []float64{.001, .005, .025, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"lane"}),
	}
	m.register(rate, quota, s.permits, s.wait)
	return &countingLimiter{next: lim, m: s}
}

// countingLimiter counts what its limiter grants.
type countingLimiter struct {
	next campaign.Limiter
	m    *sendLimits
}

// Wait implements campaign.Limiter.
func (l *countingLimiter) Wait(ctx context.Context, account string, lane campaign.Lane) error {
	start := time.Now()
	err := l.next.Wait(ctx, account, lane)
	if err == nil {
		name := laneLabel(lane)
		l.m.permits.WithLabelValues(name).Inc()
		l.m.wait.WithLabelValues(name).Observe(time.Since(start).Seconds())
	}
	return err
}
