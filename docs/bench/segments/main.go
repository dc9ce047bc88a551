// Command segments is the load program of issue 5's closing figures, on
// MySQL/MariaDB with a merchant of -members members made by the demo
// generator (internal/demo, `loyalty demo seed`):
//
//  1. segment preview counts: five representative rules through
//     member.Segments (Compile + Count), p50/p99 over -runs runs each, and
//     in the same run, alternating with them, a plain SELECT COUNT(*) with
//     the same WHERE clause written by hand: the ceiling;
//  2. the nightly attribute pass (member.Attributes.Recompute) over all the
//     members, with the time of its two reads measured apart (the 12-month
//     totals, and every member's orders chunk by chunk) to show where the
//     time goes;
//  3. the dashboard (GET /api/admin/v1/dashboard through gin and the real
//     handler): cold (a new handler, nothing cached) and cached.
//
// The database is created and seeded when the merchant has no members yet
// (the seed's time is reported; -merchant uses one seeded before with
// `loyalty demo seed`); -reseed drops it first, -drop drops it at the end. -buffer-pool sets innodb_buffer_pool_size for the run and sets it
// back afterwards.
//
//	go run ./docs/bench/segments -dsn 'root@tcp(127.0.0.1:3306)/loyalty_bench_seg'
//	go run ./docs/bench/segments -buffer-pool 8G -runs 50
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	mysqldrv "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/internal/demo"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
)

var (
	dsnFlag    = flag.String("dsn", "root@tcp(127.0.0.1:3306)/loyalty_bench_seg", "MySQL DSN of the benchmark database (created if missing)")
	members    = flag.Int("members", 1_000_000, "members of the benchmark merchant")
	seedFlag   = flag.Uint64("seed", 1, "demo data seed")
	runs       = flag.Int("runs", 30, "measured runs per rule (and per ceiling)")
	dashRuns   = flag.Int("dashboard-runs", 5, "cold dashboard runs (cached runs: 40 times as many)")
	reseed     = flag.Bool("reseed", false, "drop and recreate the database first")
	dropAtEnd  = flag.Bool("drop", false, "drop the database at the end")
	bufferPool = flag.String("buffer-pool", "", "innodb_buffer_pool_size for this run (e.g. 8G), restored at the end")
	skip       = flag.String("skip", "", "comma-separated parts to skip: segments, recompute, dashboard")
	dump       = flag.String("dump", "", "write the dashboard's JSON answer to this file")
	merchantID = flag.Uint64("merchant", 0, "use this existing merchant (seeded with `loyalty demo seed`) instead of the benchmark's own")
)

const merchantName = "segments-bench"

func main() {
	flag.Parse()
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "segments bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := mysqldrv.ParseDSN(*dsnFlag)
	if err != nil {
		return err
	}
	name := cfg.DBName
	if name == "" || strings.ContainsAny(name, "`") {
		return errors.New("the DSN must name a database")
	}
	cfg.DBName = ""
	server, err := db.Open(ctx, db.Options{Driver: db.MySQL, DSN: cfg.FormatDSN(), MaxOpenConns: 2})
	if err != nil {
		return err
	}
	defer func() { _ = db.Close(server) }()
	if *bufferPool != "" {
		size, err := parseSize(*bufferPool)
		if err != nil {
			return err
		}
		var old int64
		server.Raw("SELECT @@innodb_buffer_pool_size").Scan(&old)
		if err := server.Exec("SET GLOBAL innodb_buffer_pool_size = ?", size).Error; err != nil {
			return fmt.Errorf("set the buffer pool: %w", err)
		}
		waitForPool(server, size)
		defer func() {
			server.Exec("SET GLOBAL innodb_buffer_pool_size = ?", old)
			fmt.Printf("\ninnodb_buffer_pool_size set back to %d MiB\n", old>>20)
		}()
	}
	if *reseed {
		if err := server.Exec("DROP DATABASE IF EXISTS `" + name + "`").Error; err != nil {
			return err
		}
	}
	if err := server.Exec("CREATE DATABASE IF NOT EXISTS `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci").Error; err != nil {
		return err
	}
	if *dropAtEnd {
		defer func() {
			server.Exec("DROP DATABASE IF EXISTS `" + name + "`")
			fmt.Printf("database %s dropped\n", name)
		}()
	}
	gdb, err := db.Open(ctx, db.Options{Driver: db.MySQL, DSN: *dsnFlag, MaxOpenConns: 16})
	if err != nil {
		return err
	}
	defer func() { _ = db.Close(gdb) }()
	if err := db.Migrate(ctx, gdb, log); err != nil {
		return err
	}
	clock := func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
	merchants := admin.NewMerchants(gdb, nil, clock, nil)
	mid := *merchantID
	if mid == 0 {
		if mid, err = ensureMerchant(ctx, gdb); err != nil {
			return err
		}
	}
	if err := seed(ctx, gdb, merchants, mid, clock, log); err != nil {
		return err
	}
	describe(gdb)
	parts := strings.Split(*skip, ",")
	if !slices.Contains(parts, "segments") {
		if err := benchSegments(ctx, gdb, merchants, mid); err != nil {
			return err
		}
	}
	if !slices.Contains(parts, "recompute") {
		if err := benchRecompute(ctx, gdb, merchants, mid, clock, log); err != nil {
			return err
		}
	}
	if !slices.Contains(parts, "dashboard") {
		if err := benchDashboard(ctx, gdb, merchants, mid, clock, log); err != nil {
			return err
		}
	}
	return nil
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("-buffer-pool %q: want a size like 8G or 512M", s)
	}
	return n * mult, nil
}

// waitForPool waits for an online resize of the buffer pool to finish.
func waitForPool(server *gorm.DB, size int64) {
	for range 120 {
		var cur int64
		server.Raw("SELECT @@innodb_buffer_pool_size").Scan(&cur)
		if cur == size {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// ensureMerchant returns the benchmark merchant, created on first use
// (directly: its WeChat credentials are never used).
func ensureMerchant(ctx context.Context, gdb *gorm.DB) (uint64, error) {
	var id uint64
	gdb.WithContext(ctx).Raw("SELECT id FROM merchants WHERE name = ?", merchantName).Scan(&id)
	if id != 0 {
		return id, nil
	}
	now := time.Now().UTC()
	err := gdb.WithContext(ctx).Exec(`INSERT INTO merchants (name, time_zone, oa_app_id, oa_app_secret_enc, oa_token_enc, created_at, updated_at)
VALUES (?, 'Asia/Shanghai', 'wxbench00segments', '', '', ?, ?)`, merchantName, now, now).Error
	if err != nil {
		return 0, err
	}
	gdb.WithContext(ctx).Raw("SELECT id FROM merchants WHERE name = ?", merchantName).Scan(&id)
	return id, nil
}

func seed(ctx context.Context, gdb *gorm.DB, merchants *admin.Merchants, mid uint64, clock func() time.Time, log *slog.Logger) error {
	var have int64
	gdb.Raw("SELECT COUNT(*) FROM members WHERE merchant_id = ?", mid).Scan(&have)
	if have > 0 {
		fmt.Printf("merchant %d has %d members: not seeding (-reseed to start over)\n", mid, have)
		return nil
	}
	fmt.Printf("seeding %d members...\n", *members)
	last := time.Now()
	res, err := demo.Seed(ctx, gdb, merchants, demo.Options{MerchantID: mid, Members: *members, Seed: *seedFlag, Now: clock, Log: log,
		Progress: func(done, total int) {
			if time.Since(last) > 15*time.Second {
				last = time.Now()
				fmt.Printf("  %d/%d\n", done, total)
			}
		}})
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(res, "  ", "  ")
	fmt.Printf("seed: %s in total: rows %s, first attribute pass %s\n  %s\n", res.Duration.Round(time.Millisecond),
		res.WriteDuration.Round(time.Millisecond), res.Recompute.Duration.Round(time.Millisecond), b)
	return nil
}

func describe(gdb *gorm.DB) {
	var version string
	var bp int64
	gdb.Raw("SELECT VERSION()").Scan(&version)
	gdb.Raw("SELECT @@innodb_buffer_pool_size").Scan(&bp)
	var sizes []struct {
		Name string
		MiB  int64
	}
	gdb.Raw(`SELECT table_name AS name, (data_length + index_length) >> 20 AS mi_b FROM information_schema.tables
WHERE table_schema = DATABASE() AND (data_length + index_length) > 8 << 20 ORDER BY data_length + index_length DESC`).Scan(&sizes)
	var total int64
	var parts []string
	for _, s := range sizes {
		total += s.MiB
		parts = append(parts, fmt.Sprintf("%s %d", s.Name, s.MiB))
	}
	fmt.Printf("\nserver %s, innodb_buffer_pool_size %d MiB, GOMAXPROCS %d; data+indexes %d MiB (%s)\n",
		version, bp>>20, runtime.GOMAXPROCS(0), total, strings.Join(parts, ", "))
}

// rule is a representative segment and the same condition written by hand.
type rule struct {
	name string
	json string
	// where is the hand-written condition; args are filled in at run time
	// (cutoffs and upcoming days depend on now).
	where func(mid uint64, now time.Time, loc *time.Location) (string, []any)
}

var rules = []rule{
	{
		name: "win-back list: at risk or churned, still following",
		json: `{"all":[{"field":"lifecycle_stage","op":"in","value":["at_risk","churned"]},{"field":"follow_status","op":"eq","value":"following"}]}`,
		where: func(mid uint64, _ time.Time, _ *time.Location) (string, []any) {
			return "m.merchant_id = ? AND m.erased_at IS NULL AND m.lifecycle_stage IN ('at_risk', 'churned') AND m.follow_status = 'following'",
				[]any{mid}
		},
	},
	{
		name: "RFM champions: R, F and M all 4 or 5",
		json: `{"all":[{"field":"rfm_r","op":"gte","value":4},{"field":"rfm_f","op":"gte","value":4},{"field":"rfm_m","op":"gte","value":4}]}`,
		where: func(mid uint64, _ time.Time, _ *time.Location) (string, []any) {
			return "m.merchant_id = ? AND m.erased_at IS NULL AND m.rfm_r >= 4 AND m.rfm_f >= 4 AND m.rfm_m >= 4", []any{mid}
		},
	},
	{
		name: "lapsing big spenders: spent 1,000 yuan, nothing for 90 days",
		json: `{"all":[{"field":"total_spend_fen","op":"gte","value":100000},{"field":"days_since_last_order","op":"gt","value":90}]}`,
		where: func(mid uint64, now time.Time, _ *time.Location) (string, []any) {
			return "m.merchant_id = ? AND m.erased_at IS NULL AND m.total_spend_fen >= 100000 AND m.last_order_at < ?",
				[]any{mid, now.Add(-90 * 24 * time.Hour)}
		},
	},
	{
		name: "care: birthday or a care date in 14 days, template consent",
		json: `{"all":[{"any":[{"field":"birthday_within_days","op":"within","value":14},{"field":"care_date_within_days","op":"within","value":14}]},{"field":"consent_template","op":"eq","value":true}]}`,
		where: func(mid uint64, now time.Time, loc *time.Location) (string, []any) {
			var days []string
			l := now.In(loc)
			for i := 0; i <= 14; i++ {
				d := time.Date(l.Year(), l.Month(), l.Day()+i, 12, 0, 0, 0, loc)
				days = append(days, strconv.Itoa(int(d.Month())*100+d.Day()))
				if d.Month() == time.February && d.Day() == 28 && !(d.Year()%4 == 0 && (d.Year()%100 != 0 || d.Year()%400 == 0)) {
					days = append(days, "229")
				}
			}
			in := strings.Join(days, ", ")
			return "m.merchant_id = ? AND m.erased_at IS NULL AND (m.birthday_month * 100 + m.birthday_day IN (" + in + ")" +
				" OR EXISTS (SELECT 1 FROM member_care_dates d WHERE d.merchant_id = m.merchant_id AND d.member_id = m.id" +
				" AND d.month * 100 + d.day IN (" + in + ")))" +
				" AND EXISTS (SELECT 1 FROM member_consents c WHERE c.merchant_id = m.merchant_id AND c.member_id = m.id" +
				" AND c.channel = 'template' AND c.granted = 1)", []any{mid}
		},
	},
	{
		name: "VIP tag, platinum or gold, outside Shanghai",
		json: `{"all":[{"field":"tags","op":"has_any","value":[%d]},{"field":"pyramid_tier","op":"in","value":["platinum","gold"]},{"not":{"field":"city","op":"eq","value":"上海"}}]}`,
		where: func(mid uint64, _ time.Time, _ *time.Location) (string, []any) {
			return "m.merchant_id = ? AND m.erased_at IS NULL AND EXISTS (SELECT 1 FROM member_tags t WHERE t.merchant_id = m.merchant_id" +
				" AND t.member_id = m.id AND t.tag_id = ?) AND m.pyramid_tier IN ('platinum', 'gold')" +
				" AND NOT (m.city IS NOT NULL AND m.city = '上海')", []any{mid}
		},
	},
}

func benchSegments(ctx context.Context, gdb *gorm.DB, merchants *admin.Merchants, mid uint64) error {
	now := time.Now().UTC().Truncate(time.Millisecond)
	loc, err := merchants.Location(ctx, mid)
	if err != nil {
		return err
	}
	segs := member.NewSegments(gdb, merchants, func() time.Time { return now })
	var vip uint64
	gdb.Raw("SELECT id FROM tags WHERE merchant_id = ? AND name = 'VIP'", mid).Scan(&vip)
	fmt.Printf("\n## Segment preview counts (%d runs each, alternating with the hand-written ceiling)\n\n", *runs)
	fmt.Println("| rule | members | Segments p50 / p99 | ceiling p50 / p99 | ratio p50 (p99) | plan (key) |")
	fmt.Println("|---|---:|---:|---:|---:|---|")
	for _, r := range rules {
		text := r.json
		if strings.Contains(text, "%d") {
			text = fmt.Sprintf(text, vip)
		}
		where, args := r.where(mid, now, loc)
		if strings.Contains(where, "t.tag_id = ?") {
			args = append(args, vip)
		}
		var svc, ceil []time.Duration
		var nSvc, nCeil int64
		measure := func() error {
			t0 := time.Now()
			a, err := segs.Compile(ctx, mid, json.RawMessage(text))
			if err != nil {
				return err
			}
			if nSvc, err = segs.Count(ctx, a); err != nil {
				return err
			}
			svc = append(svc, time.Since(t0))
			t0 = time.Now()
			if err := gdb.WithContext(ctx).Raw("SELECT COUNT(*) FROM members m WHERE "+where, args...).Scan(&nCeil).Error; err != nil {
				return err
			}
			ceil = append(ceil, time.Since(t0))
			return nil
		}
		for range 2 { // warm up
			if err := measure(); err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
		}
		svc, ceil = svc[:0], ceil[:0]
		for range *runs {
			if err := measure(); err != nil {
				return err
			}
		}
		if nSvc != nCeil {
			return fmt.Errorf("%s: Segments counted %d, the hand-written query %d", r.name, nSvc, nCeil)
		}
		a, _ := segs.Compile(ctx, mid, json.RawMessage(text))
		fmt.Printf("| %s | %d | %s / %s | %s / %s | %.2f (%.2f) | %s |\n", r.name, nSvc, ms(pct(svc, 50)), ms(pct(svc, 99)),
			ms(pct(ceil, 50)), ms(pct(ceil, 99)), float64(pct(svc, 50))/float64(pct(ceil, 50)),
			float64(pct(svc, 99))/float64(pct(ceil, 99)), plan(gdb, "SELECT COUNT(*) FROM members m WHERE "+a.Where, a.Args))
	}
	return nil
}

// plan summarises EXPLAIN: the access type and key of each table.
func plan(gdb *gorm.DB, q string, args []any) string {
	rows, err := gdb.Raw("EXPLAIN "+q, args...).Rows()
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var parts []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		_ = rows.Scan(ptrs...)
		get := func(name string) string {
			for i, c := range cols {
				if c == name && vals[i] != nil {
					return fmt.Sprintf("%s", vals[i])
				}
			}
			return ""
		}
		parts = append(parts, fmt.Sprintf("%s %s %s", get("table"), get("type"), get("key")))
	}
	return strings.Join(parts, "; ")
}

func benchRecompute(ctx context.Context, gdb *gorm.DB, merchants *admin.Merchants, mid uint64, clock func() time.Time, log *slog.Logger) error {
	fmt.Printf("\n## Nightly attribute pass (member.Attributes.Recompute)\n\n")
	hist := points.NewHistory(gdb)
	// Its first read: every customer's 12-month totals in one grouped scan.
	t0 := time.Now()
	n := 0
	if err := hist.RecentTotals(ctx, mid, clock().Add(-365*24*time.Hour), func(uint64, int64, int64, time.Time) { n++ }); err != nil {
		return err
	}
	totals := time.Since(t0)
	// Its second: every member's orders, 500 members at a time.
	t0 = time.Now()
	var ids []uint64
	gdb.Raw("SELECT id FROM members WHERE merchant_id = ? ORDER BY id", mid).Scan(&ids)
	listing := time.Since(t0)
	t0 = time.Now()
	for i := 0; i < len(ids); i += 500 {
		j := min(i+500, len(ids)) - 1
		if _, err := hist.MemberOrders(ctx, gdb, mid, ids[i], ids[j]); err != nil {
			return err
		}
	}
	orders := time.Since(t0)
	attrs := member.NewAttributes(gdb, hist, merchants, clock, log)
	res, err := attrs.Recompute(ctx, mid)
	if err != nil {
		return err
	}
	fmt.Printf("Recompute: %s over %d members (%d customers in 12 months; %d rows changed, %d stage changes)\n",
		res.Duration.Round(time.Millisecond), res.Members, res.Customers, res.Changed, res.StageChanges)
	fmt.Printf("  its reads measured apart: 12-month totals %s (%d customers); all members' orders in chunks of 500: %s "+
		"(+ %s listing the ids); the rest is locking the chunks, the Go rules and the writes\n",
		totals.Round(time.Millisecond), n, orders.Round(time.Millisecond), listing.Round(time.Millisecond))
	return nil
}

func benchDashboard(ctx context.Context, gdb *gorm.DB, merchants *admin.Merchants, mid uint64, clock func() time.Time, log *slog.Logger) error {
	fmt.Printf("\n## Dashboard (GET /api/admin/v1/dashboard, default periods: 30 days against the 30 before)\n\n")
	attrs := member.NewAttributes(gdb, points.NewHistory(gdb), merchants, clock, log)
	psvc := points.NewService(gdb, nil, merchants, clock, log)
	md, pd := member.NewDashboard(gdb, attrs), points.NewDashboard(psvc)
	newHandler := func() http.Handler {
		gin.SetMode(gin.ReleaseMode)
		r := gin.New()
		r.Use(func(c *gin.Context) {
			c.Request = c.Request.WithContext(authz.WithPrincipal(c.Request.Context(),
				authz.Principal{MerchantID: mid, StaffID: 1, Role: authz.RoleViewer}))
		})
		admin.NewDashboardHandler(md, pd, merchants, clock).Register(r.Group("/api/admin/v1"))
		return r
	}
	get := func(h http.Handler, query string) (time.Duration, []byte, error) {
		req := httptest.NewRequest(http.MethodGet, "/api/admin/v1/dashboard"+query, nil)
		w := httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(w, req)
		d := time.Since(t0)
		if w.Code != http.StatusOK {
			return d, nil, fmt.Errorf("dashboard: %d %s", w.Code, w.Body.String())
		}
		return d, w.Body.Bytes(), nil
	}
	var cold []time.Duration
	var body []byte
	for i := range *dashRuns + 1 {
		d, b, err := get(newHandler(), "")
		if err != nil {
			return err
		}
		if i > 0 { // the first run also warms the pages the figures read
			cold = append(cold, d)
		}
		body = b
	}
	// The parts apart, on their own.
	loc, _ := merchants.Location(ctx, mid)
	today := clock().In(loc)
	end := time.Date(today.Year(), today.Month(), today.Day()+1, 0, 0, 0, 0, loc).UTC()
	p := [2]time.Time{end.AddDate(0, 0, -30), end}
	c := [2]time.Time{end.AddDate(0, 0, -60), end.AddDate(0, 0, -30)}
	t0 := time.Now()
	if _, err := md.Figures(ctx, mid, member.Period{From: p[0], To: p[1]}, member.Period{From: c[0], To: c[1]}); err != nil {
		return err
	}
	memberPart := time.Since(t0)
	t0 = time.Now()
	if _, err := pd.Figures(ctx, mid, loc, points.Period{From: p[0], To: p[1]}, points.Period{From: c[0], To: c[1]}); err != nil {
		return err
	}
	pointsPart := time.Since(t0)
	t0 = time.Now()
	month := clock().In(loc).Format("2006-01")
	if _, err := psvc.Liability(ctx, mid, month, month); err != nil {
		return err
	}
	liabilityPart := time.Since(t0)
	// A year against the year before: the longest periods.
	var year []time.Duration
	for range 3 {
		d, _, err := get(newHandler(), "?from="+today.AddDate(-1, 0, 1).Format(time.DateOnly)+"&to="+today.Format(time.DateOnly))
		if err != nil {
			return err
		}
		year = append(year, d)
	}
	h := newHandler()
	if _, _, err := get(h, ""); err != nil {
		return err
	}
	var cached []time.Duration
	for range *dashRuns * 40 {
		d, _, err := get(h, "")
		if err != nil {
			return err
		}
		cached = append(cached, d)
	}
	fmt.Printf("cold (new handler, empty cache): p50 %s, max %s over %d runs (member figures alone %s, order and points figures alone %s, "+
		"of which the liability report %s)\n", ms(pct(cold, 50)), ms(pct(cold, 100)), len(cold), ms(memberPart), ms(pointsPart),
		ms(liabilityPart))
	fmt.Printf("cold, 365 days against the 365 before: p50 %s, max %s over %d runs\n", ms(pct(year, 50)), ms(pct(year, 100)), len(year))
	fmt.Printf("cached: p50 %s, p99 %s over %d runs\n", ms(pct(cached, 50)), ms(pct(cached, 99)), len(cached))
	if *dump != "" {
		if err := os.WriteFile(*dump, body, 0o644); err != nil {
			return err
		}
	}
	var v admin.DashboardView
	_ = json.Unmarshal(body, &v)
	fmt.Printf("figures of the period %s..%s: new members %d, new followers %d, unfollows %d, active %d, repeat purchase %d/%d, "+
		"churn %d/%d, win-back %d/%d; %d members, lifecycle %v, pyramid %v, average CLV %d fen, 2:8 %v, points outstanding %d\n",
		v.Period.From, v.Period.To, v.Period.NewMembers.Total, v.Period.NewFollowers.Total, v.Period.Unfollows, v.Period.ActiveMembers,
		v.Period.RepeatPurchase.RepeatBuyers, v.Period.RepeatPurchase.Buyers, v.Period.Churn.Entries, v.Period.Churn.Base,
		v.Period.WinBack.Entries, v.Period.WinBack.Base, v.Current.Members, v.Current.Lifecycle, v.Current.Pyramid,
		v.Current.CLV.AverageFen, shareOf(v.Current.ShareTop20), v.Current.PointsLiability.Outstanding)
	if len(v.Period.Retention) > 0 {
		first := v.Period.Retention[0]
		var rates []string
		for _, m := range first.Months {
			rates = append(rates, fmt.Sprintf("%.0f%%", 100*m.Rate))
		}
		fmt.Printf("retention of the %s cohort (%d members): %s\n", first.Month, first.Size, strings.Join(rates, " "))
	}
	return nil
}

func shareOf(s *member.ShareTop20) string {
	if s == nil {
		return "none"
	}
	return fmt.Sprintf("%.1f%%", 100*s.Share)
}

// pct returns the p-th percentile (nearest rank).
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}
