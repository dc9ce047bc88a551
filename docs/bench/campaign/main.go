// Command campaign measures the delivery engine on MySQL/MariaDB: planning
// a 1,000,000-member segment, and the sustained send rate against a
// WeChat simulator that answers in 50 ms, with one instance (in-process
// limiter) or several sharing a Redis limiter. The simulator runs in its
// own process (this binary with -serve-sim), so the CPU and memory
// reported are the engine's.
//
//	go run ./docs/bench/campaign                          # 1M members, 1 instance, 2,000/s
//	go run ./docs/bench/campaign -instances 3 -redis 127.0.0.1:6379
//	go run ./docs/bench/campaign -members 100000 -send 20s
//
// It creates (and drops, unless -keep) the database loyalty_bench_campaign.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

const (
	appID    = "wx0123456789abcdef"
	secret   = "0123456789abcdef0123456789abcdef"
	template = "TPL_BENCH"
	prefix   = "o_bench_"
)

func main() {
	serveSim := flag.String("serve-sim", "", "run only the simulator on this address (internal)")
	latency := flag.Duration("latency", 50*time.Millisecond, "simulator latency per template send")
	dsn := flag.String("dsn", "root@tcp(127.0.0.1:3306)/", "MySQL server DSN (no database)")
	members := flag.Int("members", 1000000, "members in the segment")
	rate := flag.Float64("rate", 2000, "send limit per second for the account")
	instances := flag.Int("instances", 1, "engine instances")
	redisAddr := flag.String("redis", "", "Redis for a shared limiter (required with -instances > 1)")
	sendFor := flag.Duration("send", 30*time.Second, "how long to measure sending")
	concurrency := flag.Int("concurrency", 200, "sends in flight per instance")
	keep := flag.Bool("keep", false, "keep the database")
	flag.Parse()
	if *serveSim != "" {
		runSimulator(*serveSim, *members, *latency)
		return
	}
	if *instances > 1 && *redisAddr == "" {
		log.Fatal("-instances > 1 needs -redis (a shared limiter)")
	}
	ctx := context.Background()

	// The simulator, in its own process.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	simAddr := ln.Addr().String()
	_ = ln.Close()
	self, _ := os.Executable()
	simCmd := exec.Command(self, "-serve-sim", simAddr, "-members", fmt.Sprint(*members), "-latency", latency.String())
	simCmd.Stdout, simCmd.Stderr = os.Stderr, os.Stderr
	if err := simCmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = simCmd.Process.Kill() }()
	for range 300 {
		if resp, err := http.Get("http://" + simAddr + "/_bench/ready"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	endpoint, err := wechat.ParseEndpoint("http://" + simAddr)
	if err != nil {
		log.Fatal(err)
	}
	wechat.InstallHTTPClient(wechat.NewHTTPClient(endpoint, 10*time.Second))

	// The database and the audience.
	gdb, name := setupDB(ctx, *dsn, *members)
	if !*keep {
		defer func() { gdb.Exec("DROP DATABASE " + name) }()
	}
	quiet := slog.New(slog.DiscardHandler)
	now := func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
	dir := directory{}
	segs := member.NewSegments(gdb, dir, now)
	seg, err := segs.Create(ctx, 1, 1, member.SegmentInput{Name: ptr(fmt.Sprintf("all %d", time.Now().UnixNano())),
		Rule: []byte(`{"field":"follow_status","op":"eq","value":"following"}`)})
	if err != nil {
		log.Fatal(err)
	}
	accounts := wechat.NewAccounts(dir, endpoint, wechat.NewMemoryTokenCache(), nil, time.Hour)
	split := campaign.RateSplit{PerSecond: *rate, ServicePct: 2}
	var rdb *redis.Client
	if *redisAddr != "" {
		rdb = redis.NewClient(&redis.Options{Addr: *redisAddr, PoolSize: 50 * *instances})
		defer rdb.Close()
	}
	newEngine := func(pool *gorm.DB) *campaign.Engine {
		var lim campaign.Limiter = campaign.NewLocalLimiter(split)
		if rdb != nil {
			lim = campaign.NewRedisLimiter(rdb, split)
		}
		return campaign.NewEngine(pool, campaign.EngineDeps{WeChat: accounts, Audiences: segs, Merchants: dir, Limiter: lim},
			now, quiet, campaign.EngineOptions{Concurrency: *concurrency, Batch: 400, DailyQuota: 100000000, PlanChunks: 50})
	}
	first := newEngine(gdb)
	svc := campaign.NewCampaigns(first)
	c, err := svc.Create(ctx, 1, 1, campaign.Input{Name: ptr("bench"), Channel: ptr(campaign.ChannelTemplate), TemplateID: ptr(template),
		Message: &campaign.Message{Fields: map[string]string{"first": "hello", "keyword1": "sale"}},
		Target:  &campaign.Target{SegmentID: seg.ID}, Schedule: &campaign.ScheduleInput{Kind: campaign.ScheduleNow}})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := svc.Act(ctx, 1, c.ID, campaign.ActSchedule); err != nil {
		log.Fatal(err)
	}

	// Planning: one instance walks the 1M members into delivery rows.
	cpu0 := cpuTime()
	planStart := time.Now()
	planner := campaign.NewEngine(gdb, campaign.EngineDeps{WeChat: accounts, Audiences: segs, Merchants: dir,
		Limiter: campaign.NewLocalLimiter(split)}, now, quiet, campaign.EngineOptions{PlanChunks: 1000, DailyQuota: 1})
	for {
		if _, err := planner.RunOnce(ctx); err != nil {
			log.Fatal(err)
		}
		var done bool
		gdb.Table("campaigns").Where("id = ?", c.ID).Pluck("plan_done", &done)
		if done {
			break
		}
	}
	planTime := time.Since(planStart)
	var planned int64
	gdb.Table("campaign_deliveries").Where("campaign_id = ?", c.ID).Count(&planned)
	fmt.Printf("planning: %d rows in %.1f s (%.0f rows/s), engine CPU %.1f s\n", planned, planTime.Seconds(),
		float64(planned)/planTime.Seconds(), (cpuTime() - cpu0).Seconds())

	// Sending: the instances run; the simulator counts what arrives.
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range *instances {
		pool := gdb
		if i > 0 {
			if pool, err = db.Open(ctx, db.Options{Driver: db.MySQL, DSN: *dsn + name, MaxOpenConns: 50}); err != nil {
				log.Fatal(err)
			}
		}
		eng := newEngine(pool)
		if i == 0 {
			eng = first
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			eng.Run(runCtx)
		}()
	}
	cpu1 := cpuTime()
	time.Sleep(*sendFor)
	stop()
	wg.Wait()
	cpuSend := cpuTime() - cpu1
	var st stats
	resp, err := http.Get("http://" + simAddr + "/_bench/stats")
	if err != nil {
		log.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	var sent int64
	gdb.Table("campaign_deliveries").Where("campaign_id = ? AND status = 'sent'", c.ID).Count(&sent)
	fmt.Printf("sending: %d instance(s), limit %.0f/s (marketing lane %.0f/s), %v measured\n", *instances, *rate,
		*rate-max(1, *rate*2/100), *sendFor)
	fmt.Printf("  WeChat received %d sends; rows sent %d\n", st.Total, sent)
	fmt.Printf("  steady rate (median of 1 s buckets, first 3 s skipped): %.0f/s = %.1f%% of the limit\n", st.MedianPerSec, 100*st.MedianPerSec / *rate)
	fmt.Printf("  busiest 1 s window (sliding): %d sends\n", st.MaxWindow)
	fmt.Printf("  engine CPU while sending: %.1f s for %.0f s (%.0f%% of one core), peak RSS %d MB\n",
		cpuSend.Seconds(), sendFor.Seconds(), 100*cpuSend.Seconds()/sendFor.Seconds(), vmHWM()/1024)
}

func ptr[T any](v T) *T { return &v }

// directory is the one merchant of the benchmark.
type directory struct{}

func (directory) WeChatCredentials(context.Context, uint64) (wechat.Credentials, error) {
	return wechat.Credentials{AppID: appID, AppSecret: secret, Token: "benchtoken"}, nil
}
func (directory) Location(context.Context, uint64) (*time.Location, error) { return time.UTC, nil }
func (directory) QuietHours(context.Context, uint64) (int, int, error)     { return 0, 0, nil }
func (directory) FrequencyCap(context.Context, uint64) (int, int, error)   { return 0, 0, nil }

// setupDB creates a fresh database with members following the account.
func setupDB(ctx context.Context, dsn string, n int) (*gorm.DB, string) {
	name := "loyalty_bench_campaign"
	server, err := db.Open(ctx, db.Options{Driver: db.MySQL, DSN: dsn, MaxOpenConns: 4})
	if err != nil {
		log.Fatal(err)
	}
	server.Exec("DROP DATABASE IF EXISTS " + name)
	if err := server.Exec("CREATE DATABASE " + name).Error; err != nil {
		log.Fatal(err)
	}
	_ = db.Close(server)
	gdb, err := db.Open(ctx, db.Options{Driver: db.MySQL, DSN: dsn + name, MaxOpenConns: 50})
	if err != nil {
		log.Fatal(err)
	}
	if err := db.Migrate(ctx, gdb, slog.New(slog.DiscardHandler)); err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	const batch = 5000
	for i := 0; i < n; i += batch {
		var sb strings.Builder
		args := make([]any, 0, batch)
		sb.WriteString("INSERT INTO members (merchant_id, oa_openid, name, source, follow_status, created_at, updated_at) VALUES ")
		for j := i; j < min(n, i+batch); j++ {
			if j > i {
				sb.WriteString(",")
			}
			sb.WriteString("(1, ?, 'm', 'oa_follow', 'following', NOW(3), NOW(3))")
			args = append(args, fmt.Sprintf("%s%d", prefix, j))
		}
		if err := gdb.Exec(sb.String(), args...).Error; err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("seeded %d members in %.1f s\n", n, time.Since(start).Seconds())
	return gdb, name
}

// stats is what the simulator process saw.
type stats struct {
	Total        int64   `json:"total"`
	MedianPerSec float64 `json:"median_per_sec"`
	MaxWindow    int     `json:"max_window"`
}

// runSimulator serves the WeChat simulator with the account, its template
// and n followers, and counts template sends by arrival time.
func runSimulator(addr string, n int, latency time.Duration) {
	sim := wechattest.New()
	sim.AddOfficialAccount(wechattest.App{AppID: appID, Secret: secret})
	sim.AddTemplate(appID, template)
	for i := range n {
		sim.Follow(appID, fmt.Sprintf("%s%d", prefix, i), "")
	}
	sim.SetLatency("/cgi-bin/message/template/send", latency)
	var mu sync.Mutex
	var arrivals []int64 // unix nanos of successful template sends
	rec := &recorder{}
	mux := http.NewServeMux()
	mux.HandleFunc("/_bench/ready", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	mux.HandleFunc("/_bench/stats", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		a := append([]int64(nil), arrivals...)
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(summarise(a))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/cgi-bin/message/template/send" {
			sim.ServeHTTP(w, r)
			return
		}
		arrived := time.Now().UnixNano()
		rw := &statusWriter{ResponseWriter: w}
		sim.ServeHTTP(rw, r)
		if rw.ok() {
			mu.Lock()
			arrivals = append(arrivals, arrived)
			mu.Unlock()
		}
		if rec.tick() {
			// Keep the simulator's own logs small on long runs.
			sim.Reset()
			sim.SetLatency("/cgi-bin/message/template/send", latency)
		}
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

type recorder struct {
	mu sync.Mutex
	n  int
}

func (r *recorder) tick() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	return r.n%50000 == 0
}

type statusWriter struct {
	http.ResponseWriter
	code int
	body []byte
}

func (w *statusWriter) WriteHeader(c int) { w.code = c; w.ResponseWriter.WriteHeader(c) }
func (w *statusWriter) Write(b []byte) (int, error) {
	w.body = append(w.body, b...)
	return w.ResponseWriter.Write(b)
}
func (w *statusWriter) ok() bool {
	return (w.code == 0 || w.code == 200) && strings.Contains(string(w.body), `"errcode":0`)
}

// summarise reports the median of full 1 s buckets after the first 3 s
// (ramp-up) and the busiest sliding 1 s window.
func summarise(a []int64) stats {
	s := stats{Total: int64(len(a))}
	if len(a) == 0 {
		return s
	}
	sort.Slice(a, func(i, j int) bool { return a[i] < a[j] })
	start, end := a[0], a[len(a)-1]
	buckets := map[int64]int{}
	for _, t := range a {
		buckets[(t-start)/int64(time.Second)]++
	}
	var per []int
	last := (end - start) / int64(time.Second)
	for b := int64(3); b < last; b++ { // full seconds only, after ramp-up
		per = append(per, buckets[b])
	}
	if len(per) > 0 {
		sort.Ints(per)
		s.MedianPerSec = float64(per[len(per)/2])
	}
	j := 0
	for i := range a {
		for a[i]-a[j] >= int64(time.Second) {
			j++
		}
		s.MaxWindow = max(s.MaxWindow, i-j+1)
	}
	return s
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vmHWM is the process's peak resident set in kB.
func vmHWM() int64 {
	raw, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "VmHWM:"), "kB")), &kb)
			return kb
		}
	}
	return 0
}
