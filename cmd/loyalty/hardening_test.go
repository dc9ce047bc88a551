package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/dbtest"
)

// eachApp runs fn against a service on SQLite and one on MySQL (skipped
// without LOYALTY_TEST_MYSQL_DSN).
func eachApp(t *testing.T, fn func(t *testing.T, a *testApp)) {
	t.Helper()
	for _, backend := range []string{dbtest.SQLite, dbtest.MySQL} {
		t.Run(backend, func(t *testing.T) { fn(t, startAppOn(t, onBackend(t, backend))) })
	}
}

// tooBig is 2^63: a valid uint64 and a valid BIGINT UNSIGNED, but not an id
// SQLite can hold.
const tooBig = "9223372036854775808"

// Every id in a path, on every route, is 404 when it is beyond the ids the
// databases can hold (2^63 and up), never a failing query (500 and an
// ERROR log on SQLite) and never a misleading answer (an unauthenticated
// mini-program login said 503 "WeChat is unavailable").
func TestOutOfRangePathIDsAreNotFound(t *testing.T) {
	eachApp(t, func(t *testing.T, a *testApp) {
		token := a.login()
		param := regexp.MustCompile(`\{[a-z_]+_id\}`)
		swept := 0
		for _, route := range routesOf(t, a) {
			method, path, _ := strings.Cut(route, " ")
			if !param.MatchString(path) || strings.HasPrefix(path, sandboxAPIPath) ||
				strings.Contains(path, "{external_id}") /* a merchant's own order reference, not a row id */ {
				continue
			}
			swept++
			for _, id := range []string{tooBig, "18446744073709551615", "18446744073709551616"} {
				p := param.ReplaceAllString(path, id)
				st, body := a.raw(method, p, token, map[string]any{})
				if st != 404 {
					t.Errorf("%s %s: %d %s, want 404", method, p, st, body)
				}
			}
		}
		if swept < 20 {
			t.Fatalf("only %d routes with ids swept: the route list is not what this test expects", swept)
		}
		// The largest id there is, is simply not found.
		if st, body := a.raw("GET", "/api/admin/v1/members/9223372036854775807", token, nil); st != 404 || !strings.Contains(body, "member not found") {
			t.Errorf("largest id: %d %s", st, body)
		}
		// The mini-program login of the issue, without any token.
		if st, body := a.raw("POST", "/api/mp/v1/"+tooBig+"/login", "", map[string]string{"code": "x"}); st != 404 {
			t.Errorf("mp login: %d %s", st, body)
		}
	})
}

// Ids in query strings beyond the range are a 400 naming the parameter,
// never a failing query.
func TestOutOfRangeIDsInQueries(t *testing.T) {
	eachApp(t, func(t *testing.T, a *testApp) {
		token := a.login()
		for _, tc := range []struct {
			method, path, body, field string
		}{
			{"GET", "/api/admin/v1/members?tag=" + tooBig, "", "tag"},
			{"GET", "/api/admin/v1/members?tier=" + tooBig, "", "tier"},
			{"GET", "/api/admin/v1/audit?actor_id=" + tooBig, "", "actor_id"},
			{"GET", "/api/admin/v1/audit?target_type=member&target_id=" + tooBig, "", "target_id"},
			{"GET", "/api/admin/v1/redemptions?member_id=" + tooBig, "", "member_id"},
		} {
			var e errorBody
			var body any
			if tc.body != "" {
				body = tc.body
			}
			if st := a.call(tc.method, tc.path, token, body, &e); st != 400 || e.Error.Fields[tc.field] == "" {
				t.Errorf("%s %s %s: %d %+v, want 400 naming %s", tc.method, tc.path, tc.body, st, e, tc.field)
			}
		}
	})
}

// goTypeNames are fragments of encoding/json's and strconv's own error
// texts, which must never reach a client.
var goTypeNames = regexp.MustCompile(`Go struct|Go value|json:|unmarshal|UnmarshalJSON|strconv|int64|uint64|float64|time\.Time|\w+\.\w+ of type`)

// Every JSON body is read strictly: a key given twice is refused (it was
// read as its last value, so {"points":1,"points":1000} added 1000 points),
// an id beyond the range is refused, and the messages name the field in the
// API's own words, never with Go type names.
func TestJSONBodiesAreStrict(t *testing.T) {
	eachApp(t, func(t *testing.T, a *testApp) {
		token := a.login()
		var followed struct {
			MemberID uint64 `json:"member_id"`
		}
		if st := a.call("POST", "/api/admin/v1/sandbox/follow", token, map[string]string{}, &followed); st != 200 {
			t.Fatalf("follow: %d", st)
		}
		var tag struct{ ID uint64 }
		if st := a.call("POST", "/api/admin/v1/tags", token, map[string]string{"name": "vip"}, &tag); st != 201 {
			t.Fatalf("create tag: %d", st)
		}
		adjust := fmt.Sprintf("/api/admin/v1/members/%d/points/adjustments", followed.MemberID)
		for _, tc := range []struct {
			method, path, body, field, reason string
		}{
			{"POST", adjust, `{"points":1,"points":1000,"reason":"x","request_id":"r1"}`, "points", "more than once"},
			{"POST", adjust, `{"points":1,"Points":1000,"reason":"x","request_id":"r2"}`, "Points", "more than once"},
			{"POST", adjust, `{"points":"1000","reason":"x","request_id":"r3"}`, "points", "must be an integer"},
			{"POST", adjust, `{"points":1.5,"reason":"x","request_id":"r4"}`, "points", "whole number"},
			{"POST", adjust, `{"points":99999999999999999999,"reason":"x","request_id":"r5"}`, "points", "at most"},
			{"POST", "/api/admin/v1/segments/preview", `{"rule":{"field":1}}`, "rule.field", "must be a string"},
			{"POST", "/api/admin/v1/segments/preview", `{"rule":{"field":"tags","field":"tags","op":"in","value":[1]}}`, "rule.field", "more than once"},
			{"POST", "/api/admin/v1/rewards", `{"name":"x","kind":"gift","points_cost":1,"valid_from":12}`, "valid_from", "RFC 3339"},
			{"POST", "/api/admin/v1/rewards", `{"name":"x","kind":"gift","points_cost":1,"valid_from":"soon"}`, "valid_from", "RFC 3339"},
			{"POST", "/api/admin/v1/orders", `{"external_id":"o-1","amount_fen":100,"ordered_at":true,"member_id":1}`, "ordered_at", "RFC 3339"},
			{"POST", fmt.Sprintf("/api/admin/v1/tags/%d/assign", tag.ID), `{"member_ids":[` + tooBig + `]}`, "member_ids", "at most 9223372036854775807"},
			{"POST", "/api/admin/v1/orders", `{"external_id":"o-1","member_id":` + tooBig + `,"amount_fen":100}`, "member_id", "at most 9223372036854775807"},
			{"POST", "/api/admin/v1/orders", `{"external_id":"o-1","member_id":-1,"amount_fen":100}`, "member_id", "must not be negative"},
		} {
			st, body := a.raw(tc.method, tc.path, token, json.RawMessage(tc.body))
			var e errorBody
			_ = json.Unmarshal([]byte(body), &e)
			if st != 400 || !strings.Contains(e.Error.Fields[tc.field], tc.reason) {
				t.Errorf("%s %s %s: %d %s, want 400 with %s %q", tc.method, tc.path, tc.body, st, body, tc.field, tc.reason)
			}
			if goTypeNames.MatchString(body) {
				t.Errorf("%s %s: the answer shows Go's own words: %s", tc.method, tc.path, body)
			}
		}
		// Nothing was adjusted by the refused bodies; the same body without
		// the duplicate goes through.
		if st, body := a.raw("POST", adjust, token, json.RawMessage(`{"points":7,"reason":"x","request_id":"ok"}`)); st != 201 {
			t.Fatalf("a valid adjustment: %d %s", st, body)
		}
		var pts struct {
			Summary struct{ Available int64 }
			Entries []json.RawMessage
		}
		if st := a.call("GET", fmt.Sprintf("/api/admin/v1/members/%d/points", followed.MemberID), token, nil, &pts); st != 200 ||
			pts.Summary.Available != 7 || len(pts.Entries) != 1 {
			t.Fatalf("points after refused adjustments and one valid one: %d %+v", st, pts)
		}
	})
}

// requestSeries counts the series of the request metrics.
func requestSeries(t *testing.T, a *testApp) (requests, durations int, methods map[string]bool) {
	t.Helper()
	families, err := a.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	methods = map[string]bool{}
	for _, f := range families {
		switch f.GetName() {
		case "loyalty_http_requests_total":
			requests = len(f.GetMetric())
		case "loyalty_http_request_duration_seconds":
			durations = len(f.GetMetric())
		default:
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "method" {
					methods[l.GetValue()] = true
				}
			}
		}
	}
	return requests, durations, methods
}

// Requests with made-up methods and paths add no series: 100,000 of them
// grew the process from 58 MB to 320 MB and /metrics to 149 MB, never
// freed, when the raw method was a label.
func TestRequestMetricsStayBounded(t *testing.T) {
	a := startAppOn(t, onBackend(t, dbtest.SQLite))
	send := func(method, path string) {
		req, err := http.NewRequest(method, a.base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send("GET", "/healthz")
	before, _, _ := requestSeries(t, a)
	for i := range 300 {
		send(fmt.Sprintf("X%dQ", i), "/healthz")                       // a route, any method
		send(fmt.Sprintf("PURGE%d", i), fmt.Sprintf("/no/such/%d", i)) // no route, any method
		send("GET", fmt.Sprintf("/random-%d/%x", i, i*7919))           // no route
	}
	requests, durations, methods := requestSeries(t, a)
	// At most: healthz GET 200, healthz other 405, unmatched other 404,
	// unmatched GET 404 (and what startup itself added before).
	if requests > before+3 || durations > before+3 {
		t.Fatalf("%d request and %d duration series after 900 odd requests (%d before)", requests, durations, before)
	}
	for m := range methods {
		if m != "GET" && m != "other" {
			t.Errorf("method label %q", m)
		}
	}
	resp, err := http.Get(a.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(raw), "PURGE") || strings.Contains(string(raw), "random-") {
		t.Fatal("/metrics shows a method or path taken from a request")
	}
}

// get returns the status and body of a GET.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url) // the metrics listener: not the API
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// With http.metrics_addr set, /metrics and the profiles are served on that
// listener only; the public one answers 404 for both.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	a := startAppOn(t, onBackend(t, dbtest.SQLite), func(c *configs.Config) { c.HTTP.MetricsAddr = "127.0.0.1:0" })
	ops := "http://" + a.opsLn.Addr().String()
	if st, _ := get(t, a.base+"/healthz"); st != 200 {
		t.Fatalf("healthz %d", st)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/cmdline"} {
		if st, body := get(t, a.base+path); st != 404 || !strings.Contains(body, `"not_found"`) {
			t.Errorf("public listener %s: %d %s", path, st, body)
		}
	}
	st, body := get(t, ops+"/metrics")
	if st != 200 || !strings.Contains(body, `loyalty_http_requests_total{method="GET",route="/healthz",status="200"} 1`) ||
		!strings.Contains(body, `loyalty_http_requests_total{method="GET",route="unmatched",status="404"}`) {
		t.Fatalf("metrics listener /metrics: %d %.300s", st, body)
	}
	if st, body := get(t, ops+"/debug/pprof/"); st != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("metrics listener pprof: %d %.200s", st, body)
	}
	if st, _ := get(t, ops+"/api/admin/v1/me"); st != 404 {
		t.Fatalf("the metrics listener serves the API: %d", st)
	}
}

// Every response carries the security headers: tokens, personal data and
// exports are never stored by a cache, no body is sniffed into another
// type, no URL leaks as a referrer; HSTS only when TLS is in front.
func TestSecurityHeaders(t *testing.T) {
	check := func(t *testing.T, a *testApp, hsts bool) {
		token := a.login()
		for _, tc := range []struct{ method, path, token, body string }{
			{"GET", "/healthz", "", ""},
			{"GET", "/no/such/route", "", ""},
			{"DELETE", "/healthz", "", ""},
			{"POST", "/api/admin/v1/login", "", `{"username":"demo","password":"` + a.password + `"}`},
			{"POST", "/api/admin/v1/login", "", `{"username":"demo","username":"x"}`},
			{"GET", "/api/admin/v1/members", token, ""},
			{"GET", "/api/admin/v1/members/export.csv", token, ""},
			{"GET", "/wechat/1/callback?signature=x", "", ""},
		} {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, a.base+tc.path, body)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := contractClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			h := resp.Header
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" ||
				h.Get("Cache-Control") != "no-store" || (h.Get("Strict-Transport-Security") != "") != hsts {
				t.Errorf("%s %s (%d): headers %v", tc.method, tc.path, resp.StatusCode, h)
			}
		}
	}
	t.Run("http", func(t *testing.T) { check(t, startAppOn(t, onBackend(t, dbtest.SQLite)), false) })
	t.Run("behind TLS", func(t *testing.T) {
		check(t, startAppOn(t, onBackend(t, dbtest.SQLite), func(c *configs.Config) { c.HTTP.PublicURL = "https://crm.example.com" }), true)
	})
}

// /readyz says ready only while the database holds the schema: a ping
// succeeded after the database was dropped (MySQL) or its file deleted
// (SQLite).
func TestReadyzChecksTheSchema(t *testing.T) {
	eachApp(t, func(t *testing.T, a *testApp) {
		if st, body := get(t, a.base+"/readyz"); st != 200 {
			t.Fatalf("readyz: %d %s", st, body)
		}
		if a.cfg.DB.Driver == dbtest.MySQL {
			var name string
			if err := a.db.Raw("SELECT DATABASE()").Row().Scan(&name); err != nil || name == "" {
				t.Fatalf("database name %q: %v", name, err)
			}
			if err := a.db.Exec("DROP DATABASE `" + name + "`").Error; err != nil {
				t.Fatal(err)
			}
		} else if err := os.Remove(a.cfg.DB.DSN); err != nil {
			t.Fatal(err)
		}
		if st, body := get(t, a.base+"/readyz"); st != 503 {
			t.Fatalf("readyz without the database: %d %s", st, body)
		}
		if st, _ := get(t, a.base+"/healthz"); st != 200 {
			t.Fatalf("healthz: %d (the process is alive)", st)
		}
	})
}
