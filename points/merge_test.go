package points

import (
	"testing"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
)

// A member merge (two records of one person) moves the merged member's
// points, orders, redemptions and tier to the survivor inside the merge
// transaction; the books still reconcile.
func TestMergeHookMovesEverything(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) { r.PendingDays = 7 })
		_, silver, _ := f.tiers()
		into, from := f.member(), f.member()
		f.order(into, 3000)
		f.order(from, 150000) // silver, held 1500 points
		fromOrder := f.order(from, 2000)
		if _, _, err := f.svc.Adjust(f.ctx(), f.merchantID, from, AdjustInput{Points: 100, Reason: "x"}); err != nil {
			t.Fatal(err)
		}
		rw := f.reward(40, nil)
		red, _, err := f.svc.Redeem(f.ctx(), f.merchantID, from, rw.ID, "r1")
		if err != nil {
			t.Fatal(err)
		}
		err = gdb.Transaction(func(tx *gorm.DB) error {
			if err := member.LockMember(f.ctx(), tx, f.merchantID, into); err != nil {
				return err
			}
			if err := member.LockMember(f.ctx(), tx, f.merchantID, from); err != nil {
				return err
			}
			if err := f.svc.MergeHook(f.ctx(), tx, f.merchantID, from, into); err != nil {
				return err
			}
			return tx.Exec("DELETE FROM members WHERE merchant_id = ? AND id = ?", f.merchantID, from).Error
		})
		if err != nil {
			t.Fatal(err)
		}
		f.wantBalance(into, 60, 1560) // held: 30 + 1500 + 30 (the last at silver × 1.5)
		wantTier(t, f.memberTier(into), &silver)
		if pf := f.facts(into); pf.OrderCount != 3 || pf.TotalSpendFen != 155000 {
			t.Fatalf("facts %+v", pf)
		}
		var left int64
		gdb.Model(&account{}).Where("merchant_id = ? AND member_id = ?", f.merchantID, from).Count(&left)
		if left != 0 {
			t.Fatal("merged member's account left behind")
		}
		// The moved order refunds against the survivor; the moved redemption
		// cancels into the survivor's balance.
		if _, _, err := f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: fromOrder.Order.ExternalID, RefundID: "r", AmountFen: 2000}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.CancelRedemption(f.ctx(), f.merchantID, red.ID, "merged"); err != nil {
			t.Fatal(err)
		}
		f.wantBalance(into, 100, 1530)
		f.reconcile()
	})
}
