// Package metrics exposes Prometheus metrics: HTTP requests, WeChat API
// calls by errcode, and inbox event outcomes. A Metrics value owns its own
// registry (no global default registry), so tests can build isolated ones.
package metrics

import (
	"database/sql"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wxloyalty/loyalty/wechat"
)

// Metrics holds the collectors.
type Metrics struct {
	reg          *prometheus.Registry
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	wxCalls      *prometheus.CounterVec
	wxDuration   *prometheus.HistogramVec
	events       *prometheus.CounterVec
}

// New registers the collectors, plus Go runtime and process metrics.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loyalty_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "loyalty_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		wxCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loyalty_wechat_calls_total",
			Help: `WeChat API calls by API and outcome: errcode "0" for success, the WeChat errcode, or "transport" for network and HTTP failures.`,
		}, []string{"api", "errcode"}),
		wxDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "loyalty_wechat_call_duration_seconds", Help: "WeChat API call latency by API.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"api"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loyalty_wechat_events_total",
			Help: "Official-account events processed, by kind and outcome (applied, duplicate, failed, gave_up).",
		}, []string{"kind", "outcome"}),
	}
	m.reg.MustRegister(m.httpRequests, m.httpDuration, m.wxCalls, m.wxDuration, m.events,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// WatchDB exports the connection pool's statistics.
func (m *Metrics) WatchDB(db *sql.DB) {
	m.reg.MustRegister(collectors.NewDBStatsCollector(db, "main"))
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry returns the registry, for tests and further collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Middleware counts and times requests by route template (never by raw
// path, which would explode the label set).
func (m *Metrics) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		method := c.Request.Method
		m.httpRequests.WithLabelValues(route, method, strconv.Itoa(c.Writer.Status())).Inc()
		m.httpDuration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	}
}

// ObserveCall implements wechat.Observer.
func (m *Metrics) ObserveCall(api string, err error, took time.Duration) {
	code := "0"
	if err != nil {
		code = "transport"
		if c := wechat.ErrCode(err); c != 0 {
			code = strconv.Itoa(c)
		} else if !errors.Is(err, wechat.ErrTransient) {
			code = "error"
		}
	}
	m.wxCalls.WithLabelValues(api, code).Inc()
	m.wxDuration.WithLabelValues(api).Observe(took.Seconds())
}

// ObserveEvent implements inbox.Observer.
func (m *Metrics) ObserveEvent(kind, outcome string) {
	m.events.WithLabelValues(kind, outcome).Inc()
}
