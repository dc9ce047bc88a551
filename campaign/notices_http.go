package campaign

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// NoticeHandler serves the service notice settings.
type NoticeHandler struct{ notices *Notices }

// NewNoticeHandler returns the notice settings' handler.
func NewNoticeHandler(n *Notices) *NoticeHandler { return &NoticeHandler{notices: n} }

// Register adds the admin routes under the authenticated group
// (/api/admin/v1), each scoped to the caller's merchant:
//
//	GET /notice-settings        settings:read    every kind, configured or not
//	PUT /notice-settings/:kind  settings:manage  a kind's template, fields, on or off
func (h *NoticeHandler) Register(r gin.IRouter) {
	r.GET("/notice-settings", authz.Require(authz.SettingsRead), h.list)
	r.PUT("/notice-settings/:kind", authz.Require(authz.SettingsManage), h.save)
}

func (h *NoticeHandler) list(c *gin.Context) {
	out, err := h.notices.List(c.Request.Context(), authz.MustFrom(c).MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"notices": out})
}

func (h *NoticeHandler) save(c *gin.Context) {
	kind := NoticeKind(c.Param("kind"))
	if !kind.valid() {
		httpx.Fail(c, errNoticeKind)
		return
	}
	var in NoticeInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	out, err := h.notices.Save(c.Request.Context(), authz.MustFrom(c).MerchantID, kind, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}
