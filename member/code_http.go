package member

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// memberCode serves GET /member/v1/:merchant_id/member-code: a fresh code
// for the signed-in member to show at the till.
func (h *Handler) memberCode(c *gin.Context) {
	m := currentMember(c)
	code, err := h.o.Codes.Issue(m.MerchantID, m.ID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, code)
}

type resolveCodeRequest struct {
	MemberCode string `json:"member_code"`
}

// resolveCode serves POST /member-codes/resolve {"member_code"}: the member a code
// shown at the till names, as GET /members/{member_id} shows them. It does
// not spend the code (an order does).
func (h *AdminHandler) resolveCode(c *gin.Context) {
	p := authz.MustFrom(c)
	var req resolveCodeRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if req.MemberCode == "" {
		httpx.Fail(c, apperr.Invalid("member_code", "is required"))
		return
	}
	id, expiresAt, err := h.o.Codes.Check(p.MerchantID, req.MemberCode)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	d, err := h.svc.Detail(c.Request.Context(), p.MerchantID, id)
	if err == nil && d.Member.ErasedAt != nil {
		err = errMemberNotFound
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"member": detailView(d, masked(p)), "code_expires_at": expiresAt})
}
