package main

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// routes builds the one gin engine: middleware, then every route group.
func (a *App) routes(members *member.Handler, sim *wechattest.Simulator) http.Handler {
	r := gin.New()
	r.ContextWithFallback = true
	r.HandleMethodNotAllowed = true
	_ = r.SetTrustedProxies(nil) // the client address is the peer address unless a proxy is configured
	r.Use(httpx.Recover(), httpx.RequestLog(a.log, "/healthz", "/readyz", "/metrics"), a.metrics.Middleware())
	r.NoRoute(httpx.NotFound)
	r.NoMethod(func(c *gin.Context) {
		c.AbortWithStatusJSON(http.StatusMethodNotAllowed, httpx.ErrorBody{Error: httpx.ErrorDetail{
			Code: "method_not_allowed", Message: "method not allowed", RequestID: httpx.RequestID(c)}})
	})

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", a.readyz)
	r.GET("/metrics", gin.WrapH(a.metrics.Handler()))

	callback := wechat.NewCallbackHandler(a.accounts, a.writer, a.keywords, a.log, a.now)
	serveCallback := func(c *gin.Context) {
		id, err := strconv.ParseUint(c.Param("merchant_id"), 10, 64)
		if err != nil || id == 0 {
			c.String(http.StatusNotFound, "unknown merchant")
			return
		}
		callback.Serve(c.Writer, c.Request, id)
	}
	r.GET("/wechat/:merchant_id/callback", serveCallback)
	r.POST("/wechat/:merchant_id/callback", serveCallback)

	api := r.Group("/api")
	members.Register(api)

	adminAPI := api.Group("/admin/v1")
	a.staffs.RegisterPublic(adminAPI)
	staff := adminAPI.Group("", a.staffs.RequireStaff())
	a.staffs.Register(staff)

	if a.sandbox != nil {
		a.sandbox.RegisterRoutes(staff)
		simHandler := gin.WrapH(sim)
		r.Any(sandboxAPIPath+"/*path", simHandler)
	}
	return r
}
