package points

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/dbtest"
)

func TestRedeemReplayAndLimits(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.member()
		f.order(m, 100000) // 1000 points
		name, kind, cost := "代金券", RewardCoupon, int64(100)
		limit := 2
		rw, err := f.svc.SaveReward(f.ctx(), f.merchantID, 0, RewardInput{Name: &name, Kind: &kind, PointsCost: &cost,
			PerMemberLimit: &limit})
		if err != nil {
			t.Fatal(err)
		}
		first, replayed, err := f.svc.Redeem(f.ctx(), f.merchantID, m, rw.ID, "client-1")
		if err != nil || replayed || first.Code == nil || len(*first.Code) != 12 {
			t.Fatalf("redeem: %v %v %+v", err, replayed, first)
		}
		again, replayed, err := f.svc.Redeem(f.ctx(), f.merchantID, m, rw.ID, "client-1")
		if err != nil || !replayed || again.ID != first.ID || *again.Code != *first.Code {
			t.Fatalf("replay: %v %v", err, replayed)
		}
		f.wantBalance(m, 900, 0)
		if _, _, err := f.svc.Redeem(f.ctx(), f.merchantID, m, rw.ID, "client-2"); err != nil {
			t.Fatal(err)
		}
		_, _, err = f.svc.Redeem(f.ctx(), f.merchantID, m, rw.ID, "client-3")
		if !errors.Is(err, apperr.ErrUnprocessable) || err != errMemberLimit {
			t.Fatalf("third: %v, want the per-member limit", err)
		}
		f.wantBalance(m, 800, 0)
		// The same request id for another reward is a conflict.
		other := f.reward(1, nil)
		_, _, err = f.svc.Redeem(f.ctx(), f.merchantID, m, other.ID, "client-1")
		wantKind(t, err, apperr.ErrConflict)
		// Not enough points.
		dear := f.reward(801, nil)
		_, _, err = f.svc.Redeem(f.ctx(), f.merchantID, m, dear.ID, "dear")
		if err != errInsufficient {
			t.Fatalf("dear: %v", err)
		}
		// Outside validity, inactive, unknown, bad request id.
		past := f.clock.Now().Add(-time.Hour)
		if _, err := f.svc.SaveReward(f.ctx(), f.merchantID, other.ID, RewardInput{ValidUntil: Opt[time.Time]{Set: true, V: past}}); err != nil {
			t.Fatal(err)
		}
		_, _, err = f.svc.Redeem(f.ctx(), f.merchantID, m, other.ID, "late")
		if err != errRewardUnavailable {
			t.Fatalf("expired reward: %v", err)
		}
		_, _, err = f.svc.Redeem(f.ctx(), f.merchantID, m, 999999999, "x")
		wantKind(t, err, apperr.ErrNotFound)
		_, _, err = f.svc.Redeem(f.ctx(), f.merchantID, m, rw.ID, "")
		wantKind(t, err, apperr.ErrInvalid)
		f.wantBalance(m, 800, 0)
		f.reconcile()
	})
}

// Many members race for a reward with little stock: exactly the stock is
// redeemed, the others are told it is out of stock, nobody is charged for
// nothing.
func TestRewardStockNoOversell(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		const stock, racers = 5, 30
		rw := f.reward(10, ptr(int64(stock)))
		members := make([]uint64, racers)
		for i := range members {
			members[i] = f.member()
			f.order(members[i], 10000)
		}
		var ok, out atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, m := range members {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, _, err := f.svc.Redeem(f.ctx(), f.merchantID, m, rw.ID, fmt.Sprintf("r%d", i))
				switch {
				case err == nil:
					ok.Add(1)
				case err == errOutOfStock:
					out.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if ok.Load() != stock || out.Load() != racers-stock {
			t.Fatalf("%d redeemed, %d out of stock; want %d and %d", ok.Load(), out.Load(), stock, racers-stock)
		}
		r, _ := f.svc.GetReward(f.ctx(), f.merchantID, rw.ID)
		if *r.StockLeft != 0 {
			t.Fatalf("stock left %d", *r.StockLeft)
		}
		var spent int64
		gdb.Model(&Entry{}).Where("merchant_id = ? AND kind = ?", f.merchantID, KindRedeem).Select("COALESCE(SUM(points), 0)").Scan(&spent)
		if spent != -stock*10 {
			t.Fatalf("points spent %d", spent)
		}
		f.reconcile()
	})
}

func TestCancelRedemptionReturnsPointsAndStock(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) { r.Expiry = Expiry{Policy: ExpiryRollingMonths, Months: 1} })
		m := f.member()
		first := f.order(m, 5000) // 50, expires in a month
		f.clock.Add(20 * 24 * time.Hour)
		f.order(m, 5000) // 50, expires later
		rw := f.reward(80, ptr(int64(1)))
		red, _, err := f.svc.Redeem(f.ctx(), f.merchantID, m, rw.ID, "r")
		if err != nil {
			t.Fatal(err)
		}
		f.wantBalance(m, 20, 0)
		_, err = f.svc.CancelRedemption(f.ctx(), f.merchantID, red.ID, "")
		wantKind(t, err, apperr.ErrInvalid)
		// The first lot expires before the cancellation: its 50 come back
		// as a new lot; the second lot's 30 go back into it.
		f.clock.Add(15 * 24 * time.Hour)
		f.runJobs()
		f.wantBalance(m, 20, 0)
		got, err := f.svc.CancelRedemption(f.ctx(), f.merchantID, red.ID, "wrong size")
		if err != nil || got.Status != RedemptionCancelled || got.CancelledAt == nil {
			t.Fatalf("cancel: %v %+v", err, got)
		}
		f.wantBalance(m, 100, 0)
		var lots []lot
		gdb.Where("merchant_id = ? AND member_id = ? AND status = ?", f.merchantID, m, lotActive).Order("id").Find(&lots)
		if len(lots) != 2 || lots[0].Remaining != 50 || lots[1].Remaining != 50 || lots[1].ExpiresAt.Before(f.clock.Now()) {
			t.Fatalf("lots after cancel %+v (first order's lot %d)", lots, *first.Order.LotID)
		}
		r, _ := f.svc.GetReward(f.ctx(), f.merchantID, rw.ID)
		if *r.StockLeft != 1 {
			t.Fatalf("stock left %d", *r.StockLeft)
		}
		// Again: nothing more.
		if _, err := f.svc.CancelRedemption(f.ctx(), f.merchantID, red.ID, "again"); err != nil {
			t.Fatal(err)
		}
		f.wantBalance(m, 100, 0)
		var audits int64
		gdb.Table("audit_log").Where("merchant_id = ? AND action = ?", f.merchantID, "redemption.cancel").Count(&audits)
		if audits != 2 {
			t.Fatalf("%d audit entries", audits)
		}
		// Another merchant cannot see or cancel it.
		g := newFixture(t, gdb)
		_, err = g.svc.CancelRedemption(g.ctx(), g.merchantID, red.ID, "x")
		wantKind(t, err, apperr.ErrNotFound)
		f.reconcile()
	})
}

func TestRewardStockEdits(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.member()
		f.order(m, 100000)
		rw := f.reward(10, nil)
		for i := 0; i < 3; i++ {
			if _, _, err := f.svc.Redeem(f.ctx(), f.merchantID, m, rw.ID, fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		// Limiting an unlimited reward counts what was redeemed.
		r, err := f.svc.SaveReward(f.ctx(), f.merchantID, rw.ID, RewardInput{Stock: Opt[int64]{Set: true, V: 5}})
		if err != nil || *r.StockLeft != 2 {
			t.Fatalf("limit: %v %+v", err, r)
		}
		_, err = f.svc.SaveReward(f.ctx(), f.merchantID, rw.ID, RewardInput{Stock: Opt[int64]{Set: true, V: 2}})
		wantKind(t, err, apperr.ErrInvalid)
		r, err = f.svc.SaveReward(f.ctx(), f.merchantID, rw.ID, RewardInput{Stock: Opt[int64]{Set: true, V: 10}})
		if err != nil || *r.StockLeft != 7 {
			t.Fatalf("restock: %v %+v", err, r)
		}
		r, err = f.svc.SaveReward(f.ctx(), f.merchantID, rw.ID, RewardInput{Stock: Opt[int64]{Set: true, Null: true}})
		if err != nil || r.StockLeft != nil {
			t.Fatalf("unlimited: %v %+v", err, r)
		}
		if err := f.svc.DeleteReward(f.ctx(), f.merchantID, rw.ID); err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.GetReward(f.ctx(), f.merchantID, rw.ID)
		wantKind(t, err, apperr.ErrNotFound)
		list, _ := f.svc.AvailableRewards(f.ctx(), f.merchantID)
		if len(list) != 0 {
			t.Fatalf("deleted reward still offered")
		}
	})
}
