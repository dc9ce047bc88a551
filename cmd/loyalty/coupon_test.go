package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/admin"
)

type couponBody struct {
	ID           uint64     `json:"id"`
	Code         string     `json:"code"`
	MemberID     uint64     `json:"member_id"`
	RedemptionID uint64     `json:"redemption_id"`
	Status       string     `json:"status"`
	ExpiresAt    time.Time  `json:"expires_at"`
	UsedAt       *time.Time `json:"used_at"`
	UsedStore    string     `json:"used_store"`
	UsedBy       string     `json:"used_by"`
}

// A member redeems a coupon reward in the member API and sees the coupon
// with its code; staff verify it at the till once (a repeat of the same
// request answers the same verification, any other is 409); a POS verifies
// another coupon with an orders:write API key; a viewer may not verify;
// the redemption then shows its coupon used, where and by whom.
func TestCouponVerificationOverHTTP(t *testing.T) { eachBackendName(t, testCouponVerificationOverHTTP) }

func testCouponVerificationOverHTTP(t *testing.T, backend string) {
	a, staff, mt, me := startWithMember(t, backend)
	base := fmt.Sprintf("/api/member/v1/%d", a.merchant)
	if st := a.call("POST", "/api/admin/v1/orders", staff, map[string]any{"external_id": "c-1", "member_id": me.ID,
		"amount_fen": 100000}, nil); st != 201 {
		t.Fatalf("order: %d", st)
	}
	var reward struct {
		ID              uint64
		CouponValidDays int `json:"coupon_valid_days"`
	}
	if st := a.call("POST", "/api/admin/v1/rewards", staff, map[string]any{"name": "¥10 off", "kind": "coupon", "points_cost": 100,
		"coupon_valid_days": 14}, &reward); st != 201 || reward.CouponValidDays != 14 {
		t.Fatalf("coupon reward: %d %+v", st, reward)
	}
	redeem := func(req string) couponBody {
		t.Helper()
		var out struct {
			Redemption struct {
				ID     uint64
				Code   *string
				Coupon *couponBody
			}
		}
		if st := a.call("POST", fmt.Sprintf("%s/rewards/%d/redeem", base, reward.ID), mt, map[string]string{"request_id": req}, &out); st != 201 ||
			out.Redemption.Coupon == nil || out.Redemption.Code == nil || out.Redemption.Coupon.Code != *out.Redemption.Code ||
			out.Redemption.Coupon.Status != "issued" || time.Until(out.Redemption.Coupon.ExpiresAt) < 13*24*time.Hour {
			t.Fatalf("redeem: %d %+v", st, out)
		}
		return *out.Redemption.Coupon
	}
	first, second := redeem("r-1"), redeem("r-2")
	var mine struct{ Coupons []couponBody }
	if st := a.call("GET", base+"/coupons?status=issued", mt, nil, &mine); st != 200 || len(mine.Coupons) != 2 ||
		mine.Coupons[0].Code != second.Code {
		t.Fatalf("my coupons: %d %+v", st, mine)
	}

	verify := func(token, code, req string, out any) int {
		t.Helper()
		return a.call("POST", "/api/admin/v1/coupons/verify", token, map[string]string{"code": code, "request_id": req, "store": "南京西路店"}, out)
	}
	var v struct {
		Coupon   couponBody
		Replayed bool
	}
	if st := verify(staff, first.Code, "till-1", &v); st != 201 || v.Replayed || v.Coupon.Status != "used" || v.Coupon.UsedBy != "demo" ||
		v.Coupon.UsedStore != "南京西路店" {
		t.Fatalf("verify: %d %+v", st, v)
	}
	if st := verify(staff, first.Code, "till-1", &v); st != 200 || !v.Replayed || v.Coupon.ID != first.ID {
		t.Fatalf("the same verification again: %d %+v", st, v)
	}
	var e errorBody
	if st := verify(staff, first.Code, "till-2", &e); st != http.StatusConflict {
		t.Fatalf("a second verification: %d %+v, want 409", st, e)
	}
	if st := verify(staff, "NOSUCHCODE", "till-3", &e); st != 404 {
		t.Fatalf("unknown code: %d", st)
	}
	if st := verify(staff, first.Code, "", &e); st != 400 || e.Error.Fields["request_id"] == "" {
		t.Fatalf("no request id: %d %+v", st, e)
	}

	// A viewer may look but not verify; a POS key with orders:write verifies.
	viewer := a.staffLogin(a.merchant, "couponviewer", admin.RoleViewer)
	var got couponBody
	if st := a.call("GET", "/api/admin/v1/coupons/"+second.Code, viewer, nil, &got); st != 200 || got.Status != "issued" {
		t.Fatalf("viewer reads the coupon: %d %+v", st, got)
	}
	if st := verify(viewer, second.Code, "till-v", &e); st != http.StatusForbidden {
		t.Fatalf("viewer verifies: %d", st)
	}
	var key struct{ Key string }
	if st := a.call("POST", "/api/admin/v1/api-keys", staff, map[string]any{"name": "pos-1", "scopes": []string{"orders:write"}}, &key); st != 201 {
		t.Fatalf("api key: %d", st)
	}
	if st := verify(key.Key, second.Code, "pos-1", &v); st != 201 || v.Coupon.UsedBy != "pos-1" {
		t.Fatalf("POS verifies: %d %+v", st, v)
	}

	var red struct{ Coupon *couponBody }
	if st := a.call("GET", fmt.Sprintf("/api/admin/v1/redemptions/%d", first.RedemptionID), staff, nil, &red); st != 200 ||
		red.Coupon == nil || red.Coupon.Status != "used" || red.Coupon.UsedAt == nil {
		t.Fatalf("redemption: %d %+v", st, red)
	}
	if st := a.call("POST", fmt.Sprintf("/api/admin/v1/redemptions/%d/cancel", first.RedemptionID), staff,
		map[string]string{"reason": "points back please"}, &e); st != http.StatusConflict {
		t.Fatalf("cancel a used coupon's redemption: %d", st)
	}
	if st := a.call("GET", base+"/coupons?status=used", mt, nil, &mine); st != 200 || len(mine.Coupons) != 2 {
		t.Fatalf("my used coupons: %d %+v", st, mine)
	}
	if st := a.call("GET", base+"/coupons?status=gone", mt, nil, &e); st != 400 || e.Error.Fields["status"] == "" {
		t.Fatalf("bad status: %d %+v", st, e)
	}
}
