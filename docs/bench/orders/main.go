// Command orders is the end-to-end load program of issue 11, section 1:
// orders posted to the real service over HTTP with an API key, against the
// floor measured in the same run.
//
// It builds the service's binary (or uses -bin), and through it, on a
// fresh MariaDB/MySQL database: creates a merchant with an owner
// (`loyalty merchant create`), fills it with -members members and two
// years of order history (`loyalty demo seed`), starts the service
// (`loyalty serve`) on a free TCP port of 127.0.0.1, logs in as the owner
// and creates an API key with orders:write through the admin API. Then, in
// alternating phases of -duration each with -clients concurrent clients:
//
//   - floor: the smallest durable transaction that credits points, through
//     database/sql on the same server: BEGIN; UPDATE a points_accounts
//     balance; INSERT a points_ledger row with a unique idempotency key;
//     COMMIT (in a second database, <name>_floor, with the service's own
//     schema and 10,000 accounts, so the service's books stay untouched);
//   - orders: POST /api/admin/v1/orders with the API key, a random member
//     of the seeded ones, a random amount and one item; every answer must
//     be 201.
//
// It prints each phase's rate and p50/p99 latency, the ratio of orders to
// the floor, the CPU the service and mariadbd used during the orders
// phases (from /proc), the statements one order sends (counted in
// MariaDB's general log, switched on for that one order and off again),
// and finally runs `loyalty points reconcile` over the merchant, which
// must report no mismatch.
//
//	go run ./docs/bench/orders
//	go run ./docs/bench/orders -rounds 5 -duration 20s
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"

	"github.com/wxloyalty/loyalty/internal/db"
)

var (
	dsnFlag   = flag.String("dsn", "root@tcp(127.0.0.1:3306)/loyalty_bench_orders", "MySQL DSN; the database (and <name>_floor) is dropped and created")
	members   = flag.Int("members", 10_000, "members made by `demo seed`")
	clients   = flag.Int("clients", 64, "concurrent clients, for the floor and for the orders")
	duration  = flag.Duration("duration", 10*time.Second, "length of each measured phase")
	warmup    = flag.Duration("warmup", 3*time.Second, "unmeasured load before each phase")
	rounds    = flag.Int("rounds", 3, "alternating rounds of floor and orders (medians reported)")
	binFlag   = flag.String("bin", "", "the loyalty binary (default: built from ./cmd/loyalty)")
	logLevel  = flag.String("log-level", "info", "the service's LOYALTY_LOG_LEVEL")
	genLog    = flag.Bool("general-log", true, "count one order's statements in MariaDB's general log")
	keepDB    = flag.Bool("keep", false, "keep the databases at the end")
	serveLogF = flag.String("serve-log", "", "write the service's log here (default: a temporary file)")
	stmtFile  = flag.String("statements", "", "write the full statements of the one logged order to this file")
	cpuProf   = flag.String("cpuprofile", "", "write a CPU profile of the service during the first orders phase to this file")
)

func main() {
	flag.Parse()
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "orders bench:", err)
		os.Exit(1)
	}
}

// bench is one run's state.
type bench struct {
	bin, dir   string
	env        []string
	dbName     string
	dsn        string
	merchantID uint64
	base       string // http://127.0.0.1:port
	debug      string // the service's pprof listener, with -cpuprofile
	dbPID      int
	apiKey     string
	memberIDs  []uint64
	svc        *exec.Cmd
	benchDB    *sql.DB // the service's database, for reads and the general log
	floorDB    *sql.DB
	seq        atomic.Int64
	http       *http.Client
}

func run(ctx context.Context) error {
	cfg, err := mysqldrv.ParseDSN(*dsnFlag)
	if err != nil {
		return err
	}
	if cfg.DBName == "" || strings.ContainsAny(cfg.DBName, "`") {
		return errors.New("the DSN must name a database")
	}
	b := &bench{dbName: cfg.DBName, dsn: *dsnFlag}
	restore, err := roomForConnections(ctx, cfg, *clients+8+50+16)
	if err != nil {
		return err
	}
	defer restore()
	if b.dir, err = os.MkdirTemp("", "orders-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)
	if err := b.prepareDatabases(ctx, cfg); err != nil {
		return err
	}
	if !*keepDB {
		defer b.dropDatabases(cfg)
	}
	if err := b.buildBinary(ctx); err != nil {
		return err
	}
	b.env = append(os.Environ(), "LOYALTY_DB_DRIVER=mysql", "LOYALTY_DB_DSN="+b.dsn,
		"LOYALTY_SECRET_KEY="+strings.Repeat("k", 40), "LOYALTY_DATA_DIR="+b.dir, "LOYALTY_SANDBOX=off",
		"LOYALTY_LOG_LEVEL="+*logLevel, "LOYALTY_LOG_FORMAT=json")
	if err := b.createMerchant(ctx); err != nil {
		return err
	}
	start := time.Now()
	if _, err := b.loyalty(ctx, "demo", "seed", "--merchant", strconv.FormatUint(b.merchantID, 10),
		"--members", strconv.Itoa(*members)); err != nil {
		return err
	}
	var orders int64
	if err := b.benchDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+b.dbName+"`.points_orders WHERE merchant_id = ?", b.merchantID).Scan(&orders); err != nil {
		return err
	}
	fmt.Printf("demo seed: %d members, %d orders of history, in %v\n", *members, orders, time.Since(start).Round(time.Second))
	if err := b.loadMembers(ctx); err != nil {
		return err
	}
	if err := b.startService(ctx); err != nil {
		return err
	}
	defer b.stopService()
	if err := b.createAPIKey(ctx); err != nil {
		return err
	}
	var version string
	var bp int64
	_ = b.benchDB.QueryRowContext(ctx, "SELECT VERSION(), @@innodb_buffer_pool_size").Scan(&version, &bp)
	fmt.Printf("server %s, innodb_buffer_pool_size %d MiB, GOMAXPROCS %d, %d clients, %v phases (after %v of warm-up)\n\n",
		version, bp>>20, runtime.GOMAXPROCS(0), *clients, *duration, *warmup)

	var floors, posts []result
	for r := 1; r <= *rounds; r++ {
		f, err := b.phase(ctx, "floor", b.floorTx)
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		floors = append(floors, f)
		fmt.Printf("round %d floor   %7.0f tx/s  p50 %6.1f ms  p99 %6.1f ms  (%d)              CPU: bench %.2f, mariadbd %.2f cores; %.2f ms of CPU per tx\n",
			r, f.rate, ms(f.p50), ms(f.p99), f.done, f.cpuSelf, f.cpuDB, 1000*(f.cpuSelf+f.cpuDB)/f.rate)
		var prof chan error
		if r == 1 && *cpuProf != "" {
			prof = make(chan error, 1)
			go func() { time.Sleep(*warmup); prof <- b.profile(ctx, *cpuProf, *duration-time.Second) }()
		}
		o, err := b.phase(ctx, "orders", b.postOrder)
		if prof != nil {
			if err := <-prof; err != nil {
				fmt.Printf("CPU profile: %v\n", err)
			} else {
				fmt.Printf("CPU profile of the service written to %s\n", *cpuProf)
			}
		}
		if err != nil {
			return fmt.Errorf("orders: %w", err)
		}
		posts = append(posts, o)
		fmt.Printf("round %d orders  %7.0f tx/s  p50 %6.1f ms  p99 %6.1f ms  (%d)  ratio %.2f  CPU: bench %.2f, service %.2f, mariadbd %.2f cores; %.2f ms of CPU per tx\n",
			r, o.rate, ms(o.p50), ms(o.p99), o.done, o.rate/f.rate, o.cpuSelf, o.cpuService, o.cpuDB, 1000*(o.cpuSelf+o.cpuService+o.cpuDB)/o.rate)
	}
	f, o := median(floors), median(posts)
	fmt.Printf("\nmedian of %d: orders via HTTP %.0f tx/s (p50 %.1f ms, p99 %.1f ms), floor %.0f tx/s (p50 %.1f ms, p99 %.1f ms), ratio %.2f\n",
		len(posts), o.rate, ms(o.p50), ms(o.p99), f.rate, ms(f.p50), ms(f.p99), o.rate/f.rate)

	if *genLog {
		if err := b.countStatements(ctx); err != nil {
			fmt.Printf("statements of one order: not counted (%v)\n", err)
		}
	}
	b.stopService()
	out, err := b.loyalty(ctx, "points", "reconcile", "-merchant", strconv.FormatUint(b.merchantID, 10))
	last := strings.TrimSpace(out)
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	if err != nil {
		return fmt.Errorf("points reconcile found mismatches or failed: %w\n%s", err, out)
	}
	fmt.Printf("points reconcile: clean (%s)\n", last)
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ---- setup ----

func (b *bench) prepareDatabases(ctx context.Context, cfg *mysqldrv.Config) error {
	server := cfg.Clone()
	server.DBName = ""
	admin, err := sql.Open("mysql", server.FormatDSN())
	if err != nil {
		return err
	}
	defer admin.Close()
	for _, name := range []string{b.dbName, b.dbName + "_floor"} {
		for _, q := range []string{"DROP DATABASE IF EXISTS `" + name + "`",
			"CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"} {
			if _, err := admin.ExecContext(ctx, q); err != nil {
				return err
			}
		}
	}
	// Both pools go through internal/db, as the service's does (READ
	// COMMITTED, interpolated parameters, UTC).
	open := func(dsn string, migrate bool) (*sql.DB, error) {
		gdb, err := db.Open(ctx, db.Options{Driver: db.MySQL, DSN: dsn, MaxOpenConns: *clients + 8})
		if err != nil {
			return nil, err
		}
		if migrate {
			if err := db.Migrate(ctx, gdb, slog.New(slog.DiscardHandler)); err != nil {
				return nil, err
			}
		}
		return gdb.DB()
	}
	// The program's own pool names no database, so the general log's
	// processlist filter (db = the service's) leaves its statements out.
	if b.benchDB, err = open(server.FormatDSN(), false); err != nil {
		return err
	}
	floor := cfg.Clone()
	floor.DBName = b.dbName + "_floor"
	if b.floorDB, err = open(floor.FormatDSN(), true); err != nil {
		return err
	}
	b.floorDB.SetMaxIdleConns(*clients + 8)
	// 10,000 accounts of merchant 1 to credit.
	for start := 0; start < 10_000; start += 1000 {
		var q strings.Builder
		q.WriteString("INSERT INTO points_accounts (merchant_id, member_id, created_at, updated_at) VALUES ")
		for i := 0; i < 1000; i++ {
			if i > 0 {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "(1, %d, NOW(3), NOW(3))", start+i+1)
		}
		if _, err := b.floorDB.ExecContext(ctx, q.String()); err != nil {
			return fmt.Errorf("floor accounts: %w", err)
		}
	}
	return nil
}

// roomForConnections raises max_connections for the run when the server
// (shared with other work) has fewer than need (plus a margin for others)
// free, and returns what sets it back. need: the floor's pool, the service's (50 by default) and a
// few more.
func roomForConnections(ctx context.Context, cfg *mysqldrv.Config, need int) (func(), error) {
	server := cfg.Clone()
	server.DBName = ""
	admin, err := sql.Open("mysql", server.FormatDSN())
	if err != nil {
		return nil, err
	}
	var limit, used int
	if err := admin.QueryRowContext(ctx, "SELECT @@max_connections, (SELECT COUNT(*) FROM information_schema.processlist)").Scan(&limit, &used); err != nil {
		admin.Close()
		return nil, err
	}
	if limit-used >= need+100 {
		admin.Close()
		return func() {}, nil
	}
	raised := used + need + 150 // others' load tests come and go during the run
	if _, err := admin.ExecContext(ctx, "SET GLOBAL max_connections = "+strconv.Itoa(raised)); err != nil {
		admin.Close()
		return nil, err
	}
	fmt.Printf("max_connections raised from %d to %d for the run (%d connections in use by others)\n", limit, raised, used)
	return func() {
		_, _ = admin.Exec("SET GLOBAL max_connections = " + strconv.Itoa(limit))
		admin.Close()
	}, nil
}

func (b *bench) dropDatabases(cfg *mysqldrv.Config) {
	server := cfg.Clone()
	server.DBName = ""
	admin, err := sql.Open("mysql", server.FormatDSN())
	if err != nil {
		return
	}
	defer admin.Close()
	for _, name := range []string{b.dbName, b.dbName + "_floor"} {
		_, _ = admin.Exec("DROP DATABASE IF EXISTS `" + name + "`")
	}
}

// buildBinary builds ./cmd/loyalty of the module this program belongs to.
func (b *bench) buildBinary(ctx context.Context) error {
	if *binFlag != "" {
		b.bin = *binFlag
		return nil
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	b.bin = filepath.Join(b.dir, "loyalty")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", b.bin, "./cmd/loyalty")
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build the service: %w", err)
	}
	return nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it inside the module (go.mod not found)")
		}
		dir = parent
	}
}

// loyalty runs a command of the service's binary and returns its stdout.
func (b *bench) loyalty(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = b.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("loyalty %s: %w\n%s", strings.Join(args, " "), err, tail(errb.String(), 2000))
	}
	return out.String(), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

const (
	ownerName     = "bench-owner"
	ownerPassword = "bench-owner-password-1"
)

func (b *bench) createMerchant(ctx context.Context) error {
	out, err := b.loyalty(ctx, "merchant", "create", "--name", "orders bench", "--wechat-app-id", "wx00000000b0e4c4a1",
		"--wechat-app-secret", strings.Repeat("a", 32), "--wechat-token", "benchtoken",
		"--owner", ownerName, "--owner-password", ownerPassword)
	if err != nil {
		return err
	}
	var res struct {
		MerchantID uint64 `json:"merchant_id"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.MerchantID == 0 {
		return fmt.Errorf("merchant create said %q", out)
	}
	b.merchantID = res.MerchantID
	return nil
}

func (b *bench) loadMembers(ctx context.Context) error {
	rows, err := b.benchDB.QueryContext(ctx, "SELECT id FROM `"+b.dbName+"`.members WHERE merchant_id = ? AND erased_at IS NULL ORDER BY id", b.merchantID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id uint64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		b.memberIDs = append(b.memberIDs, id)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(b.memberIDs) == 0 {
		return errors.New("the seed made no members")
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (b *bench) startService(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	b.base = "http://" + addr
	logPath := *serveLogF
	if logPath == "" {
		logPath = filepath.Join(b.dir, "serve.log")
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	b.svc = exec.Command(b.bin, "serve")
	b.svc.Env = append(slices.Clone(b.env), "LOYALTY_HTTP_ADDR="+addr)
	if *cpuProf != "" {
		dport, err := freePort()
		if err != nil {
			return err
		}
		b.debug = "http://127.0.0.1:" + strconv.Itoa(dport)
		b.svc.Env = append(b.svc.Env, "LOYALTY_DEBUG_ADDR=127.0.0.1:"+strconv.Itoa(dport))
	}
	b.svc.Stdout, b.svc.Stderr = logFile, logFile
	if err := b.svc.Start(); err != nil {
		return err
	}
	b.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: *clients * 2, MaxIdleConnsPerHost: *clients * 2, IdleConnTimeout: time.Minute}}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := b.http.Get(b.base + "/readyz"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if b.svc.ProcessState != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	raw, _ := os.ReadFile(logPath)
	return fmt.Errorf("the service did not become ready:\n%s", tail(string(raw), 3000))
}

func (b *bench) stopService() {
	if b.svc == nil || b.svc.Process == nil {
		return
	}
	_ = b.svc.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = b.svc.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = b.svc.Process.Kill()
		<-done
	}
	b.svc = nil
}

// call sends a JSON request and decodes a JSON answer of the wanted status.
func (b *bench) call(ctx context.Context, method, path, auth string, body, out any, want int) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, tail(string(got), 500))
	}
	if out != nil {
		return json.Unmarshal(got, out)
	}
	return nil
}

func (b *bench) createAPIKey(ctx context.Context) error {
	var login struct {
		Token string `json:"token"`
	}
	if err := b.call(ctx, http.MethodPost, "/api/admin/v1/login", "",
		map[string]string{"username": ownerName, "password": ownerPassword}, &login, http.StatusOK); err != nil {
		return err
	}
	var key struct {
		Key string `json:"key"`
	}
	if err := b.call(ctx, http.MethodPost, "/api/admin/v1/api-keys", login.Token,
		map[string]any{"name": "POS", "scopes": []string{"orders:write"}}, &key, http.StatusCreated); err != nil {
		return err
	}
	if key.Key == "" {
		return errors.New("the API key answer had no key")
	}
	b.apiKey = key.Key
	return nil
}

// ---- the two transactions ----

// floorTx credits one point to a random account of the floor database: the
// smallest durable transaction that credits points.
func (b *bench) floorTx(ctx context.Context, r *rand.Rand) error {
	memberID := 1 + r.IntN(10_000)
	now := time.Now().UTC().Truncate(time.Millisecond)
	tx, err := b.floorDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "UPDATE points_accounts SET available = available + 1, updated_at = ? WHERE merchant_id = 1 AND member_id = ?",
		now, memberID); err != nil {
		return err
	}
	key := "floor:" + strconv.FormatInt(b.seq.Add(1), 10)
	if _, err := tx.ExecContext(ctx, `INSERT INTO points_ledger (merchant_id, member_id, kind, points, pending, balance, reason,
  ref_type, ref_id, idempotency_key, created_at) VALUES (1, ?, 'earn', 1, 0, 0, 'floor', 'order', ?, ?, ?)`,
		memberID, key, key, now); err != nil {
		return err
	}
	return tx.Commit()
}

var categories = []string{"咖啡", "茶饮", "烘焙", "轻食", "零食"}

var runID = strconv.FormatInt(time.Now().Unix()%100000, 36)

// postOrder posts one new order of a random seeded member, as a POS does.
func (b *bench) postOrder(ctx context.Context, r *rand.Rand) error {
	amount := int64(500 + r.IntN(50_000))
	body := map[string]any{
		"external_id": "pos-" + runID + "-" + strconv.FormatInt(b.seq.Add(1), 10),
		"member_id":   b.memberIDs[r.IntN(len(b.memberIDs))],
		"amount_fen":  amount,
		"items": []map[string]any{{"sku": "sku-1", "name": "item", "category": categories[r.IntN(len(categories))],
			"quantity": 1, "price_fen": amount}},
	}
	return b.call(ctx, http.MethodPost, "/api/admin/v1/orders", b.apiKey, body, nil, http.StatusCreated)
}

// ---- measuring ----

type result struct {
	rate              float64
	p50, p99          time.Duration
	done              int64
	cpuService, cpuDB float64 // cores used during the phase
	cpuSelf           float64 // by this program (the clients)
}

func median(rs []result) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int {
		switch {
		case a.rate < b.rate:
			return -1
		case a.rate > b.rate:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

// phase runs op from -clients goroutines: -warmup unmeasured, then
// -duration measured. Any error ends it.
func (b *bench) phase(ctx context.Context, name string, op func(context.Context, *rand.Rand) error) (result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var measuring atomic.Bool
	var done atomic.Int64
	lat := make([][]time.Duration, *clients)
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				t0 := time.Now()
				if err := op(ctx, r); err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() { firstErr = err })
						cancel()
					}
					return
				}
				if measuring.Load() {
					lat[c] = append(lat[c], time.Since(t0))
					done.Add(1)
				}
			}
		}()
	}
	select {
	case <-time.After(*warmup):
	case <-ctx.Done():
	}
	svc0, db0, self0 := cpuTicks(b.svcPID()), cpuTicks(b.mariadbPID()), cpuTicks(os.Getpid())
	start := time.Now()
	measuring.Store(true)
	select {
	case <-time.After(*duration):
	case <-ctx.Done():
	}
	measuring.Store(false)
	elapsed := time.Since(start)
	svc1, db1, self1 := cpuTicks(b.svcPID()), cpuTicks(b.mariadbPID()), cpuTicks(os.Getpid())
	cancel()
	wg.Wait()
	if firstErr != nil {
		return result{}, firstErr
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	res := result{rate: float64(done.Load()) / elapsed.Seconds(), done: done.Load()}
	if len(all) > 0 {
		res.p50, res.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	const hz = 100 // USER_HZ
	res.cpuService = float64(svc1-svc0) / hz / elapsed.Seconds()
	res.cpuDB = float64(db1-db0) / hz / elapsed.Seconds()
	res.cpuSelf = float64(self1-self0) / hz / elapsed.Seconds()
	_ = name
	return res, nil
}

func (b *bench) svcPID() int {
	if b.svc == nil || b.svc.Process == nil {
		return 0
	}
	return b.svc.Process.Pid
}

// mariadbPID is the process of the server the benchmark talks to, from
// its pid file (others may run servers of their own on the machine).
func (b *bench) mariadbPID() int {
	if b.dbPID != 0 {
		return b.dbPID
	}
	var path string
	if err := b.benchDB.QueryRow("SELECT @@pid_file").Scan(&path); err != nil {
		return 0
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	b.dbPID, _ = strconv.Atoi(strings.TrimSpace(string(raw)))
	return b.dbPID
}

// cpuTicks returns a process's user+system time in clock ticks.
func cpuTicks(pid int) int64 {
	if pid == 0 {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

// profile fetches a CPU profile of the service over d.
func (b *bench) profile(ctx context.Context, path string, d time.Duration) error {
	secs := max(1, int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", b.debug, secs), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: d + 30*time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// countStatements posts one order with MariaDB's general log on (to a
// table) and prints the statements the service's connections sent for it.
// The log is global: other databases' statements are told apart by the
// connection ids of the service's pool.
func (b *bench) countStatements(ctx context.Context) error {
	var output string
	var on int
	if err := b.benchDB.QueryRowContext(ctx, "SELECT @@log_output, @@general_log").Scan(&output, &on); err != nil {
		return err
	}
	restore := func() {
		_, _ = b.benchDB.Exec("SET GLOBAL general_log = " + strconv.Itoa(on))
		_, _ = b.benchDB.Exec("SET GLOBAL log_output = '" + output + "'")
	}
	defer restore()
	if _, err := b.benchDB.ExecContext(ctx, "SET GLOBAL log_output = 'TABLE'"); err != nil {
		return err
	}
	// Warm the pool so every statement of the order runs on a connection
	// that exists before the log starts.
	r := rand.New(rand.NewPCG(1, 2))
	if err := b.postOrder(ctx, r); err != nil {
		return err
	}
	var from time.Time
	if err := b.benchDB.QueryRowContext(ctx, "SELECT NOW(6)").Scan(&from); err != nil {
		return err
	}
	if _, err := b.benchDB.ExecContext(ctx, "SET GLOBAL general_log = 1"); err != nil {
		return err
	}
	err := b.postOrder(ctx, r)
	_, _ = b.benchDB.ExecContext(ctx, "SET GLOBAL general_log = 0")
	if err != nil {
		return err
	}
	rows, err := b.benchDB.QueryContext(ctx, `SELECT thread_id, command_type, CONVERT(argument USING utf8mb4) FROM mysql.general_log
WHERE event_time >= ? AND command_type IN ('Query', 'Execute') AND thread_id IN
  (SELECT id FROM information_schema.processlist WHERE db = ?) ORDER BY event_time`, from, b.dbName)
	if err != nil {
		return err
	}
	defer rows.Close()
	var stmts []string
	inTx, setup := 0, 0
	var full []string
	tx := false
	for rows.Next() {
		var thread uint64
		var kind, arg string
		if err := rows.Scan(&thread, &kind, &arg); err != nil {
			return err
		}
		up := strings.ToUpper(strings.TrimSpace(arg))
		if strings.HasPrefix(up, "SET ") {
			setup++ // a new pooled connection's session settings
			continue
		}
		switch {
		case strings.HasPrefix(up, "START TRANSACTION") || strings.HasPrefix(up, "BEGIN"):
			tx = true
		case strings.HasPrefix(up, "COMMIT") || strings.HasPrefix(up, "ROLLBACK"):
			tx = false
		default:
			if tx {
				inTx++
			}
		}
		stmts = append(stmts, fmt.Sprintf("  [%d] %s", thread, oneLine(arg, 140)))
		full = append(full, arg+";")
	}
	if err := rows.Err(); err != nil {
		return err
	}
	_, _ = b.benchDB.ExecContext(ctx, "TRUNCATE TABLE mysql.general_log")
	if *stmtFile != "" {
		if err := os.WriteFile(*stmtFile, []byte(strings.Join(full, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("\nstatements while one order was posted: %d (%d inside its transaction, BEGIN/COMMIT not counted there;"+
		" %d session settings of new pooled connections left out)\n", len(stmts), inTx, setup)
	for _, s := range stmts {
		fmt.Println(s)
	}
	fmt.Println()
	return nil
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
