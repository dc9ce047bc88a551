package points

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
)

// 50 goroutines earn (orders) and redeem on one member for 10 seconds
// (MySQL; 3 on SQLite), replaying some of their own earlier requests.
// Afterwards the materialised balance equals the sum of the entries and of
// the lots, the balance was never negative (sampled while running, and
// every entry's balance-after), each idempotency key has one entry, and
// each successful request has exactly one entry.
func TestConcurrentEarnAndRedeemOneMember(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		duration := 10 * time.Second
		if gdb.Dialector.Name() != dbtest.MySQL {
			duration = 3 * time.Second
		}
		f := newFixture(t, gdb)
		f.clock.Set(time.Now())
		// A real clock: entries get real times; expiry is a year away.
		f.svc.now = func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
		m := f.member()
		rw := f.reward(30, nil)
		const workers = 50
		var (
			earned, redeemed, refused, replays atomic.Int64
			minSeen                            atomic.Int64
			orderIDs, redeemIDs                sync.Map // id → points, for replays
		)
		ctx, cancel := context.WithTimeout(context.Background(), duration)
		defer cancel()
		var wg sync.WaitGroup
		// The sampler reads the balance while the workers run.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var a account
				if err := gdb.Where("merchant_id = ? AND member_id = ?", f.merchantID, m).Limit(1).Find(&a).Error; err == nil {
					for {
						cur := minSeen.Load()
						if a.Available >= cur || minSeen.CompareAndSwap(cur, a.Available) {
							break
						}
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rnd := rand.New(rand.NewPCG(uint64(w), 7))
				var mine []string
				for i := 0; ctx.Err() == nil; i++ {
					switch op := rnd.IntN(10); {
					case op < 4: // earn
						id := fmt.Sprintf("w%d-o%d", w, i)
						amount := int64(100 + rnd.IntN(5000))
						res, replayed, err := f.svc.RecordOrder(context.Background(), f.merchantID, OrderInput{ExternalID: id,
							Member: member.BuyerRef{ID: m}, AmountFen: amount})
						if err != nil || replayed {
							t.Errorf("earn %s: %v replayed=%v", id, err, replayed)
							return
						}
						orderIDs.Store(id, amount)
						mine = append(mine, id)
						earned.Add(res.Order.Points)
					case op < 9: // redeem
						id := fmt.Sprintf("w%d-r%d", w, i)
						_, replayed, err := f.svc.Redeem(context.Background(), f.merchantID, m, rw.ID, id)
						switch {
						case err == errInsufficient:
							refused.Add(1)
						case err != nil || replayed:
							t.Errorf("redeem %s: %v replayed=%v", id, err, replayed)
							return
						default:
							redeemIDs.Store(id, true)
							mine = append(mine, id)
							redeemed.Add(30)
						}
					default: // replay one of this worker's earlier successes
						if len(mine) == 0 {
							continue
						}
						id := mine[rnd.IntN(len(mine))]
						var replayed bool
						var err error
						if v, ok := orderIDs.Load(id); ok {
							_, replayed, err = f.svc.RecordOrder(context.Background(), f.merchantID, OrderInput{ExternalID: id,
								Member: member.BuyerRef{ID: m}, AmountFen: v.(int64)})
						} else {
							_, replayed, err = f.svc.Redeem(context.Background(), f.merchantID, m, rw.ID, id)
						}
						if err != nil || !replayed {
							t.Errorf("replay %s: %v replayed=%v", id, err, replayed)
							return
						}
						replays.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		t.Logf("earned %d, redeemed %d, refused %d redemptions, %d replays", earned.Load(), redeemed.Load(), refused.Load(), replays.Load())
		if redeemed.Load() == 0 || refused.Load() == 0 || replays.Load() == 0 {
			t.Fatalf("the mix did not exercise every path: redeemed %d refused %d replays %d", redeemed.Load(), refused.Load(), replays.Load())
		}
		a := f.account(m)
		if a.Available != earned.Load()-redeemed.Load() {
			t.Fatalf("available %d, want earned - redeemed = %d", a.Available, earned.Load()-redeemed.Load())
		}
		var sum struct{ Points, N, Negative int64 }
		gdb.Raw(`SELECT COALESCE(SUM(points), 0) AS points, COUNT(*) AS n,
  COALESCE(SUM(CASE WHEN balance < 0 THEN 1 ELSE 0 END), 0) AS negative FROM points_ledger WHERE merchant_id = ? AND member_id = ?`,
			f.merchantID, m).Scan(&sum)
		if sum.Points != a.Available {
			t.Fatalf("sum of entries %d, balance %d", sum.Points, a.Available)
		}
		if sum.Negative != 0 || minSeen.Load() < 0 {
			t.Fatalf("balance went negative: %d entries with a negative balance, lowest sample %d", sum.Negative, minSeen.Load())
		}
		// The schema's unique key makes a repeated idempotency key
		// impossible; this documents it. What could go wrong under
		// concurrency is an earn or redemption applied twice under two
		// keys, which the sums by kind catch.
		var byKind struct{ Earned, Redeemed int64 }
		gdb.Raw(`SELECT COALESCE(SUM(CASE WHEN kind = ? THEN points ELSE 0 END), 0) AS earned,
  COALESCE(SUM(CASE WHEN kind = ? THEN -points ELSE 0 END), 0) AS redeemed FROM points_ledger WHERE merchant_id = ? AND member_id = ?`,
			KindEarn, KindRedeem, f.merchantID, m).Scan(&byKind)
		if byKind.Earned != earned.Load() || byKind.Redeemed != redeemed.Load() {
			t.Fatalf("entries earn %d and redeem %d points, the callers earned %d and redeemed %d",
				byKind.Earned, byKind.Redeemed, earned.Load(), redeemed.Load())
		}
		var dupKeys int64
		gdb.Raw(`SELECT COUNT(*) FROM (SELECT idempotency_key FROM points_ledger WHERE merchant_id = ?
  GROUP BY idempotency_key HAVING COUNT(*) > 1) d`, f.merchantID).Scan(&dupKeys)
		if dupKeys != 0 {
			t.Fatalf("%d idempotency keys with more than one entry", dupKeys)
		}
		var orders, redemptions int64
		orderIDs.Range(func(any, any) bool { orders++; return true })
		redeemIDs.Range(func(any, any) bool { redemptions++; return true })
		var earnEntries, redeemEntries int64
		gdb.Model(&Entry{}).Where("merchant_id = ? AND kind = ?", f.merchantID, KindEarn).Count(&earnEntries)
		gdb.Model(&Entry{}).Where("merchant_id = ? AND kind = ?", f.merchantID, KindRedeem).Count(&redeemEntries)
		if earnEntries != orders || redeemEntries != redemptions {
			t.Fatalf("%d earn entries for %d orders, %d redeem entries for %d redemptions", earnEntries, orders, redeemEntries, redemptions)
		}
		if pf := f.facts(m); pf.OrderCount != orders {
			t.Fatalf("order count %d, want %d", pf.OrderCount, orders)
		}
		f.reconcile()
	})
}
