package main

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/admin"
	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/docs"
	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
	"github.com/wxloyalty/loyalty/referral"
	"github.com/wxloyalty/loyalty/webhook"
	"github.com/wxloyalty/loyalty/wechat"
)

// routes builds the one gin engine: middleware, then every route group.
// callbackRoute receives the official account's pushes from WeChat.
const callbackRoute = "/wechat/:merchant_id/callback"

func (a *App) routes(members *member.Handler, pointsAPI *points.Handler, memberAdmin *member.AdminHandler, segments *member.SegmentHandler,
	campaigns *campaign.Handler, care *campaign.CareHandler, notices *campaign.NoticeHandler, dashboard *admin.DashboardHandler,
	webhooks *webhook.Handler, imports *member.ImportHandler, referrals *referral.Handler) http.Handler {
	r := gin.New()
	r.ContextWithFallback = true
	r.HandleMethodNotAllowed = true
	// The client address is the peer address unless proxies are configured
	// (validated with the configuration, so this cannot fail).
	_ = r.SetTrustedProxies(a.cfg.HTTP.TrustedProxies)
	r.Use(httpx.SecurityHeaders(a.cfg.HTTP.BehindTLS()), httpx.Recover(), httpx.RequestLog(a.log, httpx.LogOptions{
		Skip:        []string{"/healthz", "/readyz", "/metrics"},
		QuietRoutes: []string{callbackRoute},
	}), a.metrics.Middleware())
	// The admin panel (web/dist, embedded) answers GET /admin/... and
	// /assets/...; it is no API route, so it sits in front of the 404.
	r.NoRoute(func(c *gin.Context) {
		if !a.panel.Serve(c.Writer, c.Request) {
			httpx.NotFound(c)
		}
	})
	r.NoMethod(func(c *gin.Context) {
		c.AbortWithStatusJSON(http.StatusMethodNotAllowed, httpx.ErrorBody{Error: httpx.ErrorDetail{
			Code: "method_not_allowed", Message: "method not allowed", RequestID: httpx.RequestID(c)}})
	})

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", a.readyz)
	if a.opsLn == nil { // else served on the metrics listener only
		r.GET("/metrics", gin.WrapH(a.metrics.Handler()))
	}
	r.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", docs.OpenAPI) })

	// Every instance must see the same nonce bindings: Redis when there is one.
	var nonces wechat.NonceCache = wechat.NewMemoryNonceCache(0, a.now)
	if a.rdb != nil {
		nonces = wechat.NewFallbackNonceCache(wechat.NewRedisNonceCache(a.rdb), wechat.NewMemoryNonceCache(0, a.now), a.redis)
	}
	callback := wechat.NewCallbackHandler(wechat.CallbackDeps{Accounts: a.accounts, Sink: a.writer, Keywords: a.keywords,
		Nonces: nonces, OriginalIDs: a.merchants, Log: a.log, Now: a.now})
	serveCallback := func(c *gin.Context) {
		id, ok := httpx.ParseID(c.Param("merchant_id"))
		if !ok {
			c.String(http.StatusNotFound, "unknown merchant")
			return
		}
		callback.Serve(c.Writer, c.Request, id)
	}
	r.GET(callbackRoute, serveCallback)
	r.POST(callbackRoute, serveCallback)

	api := r.Group("/api")
	members.Register(api)
	currentMember := func(c *gin.Context) (uint64, uint64) {
		m := member.CurrentMember(c)
		return m.MerchantID, m.ID
	}
	pointsAPI.RegisterMember(api, members.RequireMember, currentMember)
	campaigns.RegisterMember(api, members.RequireMember, currentMember)
	referrals.RegisterMember(api, members.RequireMember, currentMember)
	a.surveyAPI.RegisterMember(api, members.RequireMember, currentMember)

	adminGroup := api.Group("/admin/v1")
	a.adminAPI.RegisterPublic(adminGroup)
	authed := adminGroup.Group("", a.adminAPI.Authenticate(), a.adminAPI.Audit.Track())
	a.adminAPI.Register(authed)
	memberAdmin.Register(authed)
	segments.Register(authed)
	pointsAPI.RegisterAdmin(authed)
	campaigns.RegisterAdmin(authed)
	care.Register(authed)
	notices.Register(authed)
	dashboard.Register(authed)
	webhooks.Register(authed)
	imports.Register(authed)
	referrals.RegisterAdmin(authed)
	for _, h := range a.crmRoutes {
		h.Register(authed)
	}

	if a.sandbox != nil {
		a.sandbox.RegisterRoutes(authed)
		r.Any(sandboxAPIPath+"/*path", a.sandbox.ServeSimulator)
	} else {
		// Not a bare 404: a 409 saying why sandbox mode is off (for
		// example, a real merchant exists).
		admin.RegisterSandboxOff(authed, a.sandboxOff)
		r.Any(sandboxAPIPath+"/*path", admin.SandboxOff(a.sandboxOff))
	}
	return r
}
