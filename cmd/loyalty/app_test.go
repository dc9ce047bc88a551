package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(dbtest.Main(m))
}

// testApp is a running service on a real listener, backed by its own
// database (MySQL, or SQLite with startAppOn), in sandbox mode (WeChat
// simulated in-process).
type testApp struct {
	*App
	t        *testing.T
	base     string
	banner   *bytes.Buffer
	logs     *lockedBuffer // warnings and errors the service logged
	cancel   context.CancelFunc
	done     chan error
	password string
	merchant uint64
}

// startApp starts the service on its own MySQL database (skipped without
// LOYALTY_TEST_MYSQL_DSN).
func startApp(t *testing.T, mutate ...func(*configs.Config)) *testApp {
	t.Helper()
	return startAppWith(t, admin.PasswordOptions{}, mutate...)
}

// startAppWith is startApp with bcrypt tuned by pw; its cost is always the
// lowest, so the many logins of the tests stay fast under -race.
func startAppWith(t *testing.T, pw admin.PasswordOptions, mutate ...func(*configs.Config)) *testApp {
	t.Helper()
	_, dsn := dbtest.OpenMySQLEmpty(t)
	return startAppOnWith(t, pw, func(c *configs.Config) { c.DB.Driver, c.DB.DSN = "mysql", dsn }, mutate...)
}

// startAppOn is startApp on the database that db configures.
func startAppOn(t *testing.T, db func(*configs.Config), mutate ...func(*configs.Config)) *testApp {
	t.Helper()
	return startAppOnWith(t, admin.PasswordOptions{}, db, mutate...)
}

// eachBackendName runs test as a subtest against a service on each database
// the service supports: SQLite always (so `go test ./...` on a fresh
// machine runs the HTTP contract tests) and MySQL when configured.
func eachBackendName(t *testing.T, test func(t *testing.T, backend string)) {
	t.Helper()
	for _, backend := range []string{dbtest.SQLite, dbtest.MySQL} {
		t.Run(backend, func(t *testing.T) { test(t, backend) })
	}
}

// onBackend configures a new database of backend: dbtest.MySQL (skipped
// without LOYALTY_TEST_MYSQL_DSN) or dbtest.SQLite (a file in the data
// directory).
func onBackend(t *testing.T, backend string) func(*configs.Config) {
	t.Helper()
	if backend == dbtest.MySQL {
		_, dsn := dbtest.OpenMySQLEmpty(t)
		return func(c *configs.Config) { c.DB.Driver, c.DB.DSN = "mysql", dsn }
	}
	return func(c *configs.Config) { c.DB.Driver, c.DB.DSN = "sqlite", filepath.Join(c.DataDir, "loyalty.db") }
}

// startAppOnWith is startAppOn with bcrypt tuned by pw (at the lowest cost).
func startAppOnWith(t *testing.T, pw admin.PasswordOptions, db func(*configs.Config), mutate ...func(*configs.Config)) *testApp {
	t.Helper()
	pw.Cost = bcrypt.MinCost
	cfg := configs.Default()
	cfg.DataDir = t.TempDir()
	db(&cfg)
	cfg.WeChat.Sandbox = configs.SandboxOn
	cfg.WeChat.Timeout = 3 * time.Second
	cfg.HTTP.ShutdownTimeout = 5 * time.Second
	for _, m := range mutate {
		m(&cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	if cfg.HTTP.PublicURL == "" { // a test may say the service is behind a TLS proxy
		cfg.HTTP.PublicURL = base
	}
	banner, logs := &bytes.Buffer{}, &lockedBuffer{}
	app, err := newApp(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})), banner,
		func(o *appOptions) { o.passwords = pw })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testApp{App: app, t: t, base: base, banner: banner, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- app.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-ta.done
		app.Close()
	})
	if m := regexp.MustCompile(`Demo merchant (\d+), owner "demo", password "([^"]+)"`).FindStringSubmatch(banner.String()); m != nil {
		fmt.Sscan(m[1], &ta.merchant)
		ta.password = m[2]
	}
	return ta
}

// lockedBuffer is a bytes.Buffer the service's goroutines may log into
// while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// call makes a JSON request and decodes the JSON answer into out (if any).
func (a *testApp) call(method, path, token string, body any, out any) int {
	a.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		r = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, a.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.client().Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

func (a *testApp) login() string {
	a.t.Helper()
	var out struct{ Token string }
	if code := a.call("POST", "/api/admin/v1/login", "", map[string]string{"username": "demo", "password": a.password}, &out); code != 200 {
		a.t.Fatalf("login: %d", code)
	}
	return out.Token
}

type errorBody struct {
	Error struct {
		Code    string
		Message string
		Fields  map[string]string
	}
}

type profile struct {
	ID            uint64
	Name          string
	Phone         *string
	FollowStatus  string                  `json:"follow_status"`
	ChannelScene  string                  `json:"channel_scene"`
	HasMP         bool                    `json:"has_mini_program"`
	HasOA         bool                    `json:"has_official_account"`
	FollowHistory []struct{ Kind string } `json:"follow_history"`
}

// The sandbox, as a merchant's developer uses it: log in, simulate a
// follower, log in from the mini-program as the same person, edit the
// profile, bind a phone, unfollow and follow again.
func TestSandboxEndToEnd(t *testing.T) { eachBackendName(t, testSandboxEndToEnd) }

func testSandboxEndToEnd(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	if a.password == "" || !strings.Contains(a.banner.String(), "/api/admin/v1/sandbox/follow") {
		t.Fatalf("sandbox banner does not say how to log in and simulate a follower:\n%s", a.banner)
	}
	token := a.login()

	var followed struct {
		OpenID    string `json:"openid"`
		Processed bool
		MemberID  uint64 `json:"member_id"`
	}
	if code := a.call("POST", "/api/admin/v1/sandbox/follow", token, map[string]string{"scene": "spring", "unionid": "u_77"}, &followed); code != 200 || !followed.Processed {
		t.Fatalf("follow: %d %+v", code, followed)
	}

	var code struct{ Code string }
	a.call("POST", "/api/admin/v1/sandbox/mp-login-code", token, map[string]string{"unionid": "u_77"}, &code)
	var login struct {
		Token  string
		Member profile
	}
	path := fmt.Sprintf("/api/mp/v1/%d/login", a.merchant)
	if st := a.call("POST", path, "", map[string]string{"code": code.Code}, &login); st != 200 {
		t.Fatalf("mini-program login: %d", st)
	}
	if login.Member.ID != followed.MemberID || !login.Member.HasMP || !login.Member.HasOA || login.Member.ChannelScene != "spring" {
		t.Fatalf("mini-program login did not stitch to the follower: %+v (follower %d)", login.Member, followed.MemberID)
	}
	// The same code again is refused with the field named.
	var e errorBody
	if st := a.call("POST", path, "", map[string]string{"code": code.Code}, &e); st != 400 || e.Error.Fields["code"] == "" {
		t.Fatalf("reused code: %d %+v", st, e)
	}

	me := fmt.Sprintf("/api/member/v1/%d/profile", a.merchant)
	var p profile
	if st := a.call("PATCH", me, login.Token, `{"name":"小林","birthday":{"month":2,"day":29},"consents":{"template":true}}`, &p); st != 200 || p.Name != "小林" {
		t.Fatalf("profile update: %d %+v", st, p)
	}
	for body, field := range map[string]string{
		`{"birthday":{"month":2,"day":30}}`: "birthday.day",
		`{"gender":1}`:                      "gender",
		`{"nickname":"x"}`:                  "nickname",
		`{"name":"a"} {"name":"b"}`:         "body",
		`{"name":`:                          "body",
	} {
		e = errorBody{}
		if st := a.call("PATCH", me, login.Token, body, &e); st != 400 || e.Error.Code != "validation_failed" || e.Error.Fields[field] == "" {
			t.Errorf("PATCH %s: %d %+v, want 400 naming %s", body, st, e, field)
		}
	}
	a.call("GET", me, login.Token, nil, &p)
	if p.Name != "小林" {
		t.Fatalf("a rejected update changed the profile: %+v", p)
	}

	a.call("POST", "/api/admin/v1/sandbox/phone-code", token, map[string]string{"phone": "13900001111"}, &code)
	if st := a.call("POST", fmt.Sprintf("/api/mp/v1/%d/phone", a.merchant), login.Token, map[string]string{"code": code.Code}, &p); st != 200 || p.Phone == nil || *p.Phone != "13900001111" {
		t.Fatalf("bind phone: %d %+v", st, p)
	}

	var res struct {
		FollowStatus string `json:"follow_status"`
		MemberID     uint64 `json:"member_id"`
	}
	a.call("POST", "/api/admin/v1/sandbox/unfollow", token, map[string]string{"openid": followed.OpenID}, &res)
	if res.FollowStatus != "unfollowed" || res.MemberID != followed.MemberID {
		t.Fatalf("unfollow: %+v", res)
	}
	a.call("POST", "/api/admin/v1/sandbox/follow", token, map[string]string{"openid": followed.OpenID, "scene": "other"}, &res)
	if res.FollowStatus != "following" || res.MemberID != followed.MemberID {
		t.Fatalf("follow again: %+v", res)
	}
	a.call("GET", me, login.Token, nil, &p)
	if p.ChannelScene != "spring" || len(p.FollowHistory) != 3 {
		t.Fatalf("after refollow: %+v", p)
	}
}

func (a *testApp) callbackEndpoint(merchantID uint64, safe bool) wechattest.Endpoint {
	a.t.Helper()
	c, err := a.merchants.WeChatCredentials(context.Background(), merchantID)
	if err != nil {
		a.t.Fatal(err)
	}
	return wechattest.Endpoint{URL: fmt.Sprintf("%s/wechat/%d/callback", a.base, merchantID), AppID: c.AppID,
		Token: c.Token, EncodingAESKey: c.EncodingAESKey, Safe: safe}
}

func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := contractClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (a *testApp) count(table string, where string, args ...any) int64 {
	a.t.Helper()
	var n int64
	if err := a.db.Table(table).Where(where, args...).Count(&n).Error; err != nil {
		a.t.Fatal(err)
	}
	return n
}

func (a *testApp) waitProcessed() {
	a.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for a.count("wechat_events", "processed_at IS NULL") > 0 {
		if time.Now().After(deadline) {
			a.t.Fatal("events not processed within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Real HTTP callbacks, both modes (plaintext to a plaintext-mode account,
// encrypted to the demo account, which is in safe mode): signed ones are
// stored once however often WeChat retries them; unsigned or wrongly signed
// ones get 403 and store nothing.
func TestCallbacksOverHTTP(t *testing.T) {
	a := startApp(t)
	plain := a.plaintextMerchant("Plaintext shop")
	for _, safe := range []bool{false, true} {
		merchantID := plain
		if safe {
			merchantID = a.merchant
		}
		ep := a.callbackEndpoint(merchantID, safe)
		openID := fmt.Sprintf("o_http_%v", safe)
		a.sandbox.Sim.Follow(ep.AppID, openID, "")
		msg := wechattest.SubscribeEvent("gh_x", openID, "qr1")
		msg.CreateTime = time.Now().Unix()
		for range 3 { // WeChat retries up to three times
			req, err := ep.Request(msg)
			if err != nil {
				t.Fatal(err)
			}
			if st, body := send(t, req); st != 200 || body != "success" {
				t.Fatalf("safe=%v: %d %q", safe, st, body)
			}
		}
		if n := a.count("wechat_events", "openid = ?", openID); n != 1 {
			t.Fatalf("safe=%v: %d stored events for 3 deliveries", safe, n)
		}
		bad := ep
		bad.Token = "forged"
		req, _ := bad.Request(wechattest.SubscribeEvent("gh_x", openID+"_forged", ""))
		if st, _ := send(t, req); st != http.StatusForbidden {
			t.Fatalf("forged: %d", st)
		}
		req, _ = ep.Request(wechattest.SubscribeEvent("gh_x", openID+"_unsigned", ""))
		req.URL.RawQuery = ""
		if st, _ := send(t, req); st != http.StatusForbidden {
			t.Fatalf("unsigned: %d", st)
		}
		if n := a.count("wechat_events", "openid LIKE ?", openID+"_%"); n != 0 {
			t.Fatalf("rejected callbacks stored %d events", n)
		}
	}
	a.waitProcessed()
	for _, id := range []uint64{plain, a.merchant} {
		if n := a.count("members", "merchant_id = ?", id); n != 1 {
			t.Fatalf("merchant %d: %d members, want 1", id, n)
		}
		if n := a.count("member_follow_events", "merchant_id = ?", id); n != 1 {
			t.Fatalf("merchant %d: %d follow history rows, want 1", id, n)
		}
		// GET verification, whatever the account's mode.
		st, body := send(t, a.callbackEndpoint(id, false).VerifyRequest("abc"))
		if st != 200 || body != "abc" {
			t.Fatalf("merchant %d: echostr: %d %q", id, st, body)
		}
	}
}

// plaintextMerchant adds a sandbox merchant whose official account is in
// plaintext mode (no EncodingAESKey) and returns its id.
func (a *testApp) plaintextMerchant(name string) uint64 {
	a.t.Helper()
	in := adminSandboxInput(name)
	in.Credentials.EncodingAESKey = ""
	m, err := a.merchants.Create(context.Background(), in)
	if err != nil {
		a.t.Fatal(err)
	}
	if err := a.sandbox.Register(context.Background(), m.ID); err != nil {
		a.t.Fatal(err)
	}
	return m.ID
}

func (a *testApp) callbackCreds() wechat.Credentials {
	c, _ := a.merchants.WeChatCredentials(context.Background(), a.merchant)
	return c
}

// A second merchant on the same service: its callbacks, members and tokens
// are its own.
func TestTenantIsolation(t *testing.T) {
	a := startApp(t)
	ctx := context.Background()
	other, err := a.merchants.Create(ctx, adminSandboxInput("Other shop"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.sandbox.Register(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	// A's signature is not valid at B's callback URL.
	epA := a.callbackEndpoint(a.merchant, true)
	epA.URL = fmt.Sprintf("%s/wechat/%d/callback", a.base, other.ID)
	req, _ := epA.Request(wechattest.SubscribeEvent("gh_x", "o_cross", ""))
	if st, _ := send(t, req); st != http.StatusForbidden {
		t.Fatalf("A's signed callback at B's URL: %d, want 403", st)
	}
	if n := a.count("wechat_events", "merchant_id = ?", other.ID); n != 0 {
		t.Fatal("cross-tenant callback stored")
	}
	// Unknown merchant: 404.
	epA.URL = fmt.Sprintf("%s/wechat/%d/callback", a.base, other.ID+1000)
	req, _ = epA.Request(wechattest.SubscribeEvent("gh_x", "o_cross", ""))
	if st, _ := send(t, req); st != http.StatusNotFound {
		t.Fatalf("unknown merchant: %d", st)
	}

	// A member token of A is no key to B.
	token := a.login()
	var code struct{ Code string }
	a.call("POST", "/api/admin/v1/sandbox/mp-login-code", token, map[string]string{}, &code)
	var login struct{ Token string }
	a.call("POST", fmt.Sprintf("/api/mp/v1/%d/login", a.merchant), "", map[string]string{"code": code.Code}, &login)
	if st := a.call("GET", fmt.Sprintf("/api/member/v1/%d/profile", a.merchant), login.Token, nil, nil); st != 200 {
		t.Fatalf("own profile: %d", st)
	}
	if st := a.call("GET", fmt.Sprintf("/api/member/v1/%d/profile", other.ID), login.Token, nil, nil); st != http.StatusUnauthorized {
		t.Fatalf("A's member token at B: %d, want 401", st)
	}
	// A's login code does not work at B (different mini-program).
	a.call("POST", "/api/admin/v1/sandbox/mp-login-code", token, map[string]string{}, &code)
	if st := a.call("POST", fmt.Sprintf("/api/mp/v1/%d/login", other.ID), "", map[string]string{"code": code.Code}, nil); st != 400 {
		t.Fatalf("A's code at B: %d, want 400", st)
	}
}

func TestMemberTokenForgeries(t *testing.T) { eachBackendName(t, testMemberTokenForgeries) }

func testMemberTokenForgeries(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	path := fmt.Sprintf("/api/member/v1/%d/profile", a.merchant)
	claims := jwt.MapClaims{"mid": a.merchant, "sub": "1", "iss": "loyalty", "aud": []string{"member"},
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("not the service key"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for name, tok := range map[string]string{"forged": forged, "alg none": none, "garbage": "abc.def.ghi", "empty": ""} {
		var e errorBody
		if st := a.call("GET", path, tok, nil, &e); st != http.StatusUnauthorized || e.Error.Code != "unauthenticated" {
			t.Errorf("%s: %d %+v", name, st, e)
		}
	}
	// Expired, but correctly signed.
	expired, _, err := a.tokensForTest(-time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if st := a.call("GET", path, expired, nil, nil); st != http.StatusUnauthorized {
		t.Errorf("expired: %d", st)
	}
	// Admin endpoints refuse member tokens and garbage alike.
	if st := a.call("GET", "/api/admin/v1/me", forged, nil, nil); st != http.StatusUnauthorized {
		t.Errorf("admin with a member token: %d", st)
	}
}

func TestProbesAndMetrics(t *testing.T) {
	a := startApp(t)
	if st := a.call("GET", "/healthz", "", nil, nil); st != 200 {
		t.Fatalf("healthz %d", st)
	}
	var ready struct{ Status string }
	if st := a.call("GET", "/readyz", "", nil, &ready); st != 200 || ready.Status != "ready" {
		t.Fatalf("readyz %d %+v", st, ready)
	}
	token := a.login()
	a.call("POST", "/api/admin/v1/sandbox/follow", token, map[string]string{}, nil)
	// The sandbox answers once the member is committed; the dispatcher
	// counts the event just after: read until it has, for a while.
	wants := []string{
		`loyalty_wechat_calls_total{api="user.info",errcode="0"} 1`,
		`loyalty_http_requests_total{method="POST",route="/wechat/:merchant_id/callback",status="200"} 1`,
		`loyalty_wechat_events_total{kind="subscribe",outcome="applied"} 1`,
		`go_goroutines`,
	}
	var missing []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(a.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		missing = missing[:0]
		for _, want := range wants {
			if !strings.Contains(string(raw), want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, m := range missing {
		t.Errorf("/metrics lacks %s", m)
	}
	// Not ready when the database is gone.
	sqlDB, _ := a.db.DB()
	_ = sqlDB.Close()
	if st := a.call("GET", "/readyz", "", nil, nil); st != http.StatusServiceUnavailable {
		t.Fatalf("readyz without a database: %d", st)
	}
}

// SIGTERM (context cancel) lets in-flight requests finish.
func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	a := startApp(t)
	a.keywords.Register(func(_ context.Context, ev wechat.Event) (string, bool) {
		time.Sleep(500 * time.Millisecond)
		return "slow answer", ev.Content == "slow"
	})
	ep := a.callbackEndpoint(a.merchant, true)
	req, _ := ep.Request(wechattest.TextMessage("gh_x", "o_slow", "slow", 9001))
	type result struct {
		status int
		body   string
	}
	res := make(chan result, 1)
	go func() {
		st, body := send(t, req)
		res <- result{st, body}
	}()
	time.Sleep(150 * time.Millisecond)
	a.cancel()
	got := <-res
	reply, err := ep.DecryptReply([]byte(got.body))
	if got.status != 200 || err != nil || !strings.Contains(string(reply), "slow answer") {
		t.Fatalf("in-flight request: %d %q (%v)", got.status, reply, err)
	}
	if err := <-a.done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	a.done <- nil // for the cleanup
	if n := a.count("wechat_events", "openid = ?", "o_slow"); n != 1 {
		t.Fatalf("the in-flight message was not stored: %d", n)
	}
	if _, err := http.Get(a.base + "/healthz"); err == nil {
		t.Fatal("server still accepting after shutdown")
	}
}

func TestErrorShape(t *testing.T) { eachBackendName(t, testErrorShape) }

func testErrorShape(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	var e errorBody
	if st := a.call("GET", "/no/such/route", "", nil, &e); st != 404 || e.Error.Code != "not_found" {
		t.Fatalf("unknown route: %d %+v", st, e)
	}
	if st := a.call("DELETE", "/healthz", "", nil, &e); st != 405 || e.Error.Code != "method_not_allowed" {
		t.Fatalf("wrong method: %d %+v", st, e)
	}
	if st := a.call("POST", "/api/admin/v1/login", "", `{"username":"demo","password":"wrong-password"}`, &e); st != 401 || e.Error.Message != "invalid username or password" {
		t.Fatalf("bad login: %d %+v", st, e)
	}
	big := `{"code":"` + strings.Repeat("x", 2<<20) + `"}`
	if st := a.call("POST", fmt.Sprintf("/api/mp/v1/%d/login", a.merchant), "", big, &e); st != 400 {
		t.Fatalf("oversized body: %d %+v", st, e)
	}
	if st := a.call("POST", "/api/mp/v1/abc/login", "", `{"code":"x"}`, &e); st != 404 {
		t.Fatalf("bad merchant id: %d", st)
	}
}

func adminSandboxInput(name string) admin.MerchantInput {
	return admin.MerchantInput{Name: name, Sandbox: true, Credentials: admin.NewSandboxCredentials()}
}

// tokensForTest issues a member token for member 1 that expires at
// now+offset.
func (a *testApp) tokensForTest(offset time.Duration) (string, time.Time, error) {
	issuer := member.NewTokens(a.keys.SigningKey("member-token"),
		func() time.Time { return time.Now().Add(offset - member.TokenTTL) })
	return issuer.Issue(a.merchant, 1)
}

// TEMPLATESENDJOBFINISH receipts are recorded by msgid for the campaign
// engine, once each.
func TestTemplateReceipts(t *testing.T) {
	a := startApp(t)
	token := a.login()
	for range 2 {
		if st := a.call("POST", "/api/admin/v1/sandbox/receipt", token,
			map[string]any{"openid": "o_r", "msg_id": 424242, "status": "failed:user block"}, nil); st != 200 {
			t.Fatalf("receipt: %d", st)
		}
	}
	a.waitProcessed()
	r, err := a.receipts.Get(context.Background(), a.merchant, 424242)
	if err != nil || r.Outcome() != "failed_user_block" || r.OpenID != "o_r" {
		t.Fatalf("receipt %+v %v", r, err)
	}
	if n := a.count("wechat_template_receipts", "merchant_id = ?", a.merchant); n != 1 {
		t.Fatalf("%d receipts", n)
	}
}
