package campaign

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// SurveyHandler serves the survey routes.
type SurveyHandler struct{ s *Surveys }

// NewSurveyHandler returns the survey handler.
func NewSurveyHandler(s *Surveys) *SurveyHandler { return &SurveyHandler{s: s} }

// Register adds the admin routes under the authenticated group
// (/api/admin/v1), each scoped to the caller's merchant:
//
//	GET   /surveys              campaigns:read   the surveys, newest first
//	POST  /surveys              campaigns:write  define one
//	GET   /surveys/results      campaigns:read   NPS and satisfaction by week, channel, tier; response rate; latest answers
//	GET   /surveys/:survey_id   campaigns:read   one survey
//	PATCH /surveys/:survey_id   campaigns:write  edit it (enabled: sent after orders)
func (h *SurveyHandler) Register(r gin.IRouter) {
	read, write := authz.Require(authz.CampaignsRead), authz.Require(authz.CampaignsWrite)
	r.GET("/surveys", read, h.list)
	r.POST("/surveys", write, h.create)
	r.GET("/surveys/results", read, h.results)
	r.GET("/surveys/:survey_id", read, h.get)
	r.PATCH("/surveys/:survey_id", write, h.update)
}

// RegisterMember adds the member routes under the /api group, behind
// requireMember; current names the signed-in member (merchant id, member
// id):
//
//	GET  /member/v1/:merchant_id/survey                              my pending survey (null when none)
//	POST /member/v1/:merchant_id/survey/:invitation_id/answer        answer it, once
func (h *SurveyHandler) RegisterMember(r gin.IRouter, requireMember gin.HandlerFunc, current func(*gin.Context) (uint64, uint64)) {
	r.GET("/member/v1/:merchant_id/survey", requireMember, func(c *gin.Context) {
		mid, id := current(c)
		p, err := h.s.Pending(c.Request.Context(), mid, id)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"survey": p})
	})
	r.POST("/member/v1/:merchant_id/survey/:invitation_id/answer", requireMember, func(c *gin.Context) {
		inv, ok := httpx.PathID(c, "invitation_id", errInvitationNotFound)
		if !ok {
			return
		}
		var in AnswerInput
		if err := httpx.BindJSON(c, &in); err != nil {
			httpx.Fail(c, err)
			return
		}
		mid, id := current(c)
		a, err := h.s.Answer(c.Request.Context(), mid, id, inv, in)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		c.JSON(http.StatusCreated, a)
	})
}

func (h *SurveyHandler) list(c *gin.Context) {
	out, err := h.s.List(c.Request.Context(), authz.MustFrom(c).MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"surveys": out})
}

func (h *SurveyHandler) create(c *gin.Context) {
	var in SurveyInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	v, err := h.s.Create(c.Request.Context(), authz.MustFrom(c).MerchantID, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, v)
}

func (h *SurveyHandler) get(c *gin.Context) {
	id, ok := httpx.PathID(c, "survey_id", errSurveyNotFound)
	if !ok {
		return
	}
	v, err := h.s.Get(c.Request.Context(), authz.MustFrom(c).MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (h *SurveyHandler) update(c *gin.Context) {
	id, ok := httpx.PathID(c, "survey_id", errSurveyNotFound)
	if !ok {
		return
	}
	var in SurveyInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	v, err := h.s.Update(c.Request.Context(), authz.MustFrom(c).MerchantID, id, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (h *SurveyHandler) results(c *gin.Context) {
	q, err := httpx.QueryOnly(c, "from", "to", "survey_id")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	surveyID := positive(q, "survey_id", v)
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	ctx := c.Request.Context()
	merchantID := authz.MustFrom(c).MerchantID
	loc, err := h.s.zones.Location(ctx, merchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	// Same period rules as the win-back report (local dates, both
	// inclusive, default the last 30 days, at most 366).
	from, to, err := WinBackPeriod(q.Get("from"), q.Get("to"), h.s.now().In(loc))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	r, err := h.s.Results(ctx, merchantID, surveyID, from, to)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}
