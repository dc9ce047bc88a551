// Command memberlist is the load program of the admin member list and CSV
// export. It seeds a MySQL database with two merchants of -members members
// each (a realistic spread of follow status, channels, stages, tiers,
// birthdays, names, phones and tags), then runs the list through
// member.ParseMemberFilter and member.Service for several three-filter
// combinations (sequential pages through the cursor, plus pages at random
// depths), prints p50/p99 per page and each combination's EXPLAIN, and
// finally exports every member of merchant 1 as CSV to io.Discard through
// the real export path, reporting the time and peak memory.
//
//	go run ./docs/bench/memberlist -dsn 'root@tcp(127.0.0.1:3306)/loyalty_bench'
//
// Seeding is skipped when the database already holds the members; -reseed
// drops and recreates the database first.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/member"
)

func main() {
	dsn := flag.String("dsn", "root@tcp(127.0.0.1:3306)/loyalty_bench", "MySQL DSN of the benchmark database (created if missing)")
	perMerchant := flag.Int("members", 1_000_000, "members per merchant (merchants 1 and 2)")
	reseed := flag.Bool("reseed", false, "drop and recreate the database first")
	pages := flag.Int("pages", 250, "sequential pages per combination")
	deep := flag.Int("deep", 50, "extra pages per combination starting at a random depth")
	skipExport := flag.Bool("skip-export", false, "skip the CSV export")
	only := flag.String("only", "", "run only combinations whose name contains this")
	flag.Parse()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	gdb, err := openBench(ctx, *dsn, *reseed, log)
	if err != nil {
		fail(err)
	}
	if err := seed(ctx, gdb, *perMerchant); err != nil {
		fail(err)
	}
	var bp int64
	gdb.Raw("SELECT @@innodb_buffer_pool_size").Scan(&bp)
	var version string
	gdb.Raw("SELECT VERSION()").Scan(&version)
	var size int64
	gdb.Raw("SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = DATABASE()" +
		" AND table_name IN ('members', 'member_tags')").Scan(&size)
	fmt.Printf("server %s, innodb_buffer_pool_size %d MiB, members+member_tags %d MiB, GOMAXPROCS %d\n",
		version, bp>>20, size>>20, runtime.GOMAXPROCS(0))
	if bp < size {
		fmt.Println("note: the buffer pool is smaller than the data: pages that read rows by primary key pay for disk reads")
	}
	fmt.Println()

	svc := member.NewService(gdb, nil, func() time.Time { return time.Now().UTC() }, log)
	var maxID uint64
	gdb.Raw("SELECT MAX(id) FROM members WHERE merchant_id = 1").Scan(&maxID)
	warm(ctx, gdb)
	for _, c := range combos {
		if *only != "" && !strings.Contains(c.name, *only) {
			continue
		}
		if err := runCombo(ctx, gdb, svc, c, *pages, *deep, maxID); err != nil {
			fail(err)
		}
	}
	if *only == "" {
		start := time.Now()
		tags, err := svc.Tags(ctx, 1)
		if err != nil {
			fail(err)
		}
		fmt.Printf("GET /tags (counts of %d tags): %v\n\n", len(tags), time.Since(start).Round(time.Millisecond))
	}
	if !*skipExport {
		if err := runExport(ctx, svc); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "memberlist:", err)
	os.Exit(1)
}

// openBench creates the database if needed, opens it and migrates it.
func openBench(ctx context.Context, dsn string, reseed bool, log *slog.Logger) (*gorm.DB, error) {
	cfg, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	name := cfg.DBName
	if name == "" || strings.ContainsAny(name, "`") {
		return nil, fmt.Errorf("the DSN must name a database")
	}
	cfg.DBName = ""
	server, err := db.Open(ctx, db.Options{Driver: db.MySQL, DSN: cfg.FormatDSN(), MaxOpenConns: 1})
	if err != nil {
		return nil, err
	}
	if reseed {
		if err := server.Exec("DROP DATABASE IF EXISTS `" + name + "`").Error; err != nil {
			return nil, err
		}
	}
	if err := server.Exec("CREATE DATABASE IF NOT EXISTS `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci").Error; err != nil {
		return nil, err
	}
	_ = db.Close(server)
	gdb, err := db.Open(ctx, db.Options{Driver: db.MySQL, DSN: dsn, MaxOpenConns: 4})
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, gdb, log); err != nil {
		return nil, err
	}
	return gdb, nil
}

// The data: weights are rough shapes of a real member base, not
// measurements.
var (
	surnames = &weighted[string]{items: strings.Split("王 李 张 刘 陈 杨 黄 赵 吴 周 徐 孙 马 朱 胡 郭 何 高 林 罗 郑 梁 谢 宋 唐 许 韩 冯 邓 曹 彭 曾 肖 田 董 袁 潘 于 蒋 蔡 余 杜 叶 程 苏 魏 吕 丁 任 沈", " "),
		weights: []float64{7.1, 7, 6.7, 5.4, 4.5, 3, 2.2, 2.2, 2, 1.9, 1.8, 1.5, 1.4, 1.3, 1.3, 1.2, 1.2, 1.1, 1.1, 1, 1, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4}}
	given         = []rune("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉俊晨宇浩然子涵欣怡梓轩一诺思远雨桐嘉怡佳琪诗涵梦瑶博文天佑若曦")
	latinNames    = []string{"Anna", "Leo", "Mia", "Tom", "Lily", "Jack", "Emma", "Max"}
	phonePrefixes = strings.Split("130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 176 177 178 180 181 182 183 185 186 187 188 189 198 199", " ")
	scenes        = func() *weighted[string] {
		w := &weighted[string]{}
		for i, s := range strings.Split("store-01 store-02 store-03 store-04 store-05 store-06 store-07 store-08 poster-spring poster-autumn ad-moments-1 ad-moments-2 expo-2025 kol-xhs receipt-qr mini-banner live-stream coupon-share staff-referral bus-stop", " ") {
			w.items = append(w.items, s)
			w.weights = append(w.weights, 1/float64(i+2))
		}
		return w
	}()
	stages = &weighted[string]{items: member.Stages, weights: []float64{40, 12, 15, 10, 8, 8, 4, 3}}
	tiers  = &weighted[int]{items: []int{0, 1, 2, 3, 4}, weights: []float64{30, 42, 17.5, 7, 3.5}}
	// tagShare is the share of members holding each of the ten tags.
	tagShare = []float64{0.30, 0.20, 0.15, 0.10, 0.08, 0.05, 0.03, 0.02, 0.01, 0.005}
	tagNames = []string{"VIP", "咖啡爱好者", "新品尝鲜", "高价值", "生日关怀", "团购", "沉睡唤醒", "门店A", "会员日", "投诉处理"}
)

type weighted[T any] struct {
	items   []T
	weights []float64
	cum     []float64
	once    sync.Once
}

func (w *weighted[T]) pick(r *rand.Rand) T {
	w.once.Do(func() {
		total := 0.0
		for _, x := range w.weights {
			total += x
			w.cum = append(w.cum, total)
		}
		for i := range w.cum {
			w.cum[i] /= total
		}
	})
	i, _ := slices.BinarySearch(w.cum, r.Float64())
	return w.items[min(i, len(w.items)-1)]
}

// tierID and tagID keep ids distinct between the merchants, as real
// auto-increment ids would be.
func tierID(merchant uint64, tier int) uint64 { return merchant*10 + uint64(tier) }
func tagID(merchant uint64, tag int) uint64   { return (merchant-1)*10 + uint64(tag) + 1 }

const memberCols = "(id, merchant_id, oa_openid, mp_openid, unionid, phone, name, gender, birthday_month, birthday_day," +
	" birthday_year, source, follow_status, followed_at, unfollowed_at, follow_changed_at, channel_scene," +
	" last_interaction_at, created_at, updated_at, remark, lifecycle_stage, tier_id, erased_at)"

// memberRow appends one member's column values to args and its tags to
// tags. Members alternate between the merchants, as real sign-ups
// interleave.
func memberRow(r *rand.Rand, id uint64, args []any, tags []any) ([]any, []any) {
	merchant := 1 + (id-1)%2
	seq := (id + 1) / 2
	created := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(id) * 45 * time.Second)
	var oa, mp, union, phone, scene, tier, bm, bd, by, followed, unfollowed, last, erased any
	source := member.SourceOAFollow
	switch x := r.Float64(); {
	case x < 0.20:
		source = member.SourceMPLogin
	case x < 0.25:
		source = member.SourceOAMessage
	case x < 0.30:
		source = member.SourceOAuth
	}
	status := member.FollowNone
	if source == member.SourceMPLogin {
		mp = fmt.Sprintf("oMPbench%d%019d", merchant, seq)
		if x := r.Float64(); x < 0.25 {
			status = member.FollowFollowing
		} else if x < 0.30 {
			status = member.FollowUnfollowed
		}
	} else {
		status = member.FollowFollowing
		if r.Float64() < 0.22 {
			status = member.FollowUnfollowed
		}
	}
	if status != member.FollowNone || source != member.SourceMPLogin {
		oa = fmt.Sprintf("oOAbench%d%019d", merchant, seq)
		followed = created
		if status == member.FollowUnfollowed {
			t := created.Add(time.Duration(r.IntN(300*24)) * time.Hour)
			unfollowed = t
		}
	}
	if r.Float64() < 0.5 {
		union = fmt.Sprintf("oUNbench%d%019d", merchant, seq)
	}
	if r.Float64() < 0.4 {
		// A bijection of seq: unique within the merchant whatever the prefix.
		phone = fmt.Sprintf("%s%08d", phonePrefixes[r.IntN(len(phonePrefixes))], (seq*7919+merchant*13)%100_000_000)
	}
	name := ""
	switch x := r.Float64(); {
	case x < 0.05:
		name = latinNames[r.IntN(len(latinNames))]
	case x < 0.85:
		var b strings.Builder
		b.WriteString(surnames.pick(r))
		for range 1 + r.IntN(2) {
			b.WriteRune(given[r.IntN(len(given))])
		}
		name = b.String()
	}
	if r.Float64() < 0.55 {
		bm, bd = 1+r.IntN(12), 1+r.IntN(28)
		if r.Float64() < 0.55 {
			by = 1960 + r.IntN(49)
		}
	}
	if r.Float64() < 0.6 {
		scene = scenes.pick(r)
	}
	if t := tiers.pick(r); t != 0 {
		tier = tierID(merchant, t)
	}
	if r.Float64() < 0.7 {
		last = created.Add(time.Duration(r.IntN(500*24)) * time.Hour)
	}
	remark := ""
	if r.Float64() < 0.05 {
		remark = "常买拿铁，喜欢靠窗座位"
	}
	if r.Float64() < 0.001 {
		erased = created.Add(24 * time.Hour)
		oa, mp, union, phone, name, bm, bd, by, last, remark = nil, nil, nil, nil, "", nil, nil, nil, nil, ""
	}
	args = append(args, id, merchant, oa, mp, union, phone, name, r.IntN(3), bm, bd, by, source, status,
		followed, unfollowed, followed, scene, last, created, created, remark, stages.pick(r), tier, erased)
	if erased == nil {
		for t, share := range tagShare {
			if r.Float64() < share {
				tags = append(tags, merchant, tagID(merchant, t), id, created)
			}
		}
	}
	return args, tags
}

// seed writes the merchants' tags and members unless they are there.
func seed(ctx context.Context, gdb *gorm.DB, perMerchant int) error {
	var have int64
	if err := gdb.Raw("SELECT COUNT(*) FROM members WHERE merchant_id IN (1, 2)").Scan(&have).Error; err != nil {
		return err
	}
	total := uint64(2 * perMerchant)
	switch {
	case have == int64(total):
		fmt.Printf("seed: %d members already present\n", have)
		return nil
	case have != 0:
		return fmt.Errorf("the database holds %d members of merchants 1 and 2, want 0 or %d: run with -reseed", have, total)
	}
	start := time.Now()
	now := time.Now().UTC()
	for merchant := uint64(1); merchant <= 2; merchant++ {
		for t, name := range tagNames {
			if err := gdb.Exec("INSERT INTO tags (id, merchant_id, name, color, created_at, updated_at) VALUES (?, ?, ?, '', ?, ?)",
				tagID(merchant, t), merchant, name, now, now).Error; err != nil {
				return err
			}
		}
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return err
	}
	// Two writers on disjoint id ranges; rows are generated by the writer
	// that inserts them (the generator is cheaper than the database).
	const batch = 2000
	var next, done atomic.Uint64
	next.Store(1)
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for {
				first := next.Add(batch) - batch
				if first > total {
					return
				}
				last := min(first+batch-1, total)
				args := make([]any, 0, batch*24)
				var tags []any
				for id := first; id <= last; id++ {
					args, tags = memberRow(r, id, args, tags)
				}
				if err := insert(ctx, sqlDB, "INSERT INTO members "+memberCols+" VALUES ", 24, args); err != nil {
					errs <- err
					return
				}
				for len(tags) > 0 {
					n := min(len(tags), 4*5000)
					if err := insert(ctx, sqlDB, "INSERT INTO member_tags (merchant_id, tag_id, member_id, created_at) VALUES ", 4, tags[:n]); err != nil {
						errs <- err
						return
					}
					tags = tags[n:]
				}
				if d := done.Add(last - first + 1); d%200_000 < batch {
					fmt.Printf("seed: %d members, %v\n", d, time.Since(start).Round(time.Second))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := gdb.Exec("ANALYZE TABLE members, member_tags, tags").Error; err != nil {
		return err
	}
	fmt.Printf("seed: %d members in %v\n", total, time.Since(start).Round(time.Second))
	return nil
}

// insert runs one multi-row INSERT of len(args)/cols rows (the driver
// interpolates the arguments: one round trip).
func insert(ctx context.Context, sqlDB *sql.DB, head string, cols int, args []any) error {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	rows := len(args) / cols
	var b strings.Builder
	b.Grow(len(head) + rows*(len(row)+1))
	b.WriteString(head)
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	_, err := sqlDB.ExecContext(ctx, b.String(), args...)
	return err
}

// combo is a list query to measure: the query string a client would send.
type combo struct {
	name  string
	query string
}

// combos are three-filter combinations of merchant 1 (tiers 11-14, tags
// 1-10), from broad to rare.
var combos = []combo{
	{"following+potential+birthday", "follow_status=following&stage=potential&birthday_month=5"},
	{"channel+following+tier", "channel=store-01&follow_status=following&tier=11"},
	{"tag+loyal+following", "tag=1&stage=loyal&follow_status=following"},
	{"tag+channel+birthday", "tag=2&channel=store-02&birthday_month=12"},
	{"name+following+potential", "q=" + url.QueryEscape("王伟") + "&follow_status=following&stage=potential"},
	{"phone+following+tier", "q=138&follow_status=following&tier=11"},
	{"lost+tier4+birthday (rare)", "stage=lost&tier=14&birthday_month=2"},
	{"tag8+at_risk+unfollowed (rare)", "tag=8&stage=at_risk&follow_status=unfollowed"},
	{"channel+stage+tier", "channel=store-05&stage=repeat&tier=12"},
	{"unfollowed+churned+tag3", "follow_status=unfollowed&stage=churned&tag=3"},
}

// runCombo walks pages sequentially through the cursor (from the top again
// when the list ends, until pages pages were read), then reads deep pages
// starting at random ids, and prints the latencies and the EXPLAIN.
func runCombo(ctx context.Context, gdb *gorm.DB, svc *member.Service, c combo, pages, deep int, maxID uint64) error {
	q, err := url.ParseQuery(c.query)
	if err != nil {
		return err
	}
	f, err := member.ParseMemberFilter(q)
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	var seqTimes, deepTimes []time.Duration
	var rows, distinct int
	cursor, ended := "", false
	for len(seqTimes) < pages {
		f2 := f
		f2.Before = 0
		if cursor != "" {
			f2.Before, _ = member.DecodeCursor(cursor)
		}
		start := time.Now()
		page, err := svc.ListMembers(ctx, 1, f2)
		seqTimes = append(seqTimes, time.Since(start))
		if err != nil {
			return err
		}
		if !ended {
			rows += len(page.Members)
			distinct++
		}
		cursor = page.NextCursor
		if cursor == "" {
			ended = true
		}
	}
	r := rand.New(rand.NewPCG(7, 7))
	for range deep {
		f2 := f
		f2.Before = 1 + r.Uint64N(maxID)
		start := time.Now()
		if _, err := svc.ListMembers(ctx, 1, f2); err != nil {
			return err
		}
		deepTimes = append(deepTimes, time.Since(start))
	}
	all := append(slices.Clone(seqTimes), deepTimes...)
	more := "+"
	if ended {
		more = " (all)"
	}
	fmt.Printf("== %s  [%s]\n", c.name, c.query)
	fmt.Printf("   %d pages of %d (%d distinct, %d%s rows), then %d at random depths\n", len(seqTimes), f.Limit, distinct, rows, more, len(deepTimes))
	fmt.Printf("   per page: p50 %v  p99 %v  max %v   (sequential p99 %v, random-depth p99 %v)\n",
		pct(all, 50), pct(all, 99), pct(all, 100), pct(seqTimes, 99), pct(deepTimes, 99))
	return explain(gdb, f)
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(i, len(s))-1)].Round(10 * time.Microsecond)
}

func explain(gdb *gorm.DB, f member.MemberFilter) error {
	text, args := f.SQL(1)
	rows, err := gdb.Raw("EXPLAIN "+text, args...).Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	// possible_keys lists nearly every index of members: left out.
	show := func(out []string) string {
		var keep []string
		for i, c := range cols {
			if c != "possible_keys" {
				keep = append(keep, out[i])
			}
		}
		return "   " + strings.Join(keep, "\t")
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, show(cols))
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		out := make([]string, len(cols))
		for i, v := range vals {
			out[i] = v.String
			if !v.Valid {
				out[i] = "NULL"
			}
		}
		fmt.Fprintln(tw, show(out))
	}
	tw.Flush()
	fmt.Println()
	return rows.Err()
}

// warm reads the members table and its indexes once, so the first
// combination does not pay for a cold buffer pool alone.
func warm(ctx context.Context, gdb *gorm.DB) {
	start := time.Now()
	var n int64
	for _, idx := range []string{"PRIMARY", "idx_members_follow", "idx_members_channel", "idx_members_stage",
		"idx_members_tier", "idx_members_birthday", "idx_members_name", "uk_members_phone"} {
		gdb.WithContext(ctx).Raw("SELECT COUNT(*) FROM members FORCE INDEX (" + idx + ")").Scan(&n)
	}
	gdb.WithContext(ctx).Raw("SELECT COUNT(*) FROM member_tags").Scan(&n)
	fmt.Printf("warm-up scan: %v\n\n", time.Since(start).Round(time.Millisecond))
}

// runExport exports every member of merchant 1 and reports time and memory.
func runExport(ctx context.Context, svc *member.Service) error {
	runtime.GC()
	// Reset the peak RSS (VmHWM) so it measures the export, not seeding.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	var peakHeap atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	cw := &countingWriter{w: io.Discard}
	start := time.Now()
	n, err := svc.ExportCSV(ctx, 1, member.MemberFilter{}, member.ExportOptions{}, cw)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	fmt.Printf("CSV export of merchant 1: %d rows, %.1f MiB in %v (%.0f rows/s)\n", n, float64(cw.n)/(1<<20),
		elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	fmt.Printf("   peak HeapInuse %.1f MiB (sampled every 5 ms), process VmHWM %s\n", float64(peakHeap.Load())/(1<<20), vmHWM())
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}

func vmHWM() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
