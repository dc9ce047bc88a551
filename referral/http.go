package referral

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// Handler serves the referral routes.
type Handler struct{ svc *Service }

// NewHandler returns the referral routes' handler.
func NewHandler(svc *Service) *Handler { return &Handler{svc: svc} }

// RegisterMember adds the member routes under the /api group, behind
// requireMember; current names the signed-in member (merchant id, member
// id):
//
//	GET /member/v1/:merchant_id/invite     my invitation: code, share link, personal QR code
//	GET /member/v1/:merchant_id/referrals  the members I brought in
func (h *Handler) RegisterMember(r gin.IRouter, requireMember gin.HandlerFunc, current func(*gin.Context) (uint64, uint64)) {
	r.GET("/member/v1/:merchant_id/invite", requireMember, func(c *gin.Context) {
		mid, id := current(c)
		inv, err := h.svc.Invite(c.Request.Context(), mid, id)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		c.JSON(http.StatusOK, inv)
	})
	r.GET("/member/v1/:merchant_id/referrals", requireMember, func(c *gin.Context) {
		mid, id := current(c)
		s, err := h.svc.Summary(c.Request.Context(), mid, id)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		c.JSON(http.StatusOK, s)
	})
}

// RegisterAdmin adds the admin routes under the authenticated group
// (/api/admin/v1). The rewards are points: reading them and the report
// needs points:read, changing them points:write.
//
//	GET /referrals/settings  the rewards
//	PUT /referrals/settings  set the rewards {"referrer_points","referee_points"} (0: off)
//	GET /referrals/report    invites, sign-ups, conversions, cost, top referrers (?from=&to=, RFC 3339)
func (h *Handler) RegisterAdmin(r gin.IRouter) {
	r.GET("/referrals/settings", authz.Require(authz.PointsRead), h.getSettings)
	r.PUT("/referrals/settings", authz.Require(authz.PointsWrite), h.putSettings)
	r.GET("/referrals/report", authz.Require(authz.PointsRead), h.report)
}

type settingsView struct {
	ReferrerPoints int64      `json:"referrer_points"`
	RefereePoints  int64      `json:"referee_points"`
	UpdatedAt      *time.Time `json:"updated_at"` // nil: never set
}

func viewOf(s Settings) settingsView {
	v := settingsView{ReferrerPoints: s.ReferrerPoints, RefereePoints: s.RefereePoints}
	if !s.UpdatedAt.IsZero() {
		v.UpdatedAt = &s.UpdatedAt
	}
	return v
}

func (h *Handler) getSettings(c *gin.Context) {
	s, err := h.svc.GetSettings(c.Request.Context(), authz.MustFrom(c).MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(s))
}

func (h *Handler) putSettings(c *gin.Context) {
	var req struct {
		ReferrerPoints *int64 `json:"referrer_points"`
		RefereePoints  *int64 `json:"referee_points"`
	}
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	if req.ReferrerPoints == nil {
		v.Add("referrer_points", "is required (0: no reward)")
	}
	if req.RefereePoints == nil {
		v.Add("referee_points", "is required (0: no reward)")
	}
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	s, err := h.svc.SaveSettings(c.Request.Context(), authz.MustFrom(c).MerchantID,
		Settings{ReferrerPoints: *req.ReferrerPoints, RefereePoints: *req.RefereePoints})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(s))
}

func (h *Handler) report(c *gin.Context) {
	q, err := httpx.QueryOnly(c, "from", "to")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	var from, to *time.Time
	for _, p := range []struct {
		name string
		dst  **time.Time
	}{{"from", &from}, {"to", &to}} {
		s := q.Get(p.name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			v.Add(p.name, "must be an RFC 3339 time, e.g. 2026-01-01T00:00:00+08:00")
			continue
		}
		t = t.UTC()
		*p.dst = &t
	}
	if from != nil && to != nil && !from.Before(*to) {
		v.Add("to", "must be after from")
	}
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	rep, err := h.svc.Report(c.Request.Context(), authz.MustFrom(c).MerchantID, from, to)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rep)
}
