package member

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/wechat"
)

// JSSigner signs the WeChat JS-SDK configuration of a page;
// *wechat.Accounts satisfies it (the jsapi_ticket is cached and refreshed
// like the access token).
type JSSigner interface {
	JSConfig(ctx context.Context, merchantID uint64, pageURL string) (wechat.JSConfig, error)
}

// jsConfig serves GET /member/v1/:merchant_id/jssdk-config?url=: the
// JS-SDK configuration (share, scan) for a page of the merchant's member
// centre. Only pages the service itself serves under /m/<merchant_id>/ on
// its public origin are signed: a signature for any other page would let
// that page use the merchant's JS-SDK.
func (h *Handler) jsConfig(c *gin.Context) {
	m := currentMember(c)
	q, err := httpx.QueryOnly(c, "url")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	page := q.Get("url")
	if !h.memberCentrePage(m.MerchantID, page) {
		httpx.Fail(c, apperr.Invalid("url", "must be a page of this merchant's member centre ("+
			h.o.PageOrigin+"/m/"+strconv.FormatUint(m.MerchantID, 10)+"/...)"))
		return
	}
	cfg, err := h.o.JSSDK.JSConfig(c.Request.Context(), m.MerchantID, page)
	if err != nil {
		httpx.Fail(c, wechatError(err, "url"))
		return
	}
	c.JSON(http.StatusOK, cfg)
}

// memberCentrePage reports whether page is a URL of the merchant's member
// centre on the service's public origin.
func (h *Handler) memberCentrePage(merchantID uint64, page string) bool {
	if len(page) > 1024 {
		return false
	}
	u, err := url.Parse(page)
	origin, oerr := url.Parse(h.o.PageOrigin)
	if err != nil || oerr != nil || u.User != nil || !strings.EqualFold(u.Scheme, origin.Scheme) ||
		!strings.EqualFold(u.Host, origin.Host) {
		return false
	}
	return strings.HasPrefix(u.Path, "/m/"+strconv.FormatUint(merchantID, 10)+"/")
}
