package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/admin"
)

// What the admin panel needs from the API, through the real router (and
// the contract check of every answer): looking a member up by an
// identity, listing orders, paging and exporting a segment's members,
// and patching the points rules.

// A member is found by official-account openid, mini-program openid,
// unionid or phone; anything else is 404, and bad questions are 400
// naming the parameter.
func TestMemberLookup(t *testing.T) { eachBackendName(t, testMemberLookup) }

func testMemberLookup(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	token := a.login()
	var followed struct {
		OpenID   string `json:"openid"`
		MemberID uint64 `json:"member_id"`
	}
	if st := a.call("POST", "/api/admin/v1/sandbox/follow", token, map[string]string{"unionid": "u_lookup"}, &followed); st != 200 {
		t.Fatalf("follow: %d", st)
	}
	a.call("POST", "/api/admin/v1/sandbox/follow", token, map[string]string{}, nil) // someone else
	if st := a.call("PATCH", fmt.Sprintf("/api/admin/v1/members/%d", followed.MemberID), token,
		map[string]any{"phone": "13900002222"}, nil); st != 200 {
		t.Fatalf("set phone: %d", st)
	}
	var code struct{ Code, OpenID string }
	a.call("POST", "/api/admin/v1/sandbox/mp-login-code", token, map[string]string{"unionid": "u_lookup"}, &code)
	if st := a.call("POST", fmt.Sprintf("/api/mp/v1/%d/login", a.merchant), "", map[string]string{"code": code.Code}, nil); st != 200 {
		t.Fatalf("mini-program login: %d", st)
	}

	type found struct {
		ID    uint64
		Phone *string
	}
	for _, q := range []string{"openid=" + followed.OpenID, "openid=" + code.OpenID, "unionid=u_lookup",
		"phone=13900002222", "phone=%2B8613900002222"} {
		var m found
		if st := a.call("GET", "/api/admin/v1/members/lookup?"+q, token, nil, &m); st != 200 || m.ID != followed.MemberID {
			t.Errorf("lookup %s: %d %+v, want member %d", q, st, m, followed.MemberID)
		}
	}
	for _, q := range []string{"openid=o_nobody", "unionid=u_nobody", "phone=13900009999"} {
		var e errorBody
		if st := a.call("GET", "/api/admin/v1/members/lookup?"+q, token, nil, &e); st != 404 || e.Error.Code != "not_found" {
			t.Errorf("lookup %s: %d %+v, want 404", q, st, e)
		}
	}
	for q, field := range map[string]string{
		"":                                  "openid",
		"openid=a&unionid=b":                "openid",
		"openid=a&openid=b":                 "openid",
		"phone=12":                          "phone",
		"openid=" + strings.Repeat("x", 65): "openid",
		"member_code=42":                    "member_code",
		"unionid=":                          "unionid",
	} {
		var e errorBody
		if st := a.call("GET", "/api/admin/v1/members/lookup?"+q, token, nil, &e); st != 400 || e.Error.Fields[field] == "" {
			t.Errorf("lookup %q: %d %+v, want 400 naming %s", q, st, e, field)
		}
	}
	// A viewer sees the phone masked, and may look up by a whole number.
	viewer := a.staffLogin(a.merchant, "lookupviewer", admin.RoleViewer)
	var m found
	if st := a.call("GET", "/api/admin/v1/members/lookup?phone=13900002222", viewer, nil, &m); st != 200 ||
		m.ID != followed.MemberID || m.Phone == nil || *m.Phone != "139****2222" {
		t.Fatalf("viewer lookup: %d %+v", st, m)
	}
}

type orderPage struct {
	Orders []struct {
		ExternalID string    `json:"external_id"`
		MemberID   uint64    `json:"member_id"`
		OrderedAt  time.Time `json:"ordered_at"`
	}
	NextCursor *string `json:"next_cursor"`
}

// GET /orders lists orders newest order time first, by member and by
// merchant-local dates, in keyset pages that neither skip nor repeat.
func TestOrdersList(t *testing.T) { eachBackendName(t, testOrdersList) }

func testOrdersList(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	token := a.login()
	member := func() uint64 {
		var f struct {
			MemberID uint64 `json:"member_id"`
		}
		a.call("POST", "/api/admin/v1/sandbox/follow", token, map[string]string{}, &f)
		return f.MemberID
	}
	m1, m2 := member(), member()
	// The demo merchant keeps Asia/Shanghai time (UTC+8): 20:00 UTC on
	// day N is 04:00 local on day N+1.
	base := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -10)
	type ord struct {
		id     string
		member uint64
		at     time.Time
	}
	orders := []ord{
		{"o-1", m1, base.Add(2 * time.Hour)},                   // local day 0
		{"o-2", m2, base.Add(20 * time.Hour)},                  // local day 1
		{"o-3", m1, base.AddDate(0, 0, 1).Add(3 * time.Hour)},  // local day 1
		{"o-4", m1, base.AddDate(0, 0, 2).Add(3 * time.Hour)},  // local day 2
		{"o-5", m2, base.AddDate(0, 0, 2).Add(3 * time.Hour)},  // local day 2, same time as o-4
		{"o-6", m1, base.AddDate(0, 0, 5).Add(10 * time.Hour)}, // local day 5
	}
	for _, o := range orders {
		if st := a.call("POST", "/api/admin/v1/orders", token, map[string]any{"external_id": o.id, "member_id": o.member,
			"amount_fen": 1000, "ordered_at": o.at}, nil); st != 201 {
			t.Fatalf("order %s: %d", o.id, st)
		}
	}
	list := func(query string) []string {
		t.Helper()
		var ids []string
		cursor := ""
		for range 10 {
			q := query
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			var p orderPage
			if st := a.call("GET", "/api/admin/v1/orders?"+q, token, nil, &p); st != 200 {
				t.Fatalf("GET /orders?%s: %d", q, st)
			}
			for _, o := range p.Orders {
				ids = append(ids, o.ExternalID)
			}
			if p.NextCursor == nil {
				return ids
			}
			cursor = *p.NextCursor
		}
		t.Fatalf("GET /orders?%s: more than 10 pages", query)
		return nil
	}
	day := func(n int) string { return base.AddDate(0, 0, n).Format(time.DateOnly) }
	for _, tc := range []struct {
		query string
		want  string
	}{
		{"limit=2", "o-6 o-5 o-4 o-3 o-2 o-1"},
		{"limit=1", "o-6 o-5 o-4 o-3 o-2 o-1"},
		{"limit=100", "o-6 o-5 o-4 o-3 o-2 o-1"},
		{fmt.Sprintf("member_id=%d&limit=2", m1), "o-6 o-4 o-3 o-1"},
		{fmt.Sprintf("member_id=%d", m2), "o-5 o-2"},
		{"from=" + day(1) + "&to=" + day(1), "o-3 o-2"},
		{"from=" + day(1) + "&to=" + day(2) + "&limit=1", "o-5 o-4 o-3 o-2"},
		{"from=" + day(2), "o-6 o-5 o-4"},
		{"to=" + day(0), "o-1"},
		{fmt.Sprintf("member_id=%d&from=%s&to=%s", m1, day(2), day(5)), "o-6 o-4"},
		{"from=" + day(3) + "&to=" + day(4), ""},
	} {
		if got := strings.Join(list(tc.query), " "); got != tc.want {
			t.Errorf("GET /orders?%s: %q, want %q", tc.query, got, tc.want)
		}
	}
	for q, field := range map[string]string{
		"member_id=abc":                 "member_id",
		"member_id=0":                   "member_id",
		"from=2026-13-01":               "from",
		"to=yesterday":                  "to",
		"from=2026-03-02&to=2026-03-01": "to",
		"limit=0":                       "limit",
		"limit=101":                     "limit",
		"cursor=notacursor":             "cursor",
		"cursor=cDQy":                   "cursor", // a points cursor ("p42") of another list
		"status=paid":                   "status",
		"limit=1&limit=2":               "limit",
	} {
		var e errorBody
		if st := a.call("GET", "/api/admin/v1/orders?"+q, token, nil, &e); st != 400 || e.Error.Fields[field] == "" {
			t.Errorf("GET /orders?%s: %d %+v, want 400 naming %s", q, st, e, field)
		}
	}
	// points:read: a viewer may list; an API key without it may not.
	viewer := a.staffLogin(a.merchant, "ordersviewer", admin.RoleViewer)
	if st := a.call("GET", "/api/admin/v1/orders", viewer, nil, nil); st != 200 {
		t.Fatalf("viewer: %d", st)
	}
	var key struct{ Key string }
	if st := a.call("POST", "/api/admin/v1/api-keys", token, map[string]any{"name": "pos", "scopes": []string{"orders:write"}}, &key); st != 201 {
		t.Fatalf("api key: %d", st)
	}
	if st := a.call("GET", "/api/admin/v1/orders", key.Key, nil, nil); st != http.StatusForbidden {
		t.Fatalf("orders:write key lists orders: %d", st)
	}
}

// A segment's members are paged like the members list and exported like
// the members export, with the rule evaluated now.
func TestSegmentMembers(t *testing.T) { eachBackendName(t, testSegmentMembers) }

func testSegmentMembers(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	token := a.login()
	var followers []uint64
	for range 3 {
		var f struct {
			MemberID uint64 `json:"member_id"`
			OpenID   string `json:"openid"`
		}
		a.call("POST", "/api/admin/v1/sandbox/follow", token, map[string]string{}, &f)
		followers = append(followers, f.MemberID)
		if len(followers) == 2 { // the second one leaves
			a.call("POST", "/api/admin/v1/sandbox/unfollow", token, map[string]string{"openid": f.OpenID}, nil)
		}
	}
	var seg struct{ ID uint64 }
	if st := a.call("POST", "/api/admin/v1/segments", token, map[string]any{"name": "following",
		"rule": map[string]any{"field": "follow_status", "op": "eq", "value": "following"}}, &seg); st != 201 {
		t.Fatalf("segment: %d", st)
	}
	path := fmt.Sprintf("/api/admin/v1/segments/%d/members", seg.ID)
	var got []uint64
	cursor := ""
	for range 5 {
		q := "?limit=1"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Members    []struct{ ID uint64 }
			NextCursor *string `json:"next_cursor"`
		}
		if st := a.call("GET", path+q, token, nil, &page); st != 200 {
			t.Fatalf("GET %s%s: %d", path, q, st)
		}
		for _, m := range page.Members {
			got = append(got, m.ID)
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if want := []uint64{followers[2], followers[0]}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("segment members %v, want %v (newest first, the unfollowed one left out)", got, want)
	}
	for q, field := range map[string]string{"?limit=0": "limit", "?cursor=x": "cursor", "?tag=1": "tag", "?limit=1&limit=2": "limit"} {
		var e errorBody
		if st := a.call("GET", path+q, token, nil, &e); st != 400 || e.Error.Fields[field] == "" {
			t.Errorf("GET %s%s: %d %+v, want 400 naming %s", path, q, st, e, field)
		}
	}
	if st := a.call("GET", "/api/admin/v1/segments/999999/members", token, nil, nil); st != 404 {
		t.Fatalf("unknown segment: %d", st)
	}

	// The export: the same members, a complete file with its trailer.
	req, _ := http.NewRequest("GET", a.base+path+"/export.csv", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := a.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), fmt.Sprintf("segment-%d-members-", seg.ID)) {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(body), "\ufeff"))).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][0] != "id" || rows[1][0] != fmt.Sprint(followers[2]) || rows[2][0] != fmt.Sprint(followers[0]) {
		t.Fatalf("export rows %v (%v)", rows, err)
	}
	if resp.Trailer.Get("X-Export-Rows") != "2" {
		t.Fatalf("export trailer %q, want 2", resp.Trailer.Get("X-Export-Rows"))
	}
	if n := a.count("audit_log", "merchant_id = ? AND action = 'member.export' AND after_json LIKE ?", a.merchant,
		fmt.Sprintf(`%%"segment_id":%d%%`, seg.ID)); n != 1 {
		t.Fatalf("%d audited segment exports, want 1", n)
	}
	// Permissions: members:export for the file; the viewer has members:read
	// only, and sees masked phones.
	viewer := a.staffLogin(a.merchant, "segviewer", admin.RoleViewer)
	if st := a.call("GET", path, viewer, nil, nil); st != 200 {
		t.Fatalf("viewer page: %d", st)
	}
	if st, _ := a.raw("GET", path+"/export.csv", viewer, nil); st != http.StatusForbidden {
		t.Fatalf("viewer export: %d, want 403", st)
	}
}

type ruleSet struct {
	Version int
	Rules   struct {
		Earn struct {
			Points int64 `json:"points"`
			PerFen int64 `json:"per_fen"`
		}
		DailyCap int64 `json:"daily_cap"`
		Keyword  string
		Expiry   struct {
			Policy string
			Months int
		}
	}
}

// PATCH /points/rules changes what it names and keeps the rest; PUT still
// replaces everything.
func TestPointsRulesPatch(t *testing.T) { eachBackendName(t, testPointsRulesPatch) }

func testPointsRulesPatch(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	token := a.login()
	var rs ruleSet
	if st := a.call("PUT", "/api/admin/v1/points/rules", token, map[string]any{"earn": map[string]any{"points": 2, "per_fen": 100},
		"daily_cap": 500, "keyword": "查积分", "expiry": map[string]any{"policy": "rolling_months", "months": 6}}, &rs); st != 200 {
		t.Fatalf("put: %d", st)
	}
	v := rs.Version
	if st := a.call("PATCH", "/api/admin/v1/points/rules", token, map[string]any{"earn": map[string]any{"points": 3}}, &rs); st != 200 {
		t.Fatalf("patch: %d", st)
	}
	if rs.Version != v+1 || rs.Rules.Earn.Points != 3 || rs.Rules.Earn.PerFen != 100 || rs.Rules.DailyCap != 500 ||
		rs.Rules.Keyword != "查积分" || rs.Rules.Expiry.Months != 6 {
		t.Fatalf("after patch: %+v", rs)
	}
	var cur ruleSet
	a.call("GET", "/api/admin/v1/points/rules", token, nil, &cur)
	if fmt.Sprint(cur) != fmt.Sprint(rs) {
		t.Fatalf("GET after patch %+v, want %+v", cur, rs)
	}
	// Bad patches change nothing.
	for body, field := range map[string]string{
		`{"daily_cap":null}`:            "daily_cap",
		`{"earn":{"per_fen":null}}`:     "earn.per_fen",
		`{"earn":{"per_fen":0}}`:        "earn.per_fen",
		`{"bogus":1}`:                   "bogus",
		`{"daily_cap":"many"}`:          "daily_cap",
		`[1]`:                           "body",
		`{"keyword":"a","keyword":"b"}`: "keyword",
	} {
		var e errorBody
		if st := a.call("PATCH", "/api/admin/v1/points/rules", token, body, &e); st != 400 || e.Error.Fields[field] == "" {
			t.Errorf("PATCH %s: %d %+v, want 400 naming %s", body, st, e, field)
		}
	}
	a.call("GET", "/api/admin/v1/points/rules", token, nil, &cur)
	if cur.Version != rs.Version {
		t.Fatalf("a refused patch saved version %d", cur.Version)
	}
	// An empty patch saves the same rules as a new version.
	if st := a.call("PATCH", "/api/admin/v1/points/rules", token, map[string]any{}, &cur); st != 200 || cur.Rules != rs.Rules {
		t.Fatalf("empty patch: %d %+v", st, cur)
	}
	// PUT keeps its meaning: what is left out takes its default.
	if st := a.call("PUT", "/api/admin/v1/points/rules", token, map[string]any{"daily_cap": 9}, &cur); st != 200 ||
		cur.Rules.Earn.Points != 1 || cur.Rules.Earn.PerFen != 100 || cur.Rules.Keyword != "积分" || cur.Rules.DailyCap != 9 {
		t.Fatalf("put after patch: %d %+v", st, cur)
	}
	// The viewer may not patch.
	viewer := a.staffLogin(a.merchant, "rulesviewer", admin.RoleViewer)
	if st := a.call("PATCH", "/api/admin/v1/points/rules", viewer, map[string]any{"daily_cap": 1}, nil); st != http.StatusForbidden {
		t.Fatalf("viewer patch: %d", st)
	}
}
