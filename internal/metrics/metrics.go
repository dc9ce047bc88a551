// Package metrics exposes Prometheus metrics: HTTP requests, WeChat API
// calls by errcode, and inbox event outcomes. A Metrics value owns its own
// registry (no global default registry), so tests can build isolated ones.
// Every label value comes from a closed set (see other).
package metrics

import (
	"database/sql"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/inbox"
)

// Metrics holds the collectors.
type Metrics struct {
	reg          *prometheus.Registry
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	wxCalls      *prometheus.CounterVec
	wxDuration   *prometheus.HistogramVec
	events       *prometheus.CounterVec

	collectors []prometheus.Collector // everything registered, for Families
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
	m.register(m.httpRequests, m.httpDuration, m.wxCalls, m.wxDuration, m.events,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// WatchDB exports the connection pool's statistics.
func (m *Metrics) WatchDB(db *sql.DB) {
	m.register(collectors.NewDBStatsCollector(db, "main"))
}

// register registers collectors and remembers them for Families.
func (m *Metrics) register(cs ...prometheus.Collector) {
	m.reg.MustRegister(cs...)
	m.collectors = append(m.collectors, cs...)
}

// Families returns the name of every metric family the registry can
// export, with its label names, whether or not it has a sample yet (a
// labelled family shows in /metrics only once it has one): the families
// the collectors registered here describe, and whatever the registry
// gathers (collectors registered on Registry() directly). Alert rules and
// dashboards are checked against it.
func (m *Metrics) Families() map[string][]string {
	out := map[string][]string{}
	if gathered, err := m.reg.Gather(); err == nil {
		for _, f := range gathered {
			var labels []string
			if ms := f.GetMetric(); len(ms) > 0 {
				for _, l := range ms[0].GetLabel() {
					labels = append(labels, l.GetName())
				}
			}
			out[f.GetName()] = labels
		}
	}
	ch := make(chan *prometheus.Desc)
	go func() {
		for _, c := range m.collectors {
			c.Describe(ch)
		}
		close(ch)
	}()
	for d := range ch {
		// Desc keeps its fields private; its String form is stable:
		// Desc{fqName: "...", help: "...", unit: "...", constLabels: {a="x"}, variableLabels: {b,c}}
		s := d.String()
		name := descName.FindStringSubmatch(s)
		if name == nil {
			continue
		}
		var labels []string
		if cl := descConstLabels.FindStringSubmatch(s); cl != nil {
			for _, kv := range descConstLabel.FindAllStringSubmatch(cl[1], -1) {
				labels = append(labels, kv[1])
			}
		}
		if vl := descVarLabels.FindStringSubmatch(s); vl != nil && vl[1] != "" {
			for _, l := range strings.Split(vl[1], ",") {
				labels = append(labels, strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"))
			}
		}
		out[name[1]] = labels
	}
	return out
}

var (
	descName        = regexp.MustCompile(`^Desc\{fqName: "([a-zA-Z_:][a-zA-Z0-9_:]*)"`)
	descConstLabels = regexp.MustCompile(`constLabels: \{([^}]*)\}, variableLabels`)
	descConstLabel  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	descVarLabels   = regexp.MustCompile(`variableLabels: \{([^}]*)\}\}$`)
)

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry returns the registry, for tests and further collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Every label value comes from a closed set: each distinct value is a
// series kept in memory for the life of the process, so a value taken from
// a request (a method, a path, an event kind from WeChat's XML) would let
// anyone grow the process and /metrics without bound. Values outside the
// set are counted as other.
const other = "other"

// unmatched is the route label of requests no route matched.
const unmatched = "unmatched"

// methodLabel is the request method if it is a standard one.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return other
}

// statusLabel is the response status if it is a valid HTTP status code.
func statusLabel(status int) string {
	if status < 100 || status > 599 {
		return other
	}
	return strconv.Itoa(status)
}

// Middleware counts and times requests by route template (never by raw
// path) and standard method.
func (m *Metrics) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath() // a registered route's pattern: a closed set
		if route == "" {
			route = unmatched
		}
		method := methodLabel(c.Request.Method)
		m.httpRequests.WithLabelValues(route, method, statusLabel(c.Writer.Status())).Inc()
		m.httpDuration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	}
}

// ObserveCall implements wechat.Observer.
func (m *Metrics) ObserveCall(api string, err error, took time.Duration) {
	code := "0"
	if err != nil {
		code = "transport"
		if c := wechat.ErrCode(err); c != 0 {
			code = other
			if wechat.KnownCode(c) {
				code = strconv.Itoa(c)
			}
		} else if !errors.Is(err, wechat.ErrTransient) {
			code = "error"
		}
	}
	if !wechat.KnownAPI(api) {
		api = other
	}
	m.wxCalls.WithLabelValues(api, code).Inc()
	m.wxDuration.WithLabelValues(api).Observe(took.Seconds())
}

// eventKinds are the inbox's kinds of stored events: user messages and the
// events the service acts on.
var eventKinds = map[string]bool{
	inbox.KindMessage: true, wechat.EventSubscribe: true, wechat.EventUnsubscribe: true,
	wechat.EventScan: true, wechat.EventClick: true, wechat.EventTemplateFinish: true,
}

// eventOutcomes are the dispatcher's outcomes.
var eventOutcomes = map[string]bool{"applied": true, "duplicate": true, "failed": true, "gave_up": true}

// ObserveEvent implements inbox.Observer.
func (m *Metrics) ObserveEvent(kind, outcome string) {
	if !eventKinds[kind] {
		kind = other
	}
	if !eventOutcomes[outcome] {
		outcome = other
	}
	m.events.WithLabelValues(kind, outcome).Inc()
}
