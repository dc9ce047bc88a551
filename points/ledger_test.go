package points

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/wechat"
)

func TestCheckInStreaks(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.member()
		_, err := f.svc.CheckIn(f.ctx(), f.merchantID, m)
		if err != errCheckInOff {
			t.Fatalf("check-in off: %v", err)
		}
		f.setRules(func(r *Rules) {
			r.CheckIn = CheckIn{Points: 5, CycleDays: 7, StreakBonuses: []StreakBonus{{Day: 3, Points: 10}, {Day: 7, Points: 30}}}
			r.DailyCap = 20
		})
		// Local days in Shanghai: the clock is 12:00 local.
		want := []struct {
			streak int
			points int64
		}{{1, 5}, {2, 5}, {3, 15}, {4, 5}, {5, 5}, {6, 5}, {7, 20 /* 35, capped */}, {8, 5}, {9, 5}, {10, 15}}
		for i, w := range want {
			res, err := f.svc.CheckIn(f.ctx(), f.merchantID, m)
			if err != nil {
				t.Fatal(err)
			}
			if res.Streak != w.streak || res.Points != w.points || res.AlreadyCheckedIn {
				t.Fatalf("day %d: %+v, want streak %d points %d", i+1, res, w.streak, w.points)
			}
			again, err := f.svc.CheckIn(f.ctx(), f.merchantID, m)
			if err != nil || !again.AlreadyCheckedIn || again.Streak != w.streak || again.Points != 0 {
				t.Fatalf("second check-in the same day: %v %+v", err, again)
			}
			f.clock.Add(24 * time.Hour)
		}
		// A missed day restarts the streak.
		f.clock.Add(24 * time.Hour)
		res, err := f.svc.CheckIn(f.ctx(), f.merchantID, m)
		if err != nil || res.Streak != 1 || res.NextBonus == nil || res.NextBonus.Day != 3 || res.NextIn != 2 {
			t.Fatalf("after a gap: %v %+v", err, res)
		}
		f.reconcile()
	})
}

// The check-in day is the merchant's local day: 23:59 and 00:01 local are
// two days even though they are minutes apart.
func TestCheckInLocalDay(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) { r.CheckIn.Points = 1 })
		m := f.member()
		f.clock.Set(time.Date(2026, 3, 10, 15, 59, 0, 0, time.UTC)) // 23:59 Shanghai
		if res, err := f.svc.CheckIn(f.ctx(), f.merchantID, m); err != nil || res.Day != "2026-03-10" {
			t.Fatalf("%v %+v", err, res)
		}
		f.clock.Set(time.Date(2026, 3, 10, 16, 1, 0, 0, time.UTC)) // 00:01 Shanghai, next day
		if res, err := f.svc.CheckIn(f.ctx(), f.merchantID, m); err != nil || res.AlreadyCheckedIn || res.Streak != 2 {
			t.Fatalf("%v %+v", err, res)
		}
	})
}

func TestBonusesOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) {
			r.Bonuses = Bonuses{FirstFollow: 100, ProfileCompleted: 50, FirstMPLogin: 20}
		})
		m := f.newMember(memberOpts{following: true, mpOpenID: "mp-" + f.ext()})
		for i := 0; i < 3; i++ {
			if err := f.svc.settleBonuses(f.ctx(), f.merchantID, m); err != nil {
				t.Fatal(err)
			}
		}
		f.wantBalance(m, 120, 0) // follow + mini-program; the profile is incomplete
		if _, _, err := f.svc.AwardBonus(f.ctx(), f.merchantID, m, BonusFirstFollow); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.AwardBonus(f.ctx(), f.merchantID, m, BonusProfileCompleted); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.AwardBonus(f.ctx(), f.merchantID, m, BonusProfileCompleted); err != nil {
			t.Fatal(err)
		}
		f.wantBalance(m, 170, 0)
		_, _, err := f.svc.AwardBonus(f.ctx(), f.merchantID, m, Bonus("nope"))
		wantKind(t, err, apperr.ErrInvalid)
		f.reconcile()
	})
}

func TestAdjustments(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		m := f.member()
		e, replayed, err := f.svc.Adjust(f.ctx(), f.merchantID, m, AdjustInput{Points: 50, Reason: "compensation", RequestID: "a1"})
		if err != nil || replayed || e.Kind != KindAdjust || e.Points != 50 {
			t.Fatalf("%v %v %+v", err, replayed, e)
		}
		again, replayed, err := f.svc.Adjust(f.ctx(), f.merchantID, m, AdjustInput{Points: 50, Reason: "compensation", RequestID: "a1"})
		if err != nil || !replayed || again.ID != e.ID {
			t.Fatalf("replay: %v %v", err, replayed)
		}
		_, _, err = f.svc.Adjust(f.ctx(), f.merchantID, m, AdjustInput{Points: -51, Reason: "too much"})
		if err != errInsufficient {
			t.Fatalf("overdraft: %v", err)
		}
		for _, bad := range []AdjustInput{{Points: 0, Reason: "x"}, {Points: 5}, {Points: 5, Reason: "   "},
			{Points: maxAdjust + 1, Reason: "x"}, {Points: 5, Reason: "x", RequestID: "bad id"}} {
			_, _, err := f.svc.Adjust(f.ctx(), f.merchantID, m, bad)
			wantKind(t, err, apperr.ErrInvalid)
		}
		_, _, err = f.svc.Adjust(f.ctx(), f.merchantID, m+1_000_000, AdjustInput{Points: 5, Reason: "x"})
		wantKind(t, err, apperr.ErrNotFound)
		if _, _, err := f.svc.Adjust(f.ctx(), f.merchantID, m, AdjustInput{Points: -20, Reason: "correction"}); err != nil {
			t.Fatal(err)
		}
		f.wantBalance(m, 30, 0)
		logs, err := audit.NewRecorder(gdb, f.clock.Now).List(f.ctx(), f.merchantID, audit.Query{Action: "points.adjust", Limit: 10})
		if err != nil || len(logs) != 2 || !strings.Contains(logs[0].After, "correction") {
			t.Fatalf("audit: %v %+v", err, logs)
		}
		f.reconcile()
	})
}

// Reconcile finds a balance changed behind the ledger's back, and the
// command exits non-zero.
func TestReconcileDetectsTampering(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		a, b := f.member(), f.member()
		f.order(a, 1000)
		f.order(b, 2000)
		f.reconcile()
		var out, errOut bytes.Buffer
		if err := RunReconcile(f.ctx(), gdb, []string{"-merchant", u64(f.merchantID)}, &out, &errOut); err != nil {
			t.Fatalf("clean books: %v\n%s", err, out.String())
		}
		if err := gdb.Exec("UPDATE points_accounts SET available = available + 1 WHERE merchant_id = ? AND member_id = ?",
			f.merchantID, b).Error; err != nil {
			t.Fatal(err)
		}
		out.Reset()
		err := RunReconcile(f.ctx(), gdb, []string{"-merchant", u64(f.merchantID)}, &out, &errOut)
		if !errors.Is(err, ErrMismatch) {
			t.Fatalf("tampered books: %v", err)
		}
		if !strings.Contains(out.String(), "member "+u64(b)+": "+checkAvailable) || strings.Contains(out.String(), "member "+u64(a)+":") {
			t.Fatalf("report:\n%s", out.String())
		}
		// Tampered purchase facts and a deleted entry are found too.
		gdb.Exec("UPDATE points_accounts SET available = available - 1 WHERE merchant_id = ? AND member_id = ?", f.merchantID, b)
		gdb.Exec("UPDATE members SET total_spend_fen = 1 WHERE merchant_id = ? AND id = ?", f.merchantID, a)
		rep, err := Reconcile(f.ctx(), gdb, ReconcileOptions{MerchantID: f.merchantID, Facts: true})
		if err != nil || rep.MismatchCount != 1 || rep.Mismatches[0].Check != checkSpend {
			t.Fatalf("facts: %v %+v", err, rep)
		}
		gdb.Exec("UPDATE members SET total_spend_fen = 1000 WHERE merchant_id = ? AND id = ?", f.merchantID, a)
		gdb.Exec("DELETE FROM points_ledger WHERE merchant_id = ? AND member_id = ?", f.merchantID, a)
		rep, _ = Reconcile(f.ctx(), gdb, ReconcileOptions{MerchantID: f.merchantID})
		if rep.MismatchCount != 1 || rep.Mismatches[0].MemberID != a {
			t.Fatalf("deleted entry: %+v", rep)
		}
		err = RunReconcile(f.ctx(), gdb, []string{"-bogus"}, &out, &errOut)
		var usage *UsageError
		if !errors.As(err, &usage) {
			t.Fatalf("bad flag: %v", err)
		}
	})
}

func TestKeywordReply(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) { r.PendingDays = 7 })
		open := "oa-" + f.ext()
		m := f.newMember(memberOpts{openID: open, following: true})
		f.order(m, 12300)
		if _, _, err := f.svc.Adjust(f.ctx(), f.merchantID, m, AdjustInput{Points: 7, Reason: "x"}); err != nil {
			t.Fatal(err)
		}
		ev := wechat.Event{MerchantID: f.merchantID, MsgType: wechat.MsgTypeText, OpenID: open, Content: " 积分 "}
		kw := &wechat.Keywords{}
		kw.Register(f.svc.KeywordReply)
		reply, ok := kw.Reply(f.ctx(), ev)
		if !ok || reply != "您的可用积分：7\n待入账积分：123" {
			t.Fatalf("reply %q %v", reply, ok)
		}
		click := wechat.Event{MerchantID: f.merchantID, MsgType: wechat.MsgTypeEvent, EventType: wechat.EventClick,
			EventKey: MenuKeyPoints, OpenID: open}
		if reply, ok := kw.Reply(f.ctx(), click); !ok || !strings.HasPrefix(reply, "您的可用积分：7") {
			t.Fatalf("menu click: %q %v", reply, ok)
		}
		if _, ok := kw.Reply(f.ctx(), wechat.Event{MerchantID: f.merchantID, MsgType: wechat.MsgTypeText, OpenID: open, Content: "hello"}); ok {
			t.Fatal("answered another text")
		}
		ev.OpenID = "stranger"
		if reply, ok := kw.Reply(f.ctx(), ev); !ok || reply != "您还没有积分。" {
			t.Fatalf("stranger: %q %v", reply, ok)
		}
		// A configured keyword replaces the default at once on this instance.
		f.setRules(func(r *Rules) { r.Keyword = "查积分" })
		ev.OpenID, ev.Content = open, "积分"
		if _, ok := kw.Reply(f.ctx(), ev); ok {
			t.Fatal("old keyword still answered")
		}
		ev.Content = "查积分"
		if reply, ok := kw.Reply(f.ctx(), ev); !ok || !strings.HasPrefix(reply, "您的可用积分：7") {
			t.Fatalf("new keyword: %q %v", reply, ok)
		}
		// Another merchant's follower with the same openid is someone else.
		ev.MerchantID = dbtest.NewMerchantID()
		if reply, _ := kw.Reply(f.ctx(), ev); strings.Contains(reply, "7") {
			t.Fatalf("cross-merchant reply %q", reply)
		}
	})
}

func TestLiabilityReport(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		f := newFixture(t, gdb)
		f.setRules(func(r *Rules) {
			r.Expiry = Expiry{Policy: ExpiryRollingMonths, Months: 2}
			r.LiabilityFenPer100 = 50 // 100 points = 0.50 yuan
		})
		a, b := f.member(), f.member()
		f.order(a, 10000) // March: 100, expiring in May
		f.clock.Add(31 * 24 * time.Hour)
		f.order(b, 20000) // April: 200, expiring in June
		rw := f.reward(30, nil)
		if _, _, err := f.svc.Redeem(f.ctx(), f.merchantID, a, rw.ID, "r"); err != nil {
			t.Fatal(err)
		}
		rep, err := f.svc.Liability(f.ctx(), f.merchantID, "2026-03", "2026-04")
		if err != nil {
			t.Fatal(err)
		}
		if rep.Outstanding != 270 || rep.Members != 2 || rep.ValueFen != 135 {
			t.Fatalf("totals %+v", rep)
		}
		if len(rep.ExpiringByMonth) != 2 || rep.ExpiringByMonth[0] != (MonthPoints{"2026-05", 70}) ||
			rep.ExpiringByMonth[1] != (MonthPoints{"2026-06", 200}) {
			t.Fatalf("expiring %+v", rep.ExpiringByMonth)
		}
		if len(rep.Periods) != 2 || rep.Periods[0].Earned != 100 || rep.Periods[1].Earned != 200 || rep.Periods[1].Redeemed != 30 {
			t.Fatalf("periods %+v", rep.Periods)
		}
		_, err = f.svc.Liability(f.ctx(), f.merchantID, "2026-05", "2026-04")
		wantKind(t, err, apperr.ErrInvalid)
		_, err = f.svc.Liability(f.ctx(), f.merchantID, "2020-01", "2026-04")
		wantKind(t, err, apperr.ErrInvalid)
		_, err = f.svc.Liability(f.ctx(), f.merchantID, "March", "")
		wantKind(t, err, apperr.ErrInvalid)
	})
}
