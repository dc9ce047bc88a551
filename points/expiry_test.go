package points

import (
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
)

func TestExpiresAtPolicies(t *testing.T) {
	sh, la := mustZone("Asia/Shanghai"), mustZone("America/Los_Angeles")
	at := func(loc *time.Location, y int, m time.Month, d, h int) time.Time {
		return time.Date(y, m, d, h, 0, 0, 0, loc)
	}
	rolling := Expiry{Policy: ExpiryRollingMonths, Months: 12}
	for _, c := range []struct {
		name   string
		e      Expiry
		earned time.Time
		loc    *time.Location
		want   time.Time // local midnight
	}{
		{"rolling 12", rolling, at(sh, 2025, 3, 15, 10), sh, at(sh, 2026, 3, 15, 0)},
		{"leap day + 12 months clamps to 28 Feb", rolling, at(sh, 2024, 2, 29, 10), sh, at(sh, 2025, 2, 28, 0)},
		{"leap day + 48 months is a leap day", Expiry{Policy: ExpiryRollingMonths, Months: 48}, at(sh, 2024, 2, 29, 10), sh, at(sh, 2028, 2, 29, 0)},
		{"31 Jan + 1 month clamps (leap year)", Expiry{Policy: ExpiryRollingMonths, Months: 1}, at(sh, 2024, 1, 31, 10), sh, at(sh, 2024, 2, 29, 0)},
		{"31 Jan + 1 month clamps", Expiry{Policy: ExpiryRollingMonths, Months: 1}, at(sh, 2025, 1, 31, 10), sh, at(sh, 2025, 2, 28, 0)},
		// 2025-03-14 20:00 in Los Angeles is already the 15th in Shanghai:
		// the local day decides.
		{"local day in LA", rolling, at(la, 2025, 3, 14, 20), la, at(la, 2026, 3, 14, 0)},
		{"same instant in Shanghai", rolling, at(la, 2025, 3, 14, 20), sh, at(sh, 2026, 3, 15, 0)},
		{"end of next year", Expiry{Policy: ExpiryEndOfNextYear}, at(sh, 2024, 12, 31, 23), sh, at(sh, 2026, 1, 1, 0)},
		{"end of next year from January", Expiry{Policy: ExpiryEndOfNextYear}, at(sh, 2024, 1, 1, 0), sh, at(sh, 2026, 1, 1, 0)},
	} {
		got := c.e.ExpiresAt(c.earned.UTC(), c.loc)
		if got == nil || !got.Equal(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want.UTC())
		}
	}
	if got := (Expiry{Policy: ExpiryNever}).ExpiresAt(time.Now(), sh); got != nil {
		t.Errorf("never: %v", got)
	}
}

// Points earned in Shanghai expire at Shanghai midnight (16:00 UTC the day
// before), not a moment earlier, and a Los Angeles merchant's at LA
// midnight; each lot once, even with two instances running the job.
func TestExpiryAtLocalMidnight(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		sh := newFixture(t, gdb)
		la := newFixture(t, gdb)
		la.zones.m[la.merchantID] = mustZone("America/Los_Angeles")
		la.svc = NewService(gdb, la.members, la.zones, la.clock.Now, quiet)
		// 2025-03-14 23:30 UTC: 15 March 07:30 in Shanghai, 14 March 16:30 in LA.
		earned := time.Date(2025, 3, 14, 23, 30, 0, 0, time.UTC)
		for _, f := range []*fixture{sh, la} {
			f.setRules(func(r *Rules) { r.Expiry = Expiry{Policy: ExpiryRollingMonths, Months: 1} })
			f.clock.Set(earned)
		}
		a, b := sh.member(), la.member()
		sh.order(a, 10000)
		la.order(b, 10000)
		// Shanghai: expires 2025-04-15 00:00 +08 = 2025-04-14 16:00 UTC.
		shMidnight := time.Date(2025, 4, 14, 16, 0, 0, 0, time.UTC)
		// LA (PDT, -07 in April): 2025-04-14 00:00 -07 = 2025-04-14 07:00 UTC.
		laMidnight := time.Date(2025, 4, 14, 7, 0, 0, 0, time.UTC)
		for _, f := range []*fixture{sh, la} {
			f.clock.Set(laMidnight.Add(-time.Millisecond))
		}
		sh.runJobs()
		la.runJobs()
		sh.wantBalance(a, 100, 0)
		la.wantBalance(b, 100, 0)
		la.clock.Set(laMidnight)
		sh.clock.Set(laMidnight)
		la.runJobs()
		sh.runJobs()
		la.wantBalance(b, 0, 0)
		sh.wantBalance(a, 100, 0) // still the 14th in Shanghai... until 16:00 UTC
		sh.clock.Set(shMidnight.Add(-time.Millisecond))
		sh.runJobs()
		sh.wantBalance(a, 100, 0)
		sh.clock.Set(shMidnight)
		// Two instances at once: one expiry entry.
		var wg sync.WaitGroup
		for i := 0; i < 2; i++ {
			other := NewService(gdb, sh.members, sh.zones, sh.clock.Now, quiet)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := other.RunJobs(sh.ctx()); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		sh.runJobs()
		sh.wantBalance(a, 0, 0)
		var n int64
		gdb.Model(&Entry{}).Where("merchant_id = ? AND kind = ?", sh.merchantID, KindExpire).Count(&n)
		if n != 1 {
			t.Fatalf("%d expiry entries, want 1", n)
		}
		sh.reconcile()
		la.reconcile()
	})
}

// A redemption takes from the lot that expires first; what is left of a
// partly spent lot expires, and the rest later.
func TestPartlyConsumedLotsExpireFIFO(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) { r.Expiry = Expiry{Policy: ExpiryRollingMonths, Months: 2} })
		m := f.member()
		f.clock.Set(time.Date(2024, 2, 29, 2, 0, 0, 0, time.UTC)) // leap day (10:00 Shanghai)
		f.order(m, 10000)                                         // lot A: 100, expires 2024-04-29 00:00 +08
		f.clock.Set(time.Date(2024, 3, 20, 2, 0, 0, 0, time.UTC))
		f.order(m, 5000) // lot B: 50, expires 2024-05-20
		// A never-expiring adjustment comes last in line.
		f.setRules(func(r *Rules) { r.Expiry = Expiry{Policy: ExpiryNever} })
		if _, _, err := f.svc.Adjust(f.ctx(), f.merchantID, m, AdjustInput{Points: 30, Reason: "goodwill"}); err != nil {
			t.Fatal(err)
		}
		rw := f.reward(70, nil)
		if _, _, err := f.svc.Redeem(f.ctx(), f.merchantID, m, rw.ID, "r1"); err != nil {
			t.Fatal(err)
		}
		f.wantBalance(m, 110, 0)
		var lots []lot
		gdb.Where("merchant_id = ? AND member_id = ?", f.merchantID, m).Order("id").Find(&lots)
		if len(lots) != 3 || lots[0].Remaining != 30 || lots[1].Remaining != 50 || lots[2].Remaining != 30 {
			t.Fatalf("lots after redemption: %+v", lots)
		}
		sum, err := f.svc.Summary(f.ctx(), f.merchantID, m)
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Expiries) != 2 || sum.Expiries[0].Date != "2024-04-28" || sum.Expiries[0].Points != 30 ||
			sum.Expiries[1].Date != "2024-05-19" || sum.Expiries[1].Points != 50 {
			t.Fatalf("expiry schedule %+v", sum.Expiries)
		}
		f.clock.Set(time.Date(2024, 4, 28, 16, 0, 0, 0, time.UTC)) // 29 April 00:00 Shanghai
		// The jobs are global: other tests' lots may be due too.
		if st := f.runJobs(); st.Expired < 1 {
			t.Fatalf("expired %d lots", st.Expired)
		}
		f.wantBalance(m, 80, 0)
		f.clock.Set(time.Date(2024, 5, 19, 16, 0, 0, 0, time.UTC))
		f.runJobs()
		f.wantBalance(m, 30, 0)
		f.clock.Add(10 * 365 * 24 * time.Hour)
		f.runJobs()
		f.wantBalance(m, 30, 0) // never expires
		var exp []Entry
		gdb.Where("merchant_id = ? AND member_id = ? AND kind = ?", f.merchantID, m, KindExpire).Order("id").Find(&exp)
		if len(exp) != 2 || exp[0].Points != -30 || exp[1].Points != -50 {
			t.Fatalf("expiry entries %+v", exp)
		}
		f.reconcile()
	})
}

func TestExpiringSoon(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) {
			r.Expiry = Expiry{Policy: ExpiryRollingMonths, Months: 1}
			r.ExpiringSoonDays = 10
		})
		a, b, c := f.member(), f.member(), f.member()
		f.order(a, 1000)
		f.clock.Add(15 * 24 * time.Hour)
		f.order(b, 2000)
		f.order(c, 3000)
		f.clock.Add(10 * 24 * time.Hour) // a's expire in ~6 days, b's and c's in ~21
		list, err := f.svc.ExpiringSoon(f.ctx(), f.merchantID, 0, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].MemberID != a || list[0].Points != 10 {
			t.Fatalf("expiring soon %+v", list)
		}
		// A wider window, paged by member.
		p1, err := f.svc.ExpiringSoon(f.ctx(), f.merchantID, 30*24*time.Hour, 0, 2)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := f.svc.ExpiringSoon(f.ctx(), f.merchantID, 30*24*time.Hour, p1[len(p1)-1].MemberID, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(p1) != 2 || len(p2) != 1 || p2[0].MemberID != c || p2[0].Points != 30 {
			t.Fatalf("pages %+v %+v", p1, p2)
		}
		sum, _ := f.svc.Summary(f.ctx(), f.merchantID, a)
		if sum.ExpiringSoon != 10 || sum.ExpiringSoonAt == nil || sum.ExpiringSoonDays != 10 {
			t.Fatalf("summary %+v", sum)
		}
	})
}

// With a hold, order points are pending until the window ends; a refund
// inside the window cancels them cleanly, and the job releases the rest.
func TestPendingHoldAndRefundInWindow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) { r.PendingDays = 7 })
		m := f.member()
		kept := f.order(m, 10000)
		refunded := f.order(m, 4000)
		partly := f.order(m, 2000)
		if kept.HoldUntil == nil || !kept.HoldUntil.Equal(f.clock.Now().AddDate(0, 0, 7)) {
			t.Fatalf("hold until %v", kept.HoldUntil)
		}
		f.wantBalance(m, 0, 160)
		// Held points cannot be spent.
		rw := f.reward(10, nil)
		_, _, err := f.svc.Redeem(f.ctx(), f.merchantID, m, rw.ID, "early")
		wantKind(t, err, apperr.ErrUnprocessable)
		f.clock.Add(3 * 24 * time.Hour)
		if _, _, err := f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: refunded.Order.ExternalID, RefundID: "r", AmountFen: 4000}); err != nil {
			t.Fatal(err)
		}
		r, _, err := f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: partly.Order.ExternalID, RefundID: "r", AmountFen: 500})
		if err != nil || r.Refund.PendingCancelled != 5 || r.Refund.PointsReversed != 0 {
			t.Fatalf("partial refund in window: %v %+v", err, r.Refund)
		}
		f.wantBalance(m, 0, 115)
		var cancelled lot
		gdb.Where("id = ?", *refunded.Order.LotID).Take(&cancelled)
		if cancelled.Status != lotCancelled || cancelled.Remaining != 0 {
			t.Fatalf("refunded order's lot %+v", cancelled)
		}
		f.clock.Add(4*24*time.Hour - time.Millisecond)
		f.runJobs()
		f.wantBalance(m, 0, 115)
		f.clock.Add(time.Millisecond)
		if st := f.runJobs(); st.Released < 2 {
			t.Fatalf("released %d", st.Released)
		}
		f.runJobs() // again: nothing more
		f.wantBalance(m, 115, 0)
		// After the window a refund takes available points.
		r, _, err = f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: kept.Order.ExternalID, RefundID: "late", AmountFen: 5000})
		if err != nil || r.Refund.PointsReversed != 50 || r.Refund.PendingCancelled != 0 {
			t.Fatalf("late refund: %v %+v", err, r.Refund)
		}
		f.wantBalance(m, 65, 0)
		f.reconcile()
	})
}

// An order posted after its return window has passed is available at once.
func TestPendingWindowFromOrderTime(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) { r.PendingDays = 7 })
		m := f.member()
		old := f.clock.Now().AddDate(0, 0, -8)
		if _, _, err := f.svc.RecordOrder(f.ctx(), f.merchantID, OrderInput{ExternalID: "late-post", Member: member.BuyerRef{ID: m},
			AmountFen: 1000, OrderedAt: &old}); err != nil {
			t.Fatal(err)
		}
		f.wantBalance(m, 10, 0)
	})
}

// A refund after the order's points expired does not take them a second
// time from the member's other points.
func TestRefundAfterExpiryTakesOnlyWhatIsLeft(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) { r.Expiry = Expiry{Policy: ExpiryRollingMonths, Months: 1} })
		m := f.member()
		o := f.order(m, 10000) // 100 points, expiring in a month
		rw := f.reward(30, nil)
		if _, _, err := f.svc.Redeem(f.ctx(), f.merchantID, m, rw.ID, "r"); err != nil {
			t.Fatal(err)
		}
		f.clock.Add(40 * 24 * time.Hour)
		f.runJobs() // the 70 left expire
		f.order(m, 5000)
		f.wantBalance(m, 50, 0)
		// Refund half: 50 points back, of which 70 expired already absorb all.
		r, _, err := f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: o.Order.ExternalID, RefundID: "half", AmountFen: 5000})
		if err != nil || r.Refund.PointsReversed != 0 || r.Refund.LedgerID != nil {
			t.Fatalf("half: %v %+v", err, r.Refund)
		}
		f.wantBalance(m, 50, 0)
		// The rest: 50 more, 20 absorbed by what expired, 30 (the spent part) from the balance.
		r, _, err = f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: o.Order.ExternalID, RefundID: "rest", AmountFen: 5000})
		if err != nil || r.Refund.PointsReversed != 30 {
			t.Fatalf("rest: %v %+v", err, r.Refund)
		}
		f.wantBalance(m, 20, 0)
		f.reconcile()
		_, _, err = f.svc.Gift(f.ctx(), f.merchantID, m+1_000_000, 5, "x", "k")
		wantKind(t, err, apperr.ErrNotFound)
	})
}
