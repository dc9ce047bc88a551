package points

import (
	"errors"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
)

func TestOrderEarnsAndUpdatesFacts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.newMember(memberOpts{openID: "oa-" + f.ext(), phone: "13800138000"})
		res := f.order(m, 12345) // 123.45 yuan → 123 points (rounded down)
		if res.Order.Points != 123 || res.Earn.Computed != 123 || res.Earn.Rate != "1 point per 100 fen, rounded down" {
			t.Fatalf("order points %d, earn %+v", res.Order.Points, res.Earn)
		}
		f.wantBalance(m, 123, 0)
		// By phone (+86 accepted).
		if _, _, err := f.svc.RecordOrder(f.ctx(), f.merchantID, OrderInput{ExternalID: f.ext(),
			Member: member.BuyerRef{Phone: "+8613800138000"}, AmountFen: 100}); err != nil {
			t.Fatal(err)
		}
		f.wantBalance(m, 124, 0)
		pf := f.facts(m)
		if pf.OrderCount != 2 || pf.TotalSpendFen != 12445 || pf.FirstOrderAt == nil || pf.LastOrderAt == nil {
			t.Fatalf("facts %+v", pf)
		}
		f.reconcile()
	})
}

func TestOrderReplayHasOneEffect(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.member()
		in := OrderInput{ExternalID: "POS-1", Member: member.BuyerRef{ID: m}, AmountFen: 5000}
		first, replayed, err := f.svc.RecordOrder(f.ctx(), f.merchantID, in)
		if err != nil || replayed {
			t.Fatalf("first: %v replayed=%v", err, replayed)
		}
		// Sequential and concurrent replays return the first result.
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				again, replayed, err := f.svc.RecordOrder(f.ctx(), f.merchantID, in)
				if err != nil || !replayed || again.Order.ID != first.Order.ID || again.Order.Points != 50 {
					t.Errorf("replay: %v replayed=%v order %+v", err, replayed, again.Order)
				}
			}()
		}
		wg.Wait()
		f.wantBalance(m, 50, 0)
		if pf := f.facts(m); pf.OrderCount != 1 || pf.TotalSpendFen != 5000 {
			t.Fatalf("facts %+v", pf)
		}
		// Same id with another amount or member: a conflict, nothing changes.
		in.AmountFen = 6000
		_, _, err = f.svc.RecordOrder(f.ctx(), f.merchantID, in)
		wantKind(t, err, apperr.ErrConflict)
		other := f.member()
		_, _, err = f.svc.RecordOrder(f.ctx(), f.merchantID, OrderInput{ExternalID: "POS-1", Member: member.BuyerRef{ID: other}, AmountFen: 5000})
		wantKind(t, err, apperr.ErrConflict)
		f.wantBalance(m, 50, 0)
		f.wantBalance(other, 0, 0)
		// A replay answers as the first post did even when the member
		// could not order now (erased since).
		in.AmountFen = 5000
		gdb.Exec("UPDATE members SET erased_at = ? WHERE id = ?", time.Now(), m)
		again, replayed, err := f.svc.RecordOrder(f.ctx(), f.merchantID, in)
		if err != nil || !replayed || again.Order.ID != first.Order.ID {
			t.Fatalf("replay for an erased member: %v replayed=%v order %+v", err, replayed, again.Order)
		}
		in.ExternalID = "POS-2"
		_, _, err = f.svc.RecordOrder(f.ctx(), f.merchantID, in)
		wantKind(t, err, apperr.ErrUnprocessable)
		f.reconcile()
	})
}

// Two first orders of a new member at once (no account yet) both count.
func TestConcurrentFirstOrders(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.member()
		var wg sync.WaitGroup
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := f.svc.RecordOrder(f.ctx(), f.merchantID, OrderInput{ExternalID: f.ext(),
					Member: member.BuyerRef{ID: m}, AmountFen: 100}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		f.wantBalance(m, 10, 0)
		if pf := f.facts(m); pf.OrderCount != 10 {
			t.Fatalf("facts %+v", pf)
		}
		f.reconcile()
	})
}

func TestOrderBadInput(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.member()
		now := f.clock.Now()
		future, old := now.Add(time.Hour), now.AddDate(-2, 0, 0)
		for name, c := range map[string]struct {
			in   OrderInput
			kind error
		}{
			"zero":          {OrderInput{ExternalID: "a", Member: member.BuyerRef{ID: m}, AmountFen: 0}, apperr.ErrInvalid},
			"negative":      {OrderInput{ExternalID: "a", Member: member.BuyerRef{ID: m}, AmountFen: -5}, apperr.ErrInvalid},
			"absurd":        {OrderInput{ExternalID: "a", Member: member.BuyerRef{ID: m}, AmountFen: MaxAmountFen + 1}, apperr.ErrInvalid},
			"no member":     {OrderInput{ExternalID: "a", AmountFen: 100}, apperr.ErrInvalid},
			"two refs":      {OrderInput{ExternalID: "a", Member: member.BuyerRef{ID: m, Phone: "13800000000"}, AmountFen: 100}, apperr.ErrInvalid},
			"bad id":        {OrderInput{ExternalID: "has space", Member: member.BuyerRef{ID: m}, AmountFen: 100}, apperr.ErrInvalid},
			"empty id":      {OrderInput{Member: member.BuyerRef{ID: m}, AmountFen: 100}, apperr.ErrInvalid},
			"slash in id":   {OrderInput{ExternalID: "a/b", Member: member.BuyerRef{ID: m}, AmountFen: 100}, apperr.ErrInvalid},
			"future":        {OrderInput{ExternalID: "a", Member: member.BuyerRef{ID: m}, AmountFen: 100, OrderedAt: &future}, apperr.ErrInvalid},
			"too old":       {OrderInput{ExternalID: "a", Member: member.BuyerRef{ID: m}, AmountFen: 100, OrderedAt: &old}, apperr.ErrInvalid},
			"bad item":      {OrderInput{ExternalID: "a", Member: member.BuyerRef{ID: m}, AmountFen: 100, Items: []Item{{Quantity: 0}}}, apperr.ErrInvalid},
			"unknown id":    {OrderInput{ExternalID: "a", Member: member.BuyerRef{ID: m + 1_000_000}, AmountFen: 100}, apperr.ErrUnprocessable},
			"unknown phone": {OrderInput{ExternalID: "a", Member: member.BuyerRef{Phone: "13999999999"}, AmountFen: 100}, apperr.ErrUnprocessable},
			"unknown open":  {OrderInput{ExternalID: "a", Member: member.BuyerRef{OpenID: "nobody"}, AmountFen: 100}, apperr.ErrUnprocessable},
		} {
			_, _, err := f.svc.RecordOrder(f.ctx(), f.merchantID, c.in)
			if !errors.Is(err, c.kind) {
				t.Errorf("%s: %v, want %v", name, err, c.kind)
			}
		}
		f.wantBalance(m, 0, 0)
		var n int64
		f.db.Model(&Order{}).Where("merchant_id = ?", f.merchantID).Count(&n)
		if n != 0 {
			t.Fatalf("%d orders recorded from bad input", n)
		}
		// Another merchant's member is unknown here.
		g := newFixture(t, gdb)
		foreign := g.member()
		_, _, err := f.svc.RecordOrder(f.ctx(), f.merchantID, OrderInput{ExternalID: "x", Member: member.BuyerRef{ID: foreign}, AmountFen: 100})
		wantKind(t, err, apperr.ErrUnprocessable)
	})
}

func TestPartialAndFullRefunds(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.member()
		o := f.order(m, 1000) // 10 points
		ext := o.Order.ExternalID
		refund := func(id string, amount int64) RefundResult {
			t.Helper()
			r, _, err := f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: ext, RefundID: id, AmountFen: amount})
			if err != nil {
				t.Fatalf("refund %s: %v", id, err)
			}
			return r
		}
		// 3.33 yuan of 10: floor(10 × 333/1000) = 3 points back.
		r1 := refund("r1", 333)
		if r1.Refund.PointsReversed != 3 {
			t.Fatalf("r1 reversed %d", r1.Refund.PointsReversed)
		}
		f.wantBalance(m, 7, 0)
		if pf := f.facts(m); pf.OrderCount != 1 || pf.TotalSpendFen != 667 {
			t.Fatalf("facts after partial refund %+v", pf)
		}
		// Replay: same result, nothing more.
		again, replayed, err := f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: ext, RefundID: "r1", AmountFen: 333})
		if err != nil || !replayed || again.Refund.ID != r1.Refund.ID {
			t.Fatalf("replay: %v %v", err, replayed)
		}
		_, _, err = f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: ext, RefundID: "r1", AmountFen: 334})
		wantKind(t, err, apperr.ErrConflict)
		// More than is left: refused, nothing changes.
		_, _, err = f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: ext, RefundID: "r2", AmountFen: 668})
		wantKind(t, err, apperr.ErrUnprocessable)
		f.wantBalance(m, 7, 0)
		// 3.33 more: cumulative floor(10 × 666/1000) = 6, so 3 more.
		if r := refund("r2", 333); r.Refund.PointsReversed != 3 {
			t.Fatalf("r2 reversed %d", r.Refund.PointsReversed)
		}
		// The rest: everything the order earned is back, exactly.
		r3 := refund("r3", 334)
		if r3.Refund.PointsReversed != 4 || r3.Order.Order.PointsReversed != 10 || r3.Order.Order.RefundedFen != 1000 {
			t.Fatalf("r3 %+v order %+v", r3.Refund, r3.Order.Order)
		}
		f.wantBalance(m, 0, 0)
		pf := f.facts(m)
		if pf.OrderCount != 0 || pf.TotalSpendFen != 0 || pf.FirstOrderAt != nil || pf.LastOrderAt != nil {
			t.Fatalf("facts after full refund %+v, want as if never bought", pf)
		}
		_, _, err = f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: ext, RefundID: "r4", AmountFen: 1})
		wantKind(t, err, apperr.ErrUnprocessable)
		_, _, err = f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: "nope", RefundID: "r1", AmountFen: 1})
		wantKind(t, err, apperr.ErrNotFound)
		for _, bad := range []int64{0, -1, MaxAmountFen + 1} {
			_, _, err = f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: ext, RefundID: "rx", AmountFen: bad})
			wantKind(t, err, apperr.ErrInvalid)
		}
		f.reconcile()
	})
}

// A full refund of the latest order moves last_order_at back to the
// previous order; a member's facts follow only the counted orders.
func TestRefundRestoresOrderTimes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.member()
		first := f.order(m, 500)
		f.clock.Add(24 * time.Hour)
		second := f.order(m, 700)
		if pf := f.facts(m); !pf.LastOrderAt.Equal(second.Order.OrderedAt) {
			t.Fatalf("last order %v", pf.LastOrderAt)
		}
		if _, _, err := f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: second.Order.ExternalID, RefundID: "x", AmountFen: 700}); err != nil {
			t.Fatal(err)
		}
		pf := f.facts(m)
		if pf.OrderCount != 1 || pf.TotalSpendFen != 500 || !pf.LastOrderAt.Equal(first.Order.OrderedAt) || !pf.FirstOrderAt.Equal(first.Order.OrderedAt) {
			t.Fatalf("facts %+v", pf)
		}
		f.reconcile()
	})
}

// Points already spent when the refund comes become debt, shown as a
// negative balance and paid off by the next credits.
func TestRefundAfterSpendingMakesDebt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.member()
		o := f.order(m, 10000) // 100 points
		rw := f.reward(80, nil)
		if _, _, err := f.svc.Redeem(f.ctx(), f.merchantID, m, rw.ID, "req-1"); err != nil {
			t.Fatal(err)
		}
		f.wantBalance(m, 20, 0)
		if _, _, err := f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: o.Order.ExternalID, RefundID: "r", AmountFen: 10000}); err != nil {
			t.Fatal(err)
		}
		f.wantBalance(m, -80, 0)
		if a := f.account(m); a.Debt != 80 {
			t.Fatalf("debt %d", a.Debt)
		}
		// Redemption is impossible while in debt.
		_, _, err := f.svc.Redeem(f.ctx(), f.merchantID, m, rw.ID, "req-2")
		wantKind(t, err, apperr.ErrUnprocessable)
		f.reconcile()
		f.order(m, 5000) // +50: pays off 50 of the debt
		f.wantBalance(m, -30, 0)
		f.order(m, 5000)
		f.wantBalance(m, 20, 0)
		if a := f.account(m); a.Debt != 0 {
			t.Fatalf("debt %d", a.Debt)
		}
		f.reconcile()
	})
}

func TestDailyCapAndMultipliers(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) {
			r.Earn = EarnRate{Points: 3, PerFen: 200} // 1.5 points per yuan
			r.BirthdayMultiplierPct = 200
			r.DailyCap = 500
		})
		// The fixture's clock is 10 March (Shanghai); a March birthday doubles.
		bday := f.newMember(memberOpts{birthdayMonth: 3})
		plain := f.member()
		if o := f.order(plain, 999); o.Order.Points != 14 { // 9.99 × 1.5 = 14.985 → 14
			t.Fatalf("plain %d", o.Order.Points)
		}
		o := f.order(bday, 999) // 14.985 × 2 = 29.97 → 29 (one rounding at the end)
		if o.Order.Points != 29 || o.Earn.BirthdayPct != 200 {
			t.Fatalf("birthday %+v", o.Earn)
		}
		big := f.order(plain, 100000) // 1500 computed, capped to 500 - 14
		if big.Order.Points != 486 || big.Earn.CappedBy != 1014 {
			t.Fatalf("capped %+v", big.Earn)
		}
		if o := f.order(plain, 100); o.Order.Points != 0 {
			t.Fatalf("over cap %d", o.Order.Points)
		}
		// The next local day the cap starts again.
		f.clock.Add(24 * time.Hour)
		if o := f.order(plain, 100); o.Order.Points != 1 {
			t.Fatalf("next day %d", o.Order.Points)
		}
		f.reconcile()
	})
}

func TestOrderPointsRounding(t *testing.T) {
	r := DefaultRules()
	for _, c := range []struct {
		amount       int64
		tier, bday   int
		rate         EarnRate
		want         int64
		explanations string
	}{
		{99, 100, 100, EarnRate{1, 100}, 0, "under a yuan earns nothing"},
		{100, 100, 100, EarnRate{1, 100}, 1, "one yuan"},
		{199, 100, 100, EarnRate{1, 100}, 1, "rounded down"},
		{199, 150, 100, EarnRate{1, 100}, 2, "1.99 × 1.5 = 2.985"},
		{100, 150, 200, EarnRate{1, 100}, 3, "multipliers multiply"},
		{1, 100, 100, EarnRate{10000, 1}, 10000, "generous rate"},
		{MaxAmountFen, 1000, 1000, EarnRate{10000, 1}, maxPointsPerOperation, "bounded, no overflow"},
	} {
		r.Earn = c.rate
		if got := r.OrderPoints(c.amount, c.tier, c.bday); got != c.want {
			t.Errorf("%s: %d fen → %d points, want %d", c.explanations, c.amount, got, c.want)
		}
	}
}

// Orders read the rules and tiers from a short-lived cache: a change saved
// through the same service applies to the very next order, and one saved
// through another instance is not seen before the cache entry expires.
func TestOrderRulesCacheInvalidatedByChanges(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.member()
		if o := f.order(m, 1000); o.Order.Points != 10 {
			t.Fatalf("default rules: %d points", o.Order.Points)
		}
		f.setRules(func(r *Rules) { r.Earn = EarnRate{Points: 3, PerFen: 100} })
		if o := f.order(m, 1000); o.Order.Points != 30 || o.Order.RuleVersion != 1 {
			t.Fatalf("after SetRules: %d points, rule version %d", o.Order.Points, o.Order.RuleVersion)
		}
		if _, err := f.svc.PatchRules(f.ctx(), f.merchantID, []byte(`{"earn":{"points":2,"per_fen":100}}`)); err != nil {
			t.Fatal(err)
		}
		if o := f.order(m, 1000); o.Order.Points != 20 || o.Order.RuleVersion != 2 {
			t.Fatalf("after PatchRules: %d points, rule version %d", o.Order.Points, o.Order.RuleVersion)
		}
		name, level, th, mult := "gold", 1, int64(0), 300
		tier, err := f.svc.SaveTier(f.ctx(), f.merchantID, 0, TierInput{Name: &name, Level: &level, Threshold: &th, MultiplierPct: &mult})
		if err != nil {
			t.Fatal(err)
		}
		// The member reaches the new tier with this order (threshold 0) and
		// the next one earns with its multiplier.
		f.order(m, 100)
		if o := f.order(m, 1000); o.Earn.TierID == nil || *o.Earn.TierID != tier.ID || o.Order.Points != 60 {
			t.Fatalf("after SaveTier: %+v, %d points", o.Earn, o.Order.Points)
		}
		mult = 100
		if _, err := f.svc.SaveTier(f.ctx(), f.merchantID, tier.ID, TierInput{MultiplierPct: &mult}); err != nil {
			t.Fatal(err)
		}
		if o := f.order(m, 1000); o.Order.Points != 20 {
			t.Fatalf("after the tier's update: %d points", o.Order.Points)
		}

		// Another instance changes the rules: this one may serve its cached
		// rules until the entry expires (rulesTTL), never longer.
		other := NewService(gdb, f.members, f.zones, f.clock.Now, quiet)
		if _, err := other.PatchRules(f.ctx(), f.merchantID, []byte(`{"earn":{"points":5,"per_fen":100}}`)); err != nil {
			t.Fatal(err)
		}
		f.svc.rulesets.Invalidate(f.merchantID) // what expiry does after rulesTTL
		if o := f.order(m, 1000); o.Order.Points != 50 || o.Order.RuleVersion != 3 {
			t.Fatalf("after expiry: %d points, version %d", o.Order.Points, o.Order.RuleVersion)
		}
		f.reconcile()
	})
}
