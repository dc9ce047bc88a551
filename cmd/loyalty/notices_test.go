package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

type noticeSetting struct {
	Kind       string            `json:"kind"`
	Enabled    bool              `json:"enabled"`
	TemplateID string            `json:"template_id"`
	Fields     map[string]string `json:"fields"`
	CampaignID uint64            `json:"campaign_id"`
}

// sentTo returns what the simulator recorded for openid, by template.
func (a *testApp) sentTo(staff, openid string) map[string][]wechattest.Sent {
	a.t.Helper()
	var out struct{ Sent []wechattest.Sent }
	if st := a.call("GET", "/api/admin/v1/sandbox/sent", staff, nil, &out); st != 200 {
		a.t.Fatalf("sandbox/sent: %d", st)
	}
	by := map[string][]wechattest.Sent{}
	for _, m := range out.Sent {
		if m.ToUser == openid {
			by[m.TemplateID] = append(by[m.TemplateID], m)
		}
	}
	return by
}

// noticesSettled waits until no notice is left to send (nothing pending,
// claimed or sending in any notice kind's campaign).
func (a *testApp) noticesSettled() {
	a.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var open int64
		if err := a.db.Table("campaign_deliveries d").Joins("JOIN campaigns c ON c.id = d.campaign_id").
			Where("c.notice_kind IS NOT NULL AND d.status IN ?", []string{"pending", "claimed", "sending"}).
			Count(&open).Error; err != nil {
			a.t.Fatal(err)
		}
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("%d notices still unsent", open)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Service notices over HTTP, on the sandbox merchant as it starts (its
// notice kinds configured with the simulator's templates): an order of
// several lines is one "points earned" notice, and posting it again is
// none; redeeming a coupon reward is one "points redeemed" and one
// "coupon issued" notice, and repeating the redemption request is none; a
// kind switched off sends nothing; a member who withdrew consent to
// template messages gets nothing.
func TestServiceNoticesOverHTTP(t *testing.T) { eachBackendName(t, testServiceNoticesOverHTTP) }

func testServiceNoticesOverHTTP(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	staff := a.login()
	var settings struct{ Notices []noticeSetting }
	if st := a.call("GET", "/api/admin/v1/notice-settings", staff, nil, &settings); st != 200 ||
		len(settings.Notices) != len(campaign.NoticeKinds) {
		t.Fatalf("notice settings: %d %+v", st, settings)
	}
	for _, n := range settings.Notices {
		if !n.Enabled || n.TemplateID == "" || len(n.Fields) == 0 {
			t.Fatalf("sandbox notice %s not configured out of the box: %+v", n.Kind, n)
		}
	}
	var followed struct {
		MemberID uint64 `json:"member_id"`
		OpenID   string `json:"openid"`
	}
	if st := a.call("POST", "/api/admin/v1/sandbox/follow", staff, map[string]string{}, &followed); st != 200 || followed.MemberID == 0 {
		t.Fatalf("follow: %d", st)
	}
	// Reaching 200 points makes a Gold member: the first order is also a
	// tier change.
	if st := a.call("POST", "/api/admin/v1/tiers", staff, map[string]any{"name": "Gold", "level": 1, "threshold": 200}, nil); st != 201 {
		t.Fatalf("tier: %d", st)
	}
	order := map[string]any{"external_id": "n-1", "member_id": followed.MemberID, "amount_fen": 30000, "items": []map[string]any{
		{"sku": "A", "name": "拿铁", "quantity": 2, "price_fen": 5000},
		{"sku": "B", "name": "可颂", "quantity": 4, "price_fen": 2500},
		{"sku": "C", "name": "蛋糕", "quantity": 1, "price_fen": 10000}}}
	if st := a.call("POST", "/api/admin/v1/orders", staff, order, nil); st != 201 {
		t.Fatalf("order: %d", st)
	}
	if st := a.call("POST", "/api/admin/v1/orders", staff, order, nil); st != 200 {
		t.Fatalf("the same order again: %d, want 200 (a replay)", st)
	}
	var reward struct{ ID uint64 }
	if st := a.call("POST", "/api/admin/v1/rewards", staff, map[string]any{"name": "¥10 off", "kind": "coupon", "points_cost": 100}, &reward); st != 201 {
		t.Fatalf("reward: %d", st)
	}
	redeem := map[string]any{"reward_id": reward.ID, "request_id": "nr-1"}
	path := fmt.Sprintf("/api/admin/v1/members/%d/redemptions", followed.MemberID)
	if st := a.call("POST", path, staff, redeem, nil); st != 201 {
		t.Fatalf("redeem: %d", st)
	}
	if st := a.call("POST", path, staff, redeem, nil); st != 200 {
		t.Fatalf("the same redemption again: %d, want 200", st)
	}
	a.noticesSettled()
	got := a.sentTo(staff, followed.OpenID)
	if len(got["TPL_POINTS_CHANGED"]) != 1 || len(got["TPL_TIER_CHANGED"]) != 1 || len(got["TPL_POINTS_REDEEMED"]) != 1 ||
		len(got["TPL_COUPON_ISSUED"]) != 1 || len(got) != 4 {
		t.Fatalf("notices: %+v, want one points earned, one tier up, one points redeemed, one coupon issued", got)
	}
	if d := got["TPL_TIER_CHANGED"][0].Data; d["first"] != "恭喜您升级为Gold" || d["keyword2"] != "会员等级：普通会员 → Gold" {
		t.Errorf("tier up notice: %+v", d)
	}
	if d := got["TPL_COUPON_ISSUED"][0].Data; !strings.HasPrefix(d["keyword2"], "¥10 off，券码 ") {
		t.Errorf("coupon issued notice: %+v", d)
	}
	if d := got["TPL_POINTS_CHANGED"][0].Data; d["first"] != "积分到账 +300" || d["keyword3"] == "" {
		t.Errorf("points earned notice: %+v", d)
	}
	if d := got["TPL_POINTS_REDEEMED"][0].Data; d["first"] != "积分已使用 -100" || d["keyword2"] != "兑换「¥10 off」：-100 积分，剩余积分 200" {
		t.Errorf("points redeemed notice: %+v", d)
	}

	// Switched off: the next order is no notice.
	off := map[string]any{"enabled": false, "template_id": "TPL_POINTS_CHANGED", "fields": map[string]string{"first": "{{points_change}}"}}
	var saved noticeSetting
	if st := a.call("PUT", "/api/admin/v1/notice-settings/points_earned", staff, off, &saved); st != 200 || saved.Enabled {
		t.Fatalf("switch off: %d %+v", st, saved)
	}
	order["external_id"] = "n-2"
	if st := a.call("POST", "/api/admin/v1/orders", staff, order, nil); st != 201 {
		t.Fatalf("order 2: %d", st)
	}
	// No consent: the member withdraws consent to template messages; a
	// redemption is then no notice either.
	// (The member does it in the member centre: its HTTP side is tested
	// with the profile.)
	if _, err := a.members.UpdateProfile(context.Background(), a.merchant, followed.MemberID,
		member.ProfileUpdate{Consents: map[string]bool{member.ConsentTemplate: false}}); err != nil {
		t.Fatalf("withdraw consent: %v", err)
	}
	redeem["request_id"] = "nr-2"
	if st := a.call("POST", path, staff, redeem, nil); st != 201 {
		t.Fatalf("redeem 2: %d", st)
	}
	a.noticesSettled()
	if after := a.sentTo(staff, followed.OpenID); len(after["TPL_POINTS_CHANGED"]) != 1 || len(after["TPL_POINTS_REDEEMED"]) != 1 ||
		len(after["TPL_COUPON_ISSUED"]) != 1 {
		t.Fatalf("after switching off and withdrawing consent: %+v", after)
	}
	var skipped int64
	if err := a.db.Table("campaign_deliveries").Where("member_id = ? AND reason = ?", followed.MemberID, "no_consent").
		Count(&skipped).Error; err != nil || skipped != 2 {
		t.Fatalf("notices skipped for no consent: %d %v, want 2", skipped, err)
	}

	// Bad settings change nothing.
	var e errorBody
	for _, bad := range []struct {
		kind  string
		body  map[string]any
		field string
	}{
		{"points_earned", map[string]any{"enabled": true}, "template_id"},
		{"points_earned", map[string]any{"enabled": true, "template_id": "TPL_NOPE", "fields": map[string]string{"first": "x"}}, "template_id"},
		{"points_earned", map[string]any{"enabled": true, "template_id": "TPL_POINTS_CHANGED", "fields": map[string]string{"first": "{{coupon_code}}"}}, "fields.first"},
		{"points_earned", map[string]any{"enabled": true, "template_id": "TPL_POINTS_CHANGED", "fields": map[string]string{"nope": "x"}}, "fields.nope"},
	} {
		if st := a.call("PUT", "/api/admin/v1/notice-settings/"+bad.kind, staff, bad.body, &e); st != http.StatusBadRequest || e.Error.Fields[bad.field] == "" {
			t.Errorf("PUT %v: %d %+v, want 400 naming %s", bad.body, st, e, bad.field)
		}
	}
	if st := a.call("PUT", "/api/admin/v1/notice-settings/no_such_kind", staff, off, &e); st != http.StatusNotFound {
		t.Errorf("unknown kind: %d", st)
	}
	if st := a.call("GET", "/api/admin/v1/notice-settings", staff, nil, &settings); st != 200 || settings.Notices[0].Enabled ||
		settings.Notices[0].Fields["first"] != "{{points_change}}" {
		t.Errorf("after the bad saves: %+v", settings.Notices[0])
	}
	// A notice kind's campaign is not in the campaign list, nor can it be
	// paused or cancelled there.
	var list struct{ Campaigns []struct{ ID uint64 } }
	if st := a.call("GET", "/api/admin/v1/campaigns", staff, nil, &list); st != 200 || len(list.Campaigns) != 0 {
		t.Errorf("campaign list: %d %+v", st, list)
	}
	if st := a.call("POST", fmt.Sprintf("/api/admin/v1/campaigns/%d/cancel", settings.Notices[1].CampaignID), staff, nil, &e); st != http.StatusConflict {
		t.Errorf("cancel a notice's campaign: %d", st)
	}
}
