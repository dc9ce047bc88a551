package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// freePort asks the kernel for a free TCP port on the loopback.
func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitFor polls ok every 100 ms until it answers true or d passes.
func waitFor(d time.Duration, ok func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ok() {
			return true
		}
	}
	return ok()
}

// daemon is a child process the soak owns and restarts: Redis, MariaDB or
// one instance of the service. Its output goes to a log file in the run's
// directory.
type daemon struct {
	name  string
	args  []string
	env   []string
	logTo string
	ready func() bool // answers true once the daemon serves

	mu  sync.Mutex
	cmd *exec.Cmd
}

func (d *daemon) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	out, err := os.OpenFile(d.logTo, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: log file: %w", d.name, err)
	}
	cmd := exec.Command(d.args[0], d.args[1:]...)
	cmd.Env = append(os.Environ(), d.env...)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: a Ctrl-C of the soak does not reach it
	// before the soak stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("%s: start: %w", d.name, err)
	}
	d.cmd = cmd
	go func() { _ = cmd.Wait(); out.Close() }()
	return nil
}

// startReady starts the daemon and waits until it serves.
func (d *daemon) startReady(within time.Duration) error {
	if err := d.start(); err != nil {
		return err
	}
	if !waitFor(within, d.ready) {
		return fmt.Errorf("%s: not ready within %v (see %s)", d.name, within, d.logTo)
	}
	return nil
}

// kill sends sig to the daemon and waits until it is gone.
func (d *daemon) kill(sig syscall.Signal) {
	d.mu.Lock()
	cmd := d.cmd
	d.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	waitFor(60*time.Second, func() bool { return cmd.ProcessState != nil || syscall.Kill(cmd.Process.Pid, 0) != nil })
}

func (d *daemon) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// rssKB is the daemon's resident set in kB (0 when it is not running).
func (d *daemon) rssKB() int64 {
	pid := d.pid()
	if pid == 0 {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// tcpReady answers true once addr accepts connections.
func tcpReady(addr string) func() bool {
	return func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
}

// httpReady answers true once url answers 200.
func httpReady(url string) func() bool {
	client := &http.Client{Timeout: time.Second}
	return func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

// newRedis is a private Redis: nothing saved, so a restart starts empty,
// as a lost cache node would.
func newRedis(dir string) *daemon {
	port := freePort()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	return &daemon{name: "redis", logTo: filepath.Join(dir, "redis.log"),
		args:  []string{"redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"},
		ready: tcpReady(addr)}
}

func redisAddr(d *daemon) string {
	for i, a := range d.args {
		if a == "--port" {
			return "127.0.0.1:" + d.args[i+1]
		}
	}
	return ""
}

// newMariaDB installs a private MariaDB data directory under dir and
// returns the server (not started) and its address.
func newMariaDB(dir string) (*daemon, string, error) {
	data := filepath.Join(dir, "mariadb")
	install := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--user="+currentUser())
	if out, err := install.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}
	port := freePort()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	d := &daemon{name: "mariadb", logTo: filepath.Join(dir, "mariadb.log"),
		args: []string{mariadbd(), "--no-defaults", "--datadir=" + data, "--port=" + strconv.Itoa(port),
			"--bind-address=127.0.0.1", "--socket=" + filepath.Join(dir, "mariadb.sock"),
			"--pid-file=" + filepath.Join(dir, "mariadb.pid"), "--user=" + currentUser(), "--skip-grant-tables",
			"--innodb-buffer-pool-size=256M", "--max-connections=500", "--log-error=" + filepath.Join(dir, "mariadb.err")},
		ready: tcpReady(addr)}
	return d, addr, nil
}

func mariadbd() string {
	if p, err := exec.LookPath("mariadbd"); err == nil {
		return p
	}
	return "/usr/sbin/mariadbd"
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// proxy is a round-robin reverse proxy over the instances, skipping those
// whose /healthz does not answer (checked every 250 ms, and at once after
// a failed request), as a load balancer would.
type proxy struct {
	backends []*url.URL
	up       []atomic.Bool
	next     atomic.Uint64
	srv      *http.Server
	addr     string
}

func newProxyOn(addr string, backends []string) (*proxy, error) {
	p := &proxy{up: make([]atomic.Bool, len(backends))}
	for _, b := range backends {
		u, err := url.Parse(b)
		if err != nil {
			return nil, err
		}
		p.backends = append(p.backends, u)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(p.pick())
			// Rewrite drops the inbound X-Forwarded-For; a balancer
			// behind others (here: the clients' own addresses) keeps it.
			r.Out.Header["X-Forwarded-For"] = r.In.Header["X-Forwarded-For"]
			r.SetXForwarded()
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 200, IdleConnTimeout: 30 * time.Second,
			DialContext: (&net.Dialer{Timeout: time.Second}).DialContext, ResponseHeaderTimeout: 15 * time.Second},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.down(r.URL.Host)
			w.WriteHeader(http.StatusBadGateway)
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p.addr = ln.Addr().String()
	p.srv = &http.Server{Handler: rp, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("proxy: %v", err)
		}
	}()
	return p, nil
}

func (p *proxy) pick() *url.URL {
	n := uint64(len(p.backends))
	start := p.next.Add(1)
	for i := range n {
		if j := (start + i) % n; p.up[j].Load() {
			return p.backends[j]
		}
	}
	return p.backends[start%n] // none known up: try anyway, and fail
}

// down marks the backend at host down until its /healthz answers again.
func (p *proxy) down(host string) {
	for i, b := range p.backends {
		if b.Host == host {
			p.up[i].Store(false)
		}
	}
}

func (p *proxy) checkAll() {
	for i, b := range p.backends {
		p.up[i].Store(httpReady(b.String() + "/healthz")())
	}
}

func (p *proxy) watch(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		p.checkAll()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
