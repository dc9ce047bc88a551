package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/redisx/redisxtest"
)

// Redis goes away while the service runs: callbacks (nonce cache, WeChat
// tokens) and member logins (their limits) go on, the metrics say the
// instance falls back, and once Redis answers again it is used again.
func TestRedisOutageKeepsLoginsAndCallbacks(t *testing.T) {
	proxy := redisxtest.NewProxy(t, redisxtest.Addr(t))
	a := startAppOn(t, onBackend(t, dbtest.SQLite), func(c *configs.Config) {
		c.Redis.Addr = proxy.Addr()
		c.MemberLogin.PerClientPerMinute = 3
	})
	token := a.login()
	fallback := func() string {
		t.Helper()
		code, body, _ := a.get("/metrics")
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "loyalty_redis_fallback ") {
				return strings.TrimPrefix(line, "loyalty_redis_fallback ")
			}
		}
		t.Fatal("/metrics has no loyalty_redis_fallback")
		return ""
	}
	work := func(round string) {
		t.Helper()
		var followed struct {
			Processed bool
			MemberID  uint64 `json:"member_id"`
		}
		unionid := "u_outage_" + round
		if code := a.call("POST", "/api/admin/v1/sandbox/follow", token, map[string]string{"unionid": unionid}, &followed); code != 200 || !followed.Processed {
			t.Fatalf("%s: follow: %d %+v", round, code, followed)
		}
		var code struct{ Code string }
		a.call("POST", "/api/admin/v1/sandbox/mp-login-code", token, map[string]string{"unionid": unionid}, &code)
		var login struct{ Token string }
		if st := a.call("POST", fmt.Sprintf("/api/mp/v1/%d/login", a.merchant), "", map[string]string{"code": code.Code}, &login); st != 200 || login.Token == "" {
			t.Fatalf("%s: mini-program login: %d", round, st)
		}
	}

	work("before")
	if got := fallback(); got != "0" {
		t.Fatalf("fallback %s before the outage", got)
	}
	proxy.Cut()
	work("during")
	if got := fallback(); got != "1" {
		t.Fatalf("fallback %s during the outage", got)
	}
	// The login limit still holds (this instance's own count: 3 a minute
	// for this client, one spent just now), rather than letting every
	// login through.
	var statuses []int
	for range 3 {
		statuses = append(statuses, a.call("POST", fmt.Sprintf("/api/mp/v1/%d/login", a.merchant), "", map[string]string{"code": "bogus"}, nil))
	}
	if statuses[0] == 429 || statuses[1] == 429 || statuses[2] != 429 {
		t.Fatalf("logins during the outage: %v, want the third refused with 429", statuses)
	}
	if n := a.count("instances", "seen_at IS NOT NULL"); n != 1 {
		t.Fatalf("%d instances beating, want this one", n)
	}
	proxy.Restore()
	for deadline := time.Now().Add(15 * time.Second); fallback() != "0"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("still falling back 15 s after Redis came back")
		}
	}
	work("after")
}
