// Command points is the load program of the points ledger (issue 4).
//
// Part 1, throughput: it creates a fresh MySQL database with two merchants
// of -members members each (three tiers, default rules, 1000 points each
// to start with), then runs, in
// alternating rounds of -duration each, with -clients concurrent clients
// picking random members:
//
//   - earn/service:  points.Service.RecordOrder (merchant 1)
//   - earn/sql:      the same transaction shape written as plain SQL through
//     database/sql (merchant 2): the same reads before the transaction, the
//     same statements inside it, in the same order, on the same pool;
//   - redeem/service: points.Service.Redeem of a 10-point reward (merchant 1)
//   - redeem/sql:     its plain-SQL twin (merchant 2).
//
// It prints each round, the medians, the service/ceiling ratios, and then
// reconciles both merchants (the plain-SQL twin must keep the books exactly
// as the service does, or reconcile says so).
//
// Part 2, reconcile at scale: in a second database (<name>_big, seeded once
// and reused; -reseed rebuilds it) it seeds -big-members members with
// accounts, one active lot each and -big-entries ledger entries with
// multi-row INSERTs, then runs `points reconcile` in a child process -runs
// times and reports each run's time and the child's peak resident memory
// (VmHWM).
//
//	go run ./docs/bench/points -dsn 'root@tcp(127.0.0.1:3306)/loyalty_bench_points'
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
)

var (
	dsnFlag     = flag.String("dsn", "root@tcp(127.0.0.1:3306)/loyalty_bench_points", "MySQL DSN; the database is dropped and created")
	membersFlag = flag.Int("members", 10_000, "members per merchant for the throughput runs")
	clients     = flag.Int("clients", 64, "concurrent clients")
	duration    = flag.Duration("duration", 10*time.Second, "length of each measured phase")
	rounds      = flag.Int("rounds", 3, "alternating rounds of the four phases")
	bigMembers  = flag.Int("big-members", 1_000_000, "members of the reconcile-at-scale database")
	bigEntries  = flag.Int("big-entries", 10_000_000, "ledger entries of the reconcile-at-scale database")
	runs        = flag.Int("runs", 3, "reconcile runs at scale")
	reseed      = flag.Bool("reseed", false, "rebuild the reconcile-at-scale database")
	skip        = flag.String("skip", "", "skip a part: throughput or big")
	child       = flag.Bool("child-reconcile", false, "internal: run one reconcile and print its figures")
)

func main() {
	flag.Parse()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *child {
		childReconcile(ctx, log)
		return
	}
	gdb, err := openFresh(ctx, *dsnFlag, true, log)
	if err != nil {
		fail(err)
	}
	var version string
	var bp int64
	gdb.Raw("SELECT VERSION()").Scan(&version)
	gdb.Raw("SELECT @@innodb_buffer_pool_size").Scan(&bp)
	fmt.Printf("server %s, innodb_buffer_pool_size %d MiB, GOMAXPROCS %d, %d clients\n\n", version, bp>>20, runtime.GOMAXPROCS(0), *clients)
	if *skip != "throughput" {
		if err := throughput(ctx, gdb, log); err != nil {
			fail(err)
		}
	}
	_ = db.Close(gdb)
	if *skip != "big" {
		if err := reconcileAtScale(ctx, log); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "points bench:", err)
	os.Exit(1)
}

// openFresh opens the DSN's database, creating (or, with drop, recreating)
// it, and migrates it.
func openFresh(ctx context.Context, dsn string, drop bool, log *slog.Logger) (*gorm.DB, error) {
	cfg, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	name := cfg.DBName
	if name == "" || strings.ContainsAny(name, "`") {
		return nil, errors.New("the DSN must name a database")
	}
	cfg.DBName = ""
	server, err := db.Open(ctx, db.Options{Driver: db.MySQL, DSN: cfg.FormatDSN(), MaxOpenConns: 1})
	if err != nil {
		return nil, err
	}
	if drop {
		if err := server.Exec("DROP DATABASE IF EXISTS `" + name + "`").Error; err != nil {
			return nil, err
		}
	}
	if err := server.Exec("CREATE DATABASE IF NOT EXISTS `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci").Error; err != nil {
		return nil, err
	}
	_ = db.Close(server)
	gdb, err := db.Open(ctx, db.Options{Driver: db.MySQL, DSN: dsn, MaxOpenConns: *clients + 16})
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, gdb, log); err != nil {
		return nil, err
	}
	return gdb, nil
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

type shanghai struct{}

func (shanghai) Location(context.Context, uint64) (*time.Location, error) {
	return time.LoadLocation("Asia/Shanghai")
}

const (
	svcMerchant = 1
	sqlMerchant = 2
	rewardCost  = 10
)

// ---- part 1: throughput ----

func throughput(ctx context.Context, gdb *gorm.DB, log *slog.Logger) error {
	start := time.Now()
	firstID := map[uint64]uint64{}
	for _, mid := range []uint64{svcMerchant, sqlMerchant} {
		id, err := seedMembers(ctx, gdb, mid, *membersFlag)
		if err != nil {
			return err
		}
		firstID[mid] = id
		if err := fund(ctx, gdb, mid, id, *membersFlag); err != nil {
			return err
		}
	}
	svc := points.NewService(gdb, member.NewService(gdb, nil, now, log), shanghai{}, now, log)
	rewards := map[uint64]uint64{}
	for _, mid := range []uint64{svcMerchant, sqlMerchant} {
		for i, th := range []int64{0, 100_000, 500_000} {
			name, level, mult := fmt.Sprintf("tier %d", i+1), i+1, 100+50*i
			if _, err := svc.SaveTier(ctx, mid, 0, points.TierInput{Name: &name, Level: &level, Threshold: &th, MultiplierPct: &mult}); err != nil {
				return err
			}
		}
		name, kind, cost := "coffee", points.RewardGift, int64(rewardCost)
		r, err := svc.SaveReward(ctx, mid, 0, points.RewardInput{Name: &name, Kind: &kind, PointsCost: &cost})
		if err != nil {
			return err
		}
		rewards[mid] = r.ID
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return err
	}
	fmt.Printf("seeded 2 × %d members with 1000 points each in %v\n\n", *membersFlag, time.Since(start).Round(time.Millisecond))

	var seq atomic.Int64
	pick := func(r *rand.Rand, mid uint64) uint64 { return firstID[mid] + uint64(r.IntN(*membersFlag)) }
	phases := []struct {
		name string
		op   func(ctx context.Context, r *rand.Rand) (bool, error)
	}{
		{"earn/service", func(ctx context.Context, r *rand.Rand) (bool, error) {
			_, _, err := svc.RecordOrder(ctx, svcMerchant, points.OrderInput{ExternalID: "b" + strconv.FormatInt(seq.Add(1), 10),
				Member: member.BuyerRef{ID: pick(r, svcMerchant)}, AmountFen: int64(100 + r.IntN(50_000))})
			return true, err
		}},
		{"earn/sql", func(ctx context.Context, r *rand.Rand) (bool, error) {
			return true, plainEarn(ctx, sqlDB, sqlMerchant, "b"+strconv.FormatInt(seq.Add(1), 10), pick(r, sqlMerchant), int64(100+r.IntN(50_000)))
		}},
		{"redeem/service", func(ctx context.Context, r *rand.Rand) (bool, error) {
			_, _, err := svc.Redeem(ctx, svcMerchant, pick(r, svcMerchant), rewards[svcMerchant], "q"+strconv.FormatInt(seq.Add(1), 10))
			if err != nil && strings.Contains(err.Error(), "not enough points") {
				return false, nil
			}
			return true, err
		}},
		{"redeem/sql", func(ctx context.Context, r *rand.Rand) (bool, error) {
			err := plainRedeem(ctx, sqlDB, sqlMerchant, pick(r, sqlMerchant), rewards[sqlMerchant], "q"+strconv.FormatInt(seq.Add(1), 10))
			if errors.Is(err, errPlainInsufficient) {
				return false, nil
			}
			return true, err
		}},
	}
	results := map[string][]result{}
	for round := 1; round <= *rounds; round++ {
		for _, ph := range phases {
			res, err := runPhase(ctx, ph.op)
			if err != nil {
				return fmt.Errorf("%s: %w", ph.name, err)
			}
			results[ph.name] = append(results[ph.name], res)
			fmt.Printf("round %d %-15s %7.0f tx/s  p50 %6.2f ms  p99 %6.2f ms  (%d done, %d refused)\n", round, ph.name,
				res.rate, ms(res.p50), ms(res.p99), res.done, res.refused)
		}
	}
	fmt.Println()
	med := func(name string) result {
		rs := slices.Clone(results[name])
		slices.SortFunc(rs, func(a, b result) int {
			if a.rate < b.rate {
				return -1
			}
			return 1
		})
		return rs[len(rs)/2]
	}
	fmt.Printf("medians of %d rounds (%s each):\n", *rounds, *duration)
	for _, op := range []string{"earn", "redeem"} {
		s, c := med(op+"/service"), med(op+"/sql")
		fmt.Printf("  %-6s service %7.0f tx/s (p50 %.2f ms, p99 %.2f ms)   plain SQL %7.0f tx/s (p50 %.2f ms, p99 %.2f ms)   ratio %.0f%%\n",
			op, s.rate, ms(s.p50), ms(s.p99), c.rate, ms(c.p50), ms(c.p99), 100*s.rate/c.rate)
	}
	start = time.Now()
	for _, mid := range []uint64{svcMerchant, sqlMerchant} {
		rep, err := points.Reconcile(ctx, gdb, points.ReconcileOptions{MerchantID: mid, Facts: true})
		if err != nil {
			return err
		}
		fmt.Printf("reconcile merchant %d: %d accounts, %d entries, %d mismatches\n", mid, rep.Accounts, rep.Entries, rep.MismatchCount)
		for _, m := range rep.Mismatches {
			fmt.Println("  ", m)
		}
	}
	fmt.Printf("(reconciled in %v)\n\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type result struct {
	rate          float64
	p50, p99      time.Duration
	done, refused int64
}

// runPhase runs op from -clients goroutines for -duration.
func runPhase(ctx context.Context, op func(context.Context, *rand.Rand) (bool, error)) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	var wg sync.WaitGroup
	var done, refused atomic.Int64
	lat := make([][]time.Duration, *clients)
	errc := make(chan error, *clients)
	start := time.Now()
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				t0 := time.Now()
				ok, err := op(context.Background(), r)
				if err != nil {
					errc <- err
					cancel()
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
				done.Add(1)
				if !ok {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errc:
		return result{}, err
	default:
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	res := result{rate: float64(done.Load()) / elapsed.Seconds(), done: done.Load(), refused: refused.Load()}
	if len(all) > 0 {
		res.p50, res.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	return res, nil
}

// seedMembers inserts n members of the merchant and returns the first id.
func seedMembers(ctx context.Context, gdb *gorm.DB, merchantID uint64, n int) (uint64, error) {
	sqlDB, err := gdb.DB()
	if err != nil {
		return 0, err
	}
	var first uint64
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for start := 0; start < n; start += 2000 {
		k := min(2000, n-start)
		var b strings.Builder
		args := make([]any, 0, k*3)
		b.WriteString("INSERT INTO members (merchant_id, name, source, created_at, updated_at) VALUES ")
		for i := 0; i < k; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?, ?, 'mp_login', ?, ?)")
			args = append(args, merchantID, fmt.Sprintf("m%d", start+i), created, created)
		}
		res, err := sqlDB.ExecContext(ctx, b.String(), args...)
		if err != nil {
			return 0, err
		}
		if start == 0 {
			id, _ := res.LastInsertId()
			first = uint64(id)
		}
	}
	return first, nil
}

// fund gives each member an account holding 1000 points (a gift entry and
// its lot), so redemptions mostly succeed and earns find an account.
func fund(ctx context.Context, gdb *gorm.DB, merchantID, first uint64, n int) error {
	sqlDB, err := gdb.DB()
	if err != nil {
		return err
	}
	at := now()
	expires := at.AddDate(1, 0, 0)
	for start := 0; start < n; start += 1000 {
		k := min(1000, n-start)
		var ab, lb, eb strings.Builder
		var aargs, largs, eargs []any
		ab.WriteString("INSERT INTO points_accounts (merchant_id, member_id, available, created_at, updated_at) VALUES ")
		lb.WriteString("INSERT INTO points_lots (merchant_id, member_id, ledger_id, status, points, remaining, expires_at, created_at, updated_at) VALUES ")
		eb.WriteString("INSERT INTO points_ledger (merchant_id, member_id, kind, points, pending, balance, reason, ref_type, ref_id, idempotency_key, expires_at, created_at) VALUES ")
		for i := 0; i < k; i++ {
			id := first + uint64(start+i)
			if i > 0 {
				ab.WriteByte(',')
				lb.WriteByte(',')
				eb.WriteByte(',')
			}
			ab.WriteString("(?, ?, 1000, ?, ?)")
			aargs = append(aargs, merchantID, id, at, at)
			lb.WriteString("(?, ?, 0, 'active', 1000, 1000, ?, ?, ?)")
			largs = append(largs, merchantID, id, expires, at, at)
			eb.WriteString("(?, ?, 'gift', 1000, 0, 1000, 'welcome', 'gift', 'seed', ?, ?, ?)")
			eargs = append(eargs, merchantID, id, "gift:seed:"+strconv.FormatUint(id, 10), expires, at)
		}
		for _, q := range []struct {
			sql  string
			args []any
		}{{ab.String(), aargs}, {lb.String(), largs}, {eb.String(), eargs}} {
			if _, err := sqlDB.ExecContext(ctx, q.sql, q.args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- the plain-SQL twins of RecordOrder and Redeem ----

// plainEarn is RecordOrder's transaction shape in database/sql: the same
// reads before the transaction (rules, tiers, the member, "is this order
// known?"), then inside it the same statements in the same order (order
// re-check, purchase facts, account lock, entry, lot, order, qualifying
// spend, account update), with the same rules (default rate, tier
// multiplier, 12-month expiry at Shanghai midnight, upgrade on reaching a
// threshold).
func plainEarn(ctx context.Context, sqlDB *sql.DB, mid uint64, ext string, memberID uint64, amount int64) error {
	at := now()
	var body string
	_ = sqlDB.QueryRowContext(ctx, "SELECT body FROM points_rule_versions WHERE merchant_id = ? ORDER BY version DESC LIMIT 1", mid).Scan(&body)
	tiers, err := plainTiers(ctx, sqlDB, mid)
	if err != nil {
		return err
	}
	var found uint64
	var birthday sql.NullInt64
	if err := sqlDB.QueryRowContext(ctx, "SELECT id, birthday_month FROM members WHERE merchant_id = ? AND id = ? LIMIT 1", mid, memberID).
		Scan(&found, &birthday); err != nil {
		return err
	}
	var dummy uint64
	if err := sqlDB.QueryRowContext(ctx, "SELECT id FROM points_orders WHERE merchant_id = ? AND external_id = ? LIMIT 1", mid, ext).
		Scan(&dummy); err == nil {
		return nil // replay
	} else if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := tx.QueryRowContext(ctx, "SELECT id FROM points_orders WHERE merchant_id = ? AND external_id = ? LIMIT 1", mid, ext).
		Scan(&dummy); err == nil {
		return nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE members SET order_count = order_count + ?, total_spend_fen = total_spend_fen + ?,
  first_order_at = CASE WHEN first_order_at IS NULL OR first_order_at > ? THEN ? ELSE first_order_at END,
  last_order_at = CASE WHEN last_order_at IS NULL OR last_order_at < ? THEN ? ELSE last_order_at END
WHERE merchant_id = ? AND id = ?`, 1, amount, at, at, at, at, mid, memberID); err != nil {
		return err
	}
	a, err := plainLockAccount(ctx, tx, mid, memberID, at)
	if err != nil {
		return err
	}
	pct := int64(100)
	for _, t := range tiers {
		if a.tierID.Valid && uint64(a.tierID.Int64) == t.id {
			pct = t.mult
		}
	}
	pts := amount * pct / 100 / 100
	loc, _ := time.LoadLocation("Asia/Shanghai")
	l := at.In(loc)
	expires := time.Date(l.Year()+1, l.Month(), l.Day(), 0, 0, 0, 0, loc).UTC()
	detail := fmt.Sprintf(`{"amount_fen":%d,"rate":"1 point per 100 fen, rounded down","tier_pct":%d,"birthday_pct":100,"computed":%d,"capped_by":0,"points":%d}`,
		amount, pct, pts, pts)
	var ledgerID, lotID any
	if pts > 0 {
		a.available += pts
		res, err := tx.ExecContext(ctx, `INSERT INTO points_ledger (merchant_id, member_id, kind, points, pending, balance, reason,
  ref_type, ref_id, rule_version, idempotency_key, expires_at, created_at) VALUES (?, ?, 'earn', ?, 0, ?, ?, 'order', ?, 0, ?, ?, ?)`,
			mid, memberID, pts, a.available, "order "+ext, ext, "order:"+ext, expires, at)
		if err != nil {
			return err
		}
		id, _ := res.LastInsertId()
		ledgerID = id
		res, err = tx.ExecContext(ctx, `INSERT INTO points_lots (merchant_id, member_id, ledger_id, status, points, remaining,
  available_at, expires_at, created_at, updated_at) VALUES (?, ?, ?, 'active', ?, ?, NULL, ?, ?, ?)`,
			mid, memberID, id, pts, pts, expires, at, at)
		if err != nil {
			return err
		}
		lid, _ := res.LastInsertId()
		lotID = lid
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO points_orders (merchant_id, member_id, external_id, amount_fen, refunded_fen, points,
  points_reversed, lot_id, ledger_id, rule_version, earn_detail, campaign_id, items, ordered_at, created_at, updated_at)
  VALUES (?, ?, ?, ?, 0, ?, 0, ?, ?, 0, ?, NULL, NULL, ?, ?, ?)`, mid, memberID, ext, amount, pts, lotID, ledgerID, detail, at, at, at); err != nil {
		return err
	}
	var q int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(amount_fen - refunded_fen), 0) FROM points_orders
WHERE merchant_id = ? AND member_id = ? AND ordered_at >= ?`, mid, memberID, at.AddDate(-1, 0, 0)).Scan(&q); err != nil {
		return err
	}
	var target *plainTier
	for i := range tiers {
		if tiers[i].threshold <= q {
			target = &tiers[i]
		}
	}
	curLevel := -1
	for _, t := range tiers {
		if a.tierID.Valid && uint64(a.tierID.Int64) == t.id {
			curLevel = t.level
		}
	}
	if target != nil && target.level > curLevel {
		review := time.Date(l.Year()+1, l.Month(), l.Day(), 0, 0, 0, 0, loc).UTC()
		var from any
		if curLevel >= 0 {
			from = a.tierID
		}
		a.tierID = sql.NullInt64{Int64: int64(target.id), Valid: true}
		a.tierSince, a.tierReview = sql.NullTime{Time: at, Valid: true}, sql.NullTime{Time: review, Valid: true}
		if _, err := tx.ExecContext(ctx, `INSERT INTO points_tier_history (merchant_id, member_id, from_tier_id, to_tier_id, reason,
  qualifying, created_at) VALUES (?, ?, ?, ?, 'upgrade', ?, ?)`, mid, memberID, from, target.id, q, at); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE members SET tier_id = ? WHERE merchant_id = ? AND id = ?", target.id, mid, memberID); err != nil {
			return err
		}
	}
	if err := plainSaveAccount(ctx, tx, mid, memberID, a, at); err != nil {
		return err
	}
	return tx.Commit()
}

type plainTier struct {
	id        uint64
	level     int
	threshold int64
	mult      int64
}

func plainTiers(ctx context.Context, sqlDB *sql.DB, mid uint64) ([]plainTier, error) {
	rows, err := sqlDB.QueryContext(ctx, "SELECT id, level, threshold, multiplier_pct FROM points_tiers WHERE merchant_id = ? ORDER BY level", mid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []plainTier
	for rows.Next() {
		var t plainTier
		if err := rows.Scan(&t.id, &t.level, &t.threshold, &t.mult); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

type plainAccount struct {
	available, pending, debt int64
	tierID                   sql.NullInt64
	tierSince, tierReview    sql.NullTime
	tierGrace                sql.NullTime
	capDay, streakDay        int
	capEarned                int64
	streak, flags            int
}

const plainAccountCols = "available, pending, debt, tier_id, tier_since, tier_review_at, tier_grace_until, cap_day, cap_earned, streak_day, streak, bonus_flags"

func plainLockAccount(ctx context.Context, tx *sql.Tx, mid, memberID uint64, at time.Time) (plainAccount, error) {
	var a plainAccount
	scan := func() error {
		return tx.QueryRowContext(ctx, "SELECT "+plainAccountCols+" FROM points_accounts WHERE merchant_id = ? AND member_id = ? FOR UPDATE",
			mid, memberID).Scan(&a.available, &a.pending, &a.debt, &a.tierID, &a.tierSince, &a.tierReview, &a.tierGrace,
			&a.capDay, &a.capEarned, &a.streakDay, &a.streak, &a.flags)
	}
	err := scan()
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO points_accounts (merchant_id, member_id, created_at, updated_at) VALUES (?, ?, ?, ?)
ON DUPLICATE KEY UPDATE member_id = member_id`, mid, memberID, at, at); err != nil {
			return a, err
		}
		err = scan()
	}
	return a, err
}

func plainSaveAccount(ctx context.Context, tx *sql.Tx, mid, memberID uint64, a plainAccount, at time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE points_accounts SET available = ?, pending = ?, debt = ?, tier_id = ?, tier_since = ?,
  tier_review_at = ?, tier_grace_until = ?, cap_day = ?, cap_earned = ?, streak_day = ?, streak = ?, bonus_flags = ?, updated_at = ?
WHERE merchant_id = ? AND member_id = ?`, a.available, a.pending, a.debt, a.tierID, a.tierSince, a.tierReview, a.tierGrace,
		a.capDay, a.capEarned, a.streakDay, a.streak, a.flags, at, mid, memberID)
	return err
}

var errPlainInsufficient = errors.New("not enough points")

// plainRedeem is Redeem's transaction shape in database/sql: the replay
// check, the reward and the rules before the transaction; inside it the
// account lock, the replay re-check, the reward, the oldest-expiring lots,
// their updates, the entry, the redemption, its lot allocations and the
// account update.
func plainRedeem(ctx context.Context, sqlDB *sql.DB, mid, memberID, rewardID uint64, requestID string) error {
	at := now()
	key := "redeem:" + strconv.FormatUint(memberID, 10) + ":" + requestID
	var dummy uint64
	if err := sqlDB.QueryRowContext(ctx, "SELECT id FROM points_redemptions WHERE merchant_id = ? AND idempotency_key = ? LIMIT 1", mid, key).
		Scan(&dummy); err == nil {
		return nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	var cost int64
	var name string
	if err := sqlDB.QueryRowContext(ctx, "SELECT points_cost, name FROM points_rewards WHERE merchant_id = ? AND id = ? AND deleted_at IS NULL LIMIT 1",
		mid, rewardID).Scan(&cost, &name); err != nil {
		return err
	}
	var body string
	_ = sqlDB.QueryRowContext(ctx, "SELECT body FROM points_rule_versions WHERE merchant_id = ? ORDER BY version DESC LIMIT 1", mid).Scan(&body)
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	a, err := plainLockAccount(ctx, tx, mid, memberID, at)
	if err != nil {
		return err
	}
	if err := tx.QueryRowContext(ctx, "SELECT id FROM points_redemptions WHERE merchant_id = ? AND idempotency_key = ? LIMIT 1", mid, key).
		Scan(&dummy); err == nil {
		return nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	var active bool
	if err := tx.QueryRowContext(ctx, "SELECT points_cost, active FROM points_rewards WHERE merchant_id = ? AND id = ? AND deleted_at IS NULL LIMIT 1",
		mid, rewardID).Scan(&cost, &active); err != nil {
		return err
	}
	if a.available < cost {
		return errPlainInsufficient
	}
	type take struct {
		id      uint64
		left, n int64
	}
	var takes []take
	need := cost
	for need > 0 {
		rows, err := tx.QueryContext(ctx, `SELECT id, merchant_id, remaining FROM points_lots WHERE merchant_id = ? AND member_id = ? AND status = 'active'
ORDER BY CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, id LIMIT 50`, mid, memberID)
		if err != nil {
			return err
		}
		var batch []take
		for rows.Next() {
			var t take
			var m uint64
			if err := rows.Scan(&t.id, &m, &t.left); err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, t)
		}
		rows.Close()
		if len(batch) == 0 {
			break
		}
		for _, t := range batch {
			if need == 0 {
				break
			}
			t.n = min(need, t.left)
			status := "active"
			if t.left-t.n == 0 {
				status = "used"
			}
			if _, err := tx.ExecContext(ctx, "UPDATE points_lots SET remaining = ?, status = ?, updated_at = ? WHERE id = ? AND merchant_id = ?",
				t.left-t.n, status, at, t.id, mid); err != nil {
				return err
			}
			need -= t.n
			takes = append(takes, t)
		}
	}
	a.available -= cost
	res, err := tx.ExecContext(ctx, `INSERT INTO points_ledger (merchant_id, member_id, kind, points, pending, balance, reason,
  ref_type, ref_id, rule_version, idempotency_key, expires_at, created_at) VALUES (?, ?, 'redeem', ?, 0, ?, ?, 'reward', ?, 0, ?, NULL, ?)`,
		mid, memberID, -cost, a.available, "redeemed "+name, strconv.FormatUint(rewardID, 10), key, at)
	if err != nil {
		return err
	}
	ledgerID, _ := res.LastInsertId()
	res, err = tx.ExecContext(ctx, `INSERT INTO points_redemptions (merchant_id, member_id, reward_id, reward_name, idempotency_key, points,
  cash_fen, code, status, ledger_id, cancel_ledger_id, cancel_reason, created_at, cancelled_at)
  VALUES (?, ?, ?, ?, ?, ?, 0, NULL, 'completed', ?, NULL, '', ?, NULL)`, mid, memberID, rewardID, name, key, cost, ledgerID, at)
	if err != nil {
		return err
	}
	redID, _ := res.LastInsertId()
	if len(takes) > 0 {
		var b strings.Builder
		args := make([]any, 0, 4*len(takes))
		b.WriteString("INSERT INTO points_redemption_lots (merchant_id, redemption_id, lot_id, points) VALUES ")
		for i, t := range takes {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?, ?, ?, ?)")
			args = append(args, mid, redID, t.id, t.n)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
	}
	if err := plainSaveAccount(ctx, tx, mid, memberID, a, at); err != nil {
		return err
	}
	return tx.Commit()
}

// ---- part 2: reconcile at scale ----

func bigDSN() (string, error) {
	cfg, err := mysqldrv.ParseDSN(*dsnFlag)
	if err != nil {
		return "", err
	}
	cfg.DBName += "_big"
	return cfg.FormatDSN(), nil
}

func reconcileAtScale(ctx context.Context, log *slog.Logger) error {
	dsn, err := bigDSN()
	if err != nil {
		return err
	}
	gdb, err := openFresh(ctx, dsn, *reseed, log)
	if err != nil {
		return err
	}
	var have int64
	gdb.Raw("SELECT COUNT(*) FROM points_accounts").Scan(&have)
	if have != int64(*bigMembers) {
		if have != 0 {
			_ = db.Close(gdb)
			if gdb, err = openFresh(ctx, dsn, true, log); err != nil {
				return err
			}
		}
		if err := seedBig(ctx, gdb); err != nil {
			return err
		}
	}
	var entries int64
	gdb.Raw("SELECT COUNT(*) FROM points_ledger").Scan(&entries)
	_ = db.Close(gdb)
	fmt.Printf("reconcile at scale: %d members/accounts, %d ledger entries, one active lot per member\n", *bigMembers, entries)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	for i := 1; i <= *runs; i++ {
		cmd := exec.CommandContext(ctx, exe, "-child-reconcile", "-dsn", dsn)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("reconcile run %d: %w\n%s", i, err, out)
		}
		fmt.Printf("run %d: %s", i, out)
	}
	return nil
}

// seedBig writes members, accounts, lots and entries with multi-row
// INSERTs from 4 connections, in primary-key and index order.
func seedBig(ctx context.Context, gdb *gorm.DB) error {
	start := time.Now()
	sqlDB, err := gdb.DB()
	if err != nil {
		return err
	}
	perMember := *bigEntries / *bigMembers
	const batchMembers = 500
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	expires := time.Date(2026, 12, 1, 16, 0, 0, 0, time.UTC)
	work := make(chan int, 8)
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	var doneMembers atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := range work {
				if err := seedBatch(ctx, sqlDB, first, min(batchMembers, *bigMembers-first+1), perMember, base, expires); err != nil {
					errc <- err
					return
				}
				if n := doneMembers.Add(batchMembers); n%100_000 == 0 {
					fmt.Fprintf(os.Stderr, "  seeded %d members (%v)\n", n, time.Since(start).Round(time.Second))
				}
			}
		}()
	}
	go func() {
		defer close(work)
		for first := 1; first <= *bigMembers; first += batchMembers {
			select {
			case work <- first:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	fmt.Printf("seeded in %v\n", time.Since(start).Round(time.Second))
	return nil
}

// seedBatch seeds members first..first+n-1 of merchant 1: each has
// perMember entries (earns of 10..50 points and, every fourth entry, a
// redemption of 5), an account holding their sum and one lot holding it.
func seedBatch(ctx context.Context, sqlDB *sql.DB, first, n, perMember int, base, expires time.Time) error {
	var mb, ab, lb, eb strings.Builder
	var margs, aargs, largs, eargs []any
	mb.WriteString("INSERT INTO members (id, merchant_id, name, source, created_at, updated_at) VALUES ")
	ab.WriteString("INSERT INTO points_accounts (merchant_id, member_id, available, created_at, updated_at) VALUES ")
	lb.WriteString("INSERT INTO points_lots (merchant_id, member_id, ledger_id, status, points, remaining, expires_at, created_at, updated_at) VALUES ")
	eb.WriteString("INSERT INTO points_ledger (merchant_id, member_id, kind, points, pending, balance, ref_type, ref_id, idempotency_key, created_at) VALUES ")
	entries := 0
	flush := func() error {
		if entries == 0 {
			return nil
		}
		_, err := sqlDB.ExecContext(ctx, eb.String(), eargs...)
		eb.Reset()
		eb.WriteString("INSERT INTO points_ledger (merchant_id, member_id, kind, points, pending, balance, ref_type, ref_id, idempotency_key, created_at) VALUES ")
		eargs, entries = eargs[:0], 0
		return err
	}
	for i := 0; i < n; i++ {
		id := first + i
		if i > 0 {
			mb.WriteByte(',')
			ab.WriteByte(',')
			lb.WriteByte(',')
		}
		at := base.Add(time.Duration(id) * time.Second)
		mb.WriteString("(?, 1, '', 'mp_login', ?, ?)")
		margs = append(margs, id, at, at)
		var bal int64
		for k := 0; k < perMember; k++ {
			p := int64(10 + (id*7+k*13)%41)
			kind := "earn"
			if k%4 == 3 && bal >= 5 {
				p, kind = -5, "redeem"
			}
			bal += p
			if entries > 0 {
				eb.WriteByte(',')
			}
			eb.WriteString("(1, ?, ?, ?, 0, ?, 'order', '', ?, ?)")
			eargs = append(eargs, id, kind, p, bal, "s:"+strconv.Itoa(id)+":"+strconv.Itoa(k), at.Add(time.Duration(k)*time.Millisecond))
			entries++
			if entries == 2000 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		ab.WriteString("(1, ?, ?, ?, ?)")
		aargs = append(aargs, id, bal, at, at)
		lb.WriteString("(1, ?, 0, 'active', ?, ?, ?, ?, ?)")
		largs = append(largs, id, bal, bal, expires, at, at)
	}
	if err := flush(); err != nil {
		return err
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{{mb.String(), margs}, {ab.String(), aargs}, {lb.String(), largs}} {
		if _, err := sqlDB.ExecContext(ctx, q.sql, q.args...); err != nil {
			return err
		}
	}
	return nil
}

// childReconcile runs one reconcile over the whole database and prints the
// time and the process's peak resident memory.
func childReconcile(ctx context.Context, log *slog.Logger) {
	gdb, err := db.Open(ctx, db.Options{Driver: db.MySQL, DSN: *dsnFlag, MaxOpenConns: 2, Logger: log})
	if err != nil {
		fail(err)
	}
	start := time.Now()
	var out strings.Builder
	err = points.RunReconcile(ctx, gdb, nil, &out, io.Discard)
	elapsed := time.Since(start)
	if err != nil {
		fail(fmt.Errorf("%w\n%s", err, out.String()))
	}
	last := strings.TrimSpace(out.String())
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	fmt.Printf("%v, VmHWM %s — %s\n", elapsed.Round(time.Millisecond), vmHWM(), last)
}

func vmHWM() string {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "n/a"
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "n/a"
}
