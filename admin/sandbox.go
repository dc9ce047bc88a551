package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
type Sandbox struct {
	Sim       *wechattest.Simulator
	creds     wechat.CredentialSource
	members   SandboxMembers
	publicURL string
	// Handler receives the simulated callbacks; set it to the service's
	// HTTP handler once that is built.
	Handler http.Handler
	// Wait bounds how long a simulated event waits for its effect before the
	// response says it is still being processed.
	Wait time.Duration

	mu       sync.Mutex
	lastTime int64 // CreateTime of the last simulated event
}

// SandboxTemplates are the template ids every sandbox account knows.
var SandboxTemplates = []string{"TPL_POINTS_CHANGED", "TPL_BIRTHDAY", "TPL_WELCOME", "TPL_EXPIRING_POINTS"}

// NewSandbox returns the sandbox tools.
func NewSandbox(sim *wechattest.Simulator, creds wechat.CredentialSource, members SandboxMembers, publicURL string) *Sandbox {
	return &Sandbox{Sim: sim, creds: creds, members: members, publicURL: publicURL, Wait: 5 * time.Second}
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
// restart too: the simulator keeps its state in memory).
func (s *Sandbox) Register(ctx context.Context, merchantID uint64) error {
	c, err := s.creds.WeChatCredentials(ctx, merchantID)
	if err != nil {
		return err
	}
	s.Sim.AddOfficialAccount(wechattest.App{AppID: c.AppID, Secret: c.AppSecret})
	for _, t := range SandboxTemplates {
		s.Sim.AddTemplate(c.AppID, t)
	}
	if c.HasMiniProgram() {
		s.Sim.AddMiniProgram(wechattest.App{AppID: c.MPAppID, Secret: c.MPAppSecret})
		for _, t := range SandboxTemplates {
			s.Sim.AddTemplate(c.MPAppID, t)
		}
	}
	return nil
}

// RegisterRoutes adds the sandbox routes under the authenticated admin
// group:
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
func (s *Sandbox) RegisterRoutes(r gin.IRouter) {
	g := r.Group("/sandbox", authz.Require(authz.Sandbox))
	g.POST("/follow", s.follow)
	g.POST("/unfollow", s.unfollow)
	g.POST("/scan", s.scan)
	g.POST("/message", s.message)
	g.POST("/receipt", s.receipt)
	g.POST("/mp-login-code", s.mpLoginCode)
	g.POST("/phone-code", s.phoneCode)
	g.POST("/oauth-code", s.oauthCode)
	g.GET("/sent", s.sent)
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

// sandboxMerchant loads the caller's merchant credentials; only sandbox
// merchants may use the tools.
func (s *Sandbox) sandboxMerchant(c *gin.Context, req *sandboxRequest) (uint64, wechat.Credentials, bool) {
	p := PrincipalOf(c)
	if req != nil {
		if err := httpx.BindJSON(c, req); err != nil {
			httpx.Fail(c, err)
			return 0, wechat.Credentials{}, false
		}
	}
	creds, err := s.creds.WeChatCredentials(c.Request.Context(), p.MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return 0, wechat.Credentials{}, false
	}
	return p.MerchantID, creds, true
}

func (s *Sandbox) endpoint(merchantID uint64, c wechat.Credentials) wechattest.Endpoint {
	return wechattest.Endpoint{URL: fmt.Sprintf("%s/wechat/%d/callback", s.publicURL, merchantID),
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
