package campaign

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// CareHandler serves the care rule routes.
type CareHandler struct{ care *Care }

// NewCareHandler returns the care rules' handler.
func NewCareHandler(care *Care) *CareHandler { return &CareHandler{care: care} }

// Register adds the admin routes under the authenticated group
// (/api/admin/v1), each scoped to the caller's merchant:
//
//	GET    /care-rules                      campaigns:read
//	POST   /care-rules                      campaigns:write
//	GET    /care-rules/:rule_id             campaigns:read
//	PATCH  /care-rules/:rule_id             campaigns:write
//	DELETE /care-rules/:rule_id             campaigns:write
//	GET    /care-rules/:rule_id/sends       campaigns:read  recent sends with their delivery status
//	GET    /care-rules/:rule_id/next-sends  campaigns:read  the coming days' sends: when, how many, a sample
//	GET    /campaign-calendar               campaigns:read  campaigns and care sends of a date range
func (h *CareHandler) Register(r gin.IRouter) {
	read, write := authz.Require(authz.CampaignsRead), authz.Require(authz.CampaignsWrite)
	r.GET("/care-rules", read, h.list)
	r.POST("/care-rules", write, h.create)
	r.GET("/care-rules/:rule_id", read, h.get)
	r.PATCH("/care-rules/:rule_id", write, h.update)
	r.DELETE("/care-rules/:rule_id", write, h.delete)
	r.GET("/care-rules/:rule_id/sends", read, h.sends)
	r.GET("/care-rules/:rule_id/next-sends", read, h.nextSends)
	r.GET("/campaign-calendar", read, h.calendar)
}

func (h *CareHandler) nextSends(c *gin.Context) {
	id, ok := httpx.PathID(c, "rule_id", errCareNotFound)
	if !ok {
		return
	}
	q, err := httpx.QueryOnly(c, "days")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	days := 7
	if s := q.Get("days"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxNextSendDays {
			httpx.Fail(c, apperr.Invalid("days", fmt.Sprintf("must be 1 to %d", MaxNextSendDays)))
			return
		}
		days = n
	}
	out, err := h.care.NextSends(c.Request.Context(), authz.MustFrom(c).MerchantID, id, days)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (h *CareHandler) calendar(c *gin.Context) {
	q, err := httpx.QueryOnly(c, "from", "to")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	entries, err := h.care.Calendar(c.Request.Context(), authz.MustFrom(c).MerchantID, q.Get("from"), q.Get("to"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"from": q.Get("from"), "to": q.Get("to"), "entries": entries})
}

// CareRuleView is a care rule as the API shows it: the parameters of its
// kind only.
type CareRuleView struct {
	ID              uint64    `json:"id"`
	Name            string    `json:"name"`
	Kind            CareKind  `json:"kind"`
	Enabled         bool      `json:"enabled"`
	Channel         Channel   `json:"channel"`
	TemplateID      string    `json:"template_id,omitempty"`
	Message         Message   `json:"message"`
	Gift            *Gift     `json:"gift"`
	SendMinute      *int      `json:"send_minute,omitempty"`
	SendTime        string    `json:"send_time,omitempty"` // send_minute as local HH:MM
	DaysBefore      *int      `json:"days_before,omitempty"`
	DaysAfter       *int      `json:"days_after,omitempty"`
	WithinDays      *int      `json:"within_days,omitempty"`
	CareDateKind    string    `json:"care_date_kind,omitempty"`
	Label           *string   `json:"label,omitempty"`
	IncludeLeadTier *bool     `json:"include_lead_tier,omitempty"`
	ActiveSince     time.Time `json:"active_since"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// CareViewOf returns the API view of a rule.
func CareViewOf(r CareRule) CareRuleView {
	v := CareRuleView{ID: r.ID, Name: r.Name, Kind: r.Kind, Enabled: r.Enabled, Channel: r.Channel, TemplateID: r.TemplateID,
		Message: r.Message, Gift: r.Gift, ActiveSince: r.ActiveSince, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	spec := careSpecs[r.Kind]
	if spec.sendTime {
		m := r.SendMinute
		v.SendMinute, v.SendTime = &m, fmt.Sprintf("%02d:%02d", m/60, m%60)
	}
	days := r.Days
	switch spec.param {
	case "days_before":
		v.DaysBefore = &days
	case "days_after":
		v.DaysAfter = &days
	case "within_days":
		v.WithinDays = &days
	}
	if spec.careDate {
		label := r.Label
		v.CareDateKind, v.Label = r.CareDateKind, &label
	}
	if spec.leadTier {
		lead := r.IncludeLeadTier
		v.IncludeLeadTier = &lead
	}
	return v
}

func (h *CareHandler) list(c *gin.Context) {
	if _, err := httpx.QueryOnly(c); err != nil {
		httpx.Fail(c, err)
		return
	}
	rules, err := h.care.List(c.Request.Context(), authz.MustFrom(c).MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]CareRuleView, len(rules))
	for i, r := range rules {
		out[i] = CareViewOf(r)
	}
	c.JSON(http.StatusOK, gin.H{"care_rules": out})
}

func (h *CareHandler) create(c *gin.Context) {
	var in CareInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	p := authz.MustFrom(c)
	r, err := h.care.Create(c.Request.Context(), p.MerchantID, p.StaffID, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, CareViewOf(r))
}

func (h *CareHandler) get(c *gin.Context) {
	id, ok := httpx.PathID(c, "rule_id", errCareNotFound)
	if !ok {
		return
	}
	r, err := h.care.Get(c.Request.Context(), authz.MustFrom(c).MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, CareViewOf(r))
}

func (h *CareHandler) update(c *gin.Context) {
	id, ok := httpx.PathID(c, "rule_id", errCareNotFound)
	if !ok {
		return
	}
	var in CareInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	r, err := h.care.Update(c.Request.Context(), authz.MustFrom(c).MerchantID, id, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, CareViewOf(r))
}

func (h *CareHandler) delete(c *gin.Context) {
	id, ok := httpx.PathID(c, "rule_id", errCareNotFound)
	if !ok {
		return
	}
	if err := h.care.Delete(c.Request.Context(), authz.MustFrom(c).MerchantID, id); err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (h *CareHandler) sends(c *gin.Context) {
	id, ok := httpx.PathID(c, "rule_id", errCareNotFound)
	if !ok {
		return
	}
	q, err := httpx.QueryOnly(c, "member_id", "before", "limit")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	f := CareSendFilter{MemberID: positive(q, "member_id", v), Before: positive(q, "before", v), Limit: limitOf(q, v)}
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	sends, err := h.care.Sends(c.Request.Context(), authz.MustFrom(c).MerchantID, id, f)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	var next *uint64
	if len(sends) == f.Limit {
		next = &sends[len(sends)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"sends": sends, "next_before": next})
}
