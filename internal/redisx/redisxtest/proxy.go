// Package redisxtest puts a real Redis behind a TCP proxy that a test can
// cut and restore: a Redis outage as the service would see it (connections
// dropped, new ones refused) without stopping the Redis other tests use.
package redisxtest

import (
	"io"
	"net"
	"os"
	"sync"
	"testing"
)

// Addr returns the Redis the tests use (LOYALTY_TEST_REDIS_ADDR), skipping
// the test without one unless LOYALTY_TEST_REQUIRE_REDIS=1.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("LOYALTY_TEST_REDIS_ADDR")
	if addr == "" {
		if os.Getenv("LOYALTY_TEST_REQUIRE_REDIS") == "1" {
			t.Fatal("LOYALTY_TEST_REQUIRE_REDIS=1 but LOYALTY_TEST_REDIS_ADDR is not set")
		}
		t.Skip("needs LOYALTY_TEST_REDIS_ADDR (e.g. 127.0.0.1:6379); .ci/run sets it")
	}
	return addr
}

// Proxy forwards connections to a Redis until cut.
type Proxy struct {
	t      testing.TB
	target string
	ln     net.Listener

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
}

// NewProxy listens on a free local port and forwards to target.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, target: target, ln: ln, conns: map[net.Conn]bool{}}
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.Cut()
	})
	return p
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut drops every connection and refuses (closes at once) new ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// Restore forwards new connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = in.Close()
			continue
		}
		p.conns[in], p.conns[out] = true, true
		p.mu.Unlock()
		go pipe(in, out)
		go pipe(out, in)
	}
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}
