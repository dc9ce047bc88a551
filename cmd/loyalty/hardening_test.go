package main

import (
	"regexp"
	"strings"
	"testing"

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
