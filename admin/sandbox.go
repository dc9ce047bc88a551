package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// SandboxMembers is what the sandbox reads back after simulating an event.
type SandboxMembers interface {
	ByOAOpenID(ctx context.Context, merchantID uint64, openID string) (member.Member, error)
}

// Sandbox plays WeChat for sandbox merchants: it keeps the simulator's
// picture of their apps in step and lets staff simulate followers, messages
// and logins. Simulated callbacks are signed like WeChat's and go through
// the service's real HTTP stack (Handler), so they exercise exactly what a
// real callback would.
//
// A sandbox merchant is one whose sandbox flag is set. Only the sandbox
// bootstrap sets it (MerchantInput.Sandbox); no API, command or
// configuration key does, and the settings API never writes it, so a tenant
// cannot make its merchant a sandbox one or a real one a sandbox one. App
// ids cannot tell them apart: the simulator's look like WeChat's, and a
// sandbox merchant's staff may change theirs.
//
// Real merchants and the simulator do not mix: the simulator only knows
// sandbox merchants' apps, the tools refuse real merchants, and the
// simulator's own API (whose request log holds AppSecrets and whose
// authorize page hands out codes for any openid) is served over HTTP only
// while the database holds no real merchant. In auto mode the first real
// merchant ends sandbox mode: the tools answer 409 saying so until the
// service is restarted.
type Sandbox struct {
	Sim       *wechattest.Simulator
	merchants *Merchants
	members   SandboxMembers
	opts      SandboxOptions
	// Handler receives the simulated callbacks; set it to the service's
	// HTTP handler once that is built.
	Handler http.Handler
	// Wait bounds how long a simulated event waits for its effect before the
	// response says it is still being processed.
	Wait time.Duration

	mu       sync.Mutex
	lastTime int64 // CreateTime of the last simulated event

	// realSeen is the first real merchant seen, 0 until then. Real
	// merchants never turn into sandbox ones, so once one is seen the
	// answer holds for good and the database is not asked again.
	realSeen atomic.Uint64
}

// SandboxOptions configures the sandbox.
type SandboxOptions struct {
	PublicURL string // where simulated callbacks are addressed
	// Forced is LOYALTY_SANDBOX=on: the tools keep serving sandbox
	// merchants when a real merchant exists (auto mode ends instead).
	Forced bool
	Log    *slog.Logger
}

// SandboxTemplates are the template ids every sandbox account knows.
var SandboxTemplates = []string{"TPL_POINTS_CHANGED", "TPL_BIRTHDAY", "TPL_WELCOME", "TPL_EXPIRING_POINTS",
	"TPL_POINTS_REDEEMED", "TPL_TIER_CHANGED", "TPL_COUPON_ISSUED", "TPL_COUPON_EXPIRING"}

// sandboxTemplateTitles are their titles in the template list, as
// WeChat's template library names such templates.
var sandboxTemplateTitles = map[string]string{"TPL_POINTS_CHANGED": "会员积分变动提醒", "TPL_BIRTHDAY": "会员生日提醒",
	"TPL_WELCOME": "会员加入成功通知", "TPL_EXPIRING_POINTS": "积分即将过期提醒", "TPL_POINTS_REDEEMED": "积分兑换成功通知",
	"TPL_TIER_CHANGED": "会员等级变更通知", "TPL_COUPON_ISSUED": "优惠券到账通知", "TPL_COUPON_EXPIRING": "优惠券即将过期提醒"}

// NewSandbox returns the sandbox tools.
func NewSandbox(sim *wechattest.Simulator, merchants *Merchants, members SandboxMembers, opts SandboxOptions) *Sandbox {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Sandbox{Sim: sim, merchants: merchants, members: members, opts: opts, Wait: 5 * time.Second}
}

// NewSandboxCredentials returns fresh, well-formed fake credentials
// (official account in safe mode, plus a mini-program).
func NewSandboxCredentials() wechat.Credentials {
	return wechat.Credentials{
		AppID: "wx" + randHex(8), AppSecret: randHex(16), Token: "sandbox" + randHex(8),
		EncodingAESKey: randAlnum(43), MPAppID: "wx" + randHex(8), MPAppSecret: randHex(16),
	}
}

// Register tells the simulator about a sandbox merchant's apps (after a
// restart too: the simulator keeps its state in memory). A real merchant is
// refused: the simulator would then hand out codes for its apps.
func (s *Sandbox) Register(ctx context.Context, merchantID uint64) error {
	m, err := s.merchants.Get(ctx, merchantID)
	if err != nil {
		return err
	}
	if !m.Sandbox {
		return fmt.Errorf("admin: merchant %d is a real merchant; the simulator plays WeChat for sandbox merchants only", merchantID)
	}
	c, err := s.merchants.credentials(m)
	if err != nil {
		return err
	}
	s.Sim.AddOfficialAccount(wechattest.App{AppID: c.AppID, Secret: c.AppSecret})
	for _, t := range SandboxTemplates {
		s.Sim.AddTemplateTitled(c.AppID, t, sandboxTemplateTitles[t], wechattest.DefaultTemplateContent)
	}
	if c.HasMiniProgram() {
		s.Sim.AddMiniProgram(wechattest.App{AppID: c.MPAppID, Secret: c.MPAppSecret})
		for _, t := range SandboxTemplates {
			s.Sim.AddTemplateTitled(c.MPAppID, t, sandboxTemplateTitles[t], wechattest.DefaultTemplateContent)
		}
	}
	return nil
}

// RealMerchant returns the id of a real merchant in the database (0: none).
// The first time it finds one it says in the log what that means. It is one
// indexed single-row read until a real merchant exists, nothing after, so
// every sandbox request can afford it, and a merchant created by another
// process is seen at the very next request.
func (s *Sandbox) RealMerchant(ctx context.Context) (uint64, error) {
	if id := s.realSeen.Load(); id != 0 {
		return id, nil
	}
	id, found, err := s.merchants.FirstReal(ctx)
	if err != nil || !found {
		return 0, err
	}
	if s.realSeen.CompareAndSwap(0, id) {
		if s.opts.Forced {
			s.opts.Log.Warn("LOYALTY_SANDBOX=on with a real merchant in the database: every WeChat call goes to the "+
				"in-process simulator, which plays WeChat for sandbox merchants only, so the real merchant's WeChat "+
				"features fail; the simulator's API is not served over HTTP; the sandbox tools serve sandbox merchants "+
				"only. Set LOYALTY_SANDBOX=auto or off to serve real merchants.", "merchant_id", id)
		} else {
			s.opts.Log.Warn("sandbox mode ended: a real merchant was created; the sandbox tools and the WeChat "+
				"simulator are off, and WeChat calls still go to the simulator until the service is restarted: "+
				"restart it to talk to the real WeChat", "merchant_id", id)
		}
	}
	return s.realSeen.Load(), nil
}

// Watch checks every so often for a real merchant until one appears, so
// the end of sandbox mode is logged even when nobody uses the sandbox.
func (s *Sandbox) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if id, err := s.RealMerchant(ctx); err != nil && ctx.Err() == nil {
			s.opts.Log.Warn("sandbox: looking for real merchants", "error", err)
		} else if id != 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// errSandboxEnded is the answer of the sandbox routes once auto mode has
// ended.
func errSandboxEnded(merchantID uint64) error {
	return apperr.New(apperr.ErrConflict, "sandbox mode ended: merchant %d is a real merchant, created while this "+
		"instance ran in sandbox mode; the sandbox tools and the WeChat simulator are off until the service is restarted; restart it to "+
		"talk to the real WeChat", merchantID)
}

// ServeSimulator serves the simulator's own API (the OAuth authorize page
// browsers are sent to, QR code images, /_sim/ inspection) while no real
// merchant exists, and a 409 that says why not otherwise.
func (s *Sandbox) ServeSimulator(c *gin.Context) {
	id, err := s.RealMerchant(c.Request.Context())
	switch {
	case err != nil:
		httpx.Fail(c, err)
	case id != 0 && !s.opts.Forced:
		httpx.Fail(c, errSandboxEnded(id))
	case id != 0:
		httpx.Fail(c, apperr.New(apperr.ErrConflict, "the WeChat simulator's API is not served while the database "+
			"holds a real merchant (LOYALTY_SANDBOX=on): it would show merchants' secrets and hand out codes; "+
			"sandbox merchants keep their tools under /api/admin/v1/sandbox/"))
	default:
		s.Sim.ServeHTTP(c.Writer, c.Request)
	}
}

// sandboxRoute is one sandbox tool.
type sandboxRoute struct {
	method, path string
	handle       func(*Sandbox, *gin.Context)
}

// sandboxRoutes are the tools, under /sandbox of the admin API:
//
//	POST /sandbox/follow         {"openid"?, "unionid"?, "scene"?}
//	POST /sandbox/unfollow       {"openid"}
//	POST /sandbox/scan           {"openid", "scene"}
//	POST /sandbox/message        {"openid", "text"}  -> the keyword reply, if any
//	POST /sandbox/receipt        {"openid", "msg_id", "status"?}
//	POST /sandbox/mp-login-code  {"openid"?, "unionid"?}
//	POST /sandbox/phone-code     {"phone"}
//	POST /sandbox/oauth-code     {"openid"?, "unionid"?, "snapshot"?}
//	GET  /sandbox/sent           messages the simulator received for the merchant
var sandboxRoutes = []sandboxRoute{
	{http.MethodPost, "/follow", (*Sandbox).follow},
	{http.MethodPost, "/unfollow", (*Sandbox).unfollow},
	{http.MethodPost, "/scan", (*Sandbox).scan},
	{http.MethodPost, "/message", (*Sandbox).message},
	{http.MethodPost, "/receipt", (*Sandbox).receipt},
	{http.MethodPost, "/mp-login-code", (*Sandbox).mpLoginCode},
	{http.MethodPost, "/phone-code", (*Sandbox).phoneCode},
	{http.MethodPost, "/oauth-code", (*Sandbox).oauthCode},
	{http.MethodGet, "/sent", (*Sandbox).sent},
}

// RegisterRoutes adds the sandbox tools under the authenticated admin
// group. They need the sandbox permission and act on the caller's merchant,
// which must be a sandbox merchant.
func (s *Sandbox) RegisterRoutes(r gin.IRouter) {
	g := r.Group("/sandbox", authz.Require(authz.Sandbox), s.requireSandboxMerchant)
	for _, rt := range sandboxRoutes {
		g.Handle(rt.method, rt.path, func(c *gin.Context) { rt.handle(s, c) })
	}
}

// RegisterSandboxOff adds the sandbox tools' routes to a service that is
// not in sandbox mode, each answering 409 with why (for example "the
// database holds real merchants"): a caller learns that sandbox mode is
// off, not that the route never existed.
func RegisterSandboxOff(r gin.IRouter, why string) {
	g := r.Group("/sandbox", authz.Require(authz.Sandbox))
	for _, rt := range sandboxRoutes {
		g.Handle(rt.method, rt.path, SandboxOff(why))
	}
}

// SandboxOff answers every request with a 409 saying that sandbox mode is
// off and why.
func SandboxOff(why string) gin.HandlerFunc {
	return func(c *gin.Context) {
		httpx.Fail(c, apperr.New(apperr.ErrConflict, "sandbox mode is off (%s): the sandbox tools and the WeChat simulator are not served", why))
	}
}

// requireSandboxMerchant lets a tool run only while sandbox mode holds and
// only for a sandbox merchant.
func (s *Sandbox) requireSandboxMerchant(c *gin.Context) {
	ctx := c.Request.Context()
	if !s.opts.Forced {
		id, err := s.RealMerchant(ctx)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		if id != 0 {
			httpx.Fail(c, errSandboxEnded(id))
			return
		}
	}
	p := PrincipalOf(c)
	m, err := s.merchants.Get(ctx, p.MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	if !m.Sandbox {
		httpx.Fail(c, apperr.New(apperr.ErrForbidden, "the sandbox tools act on sandbox merchants only; merchant %d is a real merchant", p.MerchantID))
		return
	}
	c.Next()
}

type sandboxRequest struct {
	OpenID   string `json:"openid"`
	UnionID  string `json:"unionid"`
	Scene    string `json:"scene"`
	Text     string `json:"text"`
	Phone    string `json:"phone"`
	MsgID    int64  `json:"msg_id"`
	Status   string `json:"status"`
	Snapshot bool   `json:"snapshot"`
}

// sandboxMerchant binds the request and loads the caller's merchant
// credentials (requireSandboxMerchant has checked it is a sandbox merchant).
func (s *Sandbox) sandboxMerchant(c *gin.Context, req *sandboxRequest) (uint64, wechat.Credentials, bool) {
	p := PrincipalOf(c)
	if req != nil {
		if err := httpx.BindJSON(c, req); err != nil {
			httpx.Fail(c, err)
			return 0, wechat.Credentials{}, false
		}
	}
	creds, err := s.merchants.WeChatCredentials(c.Request.Context(), p.MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return 0, wechat.Credentials{}, false
	}
	return p.MerchantID, creds, true
}

func (s *Sandbox) endpoint(merchantID uint64, c wechat.Credentials) wechattest.Endpoint {
	return wechattest.Endpoint{URL: fmt.Sprintf("%s/wechat/%d/callback", s.opts.PublicURL, merchantID),
		AppID: c.AppID, Token: c.Token, EncodingAESKey: c.EncodingAESKey, Safe: c.EncodingAESKey != ""}
}

// deliver sends a simulated callback through the service's HTTP stack and
// returns the answer WeChat would have got (decrypted in safe mode).
func (s *Sandbox) deliver(ctx context.Context, merchantID uint64, c wechat.Credentials, m wechattest.Message) (int, string, error) {
	m.CreateTime = s.nextCreateTime()
	ep := s.endpoint(merchantID, c)
	req, err := ep.Request(m)
	if err != nil {
		return 0, "", err
	}
	rec := httptest.NewRecorder()
	s.Handler.ServeHTTP(rec, req.WithContext(ctx))
	body := rec.Body.Bytes()
	if ep.Safe && rec.Code == http.StatusOK && strings.HasPrefix(string(body), "<xml>") {
		if body, err = ep.DecryptReply(body); err != nil {
			return 0, "", err
		}
	}
	return rec.Code, string(body), nil
}

// nextCreateTime gives each simulated event its own second. Events are
// deduplicated by FromUserName+CreateTime+Event, as WeChat advises; a person
// cannot follow, unfollow and follow again within one second, but a script
// driving the sandbox can, and must not see its second follow dropped as a
// retry of the first.
func (s *Sandbox) nextCreateTime() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastTime = max(time.Now().Unix(), s.lastTime+1)
	return s.lastTime
}

func (s *Sandbox) follow(c *gin.Context) {
	var req sandboxRequest
	mid, creds, ok := s.sandboxMerchant(c, &req)
	if !ok {
		return
	}
	if req.OpenID == "" {
		req.OpenID = newOpenID()
	}
	if len(req.Scene) > 64 {
		httpx.Fail(c, apperr.Invalid("scene", "must be at most 64 characters"))
		return
	}
	s.Sim.FollowScene(creds.AppID, req.OpenID, req.UnionID, req.Scene)
	s.deliverAndWait(c, mid, creds, wechattest.SubscribeEvent("gh_sandbox", req.OpenID, req.Scene), member.FollowFollowing)
}

func (s *Sandbox) unfollow(c *gin.Context) {
	var req sandboxRequest
	mid, creds, ok := s.sandboxMerchant(c, &req)
	if !ok || !requireOpenID(c, req) {
		return
	}
	s.Sim.Unfollow(creds.AppID, req.OpenID)
	s.deliverAndWait(c, mid, creds, wechattest.UnsubscribeEvent("gh_sandbox", req.OpenID), member.FollowUnfollowed)
}

func (s *Sandbox) scan(c *gin.Context) {
	var req sandboxRequest
	mid, creds, ok := s.sandboxMerchant(c, &req)
	if !ok || !requireOpenID(c, req) {
		return
	}
	if req.Scene == "" || len(req.Scene) > 64 {
		httpx.Fail(c, apperr.Invalid("scene", "is required (at most 64 characters)"))
		return
	}
	s.deliverAndWait(c, mid, creds, wechattest.ScanEvent("gh_sandbox", req.OpenID, req.Scene), "")
}

func (s *Sandbox) message(c *gin.Context) {
	var req sandboxRequest
	mid, creds, ok := s.sandboxMerchant(c, &req)
	if !ok || !requireOpenID(c, req) {
		return
	}
	if req.Text == "" {
		httpx.Fail(c, apperr.Invalid("text", "is required"))
		return
	}
	s.Sim.Interact(creds.AppID, req.OpenID)
	code, body, err := s.deliver(c.Request.Context(), mid, creds,
		wechattest.TextMessage("gh_sandbox", req.OpenID, req.Text, time.Now().UnixNano()))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := gin.H{"openid": req.OpenID, "callback_status": code, "reply": nil}
	var reply struct {
		Content string `xml:"Content"`
	}
	if strings.HasPrefix(body, "<xml>") && xml.Unmarshal([]byte(body), &reply) == nil {
		out["reply"] = reply.Content
	}
	c.JSON(http.StatusOK, out)
}

func (s *Sandbox) receipt(c *gin.Context) {
	var req sandboxRequest
	mid, creds, ok := s.sandboxMerchant(c, &req)
	if !ok || !requireOpenID(c, req) {
		return
	}
	if req.MsgID <= 0 {
		httpx.Fail(c, apperr.Invalid("msg_id", "is required"))
		return
	}
	if req.Status == "" {
		req.Status = "success"
	}
	code, _, err := s.deliver(c.Request.Context(), mid, creds,
		wechattest.TemplateFinishEvent("gh_sandbox", req.OpenID, req.MsgID, req.Status))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"callback_status": code})
}

// deliverAndWait delivers the event and waits (up to s.Wait) until the
// member shows the expected follow status, so the caller sees the effect.
func (s *Sandbox) deliverAndWait(c *gin.Context, merchantID uint64, creds wechat.Credentials, m wechattest.Message, want string) {
	ctx := c.Request.Context()
	code, _, err := s.deliver(ctx, merchantID, creds, m)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := gin.H{"openid": m.FromUserName, "callback_status": code, "processed": false}
	deadline := time.Now().Add(s.Wait)
	for code == http.StatusOK {
		mem, err := s.members.ByOAOpenID(ctx, merchantID, m.FromUserName)
		if err == nil && (want == "" || mem.FollowStatus == want) {
			out["processed"], out["member_id"], out["follow_status"] = true, mem.ID, mem.FollowStatus
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.JSON(http.StatusOK, out)
}

func (s *Sandbox) mpLoginCode(c *gin.Context) {
	var req sandboxRequest
	_, creds, ok := s.sandboxMerchant(c, &req)
	if !ok {
		return
	}
	if !creds.HasMiniProgram() {
		httpx.Fail(c, apperr.New(apperr.ErrUnprocessable, "the merchant has no mini-program"))
		return
	}
	if req.OpenID == "" {
		req.OpenID = newOpenID()
	}
	code := s.Sim.LoginCode(creds.MPAppID, req.OpenID, req.UnionID)
	c.JSON(http.StatusOK, gin.H{"code": code, "openid": req.OpenID})
}

func (s *Sandbox) phoneCode(c *gin.Context) {
	var req sandboxRequest
	_, creds, ok := s.sandboxMerchant(c, &req)
	if !ok {
		return
	}
	if !creds.HasMiniProgram() {
		httpx.Fail(c, apperr.New(apperr.ErrUnprocessable, "the merchant has no mini-program"))
		return
	}
	if req.Phone == "" || len(req.Phone) > 20 {
		httpx.Fail(c, apperr.Invalid("phone", "is required, e.g. 13800138000"))
		return
	}
	c.JSON(http.StatusOK, gin.H{"code": s.Sim.PhoneCode(creds.MPAppID, req.Phone)})
}

func (s *Sandbox) oauthCode(c *gin.Context) {
	var req sandboxRequest
	_, creds, ok := s.sandboxMerchant(c, &req)
	if !ok {
		return
	}
	if req.OpenID == "" {
		req.OpenID = newOpenID()
	}
	code := s.Sim.OAuthCode(creds.AppID, req.OpenID, req.UnionID, req.Snapshot)
	c.JSON(http.StatusOK, gin.H{"code": code, "openid": req.OpenID})
}

func (s *Sandbox) sent(c *gin.Context) {
	_, creds, ok := s.sandboxMerchant(c, nil)
	if !ok {
		return
	}
	out := []wechattest.Sent{}
	for _, m := range s.Sim.Sent() {
		if m.AppID == creds.AppID || (creds.MPAppID != "" && m.AppID == creds.MPAppID) {
			out = append(out, m)
		}
	}
	c.JSON(http.StatusOK, gin.H{"sent": out})
}

func requireOpenID(c *gin.Context, req sandboxRequest) bool {
	if req.OpenID == "" || len(req.OpenID) > 64 {
		httpx.Fail(c, apperr.Invalid("openid", "is required"))
		return false
	}
	return true
}

// newOpenID makes an openid shaped like WeChat's (28 characters).
func newOpenID() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return "o" + base64.RawURLEncoding.EncodeToString(b)[:27]
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randAlnum(n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}
