package points

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/dbtest"
)

// couponReward creates a coupon reward costing cost points, valid days.
func (f *fixture) couponReward(cost int64, days int, validUntil *time.Time) Reward {
	f.t.Helper()
	name, kind := fmt.Sprintf("coupon %d", f.seq.Add(1)), RewardCoupon
	in := RewardInput{Name: &name, Kind: &kind, PointsCost: &cost, CouponValidDays: &days}
	if validUntil != nil {
		in.ValidUntil = Opt[time.Time]{Set: true, V: *validUntil}
	}
	r, err := f.svc.SaveReward(f.ctx(), f.merchantID, 0, in)
	if err != nil {
		f.t.Fatalf("coupon reward: %v", err)
	}
	return r
}

// couponOf redeems a coupon reward for the member and returns its coupon.
func (f *fixture) couponOf(memberID uint64, r Reward) Coupon {
	f.t.Helper()
	red, _, err := f.svc.Redeem(f.ctx(), f.merchantID, memberID, r.ID, fmt.Sprintf("redeem-%d", f.seq.Add(1)))
	if err != nil || red.Code == nil {
		f.t.Fatalf("redeem coupon: %+v %v", red, err)
	}
	c, err := f.svc.CouponByCode(f.ctx(), f.merchantID, *red.Code)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fixture) clerk(name string) context.Context {
	return authz.WithPrincipal(context.Background(), authz.Principal{MerchantID: f.merchantID, StaffID: 77, Name: name})
}

// Twenty tills verify one coupon at once, each with its own request id:
// exactly one succeeds, the others are told it was already used, and the
// winner's repeat answers the same verification.
func TestCouponVerifiedExactlyOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.member()
		f.order(m, 100000)
		c := f.couponOf(m, f.couponReward(100, 30, nil))
		if c.Status != CouponIssued || !c.ExpiresAt.Equal(f.clock.Now().AddDate(0, 0, 30)) || c.MemberID != m {
			t.Fatalf("issued coupon %+v", c)
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []string
			used    int
		)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := fmt.Sprintf("till-%d", i)
				got, replayed, err := f.svc.VerifyCoupon(f.clerk("clerk"), f.merchantID,
					VerifyInput{Code: c.Code, RequestID: req, Store: "Shop 1"})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && !replayed && got.Status == CouponUsed:
					winners = append(winners, req)
				case errors.Is(err, errCouponUsed):
					used++
				default:
					t.Errorf("%s: %+v %v %v", req, got, replayed, err)
				}
			}()
		}
		wg.Wait()
		if len(winners) != 1 || used != 19 {
			t.Fatalf("%d verifications succeeded (%v), %d refused as used", len(winners), winners, used)
		}
		got, replayed, err := f.svc.VerifyCoupon(f.clerk("clerk"), f.merchantID, VerifyInput{Code: c.Code, RequestID: winners[0]})
		if err != nil || !replayed || got.UsedStore != "Shop 1" || got.UsedBy != "clerk" || got.UsedStaffID == nil ||
			*got.UsedStaffID != 77 || got.UsedAt == nil {
			t.Fatalf("the winner's repeat: %+v %v %v", got, replayed, err)
		}
		var audits int64
		gdb.Table("audit_log").Where("merchant_id = ? AND action = ?", f.merchantID, "coupon.verify").Count(&audits)
		if audits != 1 {
			t.Fatalf("%d audit entries for one verification", audits)
		}
		// A used coupon's redemption cannot be cancelled for its points.
		_, err = f.svc.CancelRedemption(f.ctx(), f.merchantID, got.RedemptionID, "changed my mind")
		wantKind(t, err, apperr.ErrConflict)
		f.wantBalance(m, 900, 0)
	})
}

// A coupon expires at the reward's coupon_valid_days (never after the
// reward's own end); an expired or cancelled coupon is refused and stays
// unused; another merchant's code is not found; the coupons expiring soon
// are listed for reminders.
func TestCouponExpiryCancelAndReminders(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.member()
		f.order(m, 100000)
		end := f.clock.Now().AddDate(0, 0, 3)
		short := f.couponOf(m, f.couponReward(10, 30, &end))
		if !short.ExpiresAt.Equal(end) {
			t.Fatalf("coupon of a reward ending in 3 days expires %v", short.ExpiresAt)
		}
		week := f.couponOf(m, f.couponReward(10, 7, nil))
		cancelled := f.couponOf(m, f.couponReward(10, 7, nil))

		// Expiring within 5 days: only the short one (the reminders'
		// audience), paged by coupon id.
		soon, err := f.svc.CouponsExpiringSoon(f.ctx(), f.merchantID, 5*24*time.Hour, 0, 100)
		if err != nil || len(soon) != 1 || soon[0].ID != short.ID || soon[0].MemberID != m || !soon[0].ExpiresAt.Equal(end) {
			t.Fatalf("expiring soon: %+v %v", soon, err)
		}
		if page, _ := f.svc.CouponsExpiringSoon(f.ctx(), f.merchantID, 30*24*time.Hour, short.ID, 100); len(page) != 2 ||
			page[0].ID != week.ID || page[1].ID != cancelled.ID {
			t.Fatalf("after the cursor: %+v", page)
		}

		if _, err := f.svc.CancelRedemption(f.ctx(), f.merchantID, cancelled.RedemptionID, "wrong item"); err != nil {
			t.Fatal(err)
		}
		_, _, err = f.svc.VerifyCoupon(f.clerk("c"), f.merchantID, VerifyInput{Code: cancelled.Code, RequestID: "r-cancelled"})
		if err != errCouponCancelled {
			t.Fatalf("cancelled coupon verified: %v", err)
		}

		f.clock.Set(end) // the short coupon's last moment has passed
		_, _, err = f.svc.VerifyCoupon(f.clerk("c"), f.merchantID, VerifyInput{Code: short.Code, RequestID: "r-late"})
		if err != errCouponExpired {
			t.Fatalf("expired coupon verified: %v", err)
		}
		if st := f.runJobs(); st.Coupons != 1 {
			t.Fatalf("sweep expired %d coupons, want 1", st.Coupons)
		}
		if c, _ := f.svc.CouponByCode(f.ctx(), f.merchantID, short.Code); c.Status != CouponExpired || c.UsedAt != nil {
			t.Fatalf("after the sweep: %+v", c)
		}

		other := newFixture(t, gdb)
		_, _, err = f.svc.VerifyCoupon(other.clerk("c"), other.merchantID, VerifyInput{Code: week.Code, RequestID: "r-foreign"})
		wantKind(t, err, apperr.ErrNotFound)
		// Codes are read as staff type them: lower case and spaces.
		got, replayed, err := f.svc.VerifyCoupon(f.clerk("c"), f.merchantID,
			VerifyInput{Code: " " + lowerSpaced(week.Code), RequestID: "r-week"})
		if err != nil || replayed || got.Status != CouponUsed {
			t.Fatalf("week coupon: %+v %v", got, err)
		}
		for field, in := range map[string]VerifyInput{
			"code":       {RequestID: "x"},
			"request_id": {Code: week.Code},
			"store":      {Code: week.Code, RequestID: "y", Store: string(make([]rune, 65))},
		} {
			_, _, err := f.svc.VerifyCoupon(f.clerk("c"), f.merchantID, in)
			var v *apperr.Validation
			if !errors.As(err, &v) || v.Fields[field] == "" {
				t.Errorf("missing %s: %v", field, err)
			}
		}
	})
}

func lowerSpaced(code string) string {
	out := make([]byte, 0, len(code)+3)
	for i := 0; i < len(code); i++ {
		if i > 0 && i%4 == 0 {
			out = append(out, ' ')
		}
		c := code[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out = append(out, c)
	}
	return string(out)
}
