package points

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apicontract"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/member"
)

// api is a gin engine with the points routes, as cmd/loyalty mounts them:
// admin routes behind a stand-in for admin's authentication (the request's
// principal is chosen by the X-Test-Principal header), member routes behind
// a stand-in for member.Handler's token check using real member tokens.
type api struct {
	t          *testing.T
	engine     *gin.Engine
	principals map[string]authz.Principal
	tokens     *member.Tokens
}

func newAPI(t *testing.T, fs ...*fixture) *api {
	t.Helper()
	gin.SetMode(gin.TestMode)
	a := &api{t: t, engine: gin.New(), principals: map[string]authz.Principal{},
		tokens: member.NewTokens([]byte("0123456789abcdef0123456789abcdef"), fs[0].clock.Now)}
	for i, f := range fs {
		a.principals[fmt.Sprintf("owner%d", i)] = authz.Principal{MerchantID: f.merchantID, StaffID: 1, Role: authz.RoleOwner, Name: "owner"}
		a.principals[fmt.Sprintf("viewer%d", i)] = authz.Principal{MerchantID: f.merchantID, StaffID: 2, Role: authz.RoleViewer, Name: "viewer"}
		a.principals[fmt.Sprintf("pos%d", i)] = authz.Principal{MerchantID: f.merchantID, APIKeyID: 3, Name: "pos",
			Scopes: []authz.Perm{authz.OrdersWrite}}
	}
	a.engine.NoRoute(httpx.NotFound)
	admin := a.engine.Group("/api/admin/v1", func(c *gin.Context) {
		if p, ok := a.principals[c.GetHeader("X-Test-Principal")]; ok {
			c.Request = c.Request.WithContext(authz.WithPrincipal(c.Request.Context(), p))
		}
		c.Next()
	})
	h := NewHandler(fs[0].svc)
	h.RegisterAdmin(admin)
	requireMember := func(c *gin.Context) {
		mid, _ := strconv.ParseUint(c.Param("merchant_id"), 10, 64)
		tok, _ := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		tm, id, err := a.tokens.Check(tok)
		if err != nil || tm != mid {
			httpx.Fail(c, member.ErrBadMemberToken)
			return
		}
		c.Set("test.member", [2]uint64{tm, id})
		c.Next()
	}
	h.RegisterMember(a.engine.Group("/api"), requireMember, func(c *gin.Context) (uint64, uint64) {
		ids := c.MustGet("test.member").([2]uint64)
		return ids[0], ids[1]
	})
	return a
}

type reply struct {
	code int
	body map[string]any
	raw  string
}

func (r reply) errCode() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		return fmt.Sprint(e["code"])
	}
	return ""
}

func (r reply) field(name string) string {
	if e, ok := r.body["error"].(map[string]any); ok {
		if fs, ok := e["fields"].(map[string]any); ok {
			return fmt.Sprint(fs[name])
		}
	}
	return ""
}

// num reads a number at a dotted path of the JSON body.
func (r reply) num(path string) float64 {
	var v any = r.body
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return -1
		}
		v = m[k]
	}
	n, _ := v.(float64)
	return n
}

func (a *api) do(method, path, who string, body any) reply {
	a.t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Content-Type", "application/json")
	if strings.HasPrefix(who, "member:") {
		req.Header.Set("Authorization", "Bearer "+strings.TrimPrefix(who, "member:"))
	} else if who != "" {
		req.Header.Set("X-Test-Principal", who)
	}
	rec := httptest.NewRecorder()
	a.engine.ServeHTTP(rec, req)
	apicontract.Recorded(a.t, req, rec.Code, rec.Header(), rec.Body.Bytes())
	out := reply{code: rec.Code, raw: rec.Body.String()}
	_ = json.Unmarshal(rec.Body.Bytes(), &out.body)
	return out
}

func (a *api) memberToken(merchantID, memberID uint64) string {
	tok, _, err := a.tokens.Issue(merchantID, memberID)
	if err != nil {
		a.t.Fatal(err)
	}
	return "member:" + tok
}

func want(t *testing.T, r reply, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d: %s", r.code, code, r.raw)
	}
}

const admin = "/api/admin/v1"

func TestHTTPOrdersAndRefunds(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		a := newAPI(t, f)
		open := "oa-http-" + f.ext()
		m := f.newMember(memberOpts{openID: open})
		body := map[string]any{"external_id": "T-1", "member_id": m, "amount_fen": 2599,
			"items": []map[string]any{{"sku": "A", "name": "咖啡", "quantity": 2, "price_fen": 1300}}}
		r := a.do("POST", admin+"/orders", "pos0", body)
		want(t, r, http.StatusCreated)
		if r.num("order.points") != 25 || r.body["replayed"] != false {
			t.Fatalf("order: %s", r.raw)
		}
		again := a.do("POST", admin+"/orders", "pos0", body)
		want(t, again, http.StatusOK)
		if again.num("order.id") != r.num("order.id") || again.body["replayed"] != true {
			t.Fatalf("replay: %s", again.raw)
		}
		for name, c := range map[string]struct {
			body  string
			code  int
			field string
		}{
			"fraction":     {`{"external_id":"T-2","member_id":` + u64(m) + `,"amount_fen":12.5}`, 400, "amount_fen"},
			"string":       {`{"external_id":"T-2","member_id":` + u64(m) + `,"amount_fen":"100"}`, 400, "amount_fen"},
			"zero":         {`{"external_id":"T-2","member_id":` + u64(m) + `,"amount_fen":0}`, 400, "amount_fen"},
			"negative":     {`{"external_id":"T-2","member_id":` + u64(m) + `,"amount_fen":-1}`, 400, "amount_fen"},
			"absurd":       {`{"external_id":"T-2","member_id":` + u64(m) + `,"amount_fen":1000000000001}`, 400, "amount_fen"},
			"overflow":     {`{"external_id":"T-2","member_id":` + u64(m) + `,"amount_fen":99999999999999999999}`, 400, "amount_fen"},
			"unknown":      {`{"external_id":"T-2","member_id":` + u64(m) + `,"amount_fen":1,"coupon":1}`, 400, "coupon"},
			"no member":    {`{"external_id":"T-2","amount_fen":100}`, 400, "member_id"},
			"ghost member": {`{"external_id":"T-2","member_id":999999999999,"amount_fen":100}`, 422, ""},
			"ghost openid": {`{"external_id":"T-3","openid":"nobody","amount_fen":100}`, 422, ""},
			"ghost phone":  {`{"external_id":"T-3","phone":"13900000000","amount_fen":100}`, 422, ""},
			// A phone number that cannot be one is a bad request naming
			// the field, not an unknown member.
			"short phone":   {`{"external_id":"T-3","phone":"123","amount_fen":100}`, 400, "phone"},
			"+86 short":     {`{"external_id":"T-3","phone":"+86123","amount_fen":100}`, 400, "phone"},
			"letters phone": {`{"external_id":"T-3","phone":"1380013800a","amount_fen":100}`, 400, "phone"},
			"long phone":    {`{"external_id":"T-3","phone":"+123456789012345678901","amount_fen":100}`, 400, "phone"},
			"conflict":      {`{"external_id":"T-1","member_id":` + u64(m) + `,"amount_fen":2600}`, 409, ""},
		} {
			r := a.do("POST", admin+"/orders", "pos0", c.body)
			if r.code != c.code || (c.field != "" && r.field(c.field) == "") {
				t.Errorf("%s: %d %s, want %d naming %q", name, r.code, r.raw, c.code, c.field)
			}
		}
		want(t, a.do("POST", admin+"/orders", "pos0", map[string]any{"external_id": "T-4", "openid": open, "amount_fen": 100}), http.StatusCreated)
		// Viewers cannot post orders; the POS key cannot read ledgers.
		want(t, a.do("POST", admin+"/orders", "viewer0", body), http.StatusForbidden)
		want(t, a.do("GET", admin+"/members/"+u64(m)+"/points", "pos0", nil), http.StatusForbidden)
		g := a.do("GET", admin+"/orders/T-1", "viewer0", nil)
		want(t, g, http.StatusOK)
		if g.num("amount_fen") != 2599 || len(g.body["items"].([]any)) != 1 {
			t.Fatalf("get order: %s", g.raw)
		}
		rf := a.do("POST", admin+"/orders/T-1/refunds", "pos0", map[string]any{"refund_id": "R1", "amount_fen": 1300})
		want(t, rf, http.StatusCreated)
		if rf.num("refund.points_reversed") != 12 || rf.num("order.refunded_fen") != 1300 {
			t.Fatalf("refund: %s", rf.raw)
		}
		want(t, a.do("POST", admin+"/orders/T-1/refunds", "pos0", map[string]any{"refund_id": "R1", "amount_fen": 1300}), http.StatusOK)
		r = a.do("POST", admin+"/orders/T-1/refunds", "pos0", map[string]any{"refund_id": "R2", "amount_fen": 1300})
		want(t, r, http.StatusUnprocessableEntity)
		want(t, a.do("POST", admin+"/orders/nope/refunds", "pos0", map[string]any{"refund_id": "R1", "amount_fen": 1}), http.StatusNotFound)
		f.wantBalance(m, 14, 0)
		// Orders and the refund were audited with the API key as the actor.
		var n int64
		gdb.Table("audit_log").Where("merchant_id = ? AND actor_type = ? AND action IN ?", f.merchantID, "api_key",
			[]string{"order.create", "order.refund"}).Count(&n)
		if n != 3 {
			t.Fatalf("%d audit entries", n)
		}
	})
}

// campaignSet is a Campaigns of fixed (merchant, campaign) pairs.
type campaignSet map[[2]uint64]bool

func (c campaignSet) CampaignExists(_ context.Context, merchantID, campaignID uint64) (bool, error) {
	return c[[2]uint64{merchantID, campaignID}], nil
}

// An order may name only one of the caller's campaigns: another merchant's
// campaign id, or one that does not exist, is 400 naming campaign_id and
// nothing is stored; without a way to check campaigns, any campaign_id is
// refused.
func TestHTTPOrderCampaignMustBeTheMerchants(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f, other := newFixture(t, gdb), newFixture(t, gdb)
		a := newAPI(t, f)
		m := f.newMember(memberOpts{})
		order := func(ext string, campaignID uint64) reply {
			return a.do("POST", admin+"/orders", "pos0", map[string]any{"external_id": ext, "member_id": m,
				"amount_fen": 1000, "campaign_id": campaignID})
		}
		r := order("C-0", 7)
		if r.code != http.StatusBadRequest || r.field("campaign_id") == "" {
			t.Fatalf("campaign id without a campaign checker: %d %s, want 400 naming campaign_id", r.code, r.raw)
		}
		f.svc.UseCampaigns(campaignSet{{f.merchantID, 7}: true, {other.merchantID, 8}: true})
		for name, id := range map[string]uint64{"another merchant's": 8, "unknown": 9} {
			r := order("C-"+name, id)
			if r.code != http.StatusBadRequest || r.field("campaign_id") == "" {
				t.Errorf("%s campaign: %d %s, want 400 naming campaign_id", name, r.code, r.raw)
			}
		}
		var n int64
		gdb.Table("points_orders").Where("merchant_id = ?", f.merchantID).Count(&n)
		if n != 0 {
			t.Fatalf("refused orders stored %d rows", n)
		}
		f.wantBalance(m, 0, 0)
		r = order("C-1", 7)
		want(t, r, http.StatusCreated)
		if r.num("order.campaign_id") != 7 {
			t.Fatalf("own campaign: %s", r.raw)
		}
	})
}

func TestHTTPAdminCatalogueAndLedger(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		a := newAPI(t, f)
		// Rules.
		r := a.do("GET", admin+"/points/rules", "viewer0", nil)
		want(t, r, http.StatusOK)
		if r.num("version") != 0 || r.num("rules.earn.per_fen") != 100 {
			t.Fatalf("default rules %s", r.raw)
		}
		r = a.do("PUT", admin+"/points/rules", "owner0", `{"earn":{"points":2,"per_fen":100},"expiry":{"policy":"sometimes"},"keyword":""}`)
		want(t, r, http.StatusBadRequest)
		if r.field("expiry.policy") == "" || r.field("keyword") == "" {
			t.Fatalf("rules validation %s", r.raw)
		}
		want(t, a.do("PUT", admin+"/points/rules", "viewer0", `{}`), http.StatusForbidden)
		r = a.do("PUT", admin+"/points/rules", "owner0", `{"earn":{"points":2,"per_fen":100},"pending_days":0}`)
		want(t, r, http.StatusOK)
		if r.num("version") != 1 || r.num("rules.earn.points") != 2 || r.num("rules.expiry.months") != 12 {
			t.Fatalf("saved rules %s", r.raw)
		}
		want(t, a.do("GET", admin+"/points/rules?version=1", "viewer0", nil), http.StatusOK)
		want(t, a.do("GET", admin+"/points/rules?version=7", "viewer0", nil), http.StatusNotFound)
		// Tiers.
		r = a.do("POST", admin+"/tiers", "owner0", map[string]any{"name": "银卡", "level": 2, "threshold": 100000,
			"multiplier_pct": 150, "benefits": []string{"9.5折"}})
		want(t, r, http.StatusCreated)
		tierID := u64(uint64(r.num("id")))
		want(t, a.do("POST", admin+"/tiers", "owner0", map[string]any{"name": "x", "level": 0, "threshold": -1}), http.StatusBadRequest)
		r = a.do("PATCH", admin+"/tiers/"+tierID, "owner0", map[string]any{"threshold": 90000})
		want(t, r, http.StatusOK)
		if r.num("threshold") != 90000 || r.body["name"] != "银卡" {
			t.Fatalf("patched tier %s", r.raw)
		}
		r = a.do("GET", admin+"/tiers", "viewer0", nil)
		if len(r.body["tiers"].([]any)) != 1 {
			t.Fatalf("tiers %s", r.raw)
		}
		// Rewards.
		r = a.do("POST", admin+"/rewards", "owner0", map[string]any{"name": "杯子", "kind": "points_cash", "points_cost": 50,
			"cash_fen": 990, "stock": 3, "per_member_limit": 1})
		want(t, r, http.StatusCreated)
		rewardID := u64(uint64(r.num("id")))
		if r.num("stock_left") != 3 {
			t.Fatalf("reward %s", r.raw)
		}
		r = a.do("POST", admin+"/rewards", "owner0", map[string]any{"name": "x", "kind": "points_cash", "points_cost": 0})
		want(t, r, http.StatusBadRequest)
		if r.field("points_cost") == "" || r.field("cash_fen") == "" {
			t.Fatalf("reward validation %s", r.raw)
		}
		r = a.do("PATCH", admin+"/rewards/"+rewardID, "owner0", `{"stock":null,"valid_until":"2030-01-01T00:00:00Z"}`)
		want(t, r, http.StatusOK)
		if r.body["stock"] != nil || r.body["valid_until"] == nil {
			t.Fatalf("patched reward %s", r.raw)
		}
		want(t, a.do("GET", admin+"/rewards/"+rewardID, "viewer0", nil), http.StatusOK)
		// Malformed ids answer like unknown ones.
		want(t, a.do("GET", admin+"/tiers/abc", "viewer0", nil), http.StatusNotFound)
		want(t, a.do("PATCH", admin+"/rewards/0", "owner0", map[string]any{"stock": 1}), http.StatusNotFound)
		want(t, a.do("DELETE", admin+"/tiers/01", "owner0", nil), http.StatusNotFound)
		// Adjustments and the member's ledger.
		m := f.member()
		r = a.do("POST", admin+"/members/"+u64(m)+"/points/adjustments", "owner0", map[string]any{"points": 80})
		want(t, r, http.StatusBadRequest)
		if r.field("reason") == "" {
			t.Fatalf("adjust without reason %s", r.raw)
		}
		want(t, a.do("POST", admin+"/members/"+u64(m)+"/points/adjustments", "viewer0",
			map[string]any{"points": 80, "reason": "x"}), http.StatusForbidden)
		adj := map[string]any{"points": 80, "reason": "店内补录", "request_id": "adj-1"}
		want(t, a.do("POST", admin+"/members/"+u64(m)+"/points/adjustments", "owner0", adj), http.StatusCreated)
		want(t, a.do("POST", admin+"/members/"+u64(m)+"/points/adjustments", "owner0", adj), http.StatusOK)
		r = a.do("POST", admin+"/members/"+u64(m)+"/points/adjustments", "owner0", map[string]any{"points": -81, "reason": "x"})
		want(t, r, http.StatusUnprocessableEntity)
		for i := 0; i < 3; i++ {
			f.order(m, 100)
		}
		r = a.do("GET", admin+"/members/"+u64(m)+"/points?limit=2", "viewer0", nil)
		want(t, r, http.StatusOK)
		if r.num("summary.available") != 86 || len(r.body["entries"].([]any)) != 2 || r.body["next_cursor"] == nil {
			t.Fatalf("member points %s", r.raw)
		}
		r2 := a.do("GET", admin+"/members/"+u64(m)+"/points?limit=2&cursor="+r.body["next_cursor"].(string), "viewer0", nil)
		want(t, r2, http.StatusOK)
		if len(r2.body["entries"].([]any)) != 2 || r2.body["next_cursor"] == nil {
			t.Fatalf("page 2 %s", r2.raw)
		}
		want(t, a.do("GET", admin+"/members/"+u64(m)+"/points?cursor=garbage", "viewer0", nil), http.StatusBadRequest)
		want(t, a.do("GET", admin+"/members/"+u64(m)+"/points?limit=1000", "viewer0", nil), http.StatusBadRequest)
		// Reports.
		r = a.do("GET", admin+"/points/liability", "viewer0", nil)
		want(t, r, http.StatusOK)
		if r.num("outstanding") != 86 || len(r.body["periods"].([]any)) != 12 {
			t.Fatalf("liability %s", r.raw)
		}
		want(t, a.do("GET", admin+"/points/liability?from=2026-13", "viewer0", nil), http.StatusBadRequest)
		want(t, a.do("GET", admin+"/points/expiring?days=400", "viewer0", nil), http.StatusBadRequest)
		r = a.do("GET", admin+"/points/expiring?days=365", "viewer0", nil)
		want(t, r, http.StatusOK)
		if len(r.body["members"].([]any)) != 1 {
			t.Fatalf("expiring %s", r.raw)
		}
		// Deleting.
		want(t, a.do("DELETE", admin+"/tiers/"+tierID, "owner0", nil), http.StatusNoContent)
		want(t, a.do("DELETE", admin+"/rewards/"+rewardID, "owner0", nil), http.StatusNoContent)
		want(t, a.do("GET", admin+"/rewards/"+rewardID, "owner0", nil), http.StatusNotFound)
	})
}

func TestHTTPMemberRoutes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		a := newAPI(t, f)
		f.setRules(func(r *Rules) {
			r.CheckIn = CheckIn{Points: 2, StreakBonuses: []StreakBonus{{Day: 2, Points: 3}}}
			r.Bonuses.FirstFollow = 10
		})
		f.tiers()
		m := f.newMember(memberOpts{following: true})
		tok := a.memberToken(f.merchantID, m)
		base := "/api/member/v1/" + u64(f.merchantID)
		want(t, a.do("GET", base+"/points", "", nil), http.StatusUnauthorized)
		r := a.do("GET", base+"/points", tok, nil)
		want(t, r, http.StatusOK)
		if r.num("available") != 10 { // the follow bonus, settled on first look
			t.Fatalf("points %s", r.raw)
		}
		f.order(m, 20000)
		r = a.do("POST", base+"/checkin", tok, nil)
		want(t, r, http.StatusCreated)
		if r.num("points") != 2 || r.num("streak") != 1 {
			t.Fatalf("checkin %s", r.raw)
		}
		want(t, a.do("POST", base+"/checkin", tok, nil), http.StatusOK)
		r = a.do("GET", base+"/points/history?limit=10", tok, nil)
		want(t, r, http.StatusOK)
		if n := len(r.body["entries"].([]any)); n != 3 {
			t.Fatalf("history %s", r.raw)
		}
		r = a.do("GET", base+"/tier", tok, nil)
		want(t, r, http.StatusOK)
		cur, _ := r.body["current"].(map[string]any)
		next, _ := r.body["next"].(map[string]any)
		if cur["name"] != "普通" || next["name"] != "银卡" || r.num("to_next") != 80000 || r.body["counts_until"] == nil {
			t.Fatalf("tier %s", r.raw)
		}
		rw := f.reward(100, ptr(int64(1)))
		r = a.do("GET", base+"/rewards", tok, nil)
		if len(r.body["rewards"].([]any)) != 1 {
			t.Fatalf("rewards %s", r.raw)
		}
		path := base + "/rewards/" + u64(rw.ID) + "/redeem"
		want(t, a.do("POST", path, tok, `{}`), http.StatusBadRequest)
		r = a.do("POST", path, tok, map[string]any{"request_id": "tap-1"})
		want(t, r, http.StatusCreated)
		again := a.do("POST", path, tok, map[string]any{"request_id": "tap-1"})
		want(t, again, http.StatusOK)
		if again.num("redemption.id") != r.num("redemption.id") {
			t.Fatalf("replayed redemption %s", again.raw)
		}
		r = a.do("POST", path, tok, map[string]any{"request_id": "tap-2"})
		want(t, r, http.StatusUnprocessableEntity) // out of stock
		r = a.do("GET", base+"/redemptions", tok, nil)
		if len(r.body["redemptions"].([]any)) != 1 {
			t.Fatalf("redemptions %s", r.raw)
		}
		want(t, a.do("POST", base+"/rewards/abc/redeem", tok, map[string]any{"request_id": "x"}), http.StatusNotFound)
		// A token of this merchant does not open another merchant's routes.
		want(t, a.do("GET", "/api/member/v1/"+u64(f.merchantID+1)+"/points", tok, nil), http.StatusUnauthorized)
		r = a.do("GET", base+"/points", tok, nil)
		if r.num("available") != 112 || r.num("pending") != 0 || r.num("expiring_soon_days") != 30 {
			t.Fatalf("points after redeem %s", r.raw)
		}
		f.reconcile()
	})
}

// Staff redeem a reward for a member: the member's balance and the stock go
// down once however often the request is repeated, the redemption is
// audited with staff as the actor, and what the member cannot afford or the
// reward cannot give is refused with nothing changed.
func TestHTTPAdminRedeemForMember(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		a := newAPI(t, f)
		m := f.member()
		f.order(m, 100000) // 1000 points
		f.wantBalance(m, 1000, 0)
		rw := f.reward(300, ptr(int64(2)))
		path := admin + "/members/" + u64(m) + "/redemptions"

		r := a.do("POST", path, "owner0", `{}`)
		want(t, r, http.StatusBadRequest)
		if r.field("reward_id") == "" || r.field("request_id") == "" {
			t.Fatalf("validation %s", r.raw)
		}
		body := map[string]any{"reward_id": rw.ID, "request_id": "till-1"}
		want(t, a.do("POST", path, "viewer0", body), http.StatusForbidden)
		want(t, a.do("POST", path, "pos0", body), http.StatusForbidden)
		want(t, a.do("POST", admin+"/members/99999999/redemptions", "owner0", body), http.StatusNotFound)
		want(t, a.do("POST", path, "owner0", map[string]any{"reward_id": 99999999, "request_id": "till-x"}), http.StatusNotFound)
		f.wantBalance(m, 1000, 0)

		r = a.do("POST", path, "owner0", body)
		want(t, r, http.StatusCreated)
		if r.num("redemption.points") != 300 || r.num("redemption.member_id") != float64(m) || r.body["replayed"] != false {
			t.Fatalf("redemption %s", r.raw)
		}
		again := a.do("POST", path, "owner0", body)
		want(t, again, http.StatusOK)
		if again.num("redemption.id") != r.num("redemption.id") || again.body["replayed"] != true {
			t.Fatalf("replayed %s", again.raw)
		}
		f.wantBalance(m, 700, 0)
		if got, _ := f.svc.GetReward(f.ctx(), f.merchantID, rw.ID); got.StockLeft == nil || *got.StockLeft != 1 {
			t.Fatalf("stock left %v", got.StockLeft)
		}
		// The same request id for another reward is a conflict.
		other := f.reward(10, nil)
		want(t, a.do("POST", path, "owner0", map[string]any{"reward_id": other.ID, "request_id": "till-1"}), http.StatusConflict)

		// Out of stock after the second; then too few points for a dear one.
		want(t, a.do("POST", path, "owner0", map[string]any{"reward_id": rw.ID, "request_id": "till-2"}), http.StatusCreated)
		r = a.do("POST", path, "owner0", map[string]any{"reward_id": rw.ID, "request_id": "till-3"})
		want(t, r, http.StatusUnprocessableEntity)
		dear := f.reward(5000, nil)
		want(t, a.do("POST", path, "owner0", map[string]any{"reward_id": dear.ID, "request_id": "till-4"}), http.StatusUnprocessableEntity)
		f.wantBalance(m, 400, 0)

		r = a.do("GET", admin+"/redemptions?member_id="+u64(m), "viewer0", nil)
		want(t, r, http.StatusOK)
		if n := len(r.body["redemptions"].([]any)); n != 2 {
			t.Fatalf("redemptions %s", r.raw)
		}
		var audited int64
		gdb.Table("audit_log").Where("merchant_id = ? AND action = ? AND actor_type = ? AND actor_id = ?",
			f.merchantID, "redemption.create", "staff", 1).Count(&audited)
		if audited != 2 {
			t.Fatalf("%d audit entries, want 2", audited)
		}
		f.reconcile()
	})
}

// The coupon list filters by effective status, member and reward, pages
// by cursor, refuses bad filters with their fields, and through the HTTP
// verify a coupon is used once: the second verification is refused (409).
func TestHTTPCouponsListAndVerify(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		a := newAPI(t, f)
		m1, m2 := f.member(), f.member()
		f.order(m1, 100000)
		f.order(m2, 100000)
		short, long := f.couponReward(10, 1, nil), f.couponReward(10, 30, nil)
		c1 := f.couponOf(m1, short)
		c2 := f.couponOf(m1, long)
		c3 := f.couponOf(m2, long)
		c4 := f.couponOf(m2, long)

		codes := func(r reply) string {
			var out []string
			for _, c := range r.body["coupons"].([]any) {
				out = append(out, c.(map[string]any)["code"].(string))
			}
			return strings.Join(out, ",")
		}
		r := a.do("GET", admin+"/coupons", "viewer0", nil)
		want(t, r, http.StatusOK)
		if got := codes(r); got != strings.Join([]string{c4.Code, c3.Code, c2.Code, c1.Code}, ",") || r.body["next_cursor"] != nil {
			t.Fatalf("all coupons %s", r.raw)
		}
		r = a.do("GET", admin+"/coupons?member_id="+u64(m1), "viewer0", nil)
		if got := codes(r); got != c2.Code+","+c1.Code {
			t.Fatalf("m1's coupons %s", r.raw)
		}
		// The list names the members: the name, and the phone as the
		// caller's role may see it (masked for a viewer, as member lists).
		phone := fmt.Sprintf("139%08d", f.merchantID%100000000)
		if err := gdb.Exec("UPDATE members SET name = ?, phone = ? WHERE id = ?", "韩梅梅", phone, m1).Error; err != nil {
			t.Fatal(err)
		}
		for who, wantPhone := range map[string]any{"viewer0": phone[:3] + "****" + phone[7:], "owner0": phone} {
			r = a.do("GET", admin+"/coupons", who, nil)
			for _, it := range r.body["coupons"].([]any) {
				cp := it.(map[string]any)
				wantName, wantPh := "韩梅梅", wantPhone
				if uint64(cp["member_id"].(float64)) == m2 {
					wantName, wantPh = "", nil
				}
				if cp["member_name"] != wantName || cp["member_phone"] != wantPh {
					t.Fatalf("%s sees coupon %v of member %v as %q %v, want %q %v", who, cp["code"], cp["member_id"],
						cp["member_name"], cp["member_phone"], wantName, wantPh)
				}
			}
		}
		r = a.do("GET", admin+"/coupons?reward_id="+u64(short.ID), "viewer0", nil)
		if got := codes(r); got != c1.Code {
			t.Fatalf("the short reward's coupons %s", r.raw)
		}
		// Paging: two at a time.
		r = a.do("GET", admin+"/coupons?limit=2", "viewer0", nil)
		cur, _ := r.body["next_cursor"].(string)
		if codes(r) != c4.Code+","+c3.Code || cur == "" {
			t.Fatalf("page 1 %s", r.raw)
		}
		r = a.do("GET", admin+"/coupons?limit=2&cursor="+cur, "viewer0", nil)
		if codes(r) != c2.Code+","+c1.Code {
			t.Fatalf("page 2 %s", r.raw)
		}
		for q, field := range map[string]string{"status=lost": "status", "member_id=x": "member_id", "reward_id=0": "reward_id",
			"limit=0": "limit", "cursor=zz": "cursor"} {
			r = a.do("GET", admin+"/coupons?"+q, "viewer0", nil)
			want(t, r, http.StatusBadRequest)
			if r.field(field) == "" {
				t.Errorf("%s: %s", q, r.raw)
			}
		}
		want(t, a.do("GET", admin+"/coupons?bogus=1", "viewer0", nil), http.StatusBadRequest)

		// Verify c3 over HTTP; the second attempt is refused.
		want(t, a.do("POST", admin+"/coupons/verify", "viewer0", map[string]any{"code": c3.Code, "request_id": "v"}), http.StatusForbidden)
		r = a.do("POST", admin+"/coupons/verify", "pos0", map[string]any{"code": c3.Code, "request_id": "till-1", "store": "Shop 1"})
		want(t, r, http.StatusCreated)
		r = a.do("POST", admin+"/coupons/verify", "owner0", map[string]any{"code": c3.Code, "request_id": "till-2"})
		want(t, r, http.StatusConflict)
		// The day after, the short coupon is expired.
		f.clock.Add(25 * time.Hour)
		if got := codes(a.do("GET", admin+"/coupons?status=used", "viewer0", nil)); got != c3.Code {
			t.Fatalf("used %s", got)
		}
		if got := codes(a.do("GET", admin+"/coupons?status=expired", "viewer0", nil)); got != c1.Code {
			t.Fatalf("expired %s", got)
		}
		if got := codes(a.do("GET", admin+"/coupons?status=issued", "viewer0", nil)); got != c4.Code+","+c2.Code {
			t.Fatalf("issued %s", got)
		}
		r = a.do("POST", admin+"/coupons/verify", "pos0", map[string]any{"code": c1.Code, "request_id": "till-3"})
		want(t, r, http.StatusUnprocessableEntity)
	})
}

// Every route of another merchant's resource answers 404, like an id that
// does not exist, and non-numeric ids are 404 too. The table must cover
// every registered route.
func TestHTTPTenantIsolation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		g := newFixture(t, gdb)
		a := newAPI(t, f, g) // owner0 is f's, owner1 is g's
		_, silver, _ := f.tiers()
		m := f.member()
		o := f.order(m, 100000)
		rw := f.reward(10, nil)
		red, _, err := f.svc.Redeem(f.ctx(), f.merchantID, m, rw.ID, "r")
		if err != nil {
			t.Fatal(err)
		}
		coupon := f.couponOf(m, f.couponReward(1, 30, nil))
		gm := g.member()
		gTok := a.memberToken(g.merchantID, gm)
		fTok := a.memberToken(f.merchantID, m)
		ext, tier, reward, redemption, mem := o.Order.ExternalID, u64(silver.ID), u64(rw.ID), u64(red.ID), u64(m)
		gBase := "/api/member/v1/" + u64(g.merchantID)
		cases := []struct {
			method, path, who string
			body              any
			code              int
		}{
			{"GET", admin + "/orders/" + ext, "owner1", nil, 404},
			{"POST", admin + "/orders/" + ext + "/refunds", "owner1", map[string]any{"refund_id": "x", "amount_fen": 1}, 404},
			{"POST", admin + "/orders", "owner1", map[string]any{"external_id": "n", "member_id": m, "amount_fen": 1}, 422},
			{"GET", admin + "/tiers/" + tier, "owner1", nil, 404},
			{"PATCH", admin + "/tiers/" + tier, "owner1", map[string]any{"threshold": 5}, 404},
			{"DELETE", admin + "/tiers/" + tier, "owner1", nil, 404},
			{"GET", admin + "/rewards/" + reward, "owner1", nil, 404},
			{"PATCH", admin + "/rewards/" + reward, "owner1", map[string]any{"points_cost": 5}, 404},
			{"DELETE", admin + "/rewards/" + reward, "owner1", nil, 404},
			{"GET", admin + "/redemptions/" + redemption, "owner1", nil, 404},
			{"POST", admin + "/redemptions/" + redemption + "/cancel", "owner1", map[string]any{"reason": "x"}, 404},
			{"GET", admin + "/members/" + mem + "/points", "owner1", nil, 404},
			{"POST", admin + "/members/" + mem + "/points/adjustments", "owner1", map[string]any{"points": 5, "reason": "x"}, 404},
			{"POST", admin + "/members/" + mem + "/redemptions", "owner1", map[string]any{"reward_id": rw.ID, "request_id": "x"}, 404},
			{"POST", admin + "/coupons/verify", "owner1", map[string]any{"code": coupon.Code, "request_id": "x"}, 404},
			{"GET", admin + "/coupons/" + coupon.Code, "owner1", nil, 404},
			// Non-numeric or non-canonical ids.
			{"GET", admin + "/tiers/abc", "owner0", nil, 404},
			{"PATCH", admin + "/tiers/01", "owner0", map[string]any{}, 404},
			{"DELETE", admin + "/tiers/-1", "owner0", nil, 404},
			{"GET", admin + "/rewards/1e3", "owner0", nil, 404},
			{"PATCH", admin + "/rewards/x", "owner0", map[string]any{}, 404},
			{"DELETE", admin + "/rewards/0", "owner0", nil, 404},
			{"GET", admin + "/redemptions/x", "owner0", nil, 404},
			{"POST", admin + "/redemptions/x/cancel", "owner0", map[string]any{"reason": "x"}, 404},
			{"GET", admin + "/members/x/points", "owner0", nil, 404},
			{"POST", admin + "/members/99999999999999999999/points/adjustments", "owner0", map[string]any{"points": 5, "reason": "x"}, 404},
			// Lists and reports of the other merchant show none of f's data.
			{"GET", admin + "/tiers", "owner1", nil, 200},
			{"GET", admin + "/rewards", "owner1", nil, 200},
			{"GET", admin + "/redemptions?member_id=" + mem, "owner1", nil, 200},
			{"GET", admin + "/coupons?member_id=" + mem, "owner1", nil, 200},
			{"GET", admin + "/points/rules", "owner1", nil, 200},
			{"PUT", admin + "/points/rules", "owner1", `{}`, 200},
			{"PATCH", admin + "/points/rules", "owner1", `{"daily_cap":7}`, 200},
			{"GET", admin + "/orders?member_id=" + mem, "owner1", nil, 200},
			{"GET", admin + "/points/liability", "owner1", nil, 200},
			{"GET", admin + "/points/expiring", "owner1", nil, 200},
			{"POST", admin + "/tiers", "owner1", map[string]any{"name": "g", "level": 1, "threshold": 0}, 201},
			{"POST", admin + "/rewards", "owner1", map[string]any{"name": "g", "kind": "gift", "points_cost": 1}, 201},
			// Member routes: g's member against f's reward; f's token on g's path.
			{"POST", gBase + "/rewards/" + reward + "/redeem", gTok, map[string]any{"request_id": "x"}, 404},
			{"GET", gBase + "/points", fTok, nil, 401},
			{"GET", gBase + "/points/history", fTok, nil, 401},
			{"GET", gBase + "/tier", fTok, nil, 401},
			{"GET", gBase + "/rewards", fTok, nil, 401},
			{"GET", gBase + "/redemptions", fTok, nil, 401},
			{"GET", gBase + "/coupons", fTok, nil, 401},
			{"POST", gBase + "/checkin", fTok, nil, 401},
		}
		covered := map[string]bool{}
		for _, c := range cases {
			r := a.do(c.method, c.path, c.who, c.body)
			if r.code != c.code {
				t.Errorf("%s %s as %s: %d %s, want %d", c.method, c.path, c.who, r.code, r.raw, c.code)
			}
			if c.code == 200 && strings.Contains(r.raw, `"`+mem+`"`) {
				t.Errorf("%s %s leaks the other merchant's member: %s", c.method, c.path, r.raw)
			}
			if c.code == 200 && (strings.Contains(r.raw, `"member_id":`+mem) || strings.Contains(r.raw, ext)) {
				t.Errorf("%s %s shows the other merchant's member or order: %s", c.method, c.path, r.raw)
			}
			covered[c.method+" "+routeOf(a.engine, c.method, c.path)] = true
		}
		for _, rt := range a.engine.Routes() {
			if !covered[rt.Method+" "+rt.Path] {
				t.Errorf("route %s %s has no isolation case", rt.Method, rt.Path)
			}
		}
		// Nothing of f's changed.
		f.wantBalance(m, 989, 0) // 1000, less the reward (10) and the coupon (1)
		if c, _ := f.svc.CouponByCode(f.ctx(), f.merchantID, coupon.Code); c.Status != CouponIssued {
			t.Fatalf("coupon changed by another merchant: %+v", c)
		}
		if r, _ := f.svc.GetReward(f.ctx(), f.merchantID, rw.ID); r.PointsCost != 10 {
			t.Fatal("reward changed by another merchant")
		}
		if rs, err := f.svc.Rules(f.ctx(), f.merchantID); err != nil || rs.Rules.DailyCap == 7 {
			t.Fatalf("rules changed by another merchant's patch: %+v %v", rs.Rules, err)
		}
	})
}

// routeOf returns the registered route a request path matches.
func routeOf(e *gin.Engine, method, path string) string {
	path, _, _ = strings.Cut(path, "?")
	for _, rt := range e.Routes() {
		if rt.Method != method {
			continue
		}
		pp, rp := strings.Split(path, "/"), strings.Split(rt.Path, "/")
		if len(pp) != len(rp) {
			continue
		}
		ok := true
		for i := range rp {
			if !strings.HasPrefix(rp[i], ":") && rp[i] != pp[i] {
				ok = false
				break
			}
		}
		if ok {
			return rt.Path
		}
	}
	return path
}
