package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/admin"
)

// Campaigns and care rules refuse, when they are saved, a gift whose
// reward is another merchant's (400 naming gift.reward_id, nothing
// stored), on create and on edit; the merchant's own reward is accepted.
func TestGiftsRefuseAnotherMerchantsReward(t *testing.T) {
	a := startApp(t)
	ctx := context.Background()
	other, err := a.merchants.Create(ctx, adminSandboxInput("Other shop"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.sandbox.Register(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.staffs.Create(ctx, other.ID, "giftowner", "other-password", admin.RoleOwner); err != nil {
		t.Fatal(err)
	}
	bToken, _, err := a.staffs.Login(ctx, "giftowner", "other-password")
	if err != nil {
		t.Fatal(err)
	}
	token := a.login()
	reward := func(tok string) uint64 {
		var out struct{ ID uint64 }
		if st := a.call("POST", "/api/admin/v1/rewards", tok, map[string]any{"name": "Tea", "kind": "gift", "points_cost": 10}, &out); st != 201 {
			t.Fatalf("reward: %d", st)
		}
		return out.ID
	}
	theirs, ours := reward(bToken), reward(token)
	var seg struct{ ID uint64 }
	if st := a.call("POST", "/api/admin/v1/segments", token, map[string]any{"name": "followers",
		"rule": map[string]any{"field": "follow_status", "op": "eq", "value": "following"}}, &seg); st != 201 {
		t.Fatalf("segment: %d", st)
	}
	campaignBody := func(rewardID uint64) map[string]any {
		return map[string]any{"name": "Sale", "channel": "template", "template_id": admin.SandboxTemplates[0],
			"message": map[string]any{"fields": map[string]string{"first": "Hi {{name}}"}},
			"target":  map[string]any{"segment_id": seg.ID}, "gift": map[string]any{"reward_id": rewardID},
			"schedule": map[string]any{"kind": "at", "send_at": time.Now().Add(24 * time.Hour)}}
	}
	careBody := func(rewardID uint64) map[string]any {
		return map[string]any{"kind": "birthday", "channel": "template", "template_id": admin.SandboxTemplates[0],
			"message": map[string]any{"fields": map[string]string{"first": "Hi {{name}}"}}, "gift": map[string]any{"reward_id": rewardID}}
	}
	refused := func(what string, st int, out errorBody) {
		t.Helper()
		if st != 400 || out.Error.Fields["gift.reward_id"] == "" {
			t.Fatalf("%s with another merchant's reward: %d %+v, want 400 naming gift.reward_id", what, st, out)
		}
	}
	// (The sandbox merchant's service notice kinds are campaigns of their
	// own, configured at start: not what these requests could store.)
	campaigns := func() int64 { return a.count("campaigns", "merchant_id = ? AND notice_kind IS NULL", a.merchant) }
	rules := func() int64 { return a.count("care_rules", "merchant_id = ?", a.merchant) }

	var out errorBody
	st := a.call("POST", "/api/admin/v1/campaigns", token, campaignBody(theirs), &out)
	refused("a new campaign", st, out)
	st = a.call("POST", "/api/admin/v1/care-rules", token, careBody(theirs), &out)
	refused("a new care rule", st, out)
	if campaigns() != 0 || rules() != 0 {
		t.Fatalf("stored: %d campaigns, %d care rules", campaigns(), rules())
	}

	var c, r struct{ ID uint64 }
	if st := a.call("POST", "/api/admin/v1/campaigns", token, campaignBody(ours), &c); st != 201 {
		t.Fatalf("campaign with our reward: %d", st)
	}
	if st := a.call("POST", "/api/admin/v1/care-rules", token, careBody(ours), &r); st != 201 {
		t.Fatalf("care rule with our reward: %d", st)
	}
	gift := map[string]any{"gift": map[string]any{"reward_id": theirs}}
	st = a.call("PATCH", fmt.Sprintf("/api/admin/v1/campaigns/%d", c.ID), token, gift, &out)
	refused("a campaign edit", st, out)
	st = a.call("PATCH", fmt.Sprintf("/api/admin/v1/care-rules/%d", r.ID), token, gift, &out)
	refused("a care rule edit", st, out)
	for table, id := range map[string]uint64{"campaigns": c.ID, "care_rules": r.ID} {
		var stored string
		if err := a.db.Table(table).Where("id = ?", id).Pluck("gift", &stored).Error; err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"reward_id":%d}`, ours); stored != want {
			t.Fatalf("%s %d gift %s after a refused edit, want %s", table, id, stored, want)
		}
	}
}
