package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.yaml.in/yaml/v3"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/docs"
)

// routesOf lists the engine's routes as "METHOD /path/{param}".
func routesOf(t *testing.T, a *testApp) []string {
	t.Helper()
	engine, ok := a.Handler().(*gin.Engine)
	if !ok {
		t.Fatalf("handler is %T, want *gin.Engine", a.Handler())
	}
	param := regexp.MustCompile(`:([a-z_]+)`)
	var out []string
	for _, r := range engine.Routes() {
		out = append(out, r.Method+" "+param.ReplaceAllString(r.Path, "{$1}"))
	}
	sort.Strings(out)
	return out
}

// Every route the service registers is described in docs/openapi.yaml, and
// the document describes no route that does not exist. The simulator's own
// API, mounted in sandbox mode, is the fake WeChat, not ours to describe.
func TestOpenAPICoversEveryRoute(t *testing.T) { eachBackendName(t, testOpenAPICoversEveryRoute) }

func testOpenAPICoversEveryRoute(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	var spec struct {
		OpenAPI    string                          `yaml:"openapi"`
		Paths      map[string]map[string]yaml.Node `yaml:"paths"`
		Components struct {
			PathItems map[string]map[string]yaml.Node `yaml:"pathItems"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(docs.OpenAPI, &spec); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(spec.OpenAPI, "3.1") {
		t.Fatalf("openapi %q, want 3.1", spec.OpenAPI)
	}
	documented := map[string]bool{}
	for path, item := range spec.Paths {
		if ref, ok := item["$ref"]; ok {
			name := strings.TrimPrefix(ref.Value, "#/components/pathItems/")
			if item = spec.Components.PathItems[name]; item == nil {
				t.Fatalf("%s: unresolved $ref %q", path, ref.Value)
			}
		}
		for method := range item {
			switch method {
			case "get", "post", "put", "patch", "delete":
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	registered := map[string]bool{}
	for _, r := range routesOf(t, a) {
		if strings.HasPrefix(r[strings.IndexByte(r, ' ')+1:], sandboxAPIPath+"/") {
			continue
		}
		registered[r] = true
		if !documented[r] {
			t.Errorf("route %s is not in docs/openapi.yaml", r)
		}
	}
	for r := range documented {
		if !registered[r] {
			t.Errorf("docs/openapi.yaml describes %s, which is not a route", r)
		}
	}
	// And it is served.
	resp, err := http.Get(a.base + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != string(docs.OpenAPI) {
		t.Fatalf("GET /openapi.yaml: %d", resp.StatusCode)
	}
}

// tenantFixture is one merchant with one of everything that has an id in
// the admin API.
type tenantFixture struct {
	merchant uint64
	token    string // owner session
	member   uint64
	openid   string // the member's official-account openid
	tag      uint64
	staff    uint64
	apiKey   uint64
	channel  uint64
	segment  uint64
	campaign uint64
	careRule uint64
	order    string // external id
	tier     uint64
	reward   uint64
	redeemed uint64 // a redemption
	code     string // a member code of member
	coupon   string // the code of member's coupon
	webhook  uint64 // a webhook endpoint
	deadHook uint64 // a dead webhook delivery
	imported uint64 // a member import job
}

// deadWebhookDelivery parks a delivery of a points.changed event for the
// endpoint in the dead-letter list, as a day of failures would.
func deadWebhookDelivery(t *testing.T, a *testApp, merchantID, endpointID uint64) uint64 {
	t.Helper()
	now := time.Now().UTC()
	ev := map[string]any{"merchant_id": merchantID, "type": "points.changed", "data": `{"member_id":1}`, "created_at": now}
	if err := a.db.Table("webhook_events").Create(ev).Error; err != nil {
		t.Fatal(err)
	}
	var eventID uint64
	if err := a.db.Table("webhook_events").Where("merchant_id = ?", merchantID).Order("id DESC").Limit(1).Pluck("id", &eventID).Error; err != nil {
		t.Fatal(err)
	}
	d := map[string]any{"merchant_id": merchantID, "endpoint_id": endpointID, "event_id": eventID, "status": "dead",
		"attempts": 20, "next_attempt_at": now, "give_up_at": now, "last_status": 500, "created_at": now, "updated_at": now}
	if err := a.db.Table("webhook_deliveries").Create(d).Error; err != nil {
		t.Fatal(err)
	}
	var id uint64
	if err := a.db.Table("webhook_deliveries").Where("event_id = ?", eventID).Pluck("id", &id).Error; err != nil {
		t.Fatal(err)
	}
	return id
}

func newTenantFixture(t *testing.T, a *testApp, merchantID uint64, ownerToken string) tenantFixture {
	t.Helper()
	f := tenantFixture{merchant: merchantID, token: ownerToken}
	var followed struct {
		MemberID uint64 `json:"member_id"`
		OpenID   string `json:"openid"`
	}
	if st := a.call("POST", "/api/admin/v1/sandbox/follow", ownerToken, map[string]string{"scene": "fixture"}, &followed); st != 200 || followed.MemberID == 0 {
		t.Fatalf("fixture member: %d", st)
	}
	f.member, f.openid = followed.MemberID, followed.OpenID
	var id struct{ ID uint64 }
	must := func(method, path string, body any) uint64 {
		id.ID = 0
		if st := a.call(method, path, ownerToken, body, &id); st != 201 || id.ID == 0 {
			t.Fatalf("fixture %s %s: %d", method, path, st)
		}
		return id.ID
	}
	f.tag = must("POST", "/api/admin/v1/tags", map[string]any{"name": "vip"})
	if st := a.call("POST", fmt.Sprintf("/api/admin/v1/tags/%d/assign", f.tag), ownerToken,
		map[string]any{"member_ids": []uint64{f.member}}, nil); st != 200 {
		t.Fatalf("fixture assign: %d", st)
	}
	f.segment = must("POST", "/api/admin/v1/segments", map[string]any{"name": "followers",
		"rule": map[string]any{"field": "follow_status", "op": "eq", "value": "following"}})
	f.campaign = must("POST", "/api/admin/v1/campaigns", map[string]any{"name": "Sale", "channel": "template",
		"template_id": admin.SandboxTemplates[0], "message": map[string]any{"fields": map[string]string{"first": "Hi {{name}}"}},
		"target": map[string]any{"segment_id": f.segment}, "schedule": map[string]any{"kind": "at", "send_at": time.Now().Add(24 * time.Hour)}})
	f.careRule = must("POST", "/api/admin/v1/care-rules", map[string]any{"kind": "birthday", "channel": "template",
		"template_id": admin.SandboxTemplates[0], "message": map[string]any{"fields": map[string]string{"first": "Hi {{name}}"}}})
	f.order = fmt.Sprintf("ord-%d", merchantID)
	var order struct{ Order struct{ ID uint64 } }
	if st := a.call("POST", "/api/admin/v1/orders", ownerToken, map[string]any{"external_id": f.order, "member_id": f.member,
		"amount_fen": 50000}, &order); st != 201 {
		t.Fatalf("fixture order: %d", st)
	}
	f.tier = must("POST", "/api/admin/v1/tiers", map[string]any{"name": "Gold", "level": 1, "threshold": 100000})
	f.reward = must("POST", "/api/admin/v1/rewards", map[string]any{"name": "Tea", "kind": "gift", "points_cost": 10})
	red, _, err := a.points.Redeem(context.Background(), merchantID, f.member, f.reward, "fixture")
	if err != nil {
		t.Fatalf("fixture redemption: %v", err)
	}
	f.redeemed = red.ID
	f.code = a.codeIssuedAgo(merchantID, f.member, 0)
	coupon := must("POST", "/api/admin/v1/rewards", map[string]any{"name": "Coupon", "kind": "coupon", "points_cost": 10})
	if red, _, err = a.points.Redeem(context.Background(), merchantID, f.member, coupon, "fixture-coupon"); err != nil || red.Code == nil {
		t.Fatalf("fixture coupon: %v", err)
	}
	f.coupon = *red.Code
	f.staff = must("POST", "/api/admin/v1/staff", map[string]any{"username": fmt.Sprintf("clerk%d", merchantID), "role": "viewer"})
	f.apiKey = must("POST", "/api/admin/v1/api-keys", map[string]any{"name": "pos", "scopes": []string{"orders:write"}})
	f.channel = must("POST", "/api/admin/v1/channels", map[string]any{"name": "Poster", "scene": "poster"})
	f.webhook = must("POST", "/api/admin/v1/webhook-endpoints", map[string]any{"url": "https://93.184.215.14/hook",
		"events": []string{"points.changed"}})
	f.deadHook = deadWebhookDelivery(t, a, merchantID, f.webhook)
	var job struct{ ID uint64 }
	if st, body := a.csv("/api/admin/v1/member-imports", ownerToken, fmt.Sprintf("openid\no_import_%d\n", merchantID)); st != 202 ||
		json.Unmarshal([]byte(body), &job) != nil || job.ID == 0 {
		t.Fatalf("fixture import: %d %s", st, body)
	}
	f.imported = job.ID
	return f
}

// Every admin route is scoped to the caller's merchant: merchant A's owner
// using merchant B's ids gets 404, exactly as for ids that do not exist,
// and B's data is unchanged; lists show none of B's rows. A route added to
// the admin API without a case here fails the test.
func TestAdminRoutesAreTenantScoped(t *testing.T) { eachBackendName(t, testAdminRoutesAreTenantScoped) }

func testAdminRoutesAreTenantScoped(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	ctx := context.Background()
	other, err := a.merchants.Create(ctx, adminSandboxInput("Other shop"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.sandbox.Register(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.staffs.Create(ctx, other.ID, "otherowner", "other-password", admin.RoleOwner); err != nil {
		t.Fatal(err)
	}
	bToken, _, err := a.staffs.Login(ctx, "otherowner", "other-password")
	if err != nil {
		t.Fatal(err)
	}
	aToken := a.login()
	A := newTenantFixture(t, a, a.merchant, aToken)
	B := newTenantFixture(t, a, other.ID, bToken)
	// Both campaigns scheduled (tomorrow): each calendar shows its own.
	for _, c := range []struct {
		id    uint64
		token string
	}{{A.campaign, aToken}, {B.campaign, bToken}} {
		if st := a.call("POST", fmt.Sprintf("/api/admin/v1/campaigns/%d/schedule", c.id), c.token, nil, nil); st != 200 {
			t.Fatalf("schedule fixture campaign: %d", st)
		}
	}

	// B's tag rule (auto-tagging).
	var bRule struct{ ID uint64 }
	if st := a.call("POST", "/api/admin/v1/tag-rules", bToken, map[string]any{"tag_id": B.tag,
		"rule": map[string]any{"field": "follow_status", "op": "eq", "value": "following"}}, &bRule); st != 201 || bRule.ID == 0 {
		t.Fatalf("B's tag rule: %d", st)
	}

	// B's survey.
	var bSurvey struct{ ID uint64 }
	if st := a.call("POST", "/api/admin/v1/surveys", bToken, map[string]any{"name": "B survey", "template_id": admin.SandboxTemplates[0],
		"message": map[string]any{"fields": map[string]string{"first": "How was it?"}}}, &bSurvey); st != 201 || bSurvey.ID == 0 {
		t.Fatalf("B's survey: %d", st)
	}

	type probe struct {
		path  string // with B's ids filled in
		query string // added to the path
		body  any
		// check, for routes without an id of B's, asserts the answer shows
		// nothing of B; nil means "must be 404".
		check func(t *testing.T, status int, body string)
	}
	noneOfB := func(t *testing.T, status int, body string) {
		t.Helper()
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		for _, s := range []string{fmt.Sprintf(`"merchant_id":%d`, other.ID), "otherowner", fmt.Sprintf("clerk%d", other.ID)} {
			if strings.Contains(body, s) {
				t.Fatalf("answer shows merchant B's data (%s): %s", s, body)
			}
		}
	}
	notB := func(ids ...uint64) func(t *testing.T, status int, body string) {
		return func(t *testing.T, status int, body string) {
			t.Helper()
			noneOfB(t, status, body)
			for _, id := range ids {
				if regexp.MustCompile(fmt.Sprintf(`"id":%d[,}]`, id)).MatchString(body) {
					t.Fatalf("answer lists B's id %d: %s", id, body)
				}
			}
		}
	}
	notFound := (func(*testing.T, int, string))(nil)
	// A rule matching every member counts A's members only.
	countIsA := func(t *testing.T, status int, body string) {
		t.Helper()
		noneOfB(t, status, body)
		var out struct{ Count int64 }
		_ = json.Unmarshal([]byte(body), &out)
		if want := a.count("members", "merchant_id = ? AND erased_at IS NULL", a.merchant); out.Count != want {
			t.Fatalf("count %d, want A's %d: %s", out.Count, want, body)
		}
	}
	memberB, tagB := fmt.Sprint(B.member), fmt.Sprint(B.tag)
	noOrderOfB := func(t *testing.T, status int, body string) {
		t.Helper()
		noneOfB(t, status, body)
		if strings.Contains(body, B.order) || strings.Contains(body, fmt.Sprintf(`"member_id":%d`, B.member)) {
			t.Fatalf("answer shows B's order: %s", body)
		}
	}
	cases := map[string]probe{
		"POST /api/admin/v1/logout":                     {check: func(t *testing.T, st int, _ string) {}}, // ends A's own session: checked last
		"GET /api/admin/v1/me":                          {check: noneOfB},
		"POST /api/admin/v1/me/password":                {body: map[string]string{"current_password": "wrong", "new_password": "whatever-1"}, check: func(t *testing.T, st int, _ string) {}},
		"GET /api/admin/v1/staff":                       {check: notB(B.staff)},
		"POST /api/admin/v1/staff":                      {body: map[string]any{"username": "x", "role": "root"}, check: func(t *testing.T, st int, _ string) {}},
		"PATCH /api/admin/v1/staff/{staff_id}":          {path: fmt.Sprint(B.staff), body: map[string]any{"disabled": true}, check: notFound},
		"GET /api/admin/v1/api-keys":                    {check: notB(B.apiKey)},
		"POST /api/admin/v1/api-keys":                   {body: map[string]any{"name": ""}, check: func(t *testing.T, st int, _ string) {}},
		"DELETE /api/admin/v1/api-keys/{api_key_id}":    {path: fmt.Sprint(B.apiKey), check: notFound},
		"PUT /api/admin/v1/api-keys/{api_key_id}/owner": {path: fmt.Sprint(B.apiKey), body: map[string]any{"staff_id": A.staff}, check: notFound},
		"GET /api/admin/v1/audit":                       {check: noneOfB},
		"GET /api/admin/v1/settings":                    {check: noneOfB},
		"PATCH /api/admin/v1/settings":                  {body: map[string]any{"name": "Still A"}, check: noneOfB},
		"POST /api/admin/v1/settings/wechat-test":       {check: noneOfB},
		"GET /api/admin/v1/settings/menu":               {check: noneOfB},
		"PUT /api/admin/v1/settings/menu": {body: map[string]any{"buttons": []map[string]any{{"type": "click", "name": "A", "key": "A"}}},
			check: noneOfB},
		"POST /api/admin/v1/settings/menu/default": {check: noneOfB},
		"GET /api/admin/v1/channels":               {check: notB(B.channel)},
		"POST /api/admin/v1/channels":              {body: map[string]any{"name": "A poster", "scene": "poster"}, check: func(t *testing.T, st int, _ string) {}},
		"GET /api/admin/v1/members":                {check: notB(B.member)},
		"GET /api/admin/v1/members/export.csv":     {check: noneOfB},
		"GET /api/admin/v1/members/{member_id}":    {path: memberB, check: notFound},
		// B's member's identities name no member of A's.
		"GET /api/admin/v1/members/lookup":            {query: "openid=" + B.openid, check: notFound},
		"GET /api/admin/v1/members/lookup#own-member": {query: "openid=" + A.openid, check: notB(B.member)},
		// B's member code names nobody at A: 400, as a forged code.
		"POST /api/admin/v1/member-codes/resolve": {body: map[string]any{"member_code": B.code}, check: func(t *testing.T, st int, body string) {
			if st != http.StatusBadRequest || !strings.Contains(body, `"member_code"`) {
				t.Fatalf("B's member code: %d %s, want 400 naming member_code", st, body)
			}
		}},
		"POST /api/admin/v1/orders#foreign-member-code": {body: map[string]any{"external_id": "x-code", "member_code": B.code, "amount_fen": 100},
			check: func(t *testing.T, st int, body string) {
				if st != http.StatusBadRequest || !strings.Contains(body, `"member_code"`) {
					t.Fatalf("order with B's member code: %d %s, want 400 naming member_code", st, body)
				}
			}},
		"PATCH /api/admin/v1/members/{member_id}":              {path: memberB, body: map[string]any{"remark": "hijacked"}, check: notFound},
		"GET /api/admin/v1/members/{member_id}/privacy-export": {path: memberB, check: notFound},
		"GET /api/admin/v1/members/{member_id}/messages":       {path: memberB, check: notFound},
		"GET /api/admin/v1/members/{member_id}/stage-history":  {path: memberB, check: notFound},
		"POST /api/admin/v1/members/{member_id}/erase":         {path: memberB, check: notFound},
		"GET /api/admin/v1/tags":                               {check: notB(B.tag)},
		"POST /api/admin/v1/tags":                              {body: map[string]any{"name": "vip"}, check: func(t *testing.T, st int, _ string) {}},
		"PATCH /api/admin/v1/tags/{tag_id}":                    {path: tagB, body: map[string]any{"name": "renamed"}, check: notFound},
		"DELETE /api/admin/v1/tags/{tag_id}":                   {path: tagB, check: notFound},
		"POST /api/admin/v1/tags/{tag_id}/assign":              {path: tagB, body: map[string]any{"member_ids": []uint64{A.member}}, check: notFound},
		"POST /api/admin/v1/tags/{tag_id}/unassign":            {path: tagB, body: map[string]any{"member_ids": []uint64{A.member}}, check: notFound},
		// A's own tag with B's member: still 404, nothing assigned.
		"POST /api/admin/v1/tags/{tag_id}/assign#foreign-member":     {path: fmt.Sprint(A.tag), body: map[string]any{"member_ids": []uint64{A.member, B.member}}, check: notFound},
		"POST /api/admin/v1/tags/{tag_id}/unassign#foreign-member":   {path: fmt.Sprint(A.tag), body: map[string]any{"member_ids": []uint64{B.member}}, check: notFound},
		"GET /api/admin/v1/segments/fields":                          {check: noneOfB},
		"POST /api/admin/v1/segments/preview":                        {body: map[string]any{"rule": map[string]any{"field": "order_count", "op": "gte", "value": 0}}, check: countIsA},
		"GET /api/admin/v1/segments":                                 {check: notB(B.segment)},
		"POST /api/admin/v1/segments":                                {body: map[string]any{"name": ""}, check: func(t *testing.T, st int, _ string) {}},
		"GET /api/admin/v1/segments/{segment_id}":                    {path: fmt.Sprint(B.segment), check: notFound},
		"PATCH /api/admin/v1/segments/{segment_id}":                  {path: fmt.Sprint(B.segment), body: map[string]any{"name": "mine"}, check: notFound},
		"DELETE /api/admin/v1/segments/{segment_id}":                 {path: fmt.Sprint(B.segment), check: notFound},
		"POST /api/admin/v1/segments/{segment_id}/refresh":           {path: fmt.Sprint(B.segment), check: notFound},
		"GET /api/admin/v1/segments/{segment_id}/members":            {path: fmt.Sprint(B.segment), check: notFound},
		"GET /api/admin/v1/segments/{segment_id}/members/export.csv": {path: fmt.Sprint(B.segment), check: notFound},
		// A's own segment lists A's members only, though B's member
		// matches its rule too.
		"GET /api/admin/v1/segments/{segment_id}/members#own-segment": {path: fmt.Sprint(A.segment), check: notB(B.member)},
		"POST /api/admin/v1/orders": {body: map[string]any{"external_id": "x-1", "member_id": B.member, "amount_fen": 100},
			check: func(t *testing.T, st int, body string) {
				if st != http.StatusUnprocessableEntity { // an unknown member, as for an id that does not exist
					t.Fatalf("order for B's member: %d %s", st, body)
				}
			}},
		// An order of A's member attributed to B's campaign is refused
		// (400 naming campaign_id) and not stored; A's own campaign is
		// accepted.
		"POST /api/admin/v1/orders#foreign-campaign": {body: map[string]any{"external_id": "x-campaign", "member_id": A.member,
			"amount_fen": 100, "campaign_id": B.campaign},
			check: func(t *testing.T, st int, body string) {
				if st != http.StatusBadRequest || !strings.Contains(body, `"campaign_id"`) {
					t.Fatalf("order with B's campaign: %d %s, want 400 naming campaign_id", st, body)
				}
				if n := a.count("points_orders", "external_id = ?", "x-campaign"); n != 0 {
					t.Fatal("the order with B's campaign was stored")
				}
			}},
		"POST /api/admin/v1/orders#own-campaign": {body: map[string]any{"external_id": "x-own-campaign", "member_id": A.member,
			"amount_fen": 100, "campaign_id": A.campaign},
			check: func(t *testing.T, st int, body string) {
				if st != http.StatusCreated || !strings.Contains(body, fmt.Sprintf(`"campaign_id":%d`, A.campaign)) {
					t.Fatalf("order with A's own campaign: %d %s", st, body)
				}
			}},
		"GET /api/admin/v1/orders/{external_id}": {path: B.order, check: notFound},
		"GET /api/admin/v1/orders":               {check: noOrderOfB},
		// B's member as a filter lists nothing.
		"GET /api/admin/v1/orders#foreign-member": {query: fmt.Sprintf("member_id=%d", B.member), check: func(t *testing.T, st int, body string) {
			noOrderOfB(t, st, body)
			if !strings.Contains(body, `"orders":[]`) {
				t.Fatalf("orders of B's member: %s", body)
			}
		}},
		"POST /api/admin/v1/orders/{external_id}/refunds": {path: B.order, body: map[string]any{"refund_id": "r1", "amount_fen": 100}, check: notFound},
		"GET /api/admin/v1/points/rules":                  {check: noneOfB},
		"PUT /api/admin/v1/points/rules":                  {body: map[string]any{}, check: func(t *testing.T, st int, _ string) {}},
		"PATCH /api/admin/v1/points/rules": {body: map[string]any{"daily_cap": 777}, check: func(t *testing.T, st int, body string) {
			noneOfB(t, st, body)
			if n := a.count("points_rule_versions", "merchant_id = ? AND body LIKE ?", other.ID, "%777%"); n != 0 {
				t.Fatal("A's patch changed B's rules")
			}
		}},
		"GET /api/admin/v1/points/liability":                    {check: noneOfB},
		"GET /api/admin/v1/points/expiring":                     {check: notB(B.member)},
		"GET /api/admin/v1/tiers":                               {check: notB(B.tier)},
		"POST /api/admin/v1/tiers":                              {body: map[string]any{}, check: func(t *testing.T, st int, _ string) {}},
		"GET /api/admin/v1/tiers/{tier_id}":                     {path: fmt.Sprint(B.tier), check: notFound},
		"PATCH /api/admin/v1/tiers/{tier_id}":                   {path: fmt.Sprint(B.tier), body: map[string]any{"name": "Mine"}, check: notFound},
		"DELETE /api/admin/v1/tiers/{tier_id}":                  {path: fmt.Sprint(B.tier), check: notFound},
		"GET /api/admin/v1/rewards":                             {check: notB(B.reward)},
		"POST /api/admin/v1/rewards":                            {body: map[string]any{}, check: func(t *testing.T, st int, _ string) {}},
		"GET /api/admin/v1/rewards/{reward_id}":                 {path: fmt.Sprint(B.reward), check: notFound},
		"PATCH /api/admin/v1/rewards/{reward_id}":               {path: fmt.Sprint(B.reward), body: map[string]any{"name": "Mine"}, check: notFound},
		"DELETE /api/admin/v1/rewards/{reward_id}":              {path: fmt.Sprint(B.reward), check: notFound},
		"GET /api/admin/v1/redemptions":                         {check: notB(B.redeemed)},
		"GET /api/admin/v1/redemptions/{redemption_id}":         {path: fmt.Sprint(B.redeemed), check: notFound},
		"POST /api/admin/v1/redemptions/{redemption_id}/cancel": {path: fmt.Sprint(B.redeemed), body: map[string]any{"reason": "x"}, check: notFound},
		"POST /api/admin/v1/coupons/verify": {body: map[string]any{"code": B.coupon, "request_id": "x"}, check: func(t *testing.T, st int, body string) {
			if st != http.StatusNotFound || a.count("points_coupons", "code = ? AND status = 'issued'", B.coupon) != 1 {
				t.Fatalf("verify B's coupon: %d %s, want 404 and B's coupon unused", st, body)
			}
		}},
		"GET /api/admin/v1/coupons": {check: func(t *testing.T, st int, body string) {
			noneOfB(t, st, body)
			if strings.Contains(body, B.coupon) {
				t.Fatalf("answer lists B's coupon: %s", body)
			}
		}},
		"GET /api/admin/v1/coupons/{code}":                          {path: B.coupon, check: notFound},
		"GET /api/admin/v1/members/{member_id}/points":              {path: memberB, check: notFound},
		"POST /api/admin/v1/members/{member_id}/points/adjustments": {path: memberB, body: map[string]any{"points": 100, "reason": "gift"}, check: notFound},
		"POST /api/admin/v1/members/{member_id}/redemptions":        {path: memberB, body: map[string]any{"reward_id": B.reward, "request_id": "x"}, check: notFound},
		"GET /api/admin/v1/campaigns":                               {check: notB(B.campaign)},
		"POST /api/admin/v1/campaigns":                              {body: map[string]any{"name": ""}, check: func(t *testing.T, st int, _ string) {}},
		"GET /api/admin/v1/campaigns/{campaign_id}":                 {path: fmt.Sprint(B.campaign), check: notFound},
		"PATCH /api/admin/v1/campaigns/{campaign_id}":               {path: fmt.Sprint(B.campaign), body: map[string]any{"name": "Mine"}, check: notFound},
		"POST /api/admin/v1/campaigns/{campaign_id}/schedule":       {path: fmt.Sprint(B.campaign), check: notFound},
		"POST /api/admin/v1/campaigns/{campaign_id}/pause":          {path: fmt.Sprint(B.campaign), check: notFound},
		"POST /api/admin/v1/campaigns/{campaign_id}/resume":         {path: fmt.Sprint(B.campaign), check: notFound},
		"POST /api/admin/v1/campaigns/{campaign_id}/cancel":         {path: fmt.Sprint(B.campaign), check: notFound},
		"POST /api/admin/v1/campaigns/{campaign_id}/resend":         {path: fmt.Sprint(B.campaign), body: map[string]any{"statuses": []string{"failed"}}, check: notFound},
		"GET /api/admin/v1/campaigns/{campaign_id}/dry-run":         {path: fmt.Sprint(B.campaign), check: notFound},
		"GET /api/admin/v1/campaigns/{campaign_id}/progress":        {path: fmt.Sprint(B.campaign), check: notFound},
		"GET /api/admin/v1/campaigns/{campaign_id}/deliveries":      {path: fmt.Sprint(B.campaign), check: notFound},
		"GET /api/admin/v1/campaigns/{campaign_id}/report":          {path: fmt.Sprint(B.campaign), check: notFound},
		"GET /api/admin/v1/campaigns/{campaign_id}/preview":         {path: fmt.Sprint(B.campaign), check: notFound},
		"GET /api/admin/v1/campaigns/templates":                     {check: noneOfB},
		"GET /api/admin/v1/campaigns/schedule-preview":              {query: "cron=0+9+*+*+1", check: noneOfB},
		// B's member is not one of A's: the preview names member_id.
		"POST /api/admin/v1/campaigns/preview": {body: map[string]any{"channel": "template", "template_id": admin.SandboxTemplates[0],
			"message": map[string]any{"fields": map[string]string{"first": "Hi {{name}}"}}, "member_id": B.member},
			check: func(t *testing.T, st int, body string) {
				if st != 400 || !strings.Contains(body, `"member_id"`) {
					t.Fatalf("preview for B's member: %d %s", st, body)
				}
			}},
		// B's campaign is scheduled tomorrow: A's calendar does not show it.
		"GET /api/admin/v1/campaign-calendar": {query: "from=" + time.Now().AddDate(0, 0, -1).Format(time.DateOnly) + "&to=" +
			time.Now().AddDate(0, 0, 3).Format(time.DateOnly), check: func(t *testing.T, st int, body string) {
			noneOfB(t, st, body)
			if strings.Contains(body, fmt.Sprintf(`"campaign_id":%d,`, B.campaign)) || !strings.Contains(body, fmt.Sprintf(`"campaign_id":%d,`, A.campaign)) {
				t.Fatalf("A's calendar should show A's campaign %d and not B's %d: %s", A.campaign, B.campaign, body)
			}
		}},
		// Auto-tagging: B's rules, tags and members are not A's.
		"GET /api/admin/v1/tag-rules": {check: notB(bRule.ID)},
		"POST /api/admin/v1/tag-rules": {body: map[string]any{"tag_id": B.tag,
			"rule": map[string]any{"field": "follow_status", "op": "eq", "value": "unfollowed"}}, check: func(t *testing.T, st int, body string) {
			if st != 400 || !strings.Contains(body, `"tag_id"`) || a.count("tag_rules", "merchant_id = ?", a.merchant) != 0 {
				t.Fatalf("a rule for B's tag: %d %s", st, body)
			}
		}},
		"POST /api/admin/v1/tag-rules/preview": {body: map[string]any{"tag_id": B.tag,
			"rule": map[string]any{"field": "follow_status", "op": "eq", "value": "following"}}, check: func(t *testing.T, st int, body string) {
			if st != 400 || !strings.Contains(body, `"tag_id"`) {
				t.Fatalf("preview with B's tag: %d %s", st, body)
			}
		}},
		"GET /api/admin/v1/tag-rules/{rule_id}":             {path: fmt.Sprint(bRule.ID), check: notFound},
		"PATCH /api/admin/v1/tag-rules/{rule_id}":           {path: fmt.Sprint(bRule.ID), body: map[string]any{"enabled": false}, check: notFound},
		"DELETE /api/admin/v1/tag-rules/{rule_id}":          {path: fmt.Sprint(bRule.ID), check: notFound},
		"GET /api/admin/v1/members/{member_id}/tag-history": {path: memberB, check: notFound},
		// Win-back: A's program and figures are A's alone.
		"GET /api/admin/v1/win-back": {check: noneOfB},
		"GET /api/admin/v1/win-back/sequences": {query: fmt.Sprintf("member_id=%d", B.member), check: func(t *testing.T, st int, body string) {
			noneOfB(t, st, body)
			if !strings.Contains(body, `"sequences":[]`) {
				t.Fatalf("episodes of B's member: %s", body)
			}
		}},
		"GET /api/admin/v1/win-back/report": {check: noneOfB},
		"PATCH /api/admin/v1/win-back": {body: map[string]any{"interval_days": 11}, check: func(t *testing.T, st int, body string) {
			noneOfB(t, st, body)
			if n := a.count("win_back_settings", "merchant_id = ? AND interval_days = 11", other.ID); n != 0 {
				t.Fatal("A's edit changed B's win-back program")
			}
		}},
		"GET /api/admin/v1/care-rules/{rule_id}/next-sends": {path: fmt.Sprint(B.careRule), check: notFound},
		"GET /api/admin/v1/care-rules":                      {check: notB(B.careRule)},
		"POST /api/admin/v1/care-rules":                     {body: map[string]any{"kind": ""}, check: func(t *testing.T, st int, _ string) {}},
		"GET /api/admin/v1/care-rules/{rule_id}":            {path: fmt.Sprint(B.careRule), check: notFound},
		"PATCH /api/admin/v1/care-rules/{rule_id}":          {path: fmt.Sprint(B.careRule), body: map[string]any{"enabled": false}, check: notFound},
		"DELETE /api/admin/v1/care-rules/{rule_id}":         {path: fmt.Sprint(B.careRule), check: notFound},
		"GET /api/admin/v1/care-rules/{rule_id}/sends":      {path: fmt.Sprint(B.careRule), check: notFound},
		"GET /api/admin/v1/notice-settings":                 {check: noneOfB},
		"PUT /api/admin/v1/notice-settings/{kind}": {path: "tier_down", body: map[string]any{"enabled": false, "template_id": admin.SandboxTemplates[0],
			"fields": map[string]string{"first": "{{tier_to}}"}}, check: noneOfB},
		"GET /api/admin/v1/dashboard":                                      {check: noneOfB},
		"GET /api/admin/v1/webhook-endpoints":                              {check: notB(B.webhook)},
		"POST /api/admin/v1/webhook-endpoints":                             {body: map[string]any{"url": ""}, check: func(t *testing.T, st int, _ string) {}},
		"GET /api/admin/v1/webhook-endpoints/{endpoint_id}":                {path: fmt.Sprint(B.webhook), check: notFound},
		"PATCH /api/admin/v1/webhook-endpoints/{endpoint_id}":              {path: fmt.Sprint(B.webhook), body: map[string]any{"enabled": false}, check: notFound},
		"DELETE /api/admin/v1/webhook-endpoints/{endpoint_id}":             {path: fmt.Sprint(B.webhook), check: notFound},
		"POST /api/admin/v1/webhook-endpoints/{endpoint_id}/rotate-secret": {path: fmt.Sprint(B.webhook), check: notFound},
		"GET /api/admin/v1/webhook-deliveries":                             {check: notB(B.deadHook)},
		"GET /api/admin/v1/webhook-deliveries#foreign-endpoint": {query: fmt.Sprintf("endpoint_id=%d", B.webhook), check: func(t *testing.T, st int, body string) {
			noneOfB(t, st, body)
			if !strings.Contains(body, `"deliveries":[]`) {
				t.Fatalf("deliveries of B's endpoint: %s", body)
			}
		}},
		"POST /api/admin/v1/webhook-deliveries/{delivery_id}/replay": {path: fmt.Sprint(B.deadHook), check: notFound},
		"POST /api/admin/v1/member-imports": {query: "dry_run=true", body: map[string]any{"openid": B.openid}, check: func(t *testing.T, st int, body string) {
			if st != http.StatusBadRequest { // a JSON body is not a CSV file
				t.Fatalf("import of a JSON body: %d %s", st, body)
			}
		}},
		"GET /api/admin/v1/member-imports/{import_id}": {path: fmt.Sprint(B.imported), check: notFound},
		// Surveys: B's survey is not found; A's list and results hold none of B's.
		"GET /api/admin/v1/surveys":               {check: notB(bSurvey.ID)},
		"POST /api/admin/v1/surveys":              {body: map[string]any{"name": ""}, check: func(t *testing.T, st int, _ string) {}},
		"GET /api/admin/v1/surveys/results":       {query: fmt.Sprintf("survey_id=%d", bSurvey.ID), check: noneOfB},
		"GET /api/admin/v1/surveys/{survey_id}":   {path: fmt.Sprint(bSurvey.ID), check: notFound},
		"PATCH /api/admin/v1/surveys/{survey_id}": {path: fmt.Sprint(bSurvey.ID), body: map[string]any{"enabled": true}, check: notFound},
		// Referral settings and report are the caller's merchant's only.
		"GET /api/admin/v1/referrals/settings": {check: noneOfB},
		"PUT /api/admin/v1/referrals/settings": {body: map[string]any{"referrer_points": 5, "referee_points": 5}, check: noneOfB},
		"GET /api/admin/v1/referrals/report":   {check: noneOfB},
		// The sandbox tools act on the caller's merchant only.
		"POST /api/admin/v1/sandbox/follow":        {body: map[string]any{"openid": "o_tenant"}, check: noneOfB},
		"POST /api/admin/v1/sandbox/unfollow":      {body: map[string]any{"openid": "o_tenant"}, check: noneOfB},
		"POST /api/admin/v1/sandbox/scan":          {body: map[string]any{"openid": "o_tenant", "scene": "x"}, check: noneOfB},
		"POST /api/admin/v1/sandbox/message":       {body: map[string]any{"openid": "o_tenant", "text": "hi"}, check: noneOfB},
		"POST /api/admin/v1/sandbox/receipt":       {body: map[string]any{"openid": "o_tenant", "msg_id": 1, "status": "success"}, check: noneOfB},
		"POST /api/admin/v1/sandbox/mp-login-code": {body: map[string]any{}, check: noneOfB},
		"POST /api/admin/v1/sandbox/phone-code":    {body: map[string]any{"phone": "13800000000"}, check: noneOfB},
		"POST /api/admin/v1/sandbox/oauth-code":    {body: map[string]any{}, check: noneOfB},
		"GET /api/admin/v1/sandbox/sent":           {check: noneOfB},
		"POST /api/admin/v1/login":                 {body: map[string]string{"username": "otherowner", "password": "wrong"}, check: func(t *testing.T, st int, _ string) {}},
	}

	// Every admin route has a case.
	var adminRoutes []string
	for _, r := range routesOf(t, a) {
		if strings.Contains(r, " /api/admin/v1/") {
			adminRoutes = append(adminRoutes, r)
			if _, ok := cases[r]; !ok {
				t.Errorf("admin route %s has no tenant-isolation case: add one", r)
			}
		}
	}
	if t.Failed() {
		return
	}
	keys := make([]string, 0, len(cases))
	for k := range cases {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { // logout last: it ends A's session
		if strings.HasSuffix(keys[i], "/logout") != strings.HasSuffix(keys[j], "/logout") {
			return strings.HasSuffix(keys[j], "/logout")
		}
		return keys[i] < keys[j]
	})
	for _, key := range keys {
		c := cases[key]
		route, _, _ := strings.Cut(key, "#")
		if !slices.Contains(adminRoutes, route) {
			t.Errorf("case %s names no route", key)
			continue
		}
		method, path, _ := strings.Cut(route, " ")
		path = regexp.MustCompile(`\{[a-z_]+\}`).ReplaceAllString(path, c.path)
		if c.query != "" {
			path += "?" + c.query
		}
		t.Run(key, func(t *testing.T) {
			status, body := a.raw(method, path, aToken, c.body)
			if c.check == nil {
				if status != http.StatusNotFound || !strings.Contains(body, `"not_found"`) {
					t.Fatalf("%s %s with B's ids: %d %s, want 404", method, path, status, body)
				}
				return
			}
			c.check(t, status, body)
		})
	}

	// B's things are as B left them.
	var detail struct {
		Remark string
		Tags   []struct{ ID uint64 }
	}
	if st := a.call("GET", fmt.Sprintf("/api/admin/v1/members/%d", B.member), bToken, nil, &detail); st != 200 ||
		detail.Remark != "" || len(detail.Tags) != 1 || detail.Tags[0].ID != B.tag {
		t.Fatalf("B's member changed: %d %+v", st, detail)
	}
	if n := a.count("staff", "id = ? AND disabled_at IS NULL", B.staff); n != 1 {
		t.Fatal("B's staff account was disabled")
	}
	if n := a.count("api_keys", "id = ? AND revoked_at IS NULL AND created_by IN (SELECT id FROM staff WHERE merchant_id = ?)", B.apiKey, other.ID); n != 1 {
		t.Fatal("B's API key was revoked or moved")
	}
	if n := a.count("tags", "id = ? AND merchant_id = ?", B.tag, other.ID); n != 1 {
		t.Fatal("B's tag was deleted")
	}
	if n := a.count("member_tags", "merchant_id = ? AND member_id = ?", a.merchant, B.member); n != 0 {
		t.Fatal("A's tag was assigned to B's member")
	}
	if n := a.count("points_orders", "merchant_id = ? AND external_id = ? AND refunded_fen = 0", other.ID, B.order); n != 1 {
		t.Fatal("B's order was refunded")
	}
	if n := a.count("points_redemptions", "id = ? AND status = 'completed'", B.redeemed); n != 1 {
		t.Fatal("B's redemption was cancelled")
	}
	if n := a.count("points_redemptions", "merchant_id = ? AND member_id = ?", other.ID, B.member); n != 2 {
		t.Fatalf("B's member has %d redemptions, want only the fixture's two (tea and coupon)", n)
	}
	if n := a.count("points_ledger", "merchant_id = ? AND member_id = ? AND kind = 'adjust'", other.ID, B.member); n != 0 {
		t.Fatal("B's member was adjusted")
	}
	if n := a.count("campaigns", "id = ? AND name = 'Sale' AND status = 'scheduled'", B.campaign); n != 1 {
		t.Fatal("B's campaign was changed")
	}
	if n := a.count("segments", "id = ? AND name = 'followers'", B.segment); n != 1 {
		t.Fatal("B's segment was changed or deleted")
	}
	if n := a.count("members", "id = ? AND erased_at IS NULL", B.member); n != 1 {
		t.Fatal("B's member was erased")
	}
	if n := a.count("care_rules", "id = ? AND enabled = ? AND deleted_at IS NULL", B.careRule, true); n != 1 {
		t.Fatal("B's care rule was disabled or deleted")
	}
	if n := a.count("points_tiers", "id = ? AND name = 'Gold'", B.tier); n != 1 {
		t.Fatal("B's tier was changed or deleted")
	}
	if n := a.count("webhook_endpoints", "id = ? AND merchant_id = ? AND enabled = ?", B.webhook, other.ID, true); n != 1 {
		t.Fatal("B's webhook endpoint was disabled or deleted")
	}
	if n := a.count("webhook_deliveries", "id = ? AND status = 'dead'", B.deadHook); n != 1 {
		t.Fatal("B's dead webhook delivery was replayed")
	}
	if n := a.count("points_rewards", "id = ? AND name = 'Tea' AND deleted_at IS NULL", B.reward); n != 1 {
		t.Fatal("B's reward was changed or deleted")
	}
	if n := a.count("audit_log", "merchant_id = ? AND actor_id IN (SELECT id FROM staff WHERE merchant_id = ?)", other.ID, a.merchant); n != 0 {
		t.Fatal("A's calls were recorded in B's audit log")
	}
}

// raw makes a request and returns the status and body as text.
// csv posts a CSV body.
func (a *testApp) csv(path, token, body string) (int, string) {
	a.t.Helper()
	req, _ := http.NewRequest("POST", a.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := a.client().Do(req)
	if err != nil {
		a.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func (a *testApp) raw(method, path, token string, body any) (int, string) {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, a.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := a.client().Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// A channel's figures come from the members it brought and their orders:
// a follow through the channel's code, an order (and a fully refunded one,
// which does not count) through the orders API.
func TestChannelFiguresEndToEnd(t *testing.T) {
	a := startApp(t)
	token := a.login()
	var ch struct{ ID uint64 }
	if st := a.call("POST", "/api/admin/v1/channels", token, map[string]any{"name": "Table card", "scene": "table-7"}, &ch); st != 201 {
		t.Fatalf("channel: %d", st)
	}
	var followed struct {
		MemberID uint64 `json:"member_id"`
	}
	a.call("POST", "/api/admin/v1/sandbox/follow", token, map[string]string{"scene": "table-7"}, &followed)
	a.call("POST", "/api/admin/v1/sandbox/follow", token, map[string]string{}, nil) // another channel
	for i, amount := range []int{8800, 5000} {
		body := map[string]any{"external_id": fmt.Sprintf("t7-%d", i), "member_id": followed.MemberID, "amount_fen": amount}
		if st := a.call("POST", "/api/admin/v1/orders", token, body, nil); st != 201 {
			t.Fatalf("order: %d", st)
		}
	}
	if st := a.call("POST", "/api/admin/v1/orders/t7-1/refunds", token, map[string]any{"refund_id": "r", "amount_fen": 5000}, nil); st != 201 {
		t.Fatalf("refund: %d", st)
	}
	var list struct {
		Channels []struct {
			Scene                      string
			Followers, Members, Orders int64
		}
	}
	a.call("GET", "/api/admin/v1/channels", token, nil, &list)
	if len(list.Channels) != 1 || list.Channels[0].Followers != 1 || list.Channels[0].Members != 1 || list.Channels[0].Orders != 1 {
		t.Fatalf("channels: %+v", list.Channels)
	}
}
