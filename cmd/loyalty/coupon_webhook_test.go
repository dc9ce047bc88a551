package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/configs"
)

func TestCouponVerifiedWebhook(t *testing.T) { eachBackendName(t, testCouponVerifiedWebhook) }

// A verification (核销) emits exactly one coupon.verified event through the
// outbox, in its transaction, with the member, coupon, redemption, store and
// staff; the same request again (a replay) and a refused second
// verification emit none. The subscribed endpoint receives it.
func testCouponVerifiedWebhook(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend), func(c *configs.Config) { c.Webhooks.AllowPrivateTargets = true })
	staff := a.login()

	var mu sync.Mutex
	var hits []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("X-Loyalty-Event") == "coupon.verified" {
			hits = append(hits, body)
		}
	}))
	defer srv.Close()
	if st := a.call("POST", "/api/admin/v1/webhook-endpoints", staff, map[string]any{"url": srv.URL + "/till",
		"events": []string{"coupon.verified"}}, nil); st != 201 {
		t.Fatalf("endpoint: %d", st)
	}

	var followed struct {
		MemberID uint64 `json:"member_id"`
	}
	if st := a.call("POST", "/api/admin/v1/sandbox/follow", staff, map[string]string{}, &followed); st != 200 {
		t.Fatalf("follow: %d", st)
	}
	if st := a.call("POST", "/api/admin/v1/orders", staff, map[string]any{"external_id": "cv-1", "member_id": followed.MemberID,
		"amount_fen": 100000}, nil); st != 201 {
		t.Fatalf("order: %d", st)
	}
	var reward struct{ ID uint64 }
	if st := a.call("POST", "/api/admin/v1/rewards", staff, map[string]any{"name": "美式咖啡券", "kind": "coupon", "points_cost": 100},
		&reward); st != 201 {
		t.Fatalf("reward: %d", st)
	}
	if st := a.call("POST", fmt.Sprintf("/api/admin/v1/members/%d/redemptions", followed.MemberID), staff,
		map[string]any{"reward_id": reward.ID, "request_id": "cv-redeem"}, nil); st != 201 {
		t.Fatalf("redeem: %d", st)
	}
	var list struct {
		Coupons []struct {
			ID           uint64
			Code         string
			RedemptionID uint64 `json:"redemption_id"`
		}
	}
	if st := a.call("GET", fmt.Sprintf("/api/admin/v1/coupons?member_id=%d", followed.MemberID), staff, nil, &list); st != 200 ||
		len(list.Coupons) != 1 {
		t.Fatalf("coupons: %d %+v", st, list)
	}
	coupon := list.Coupons[0]
	events := func() int64 {
		return a.count("webhook_events", "merchant_id = ? AND type = ?", a.merchant, "coupon.verified")
	}
	if n := events(); n != 0 {
		t.Fatalf("%d coupon.verified events before any verification", n)
	}

	verify := func(req string) int {
		return a.call("POST", "/api/admin/v1/coupons/verify", staff,
			map[string]string{"code": coupon.Code, "request_id": req, "store": "南京西路店"}, nil)
	}
	if st := verify("till-1"); st != 201 {
		t.Fatalf("verify: %d", st)
	}
	if n := events(); n != 1 {
		t.Fatalf("%d coupon.verified events after one verification, want 1", n)
	}
	if st := verify("till-1"); st != 200 {
		t.Fatalf("the same verification again: %d", st)
	}
	if st := verify("till-2"); st != http.StatusConflict {
		t.Fatalf("a second verification: %d, want 409", st)
	}
	if n := events(); n != 1 {
		t.Fatalf("%d coupon.verified events after a replay and a refused verification, want 1", n)
	}

	var staffID []uint64
	a.db.Table("staff").Where("merchant_id = ? AND username = ?", a.merchant, "demo").Pluck("id", &staffID)
	deadline := time.Now().Add(30 * time.Second) // a liveness bound
	for {
		mu.Lock()
		got := append([]map[string]any(nil), hits...)
		mu.Unlock()
		if len(got) > 0 {
			d, _ := got[0]["data"].(map[string]any)
			want := map[string]any{"member_id": float64(followed.MemberID), "coupon_id": float64(coupon.ID),
				"redemption_id": float64(coupon.RedemptionID), "reward_id": float64(reward.ID), "reward_name": "美式咖啡券",
				"store": "南京西路店", "used_by": "demo", "api_key_id": nil}
			for k, v := range want {
				if d[k] != v {
					t.Fatalf("coupon.verified %s = %v, want %v (%v)", k, d[k], v, got[0])
				}
			}
			if len(staffID) != 1 || d["staff_id"] != float64(staffID[0]) || d["verified_at"] == nil || d["code"] != nil {
				t.Fatalf("coupon.verified staff %v (staff %v), time or code: %v", d["staff_id"], staffID, d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the endpoint never received coupon.verified")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(hits) != 1 {
		t.Fatalf("the endpoint received coupon.verified %d times", len(hits))
	}
}
