package points

import (
	"fmt"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
)

// tiers creates 普通 (0), 银卡 (1000 yuan, x1.5) and 金卡 (5000 yuan, x2).
func (f *fixture) tiers() (base, silver, gold Tier) {
	f.t.Helper()
	mk := func(name string, level int, threshold int64, mult int) Tier {
		t, err := f.svc.SaveTier(f.ctx(), f.merchantID, 0, TierInput{Name: &name, Level: &level, Threshold: &threshold,
			MultiplierPct: &mult, Benefits: &[]string{name + " benefit"}})
		if err != nil {
			f.t.Fatalf("tier %s: %v", name, err)
		}
		return t
	}
	return mk("普通", 1, 0, 100), mk("银卡", 2, 100000, 150), mk("金卡", 3, 500000, 200)
}

func (f *fixture) memberTier(id uint64) *uint64 {
	f.t.Helper()
	var m member.Member
	if err := f.db.Where("merchant_id = ? AND id = ?", f.merchantID, id).Take(&m).Error; err != nil {
		f.t.Fatal(err)
	}
	if a := f.account(id); !sameID(a.TierID, m.TierID) {
		f.t.Fatalf("account tier %v, members.tier_id %v", a.TierID, m.TierID)
	}
	return m.TierID
}

func sameID(a, b *uint64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func wantTier(t *testing.T, got *uint64, want *Tier) {
	t.Helper()
	if want == nil && got == nil {
		return
	}
	if want == nil || got == nil || *got != want.ID {
		g := "none"
		if got != nil {
			g = fmt.Sprint(*got)
		}
		w := "none"
		if want != nil {
			w = fmt.Sprintf("%d (%s)", want.ID, want.Name)
		}
		t.Fatalf("tier %s, want %s", g, w)
	}
}

// Upgrades happen the moment the member qualifies; downgrades only at the
// review date, and only when they no longer qualify then.
func TestTierUpgradeNowDowngradeAtReview(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) { r.Tiers.WindowMonths = 6 })
		base, silver, gold := f.tiers()
		m := f.member()
		f.order(m, 50000)
		wantTier(t, f.memberTier(m), &base)
		o := f.order(m, 60000) // 1100 yuan within 12 months: silver, at once
		wantTier(t, f.memberTier(m), &silver)
		if o.Earn.TierPct != 100 {
			t.Fatalf("the qualifying order earns at the old tier's rate, got %d%%", o.Earn.TierPct)
		}
		if o := f.order(m, 10000); o.Earn.TierPct != 150 || o.Order.Points != 150 {
			t.Fatalf("silver earn %+v", o.Earn)
		}
		a := f.account(m)
		wantReview := time.Date(2027, 3, 10, 0, 0, 0, 0, mustZone("Asia/Shanghai"))
		if a.TierReviewAt == nil || !a.TierReviewAt.Equal(wantReview) {
			t.Fatalf("review at %v, want %v", a.TierReviewAt, wantReview)
		}
		// A refund lowers the qualifying spend, but no downgrade before review.
		if _, _, err := f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: o.Order.ExternalID, RefundID: "r", AmountFen: 10000}); err != nil {
			t.Fatal(err)
		}
		f.clock.Set(time.Date(2027, 3, 9, 15, 59, 0, 0, time.UTC)) // a minute before the review; the orders left the 6-month window long ago
		f.runJobs()
		wantTier(t, f.memberTier(m), &silver)
		f.clock.Set(time.Date(2027, 3, 9, 16, 0, 0, 0, time.UTC))
		// The jobs are global: other tests' members may be due too.
		if st := f.runJobs(); st.Reviewed < 1 {
			t.Fatalf("reviewed %d", st.Reviewed)
		}
		wantTier(t, f.memberTier(m), &base) // qualifies for 普通 only: skips nothing, lands where they qualify
		var hist []TierChange
		gdb.Where("merchant_id = ? AND member_id = ?", f.merchantID, m).Order("id").Find(&hist)
		if len(hist) != 3 || hist[0].Reason != tierUpgrade || hist[1].Reason != tierUpgrade || hist[2].Reason != tierDowngrade {
			t.Fatalf("history %+v", hist)
		}
		_ = gold
		f.reconcile()
	})
}

func TestTierRetainedAndGrace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) { r.Tiers.GraceDays, r.Tiers.WindowMonths = 30, 6 })
		_, silver, _ := f.tiers()
		keeper, lapser := f.member(), f.member()
		f.order(keeper, 100000)
		f.order(lapser, 100000)
		// Eleven months on the keeper buys again; the lapser does not.
		f.clock.Add(330 * 24 * time.Hour)
		f.order(keeper, 100000)
		review := *f.account(keeper).TierReviewAt
		f.clock.Set(review)
		f.runJobs()
		wantTier(t, f.memberTier(keeper), &silver)
		if a := f.account(keeper); !a.TierReviewAt.After(review.AddDate(0, 11, 0)) || a.TierGraceUntil != nil {
			t.Fatalf("keeper after review %+v", a)
		}
		// The lapser enters 30 days of grace and keeps silver meanwhile.
		wantTier(t, f.memberTier(lapser), &silver)
		a := f.account(lapser)
		if a.TierGraceUntil == nil || !a.TierGraceUntil.Equal(review.AddDate(0, 0, 30)) {
			t.Fatalf("grace %v", a.TierGraceUntil)
		}
		st, err := f.svc.TierStatus(f.ctx(), f.merchantID, lapser)
		if err != nil || st.GraceUntil == nil || st.ToKeep == nil || *st.ToKeep != 100000 {
			t.Fatalf("status in grace: %v %+v", err, st)
		}
		// Requalifying during grace ends it; the tier stays.
		f.clock.Add(10 * 24 * time.Hour)
		f.order(lapser, 100000)
		a = f.account(lapser)
		if a.TierGraceUntil != nil || a.TierReviewAt.Before(f.clock.Now().AddDate(0, 11, 0)) {
			t.Fatalf("after requalifying %+v", a)
		}
		wantTier(t, f.memberTier(lapser), &silver)
		f.reconcile()
	})
}

func TestTierGraceEndsInDowngrade(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) { r.Tiers.GraceDays, r.Tiers.WindowMonths = 7, 6 })
		base, silver, _ := f.tiers()
		m := f.member()
		f.order(m, 200000)
		wantTier(t, f.memberTier(m), &silver)
		review := *f.account(m).TierReviewAt
		f.clock.Set(review)
		f.runJobs()
		wantTier(t, f.memberTier(m), &silver)
		f.clock.Set(review.AddDate(0, 0, 7).Add(-time.Second))
		f.runJobs()
		wantTier(t, f.memberTier(m), &silver)
		f.clock.Set(review.AddDate(0, 0, 7))
		f.runJobs()
		wantTier(t, f.memberTier(m), &base)
		if a := f.account(m); a.TierGraceUntil != nil {
			t.Fatalf("grace left set: %+v", a)
		}
	})
}

func TestTierProgressAndPointsBasis(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) {
			r.Tiers.Basis = tierBasisPoints
			r.CheckIn = CheckIn{Points: 400, StreakBonuses: []StreakBonus{}}
		})
		_, silver, _ := f.tiers() // thresholds now read as points: 100000 for silver
		m := f.member()
		f.order(m, 40000) // 400 points
		st, err := f.svc.TierStatus(f.ctx(), f.merchantID, m)
		if err != nil {
			t.Fatal(err)
		}
		if st.Qualifying != 400 || st.Next == nil || st.Next.ID != silver.ID || *st.ToNext != 99600 || st.CountsUntil == nil {
			t.Fatalf("status %+v", st)
		}
		wantUntil := time.Date(2027, 3, 10, 0, 0, 0, 0, mustZone("Asia/Shanghai"))
		if !st.CountsUntil.Equal(wantUntil) {
			t.Fatalf("counts until %v, want %v", st.CountsUntil, wantUntil)
		}
		// Adjustments do not count; gifts and check-ins do.
		if _, _, err := f.svc.Adjust(f.ctx(), f.merchantID, m, AdjustInput{Points: 200000, Reason: "fix"}); err != nil {
			t.Fatal(err)
		}
		if tier := f.memberTier(m); tier != nil && *tier == silver.ID {
			t.Fatal("an adjustment qualified for a tier")
		}
		if _, _, err := f.svc.Gift(f.ctx(), f.merchantID, m, 99200, "campaign", "c1"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.CheckIn(f.ctx(), f.merchantID, m); err != nil {
			t.Fatal(err)
		}
		wantTier(t, f.memberTier(m), &silver)
		f.reconcile()
	})
}

func TestTierValidation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		base, silver, _ := f.tiers()
		name, level, th := "铂金", 4, int64(300000) // below gold's threshold
		_, err := f.svc.SaveTier(f.ctx(), f.merchantID, 0, TierInput{Name: &name, Level: &level, Threshold: &th})
		wantKind(t, err, apperr.ErrInvalid)
		lvl := 2
		_, err = f.svc.SaveTier(f.ctx(), f.merchantID, 0, TierInput{Name: &name, Level: &lvl, Threshold: &th})
		wantKind(t, err, apperr.ErrConflict)
		_, err = f.svc.SaveTier(f.ctx(), f.merchantID, 0, TierInput{Name: &name})
		wantKind(t, err, apperr.ErrInvalid)
		// A held tier cannot be deleted; an unheld one can.
		m := f.member()
		f.order(m, 100)
		wantKind(t, f.svc.DeleteTier(f.ctx(), f.merchantID, base.ID), apperr.ErrConflict)
		if err := f.svc.DeleteTier(f.ctx(), f.merchantID, silver.ID); err != nil {
			t.Fatal(err)
		}
		wantKind(t, f.svc.DeleteTier(f.ctx(), f.merchantID, silver.ID), apperr.ErrNotFound)
		g := newFixture(t, gdb)
		_, err = g.svc.GetTier(g.ctx(), g.merchantID, base.ID)
		wantKind(t, err, apperr.ErrNotFound)
	})
}
