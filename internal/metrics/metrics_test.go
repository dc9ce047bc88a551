package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxloyalty/loyalty/wechat"
)

// series returns the label sets of the metric family name.
func series(t *testing.T, m *Metrics, name string) []map[string]string {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out = append(out, labels)
		}
	}
	return out
}

func TestRequestLabelsAreClosed(t *testing.T) {
	gin.SetMode(gin.TestMode)
	m := New()
	r := gin.New()
	r.Use(m.Middleware())
	r.GET("/things/:id", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	for i := range 200 {
		for _, req := range []*http.Request{
			httptest.NewRequest(fmt.Sprintf("M%dX", i), "/things/1", nil),
			httptest.NewRequest("GET", fmt.Sprintf("/random/%d", i), nil),
			httptest.NewRequest("GET", fmt.Sprintf("/things/%d", i), nil),
		} {
			r.ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	got := series(t, m, "loyalty_http_requests_total")
	want := map[string]bool{"/things/:id GET 204": true, "unmatched GET 404": true, "/things/:id other 404": true, "unmatched other 404": true}
	for _, s := range got {
		key := s["route"] + " " + s["method"] + " " + s["status"]
		if !want[key] {
			t.Errorf("unexpected series %s", key)
		}
	}
	if len(got) > len(want) {
		t.Fatalf("%d request series after 600 requests, want at most %d", len(got), len(want))
	}
}

func TestWeChatLabelsAreClosed(t *testing.T) {
	m := New()
	for i := range 100 {
		m.ObserveCall(fmt.Sprintf("api.%d", i), nil, time.Millisecond)
		m.ObserveCall("user.info", &wechat.APIError{API: "user.info", Code: 70000 + i, Kind: wechat.ErrRejected}, time.Millisecond)
		m.ObserveEvent(fmt.Sprintf("EVENT_%d", i), "applied")
		m.ObserveEvent(wechat.EventSubscribe, fmt.Sprintf("outcome-%d", i))
	}
	m.ObserveCall("template.send", &wechat.APIError{Code: 45009, Kind: wechat.ErrQuotaExhausted}, time.Millisecond)
	m.ObserveCall("template.send", errors.New("boom"), time.Millisecond)
	m.ObserveEvent(wechat.EventSubscribe, "applied")

	calls := map[string]bool{}
	for _, s := range series(t, m, "loyalty_wechat_calls_total") {
		calls[s["api"]+" "+s["errcode"]] = true
	}
	for _, want := range []string{"other 0", "user.info other", "template.send 45009", "template.send error"} {
		if !calls[want] {
			t.Errorf("no series %q in %v", want, calls)
		}
	}
	if len(calls) != 4 {
		t.Errorf("call series %v, want exactly 4", calls)
	}
	events := map[string]bool{}
	for _, s := range series(t, m, "loyalty_wechat_events_total") {
		events[s["kind"]+" "+s["outcome"]] = true
	}
	if len(events) != 3 || !events["other applied"] || !events["subscribe other"] || !events["subscribe applied"] {
		t.Errorf("event series %v", events)
	}
}

func TestFamiliesListsMetricsWithoutSamples(t *testing.T) {
	m := New()
	fams := m.Families()
	// Labelled families with no sample yet are listed, with their labels.
	if got := fams["loyalty_wechat_calls_total"]; len(got) != 2 || got[0] != "api" || got[1] != "errcode" {
		t.Errorf("loyalty_wechat_calls_total labels %v", got)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("the Go collector's families are missing")
	}
	if _, ok := fams["go_sql_in_use_connections"]; ok {
		t.Error("database pool families listed before WatchDB")
	}
	for name := range fams {
		if name == "" {
			t.Error("an empty family name")
		}
	}
}

func TestFamiliesIncludesCollectorsRegisteredDirectly(t *testing.T) {
	m := New()
	m.Registry().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "direct_gauge", Help: "h"},
		func() float64 { return 1 }))
	if _, ok := m.Families()["direct_gauge"]; !ok {
		t.Fatal("a collector registered on Registry() is not listed")
	}
}
