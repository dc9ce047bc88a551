// Command soak runs the whole system under mixed load with faults and
// checks that it keeps its promises: three instances of the real binary on
// a private MariaDB and a private Redis, behind a round-robin reverse
// proxy, with the WeChat simulator served over HTTP by this process.
//
//	go run ./docs/bench/soak -short     # CI: under 3 minutes, 5,000-member campaign
//	go run ./docs/bench/soak            # 30 minutes, 100,000-member campaign
//
// The load, all at once: signed subscribe callbacks (retried as WeChat
// retries, some pushed twice), mini-program logins, orders and refunds
// from a POS with an API key, and a template campaign to every member of
// a tag. The faults, on a schedule (repeated every 5 minutes in the long
// form): kill -9 of an instance (restarted), MariaDB killed and restarted,
// Redis killed and restarted empty, the simulator answering 45011 to
// every send, then every WeChat call hanging until the caller times out.
//
// At the end it checks, and prints: every acknowledged callback applied
// exactly once; `loyalty points reconcile` clean; every acknowledged order
// and refund stored once; no member got the campaign twice; every
// eligible member got it or is reported unknown; the send rate never above
// the limit in any 1 s window; the time to recover after each fault;
// throughput and latency per endpoint; each instance's memory. It exits 1
// when an invariant fails. Logs and the databases are under the run's
// directory (printed; removed after a clean run unless -keep).
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

const (
	oaAppID     = "wx50a1c0ffee000001"
	oaSecret    = "50a1c0ffee50a1c0ffee50a1c0ffee01"
	mpAppID     = "wx50a1c0ffee000002"
	mpSecret    = "50a1c0ffee50a1c0ffee50a1c0ffee02"
	cbToken     = "soaktoken"
	originalID  = "gh_50a1c0ffee01"
	templateID  = "TPL_SOAK_CAMPAIGN"
	owner       = "soak"
	ownerPass   = "soak-owner-password-1"
	secretKey   = "soak-secret-key-0123456789abcdef0123456789"
	instanceCnt = 3
)

// options are the run's parameters; -short picks CI's.
type options struct {
	duration    time.Duration // how long the load runs
	members     int           // the campaign's audience
	rate        float64       // LOYALTY_SEND_RATE
	faultWindow time.Duration // how long the simulator's 45011 and hangs last
	downFor     time.Duration // how long a killed process stays down
	cycle       time.Duration // the fault schedule repeats this often
	drain       time.Duration // how long to wait for the work to settle after the load
	callbacks   float64       // per second
	logins      float64
	orders      float64
	dsn         string // an existing server instead of a private MariaDB
	bin         string
	keep        bool
}

func main() {
	var o options
	short := flag.Bool("short", false, "CI's form: 2 minutes of load, a 5,000-member campaign, 10 s faults (under 3 minutes in all)")
	flag.DurationVar(&o.duration, "duration", 30*time.Minute, "how long the load runs")
	flag.IntVar(&o.members, "members", 100000, "members the campaign goes to")
	flag.Float64Var(&o.rate, "rate", 100, "the account's send limit per second (LOYALTY_SEND_RATE)")
	flag.DurationVar(&o.faultWindow, "fault-window", 30*time.Second, "how long the simulator answers 45011, and then hangs")
	flag.DurationVar(&o.drain, "drain", 5*time.Minute, "most time to wait for the campaign and inbox to settle after the load")
	flag.StringVar(&o.dsn, "dsn", "", "use this MySQL server (e.g. root@tcp(127.0.0.1:3306)/) instead of a private MariaDB; the MariaDB restart is then skipped")
	flag.StringVar(&o.bin, "bin", "", "a built loyalty binary (default: go build ./cmd/loyalty)")
	flag.BoolVar(&o.keep, "keep", false, "keep the run's directory (logs, databases) even when every check passes")
	flag.Parse()
	o.downFor, o.cycle = 5*time.Second, 5*time.Minute
	// The welcome care rule greets each follower, so callbacks take a
	// share of the send rate from the campaign: 20 a second leave it
	// about 80 of the default 100, enough for 100,000 members in the
	// 30 minutes.
	o.callbacks, o.logins, o.orders = 20, 5, 10
	if *short {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			o.duration = 2 * time.Minute
		}
		if !set["members"] {
			o.members = 5000
		}
		if !set["fault-window"] {
			o.faultWindow = 10 * time.Second
		}
		if !set["drain"] {
			o.drain = 45 * time.Second
		}
		o.downFor = 3 * time.Second
	}
	os.Exit(run(o))
}

// soak is one run: its processes, its load and its record of faults.
type soak struct {
	o         options
	dir       string
	bin       string
	sim       *wechattest.Simulator
	simURL    string
	mariadb   *daemon // nil with -dsn
	redis     *daemon
	instances []*daemon
	proxy     *proxy
	env       []string
	sqlDSN    string
	sharedDB  string // the run's database on a server given by -dsn
	db        *sql.DB
	merchant  uint64
	faults    []faultRecord
	faultsMu  sync.Mutex
	memory    [][]memSample
	memMu     sync.Mutex
}

func run(o options) int {
	started := time.Now()
	dir, err := os.MkdirTemp("", "loyalty-soak-")
	if err != nil {
		log.Fatal(err)
	}
	s := &soak{o: o, dir: dir}
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.Printf("soak: run directory %s", dir)
	defer s.stopAll()
	// The children run in their own process groups (a Ctrl-C must not
	// kill them out of order): stop them on the way out.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		log.Printf("soak: interrupted; stopping everything (run directory %s kept)", dir)
		s.o.keep = true
		s.stopAll()
		os.Exit(130)
	}()
	if err := s.setup(); err != nil {
		log.Printf("soak: setup failed: %v (run directory %s kept)", err, dir)
		s.o.keep = true
		return 2
	}
	log.Printf("soak: set up in %.1f s", time.Since(started).Seconds())
	l, camp, err := s.prepare()
	if err != nil {
		log.Printf("soak: preparing the merchant failed: %v (run directory %s kept)", err, dir)
		s.o.keep = true
		return 2
	}
	loadStart, loadEnd := s.runLoad(l, camp)
	drained := s.drain(camp)
	// The instances stop (SIGTERM: calls in flight finish and are recorded)
	// before anything is checked: an engine still sending after a drain
	// that timed out would mark rows sent after the simulator's record was
	// read, and the check would see messages that did not arrive.
	for _, d := range s.instances {
		d.kill(syscall.SIGTERM)
	}
	r := s.check(l, camp, loadStart, loadEnd, drained)
	r.print(os.Stdout, o, time.Since(started))
	if !r.ok() {
		fmt.Printf("\nSOAK FAILED; logs in %s\n", dir)
		s.o.keep = true
		return 1
	}
	fmt.Printf("\nSOAK PASSED in %.0f s\n", time.Since(started).Seconds())
	return 0
}

// setup starts everything: the binary, the simulator, MariaDB, Redis, the
// instances and the proxy.
func (s *soak) setup() error {
	step := time.Now()
	lap := func(what string) {
		log.Printf("soak: %s in %.1f s", what, time.Since(step).Seconds())
		step = time.Now()
	}
	// The binary builds while MariaDB installs and starts.
	s.bin = s.o.bin
	built := make(chan error, 1)
	if s.bin == "" {
		s.bin = filepath.Join(s.dir, "loyalty")
		go func() {
			build := exec.Command("go", "build", "-o", s.bin, "./cmd/loyalty")
			build.Stdout, build.Stderr = os.Stderr, os.Stderr
			if err := build.Run(); err != nil {
				built <- fmt.Errorf("go build ./cmd/loyalty (run from the repository root): %w", err)
			}
			close(built)
		}()
	} else {
		close(built)
	}
	s.sim = wechattest.New()
	s.sim.AddOfficialAccount(wechattest.App{AppID: oaAppID, Secret: oaSecret})
	s.sim.AddMiniProgram(wechattest.App{AppID: mpAppID, Secret: mpSecret})
	s.sim.AddTemplate(oaAppID, templateID)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.simURL = "http://" + ln.Addr().String()
	go func() { _ = (&http.Server{Handler: s.sim, ReadHeaderTimeout: 5 * time.Second}).Serve(ln) }()

	server := s.o.dsn
	if server == "" {
		d, addr, err := newMariaDB(s.dir)
		if err != nil {
			return err
		}
		if err := d.startReady(60 * time.Second); err != nil {
			return err
		}
		s.mariadb = d
		server = "root@tcp(" + addr + ")/"
		lap("private MariaDB installed and started")
	}
	// On a shared server the run's database has a name of its own, and
	// is dropped at the end unless kept.
	name := "loyalty_soak"
	if s.o.dsn != "" {
		name = fmt.Sprintf("loyalty_soak_%d", os.Getpid())
		s.sharedDB = server + name
	}
	admin, err := sql.Open("mysql", server)
	if err != nil {
		return err
	}
	if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
		return fmt.Errorf("drop %s: %w", name, err)
	}
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	admin.Close()
	dsn := server + name
	s.sqlDSN = dsn + "?parseTime=true"
	if s.db, err = sql.Open("mysql", s.sqlDSN); err != nil {
		return err
	}

	s.redis = newRedis(s.dir)
	if err := s.redis.startReady(20 * time.Second); err != nil {
		return err
	}

	if err := <-built; err != nil {
		return err
	}
	lap("binary ready")
	proxyPort := freePort()
	s.env = []string{
		"LOYALTY_DB_DRIVER=mysql", "LOYALTY_DB_DSN=" + dsn,
		"LOYALTY_REDIS_ADDR=" + redisAddr(s.redis),
		"LOYALTY_SECRET_KEY=" + secretKey,
		"LOYALTY_WECHAT_API_BASE=" + s.simURL,
		"LOYALTY_WECHAT_TIMEOUT=3s",
		"LOYALTY_SANDBOX=off",
		fmt.Sprintf("LOYALTY_SEND_RATE=%g", s.o.rate),
		"LOYALTY_SEND_DAILY_QUOTA=100000000",
		"LOYALTY_TRUSTED_PROXIES=127.0.0.1",
		"LOYALTY_MEMBER_LOGIN_PER_CLIENT=60",
		"LOYALTY_MEMBER_LOGIN_PER_MERCHANT=100000",
		fmt.Sprintf("LOYALTY_PUBLIC_URL=http://127.0.0.1:%d", proxyPort),
		"LOYALTY_DATA_DIR=" + s.dir,
		"LOYALTY_LOG_FORMAT=json",
	}
	if out, err := s.cli("migrate"); err != nil {
		return fmt.Errorf("loyalty migrate: %w\n%s", err, out)
	}
	lap("migrated")
	out, err := s.cli("merchant", "create", "--name", "Soak", "--time-zone", "UTC",
		"--wechat-app-id", oaAppID, "--wechat-app-secret", oaSecret, "--wechat-token", cbToken,
		"--mp-app-id", mpAppID, "--mp-app-secret", mpSecret, "--owner", owner, "--owner-password", ownerPass)
	if err != nil {
		return fmt.Errorf("loyalty merchant create: %w\n%s", err, out)
	}
	var created struct {
		MerchantID uint64 `json:"merchant_id"`
	}
	if err := json.Unmarshal(out, &created); err != nil || created.MerchantID == 0 {
		return fmt.Errorf("loyalty merchant create answered %q", out)
	}
	s.merchant = created.MerchantID

	var backends []string
	for i := range instanceCnt {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort())
		d := &daemon{name: fmt.Sprintf("instance-%d", i+1), logTo: filepath.Join(s.dir, fmt.Sprintf("instance-%d.log", i+1)),
			args: []string{s.bin}, env: append(append([]string(nil), s.env...), "LOYALTY_HTTP_ADDR="+addr),
			ready: httpReady("http://" + addr + "/readyz")}
		if err := d.startReady(60 * time.Second); err != nil {
			return err
		}
		s.instances = append(s.instances, d)
		backends = append(backends, "http://"+addr)
	}
	lap("3 instances ready")
	p, err := newProxyOn(fmt.Sprintf("127.0.0.1:%d", proxyPort), backends)
	if err != nil {
		return err
	}
	s.proxy = p
	p.checkAll()
	return nil
}

// cli runs a loyalty subcommand against the soak's database.
func (s *soak) cli(args ...string) ([]byte, error) {
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), s.env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return []byte(stdout.String() + stderr.String()), err
	}
	return []byte(stdout.String()), nil
}

// stopAll stops the instances, then Redis and MariaDB, and removes the
// run's directory unless it is kept.
func (s *soak) stopAll() {
	if s.proxy != nil {
		_ = s.proxy.srv.Close()
	}
	for _, d := range s.instances {
		d.kill(syscall.SIGTERM)
	}
	if s.redis != nil {
		s.redis.kill(syscall.SIGKILL)
	}
	if s.db != nil {
		if s.sharedDB != "" && !s.o.keep {
			_, _ = s.db.Exec("DROP DATABASE " + s.sharedDB[strings.LastIndex(s.sharedDB, "/")+1:])
		}
		s.db.Close()
	}
	if s.mariadb != nil {
		s.mariadb.kill(syscall.SIGTERM)
	}
	if !s.o.keep {
		_ = os.RemoveAll(s.dir)
	}
}

// memSample is an instance's resident memory at a time.
type memSample struct {
	at  time.Time
	rss int64 // kB
}

func (s *soak) sampleMemory(ctx context.Context, every time.Duration) {
	s.memory = make([][]memSample, len(s.instances))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.memMu.Lock()
		for i, d := range s.instances {
			if kb := d.rssKB(); kb > 0 {
				s.memory[i] = append(s.memory[i], memSample{time.Now(), kb})
			}
		}
		s.memMu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
