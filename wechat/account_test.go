package wechat_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/redisx"
	"github.com/wxloyalty/loyalty/internal/redisx/redisxtest"
	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// The SDK has one process-wide HTTP client, so the package's tests share one
// simulator; each test registers its own apps (random AppIDs) and so sees
// only its own traffic.
var (
	sim      *wechattest.Simulator
	endpoint wechat.Endpoint
)

func TestMain(m *testing.M) {
	sim = wechattest.New()
	srv := httptest.NewServer(sim)
	var err error
	endpoint, err = wechat.ParseEndpoint(srv.URL)
	if err != nil {
		panic(err)
	}
	wechat.InstallHTTPClient(wechat.NewHTTPClient(endpoint, 2*time.Second))
	code := m.Run()
	srv.Close()
	os.Exit(code)
}

func hexID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newCreds registers a fresh official account and mini-program with the
// simulator.
func newCreds(t *testing.T) wechat.Credentials {
	t.Helper()
	c := wechat.Credentials{AppID: "wx" + hexID(8), AppSecret: hexID(16), Token: "tok" + hexID(4),
		EncodingAESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", MPAppID: "wx" + hexID(8), MPAppSecret: hexID(16)}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	sim.AddOfficialAccount(wechattest.App{AppID: c.AppID, Secret: c.AppSecret})
	sim.AddMiniProgram(wechattest.App{AppID: c.MPAppID, Secret: c.MPAppSecret})
	sim.AddTemplate(c.AppID, "TPL_OK")
	sim.AddTemplate(c.MPAppID, "TPL_MP")
	return c
}

func newAccount(t *testing.T) (*wechat.Account, wechat.Credentials) {
	c := newCreds(t)
	return wechat.NewAccount(c, endpoint, wechat.NewMemoryTokenCache(), nil), c
}

// countToken counts the simulator's token requests for appID (the AppID is
// in the query of /cgi-bin/token and in the body of /cgi-bin/stable_token).
func countToken(appID string) int {
	n := 0
	for _, r := range sim.Requests() {
		if (r.Path == "/cgi-bin/stable_token" || r.Path == "/cgi-bin/token") && containsApp(r, appID) {
			n++
		}
	}
	return n
}

func containsApp(r wechattest.Request, appID string) bool {
	return r.Query.Get("appid") == appID || strings.Contains(string(r.Body), appID)
}

func TestSendTemplate(t *testing.T) {
	a, c := newAccount(t)
	ctx := context.Background()
	sim.Follow(c.AppID, "o_follower", "")
	id, err := a.SendTemplate(ctx, wechat.TemplateMessage{OpenID: "o_follower", TemplateID: "TPL_OK",
		Data: map[string]string{"thing1": "咖啡 & 茶"}, URL: "https://example.com/p"})
	if err != nil || id == 0 {
		t.Fatalf("send: id %d err %v", id, err)
	}
	var got *wechattest.Sent
	for _, s := range sim.Sent() {
		if s.MsgID == id {
			got = &s
		}
	}
	if got == nil || got.ToUser != "o_follower" || got.Data["thing1"] != "咖啡 & 茶" || got.AppID != c.AppID {
		t.Fatalf("simulator recorded %+v", got)
	}

	// Typed errors with errcode kept.
	cases := []struct {
		openID, template string
		kind             error
		code             int
	}{
		{"o_stranger", "TPL_OK", wechat.ErrInvalidOpenID, 40003},
		{"o_follower", "TPL_NOPE", wechat.ErrInvalidTemplate, 40037},
	}
	sim.Follow(c.AppID, "o_gone", "")
	sim.Unfollow(c.AppID, "o_gone")
	cases = append(cases, struct {
		openID, template string
		kind             error
		code             int
	}{"o_gone", "TPL_OK", wechat.ErrNotFollower, 43004})
	for _, tc := range cases {
		_, err := a.SendTemplate(ctx, wechat.TemplateMessage{OpenID: tc.openID, TemplateID: tc.template})
		if !errors.Is(err, tc.kind) || wechat.ErrCode(err) != tc.code {
			t.Errorf("%s/%s: err %v (code %d), want kind %v code %d", tc.openID, tc.template, err, wechat.ErrCode(err), tc.kind, tc.code)
		}
	}
}

func TestScriptedFailuresAreClassified(t *testing.T) {
	const path = "/cgi-bin/message/template/send"
	cases := []struct {
		name  string
		fault wechattest.Fault
		kind  error
		code  int
	}{
		{"daily quota", wechattest.Fault{ErrCode: 45009}, wechat.ErrQuotaExhausted, 45009},
		{"minute quota", wechattest.Fault{ErrCode: 45011}, wechat.ErrRateLimited, 45011},
		{"system busy", wechattest.Fault{ErrCode: -1}, wechat.ErrTransient, -1},
		{"unknown errcode", wechattest.Fault{ErrCode: 47003}, wechat.ErrRejected, 47003},
		{"bad gateway", wechattest.Fault{HTTPStatus: 502}, wechat.ErrTransient, 0},
		{"timeout", wechattest.Fault{Latency: 3 * time.Second}, wechat.ErrTransient, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, c := newAccount(t)
			sim.Follow(c.AppID, "o_1", "")
			// Fetch the token first, so the fault hits the send.
			if _, err := a.SendTemplate(context.Background(), wechat.TemplateMessage{OpenID: "o_1", TemplateID: "TPL_OK"}); err != nil {
				t.Fatal(err)
			}
			sim.Script(path, tc.fault)
			defer sim.ClearFaults()
			_, err := a.SendTemplate(context.Background(), wechat.TemplateMessage{OpenID: "o_1", TemplateID: "TPL_OK"})
			var ae *wechat.APIError
			if !errors.Is(err, tc.kind) || !errors.As(err, &ae) || ae.Code != tc.code {
				t.Fatalf("err %v, want kind %v code %d", err, tc.kind, tc.code)
			}
		})
	}
}

// A rejected token (someone force-refreshed it, or it expired early) is
// dropped from the cache and the call retried once with a fresh token.
func TestTokenInvalidRetriesOnce(t *testing.T) {
	a, c := newAccount(t)
	ctx := context.Background()
	sim.Follow(c.AppID, "o_1", "")
	msg := wechat.TemplateMessage{OpenID: "o_1", TemplateID: "TPL_OK"}
	for range 5 {
		if _, err := a.SendTemplate(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	if n := countToken(c.AppID); n != 1 {
		t.Fatalf("%d token fetches for 5 sends, want 1 (cached)", n)
	}
	sim.InvalidateTokens(c.AppID)
	if _, err := a.SendTemplate(ctx, msg); err != nil {
		t.Fatalf("send after token invalidation: %v (want a transparent retry)", err)
	}
	if n := countToken(c.AppID); n != 2 {
		t.Fatalf("%d token fetches, want 2", n)
	}

	// If WeChat keeps rejecting, the caller gets ErrTokenInvalid after
	// exactly one retry: no loop.
	before := sim.CountRequests("/cgi-bin/message/template/send")
	sim.Script("/cgi-bin/message/template/send", wechattest.Fault{ErrCode: 40001}, wechattest.Fault{ErrCode: 40001}, wechattest.Fault{ErrCode: 40001})
	defer sim.ClearFaults()
	_, err := a.SendTemplate(ctx, msg)
	if !errors.Is(err, wechat.ErrTokenInvalid) {
		t.Fatalf("err %v, want ErrTokenInvalid", err)
	}
	if n := sim.CountRequests("/cgi-bin/message/template/send") - before; n != 2 {
		t.Fatalf("%d send attempts, want 2 (one retry)", n)
	}
}

// Many goroutines using a fresh account at once share one token fetch and
// do not race on the SDK's clients (run with -race).
func TestConcurrentFirstUse(t *testing.T) {
	a, c := newAccount(t)
	sim.Follow(c.AppID, "o_1", "")
	var wg sync.WaitGroup
	ids := make([]int64, 40)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := a.SendTemplate(context.Background(), wechat.TemplateMessage{OpenID: "o_1", TemplateID: "TPL_OK"})
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("msgid %d twice", id)
		}
		seen[id] = true
	}
	if n := countToken(c.AppID); n != 1 {
		t.Fatalf("%d token fetches, want 1", n)
	}
}

func TestUserInfoAndLogins(t *testing.T) {
	a, c := newAccount(t)
	ctx := context.Background()
	sim.FollowScene(c.AppID, "o_1", "u_1", "poster")
	info, err := a.UserInfo(ctx, "o_1")
	if err != nil || info.UnionID != "u_1" || !info.Subscribed || info.QRScene != "poster" {
		t.Fatalf("user info %+v, %v", info, err)
	}

	code := sim.LoginCode(c.MPAppID, "mp_1", "u_1")
	sess, err := a.Code2Session(ctx, code)
	if err != nil || sess.OpenID != "mp_1" || sess.UnionID != "u_1" {
		t.Fatalf("code2session %+v, %v", sess, err)
	}
	if _, err := a.Code2Session(ctx, code); !errors.Is(err, wechat.ErrInvalidCode) || wechat.ErrCode(err) != 40163 {
		t.Fatalf("reused code: %v, want ErrInvalidCode 40163", err)
	}
	if _, err := a.Code2Session(ctx, "bogus"); !errors.Is(err, wechat.ErrInvalidCode) {
		t.Fatalf("bad code: %v, want ErrInvalidCode", err)
	}

	phone, err := a.PhoneNumber(ctx, sim.PhoneCode(c.MPAppID, "13800138000"))
	if err != nil || phone.Number != "13800138000" || phone.CountryCode != "86" {
		t.Fatalf("phone %+v, %v", phone, err)
	}

	u, err := a.OAuthExchange(ctx, sim.OAuthCode(c.AppID, "o_2", "", true))
	if err != nil || u.OpenID != "o_2" || !u.Snapshot {
		t.Fatalf("oauth %+v, %v", u, err)
	}
	if u.Nickname != "" || u.AvatarURL != "" || u.ProfileErr != nil {
		t.Fatalf("a snapshot visitor's profile was read: %+v", u)
	}
	// snsapi_base: the identity only; snsapi_userinfo: the name and avatar too.
	u, err = a.OAuthExchange(ctx, sim.OAuthCode(c.AppID, "o_3", "", false))
	if err != nil || u.OpenID != "o_3" || u.Nickname != "" || u.AvatarURL != "" || u.ProfileErr != nil {
		t.Fatalf("snsapi_base %+v, %v", u, err)
	}
	sim.SetUserProfile(c.AppID, "o_3", "小王🍵", "https://thirdwx.qlogo.cn/mmopen/o3/132")
	u, err = a.OAuthExchange(ctx, sim.OAuthUserInfoCode(c.AppID, "o_3", ""))
	if err != nil || u.OpenID != "o_3" || u.Nickname != "小王🍵" || u.AvatarURL != "https://thirdwx.qlogo.cn/mmopen/o3/132" || u.ProfileErr != nil {
		t.Fatalf("snsapi_userinfo %+v, %v", u, err)
	}
	// The profile read failing leaves the sign-in standing, with the reason.
	sim.Script("/sns/userinfo", wechattest.Fault{ErrCode: 45011})
	u, err = a.OAuthExchange(ctx, sim.OAuthUserInfoCode(c.AppID, "o_3", ""))
	if err != nil || u.OpenID != "o_3" || u.Nickname != "" || wechat.ErrCode(u.ProfileErr) != 45011 {
		t.Fatalf("snsapi_userinfo with the profile read failing: %+v, %v", u, err)
	}
	if got := a.OAuthURL("https://shop.example.com/h5?x=1", "st1"); !strings.Contains(got, endpoint.Base.Host) || !strings.Contains(got, "snsapi_base") {
		t.Fatalf("oauth url %q: want it rewritten to the simulator with snsapi_base", got)
	}
}

func TestQRCodeAndCustomerMessage(t *testing.T) {
	a, c := newAccount(t)
	ctx := context.Background()
	qr, err := a.CreateQRCode(ctx, wechat.QRRequest{Scene: "store-12", ExpiresIn: 24 * time.Hour})
	if err != nil || qr.Ticket == "" || qr.ExpiresAt.IsZero() || !strings.Contains(qr.ImageURL, endpoint.Base.Host) {
		t.Fatalf("qr %+v, %v", qr, err)
	}
	if _, scene, ok := sim.QRScene(qr.Ticket); !ok || scene != "store-12" {
		t.Fatalf("simulator has scene %q for the ticket", scene)
	}
	if _, err := a.CreateQRCode(ctx, wechat.QRRequest{}); !errors.Is(err, wechat.ErrRejected) {
		t.Fatalf("empty scene: %v, want ErrRejected", err)
	}
	sim.Follow(c.AppID, "o_1", "")
	if err := a.SendCustomerText(ctx, "o_1", "hello"); err != nil {
		t.Fatalf("customer message inside the window: %v", err)
	}
}

func TestMiniProgramSubscribeSpendsGrant(t *testing.T) {
	a, c := newAccount(t)
	ctx := context.Background()
	code := sim.LoginCode(c.MPAppID, "mp_1", "")
	if _, err := a.Code2Session(ctx, code); err != nil {
		t.Fatal(err)
	}
	sim.Grant(c.MPAppID, "mp_1", "TPL_MP", 1)
	msg := wechat.SubscribeMessage{OpenID: "mp_1", TemplateID: "TPL_MP", Data: map[string]string{"thing1": "生日快乐"}}
	if id, err := a.SendMPSubscribe(ctx, msg); err != nil || id == 0 {
		t.Fatalf("first send: %d %v", id, err)
	}
	if _, err := a.SendMPSubscribe(ctx, msg); !errors.Is(err, wechat.ErrNoSubscription) {
		t.Fatalf("second send: %v, want ErrNoSubscription", err)
	}
}

func TestNoMiniProgram(t *testing.T) {
	c := newCreds(t)
	c.MPAppID, c.MPAppSecret = "", ""
	a := wechat.NewAccount(c, endpoint, wechat.NewMemoryTokenCache(), nil)
	if _, err := a.Code2Session(context.Background(), "x"); !errors.Is(err, wechat.ErrNoMiniProgram) {
		t.Fatalf("err %v, want ErrNoMiniProgram", err)
	}
}

// Two instances sharing Redis share one token: the second never fetches.
func TestRedisTokenCacheSharedAcrossInstances(t *testing.T) {
	addr := os.Getenv("LOYALTY_TEST_REDIS_ADDR")
	if addr == "" {
		if os.Getenv("LOYALTY_TEST_REQUIRE_REDIS") == "1" {
			t.Fatal("LOYALTY_TEST_REQUIRE_REDIS=1 but LOYALTY_TEST_REDIS_ADDR is not set")
		}
		t.Skip("needs LOYALTY_TEST_REDIS_ADDR (e.g. 127.0.0.1:6379); .ci/run sets it")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis %s: %v", addr, err)
	}
	c := newCreds(t)
	sim.Follow(c.AppID, "o_1", "")
	one := wechat.NewAccount(c, endpoint, wechat.NewRedisTokenCache(rdb), nil)
	two := wechat.NewAccount(c, endpoint, wechat.NewRedisTokenCache(rdb), nil)
	msg := wechat.TemplateMessage{OpenID: "o_1", TemplateID: "TPL_OK"}
	for _, a := range []*wechat.Account{one, two, one, two} {
		if _, err := a.SendTemplate(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	if n := countToken(c.AppID); n != 1 {
		t.Fatalf("%d token fetches across two instances, want 1", n)
	}
	// One instance meets a rejected token: it drops the shared entry, and
	// both continue with the fresh token.
	sim.InvalidateTokens(c.AppID)
	for _, a := range []*wechat.Account{two, one} {
		if _, err := a.SendTemplate(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	if n := countToken(c.AppID); n != 2 {
		t.Fatalf("%d token fetches, want 2", n)
	}
}

type credMap map[uint64]wechat.Credentials

func (m credMap) WeChatCredentials(_ context.Context, id uint64) (wechat.Credentials, error) {
	c, ok := m[id]
	if !ok {
		return wechat.Credentials{}, apperr.ErrNotFound
	}
	return c, nil
}

func TestAccountsRegistry(t *testing.T) {
	c := newCreds(t)
	src := credMap{7: c}
	reg := wechat.NewAccounts(src, endpoint, wechat.NewMemoryTokenCache(), nil, time.Minute)
	a1, err := reg.Get(context.Background(), 7)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := reg.Get(context.Background(), 7)
	if a1 != a2 {
		t.Fatal("registry built a second account for the same merchant")
	}
	if _, err := reg.Get(context.Background(), 8); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("unknown merchant: %v", err)
	}
	// A credentials change takes effect after Invalidate.
	c2 := newCreds(t)
	src[7] = c2
	reg.Invalidate(7)
	a3, _ := reg.Get(context.Background(), 7)
	if a3 == a1 || a3.Credentials().AppID != c2.AppID {
		t.Fatal("invalidate did not rebuild the account")
	}
}

func TestEndpointRewrite(t *testing.T) {
	e, err := wechat.ParseEndpoint("http://127.0.0.1:9/sim")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Rewrite("https://open.weixin.qq.com/connect/oauth2/authorize?appid=x#wechat_redirect"); got != "http://127.0.0.1:9/sim/connect/oauth2/authorize?appid=x#wechat_redirect" {
		t.Fatalf("rewrite: %s", got)
	}
	if got := e.Rewrite("https://example.com/a"); got != "https://example.com/a" {
		t.Fatalf("non-WeChat URL rewritten: %s", got)
	}
	if got := (wechat.Endpoint{}).Rewrite("https://open.weixin.qq.com/x"); got != "https://open.weixin.qq.com/x" {
		t.Fatalf("real endpoint rewrote: %s", got)
	}
	if _, err := wechat.ParseEndpoint("ftp://x"); err == nil {
		t.Fatal("want an error for a non-http base")
	}
}

// Templates are listed with the fields their content asks for.
func TestTemplateLists(t *testing.T) {
	a, c := newAccount(t)
	sim.AddTemplateContent(c.AppID, "TPL_BDAY", "{{first.DATA}}\n生日：{{keyword1.DATA}}\n{{ keyword2.DATA }}{{first.DATA}}")
	list, err := a.Templates(context.Background())
	if err != nil || len(list) != 2 || list[0].ID != "TPL_BDAY" || strings.Join(list[0].Fields, ",") != "first,keyword1,keyword2" ||
		list[1].ID != "TPL_OK" || len(list[1].Fields) != 5 {
		t.Fatalf("templates: %+v %v", list, err)
	}
	sim.AddTemplateContent(c.MPAppID, "MP_POINTS", "积分:{{number1.DATA}}\n说明:{{thing2.DATA}}")
	mp, err := a.MPTemplates(context.Background())
	if err != nil || len(mp) != 2 || mp[0].ID != "MP_POINTS" || strings.Join(mp[0].Fields, ",") != "number1,thing2" {
		t.Fatalf("mini-program templates: %+v %v", mp, err)
	}
	sim.Script("/cgi-bin/template/get_all_private_template", wechattest.Fault{ErrCode: 48001})
	if _, err := a.Templates(context.Background()); !errors.Is(err, wechat.ErrUnauthorized) {
		t.Fatalf("unauthorized: %v", err)
	}
}

// The connection test tells an operator why WeChat could not be reached in
// words, never with the text of the SDK's decoder ("json: cannot unmarshal
// ... into Go struct field ...") when the answer is odd.
func TestCheckSaysWhyInWords(t *testing.T) {
	c := newCreds(t)
	reg := wechat.NewAccounts(credMap{7: c}, endpoint, wechat.NewMemoryTokenCache(), nil, time.Minute)
	for _, tc := range []struct {
		fault wechattest.Fault
		want  string
	}{
		{wechattest.Fault{Body: `{"access_token":7,"expires_in":"soon"}`}, "could not be read"},
		{wechattest.Fault{Body: `<html>`}, "could not be read"},
		{wechattest.Fault{HTTPStatus: 502}, "HTTP 502"},
		{wechattest.Fault{ErrCode: 40125}, "AppSecret is wrong"},
	} {
		sim.Script("/cgi-bin/stable_token", tc.fault)
		res, err := reg.Check(context.Background(), 7)
		sim.ClearFaults()
		if err != nil {
			t.Fatal(err)
		}
		if res[0].OK || !strings.Contains(res[0].Message, tc.want) ||
			strings.Contains(res[0].Message, "Go struct") || strings.Contains(res[0].Message, "json:") ||
			strings.Contains(res[0].Message, "invalid character") {
			t.Errorf("%+v: %+v, want %q in our words", tc.fault, res[0], tc.want)
		}
	}
}

// Redis goes away: sends go on, on a token this instance keeps itself
// (fetched once, not on every call), and the shared cache is used again
// once Redis is back.
func TestFallbackTokenCacheWhileRedisIsAway(t *testing.T) {
	proxy := redisxtest.NewProxy(t, redisxtest.Addr(t))
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: -1})
	defer rdb.Close()
	h := redisx.NewHealth(rdb, slog.New(slog.NewTextHandler(io.Discard, nil)), 50*time.Millisecond)
	c := newCreds(t)
	sim.Follow(c.AppID, "o_1", "")
	a := wechat.NewAccount(c, endpoint, wechat.NewFallbackTokenCache(wechat.NewRedisTokenCache(rdb), h), nil)
	msg := wechat.TemplateMessage{OpenID: "o_1", TemplateID: "TPL_OK"}
	send := func(n int) {
		t.Helper()
		for range n {
			if _, err := a.SendTemplate(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(2)
	proxy.Cut()
	send(5)
	if h.Up() {
		t.Fatal("Redis cut, and the cache did not notice")
	}
	if n := countToken(c.AppID); n != 1 {
		t.Fatalf("%d token fetches, want the one before the outage kept locally", n)
	}
	proxy.Restore()
	for deadline := time.Now().Add(10 * time.Second); !h.Up(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not back on Redis")
		}
	}
	send(2)
	if n := countToken(c.AppID); n != 1 {
		t.Fatalf("%d token fetches after Redis came back, want 1 (the shared token is still good)", n)
	}
}
