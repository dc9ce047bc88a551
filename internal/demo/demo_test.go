package demo_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/demo"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

var (
	quiet    = slog.New(slog.DiscardHandler)
	shanghai = func() *time.Location {
		loc, err := time.LoadLocation("Asia/Shanghai")
		if err != nil {
			panic(err)
		}
		return loc
	}()
)

// merchants is the merchant directory the seed and the attribute pass see.
type merchants struct{ crm member.CRMSettings }

func (merchants) IDs(context.Context) ([]uint64, error) { return nil, nil }
func (merchants) Location(context.Context, uint64) (*time.Location, error) {
	return shanghai, nil
}
func (m merchants) CRMSettings(context.Context, uint64) (member.CRMSettings, error) {
	return m.crm, nil
}

// at is the fixed "now" of the tests.
var at = time.Date(2026, 3, 15, 6, 30, 0, 0, time.UTC)

func clock() time.Time { return at }

func seed(t *testing.T, gdb *gorm.DB, merchantID uint64, n int, s uint64) demo.Result {
	t.Helper()
	res, err := demo.Seed(context.Background(), gdb, merchants{member.DefaultCRMSettings},
		demo.Options{MerchantID: merchantID, Members: n, Seed: s, ChunkSize: 500, Now: clock, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func count(t *testing.T, gdb *gorm.DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := gdb.Raw(q, args...).Scan(&n).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// A small seed keeps the books: reconcile (balances against ledger and
// lots, purchase facts against orders) finds nothing, the facts agree with
// an independent count, every member was given attributes, and the stage
// events chain up to each member's stage.
func TestSeedIsConsistent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		ctx := context.Background()
		mid := dbtest.NewMerchantID()
		res := seed(t, gdb, mid, 2000, 7)
		t.Logf("%+v", res)
		if res.Members != 2000 || res.Orders < 1000 || res.Refunds == 0 || res.StageEvents == 0 || res.FollowEvents < 1000 ||
			res.LedgerEntries < res.Orders || res.CareDates == 0 || res.Consents == 0 || res.TagAssignments == 0 {
			t.Fatalf("implausible result %+v", res)
		}
		for table, want := range map[string]int64{"members": res.Members, "points_orders": res.Orders,
			"points_ledger": res.LedgerEntries, "points_lots": res.Lots, "points_refunds": res.Refunds,
			"points_accounts": res.Accounts, "member_stage_events": res.StageEvents + res.Recompute.StageChanges, "member_follow_events": res.FollowEvents,
			"member_tags": res.TagAssignments, "member_care_dates": res.CareDates, "member_consents": res.Consents} {
			if got := count(t, gdb, "SELECT COUNT(*) FROM "+table+" WHERE merchant_id = ?", mid); got != want {
				t.Errorf("%s: %d rows, result says %d", table, got, want)
			}
		}

		rep, err := points.Reconcile(ctx, gdb, points.ReconcileOptions{MerchantID: mid, Facts: true})
		if err != nil {
			t.Fatal(err)
		}
		if rep.MismatchCount != 0 || rep.Accounts != res.Accounts || rep.Entries != res.LedgerEntries {
			t.Fatalf("reconcile: %+v", rep)
		}

		// The facts, counted here without the points package.
		bad := count(t, gdb, `SELECT COUNT(*) FROM members m LEFT JOIN (
  SELECT member_id, SUM(CASE WHEN refunded_fen < amount_fen THEN 1 ELSE 0 END) AS n, SUM(amount_fen - refunded_fen) AS spend
  FROM points_orders WHERE merchant_id = ? GROUP BY member_id) o ON o.member_id = m.id
WHERE m.merchant_id = ? AND (m.order_count <> COALESCE(o.n, 0) OR m.total_spend_fen <> COALESCE(o.spend, 0)
  OR (m.order_count > 0) <> (m.last_order_at IS NOT NULL))`, mid, mid)
		if bad != 0 {
			t.Fatalf("%d members' purchase facts disagree with their orders", bad)
		}
		// Every order's points: earn entry, lot and order agree.
		key := "'order:' || o.external_id"
		if gdb.Dialector.Name() == dbtest.MySQL {
			key = "CONCAT('order:', o.external_id)"
		}
		if n := count(t, gdb, `SELECT COUNT(*) FROM points_orders o JOIN points_ledger e ON e.id = o.ledger_id
JOIN points_lots l ON l.id = o.lot_id
WHERE o.merchant_id = ? AND (e.points + e.pending <> o.points OR l.points <> o.points OR l.ledger_id <> e.id
  OR e.idempotency_key <> `+key+` OR e.member_id <> o.member_id)`, mid); n != 0 {
			t.Fatalf("%d orders disagree with their entries or lots", n)
		}
		if n := count(t, gdb, "SELECT COUNT(*) FROM points_orders WHERE merchant_id = ? AND points > 0 AND lot_id IS NULL", mid); n != 0 {
			t.Fatalf("%d orders with points but no lot", n)
		}

		// The attribute pass ran over everyone: pyramid tiers for all,
		// RFM scores for the customers of the last 12 months.
		if n := count(t, gdb, "SELECT COUNT(*) FROM members WHERE merchant_id = ? AND (pyramid_tier IS NULL OR attributes_at IS NULL)", mid); n != 0 {
			t.Fatalf("%d members without attributes", n)
		}
		recent := count(t, gdb, "SELECT COUNT(*) FROM members WHERE merchant_id = ? AND last_order_at >= ?", mid, at.Add(-365*24*time.Hour))
		if scored := count(t, gdb, "SELECT COUNT(*) FROM members WHERE merchant_id = ? AND rfm_r IS NOT NULL", mid); scored != recent || scored == 0 {
			t.Fatalf("%d members scored, %d bought in 12 months", scored, recent)
		}
		if res.Recompute.Members != 2000 || res.Recompute.Customers != recent {
			t.Fatalf("recompute %+v", res.Recompute)
		}
		var stages []struct {
			Stage string `gorm:"column:lifecycle_stage"`
			N     int64
		}
		gdb.Raw("SELECT lifecycle_stage, COUNT(*) AS n FROM members WHERE merchant_id = ? GROUP BY lifecycle_stage", mid).Scan(&stages)
		seen := map[string]int64{}
		for _, s := range stages {
			seen[s.Stage] = s.N
		}
		for _, s := range []string{member.StagePotential, member.StageNew, member.StageRepeat, member.StageLoyal,
			member.StageAtRisk, member.StageChurned, member.StageWonBack} {
			if seen[s] == 0 {
				t.Errorf("no member is %s: %v", s, seen)
			}
		}

		// Stage events chain: each member's first leaves potential, each
		// next leaves where the previous arrived, the last arrives at the
		// stored stage.
		var evs []member.StageEvent
		gdb.Where("merchant_id = ?", mid).Order("member_id, id").Find(&evs)
		var cur []struct {
			ID    uint64
			Stage string `gorm:"column:lifecycle_stage"`
		}
		gdb.Raw("SELECT id, lifecycle_stage FROM members WHERE merchant_id = ?", mid).Scan(&cur)
		stageOf := map[uint64]string{}
		for _, m := range cur {
			stageOf[m.ID] = member.StagePotential
		}
		for i, ev := range evs {
			if ev.FromStage != stageOf[ev.MemberID] || ev.FromStage == ev.ToStage || ev.OccurredAt.After(at) ||
				i > 0 && evs[i-1].MemberID == ev.MemberID && ev.OccurredAt.Before(evs[i-1].OccurredAt) {
				t.Fatalf("stage event %+v does not follow %q", ev, stageOf[ev.MemberID])
			}
			stageOf[ev.MemberID] = ev.ToStage
		}
		for _, m := range cur {
			if stageOf[m.ID] != m.Stage {
				t.Fatalf("member %d is %s, events end at %s", m.ID, m.Stage, stageOf[m.ID])
			}
		}

		// Some texture: 29 February birthdays, channels, unfollows, won-back
		// members, refunds in part and in full.
		for what, q := range map[string]string{
			"29 February birthdays": "SELECT COUNT(*) FROM members WHERE merchant_id = ? AND birthday_month = 2 AND birthday_day = 29",
			"channels":              "SELECT COUNT(DISTINCT channel_scene) FROM members WHERE merchant_id = ?",
			"unfollowers":           "SELECT COUNT(*) FROM members WHERE merchant_id = ? AND follow_status = 'unfollowed'",
			"won-back events":       "SELECT COUNT(*) FROM member_stage_events WHERE merchant_id = ? AND to_stage = 'won_back'",
			"partial refunds":       "SELECT COUNT(*) FROM points_orders WHERE merchant_id = ? AND refunded_fen > 0 AND refunded_fen < amount_fen",
			"full refunds":          "SELECT COUNT(*) FROM points_orders WHERE merchant_id = ? AND refunded_fen = amount_fen",
			"expired lots":          "SELECT COUNT(*) FROM points_lots WHERE merchant_id = ? AND status = 'expired'",
		} {
			if n := count(t, gdb, q, mid); n == 0 {
				t.Errorf("no %s", what)
			}
		}
		if n := count(t, gdb, "SELECT COUNT(DISTINCT channel_scene) FROM members WHERE merchant_id = ?", mid); n < 20 {
			t.Errorf("only %d channels: no long tail", n)
		}

		// The 2:8 figure of the pass is where the dashboard reads it.
		attrs := member.NewAttributes(gdb, points.NewHistory(gdb), merchants{member.DefaultCRMSettings}, clock, quiet)
		run, ok, err := attrs.LastRun(ctx, mid)
		if err != nil || !ok || run.ShareTop20 <= 0.2 || run.ShareTop20 >= 1 {
			t.Fatalf("last run %+v %v %v", run, ok, err)
		}

		// Seeding again is refused, and nothing changes.
		_, err = demo.Seed(ctx, gdb, merchants{member.DefaultCRMSettings},
			demo.Options{MerchantID: mid, Members: 10, Seed: 8, Now: clock, Log: quiet})
		if !errors.Is(err, demo.ErrNotEmpty) {
			t.Fatalf("second seed: %v", err)
		}
		if n := count(t, gdb, "SELECT COUNT(*) FROM members WHERE merchant_id = ?", mid); n != 2000 {
			t.Fatalf("%d members after the refused seed", n)
		}
	})
}

// The points jobs, run later on the seeded books (releases and expiries
// falling due), keep them reconciled; rules with a hold, a birthday bonus
// and a daily cap are followed.
func TestSeedWithHoldsThenJobs(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		ctx := context.Background()
		mid := dbtest.NewMerchantID()
		now := at
		psvc := points.NewService(gdb, nil, zone{}, func() time.Time { return now }, quiet)
		r := points.DefaultRules()
		r.PendingDays, r.BirthdayMultiplierPct, r.DailyCap = 7, 200, 300
		r.Expiry = points.Expiry{Policy: points.ExpiryRollingMonths, Months: 6}
		if _, err := psvc.SetRules(ctx, mid, r); err != nil {
			t.Fatal(err)
		}
		res := seed(t, gdb, mid, 600, 11)
		if n := count(t, gdb, "SELECT COUNT(*) FROM points_lots WHERE merchant_id = ? AND status = 'pending'", mid); n == 0 {
			t.Fatal("no held points with a 7-day hold")
		}
		if n := count(t, gdb, "SELECT COUNT(*) FROM points_ledger WHERE merchant_id = ? AND kind = 'release'", mid); n == 0 {
			t.Fatal("no releases")
		}
		if n := count(t, gdb, "SELECT COUNT(*) FROM points_orders WHERE merchant_id = ? AND earn_detail LIKE '%\"birthday_pct\":200%'", mid); n == 0 {
			t.Fatal("no birthday bonus")
		}
		if n := count(t, gdb, "SELECT COUNT(*) FROM points_orders WHERE merchant_id = ? AND points > 300", mid); n != 0 {
			t.Fatalf("%d orders above the daily cap", n)
		}
		check := func(when string) {
			rep, err := points.Reconcile(ctx, gdb, points.ReconcileOptions{MerchantID: mid, Facts: true})
			if err != nil || rep.MismatchCount != 0 {
				t.Fatalf("%s: reconcile %+v %v", when, rep, err)
			}
		}
		check("seeded")
		for _, later := range []time.Duration{0, 10 * 24 * time.Hour, 400 * 24 * time.Hour} {
			now = at.Add(later)
			if _, err := psvc.RunJobs(ctx); err != nil {
				t.Fatal(err)
			}
			check(fmt.Sprintf("jobs %v later", later))
		}
		if n := count(t, gdb, "SELECT COUNT(*) FROM points_lots WHERE merchant_id = ? AND status IN ('pending', 'active')", mid); n != 0 {
			t.Fatalf("%d lots still live 400 days on", n)
		}
		_ = res
	})
}

type zone struct{}

func (zone) Location(context.Context, uint64) (*time.Location, error) { return shanghai, nil }

// The same seed gives the same data; another seed other data.
func TestSeedIsDeterministic(t *testing.T) {
	gdb := dbtest.OpenSQLite(t)
	digest := func(mid uint64) string {
		var rows []struct {
			Name, Source string
			Phone        *string
			Orders       int64
			Spend        int64
		}
		gdb.Raw(`SELECT name, source, phone, order_count AS orders, total_spend_fen AS spend FROM members
WHERE merchant_id = ? ORDER BY id`, mid).Scan(&rows)
		var amounts []int64
		gdb.Raw("SELECT amount_fen FROM points_orders WHERE merchant_id = ? ORDER BY external_id", mid).Scan(&amounts)
		var b strings.Builder
		for _, r := range rows {
			fmt.Fprintf(&b, "%s|%s|%v|%d|%d\n", r.Name, r.Source, r.Phone != nil, r.Orders, r.Spend)
		}
		fmt.Fprint(&b, amounts)
		return fmt.Sprintf("%x", sha256.Sum256([]byte(b.String())))
	}
	a, b, c := dbtest.NewMerchantID(), dbtest.NewMerchantID(), dbtest.NewMerchantID()
	seed(t, gdb, a, 300, 42)
	seed(t, gdb, b, 300, 42)
	seed(t, gdb, c, 300, 43)
	if digest(a) != digest(b) {
		t.Fatal("the same seed gave different data")
	}
	if digest(a) == digest(c) {
		t.Fatal("another seed gave the same data")
	}
}

// A claim left by a seed that failed or still runs refuses another.
func TestSeedRefusesAfterAClaim(t *testing.T) {
	gdb := dbtest.OpenSQLite(t)
	mid := dbtest.NewMerchantID()
	if err := gdb.Create(&member.JobRun{MerchantID: mid, Job: "demo_seed", RunKey: "seed", Owner: "x", StartedAt: at}).Error; err != nil {
		t.Fatal(err)
	}
	_, err := demo.Seed(context.Background(), gdb, merchants{member.DefaultCRMSettings},
		demo.Options{MerchantID: mid, Members: 10, Now: clock, Log: quiet})
	if !errors.Is(err, demo.ErrAlreadyRun) {
		t.Fatalf("got %v", err)
	}
	if _, err := demo.Seed(context.Background(), gdb, merchants{member.DefaultCRMSettings},
		demo.Options{MerchantID: mid, Members: 0, Now: clock, Log: quiet}); err == nil || !strings.Contains(err.Error(), "members") {
		t.Fatalf("zero members: %v", err)
	}
}
