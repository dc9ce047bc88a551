package campaign

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// Handler serves the campaign routes.
type Handler struct {
	camps  *Campaigns
	grants *Grants
}

// NewHandler returns the campaign routes' handler.
func NewHandler(camps *Campaigns, grants *Grants) *Handler {
	return &Handler{camps: camps, grants: grants}
}

// RegisterAdmin adds the admin routes under the authenticated group:
//
//	GET   /campaigns                            campaigns:read
//	POST  /campaigns                            campaigns:write  a draft
//	GET   /campaigns/:campaign_id               campaigns:read
//	PATCH /campaigns/:campaign_id               campaigns:write  draft or scheduled only
//	POST  /campaigns/:campaign_id/schedule      campaigns:write
//	POST  /campaigns/:campaign_id/pause         campaigns:write
//	POST  /campaigns/:campaign_id/resume        campaigns:write
//	POST  /campaigns/:campaign_id/cancel        campaigns:write
//	POST  /campaigns/:campaign_id/resend        campaigns:write  {"statuses":["failed","unknown"]}
//	GET   /campaigns/:campaign_id/dry-run       campaigns:read   who would get it, who would be skipped
//	GET   /campaigns/:campaign_id/progress      campaigns:read
//	GET   /campaigns/:campaign_id/deliveries    campaigns:read
//	GET   /campaigns/:campaign_id/report        campaigns:read
//	GET   /campaigns/:campaign_id/preview       campaigns:read   its message rendered for a member
//	GET   /campaigns/templates                  campaigns:read   the account's templates and their fields (WeChat)
//	POST  /campaigns/preview                    campaigns:read   an unsaved message rendered for a member
//	GET   /campaigns/schedule-preview           campaigns:read   a cron's next five runs, quiet hours, frequency cap
//	GET   /members/:member_id/messages          members:read     the campaign and care messages that reached a member
func (h *Handler) RegisterAdmin(r gin.IRouter) {
	read, write := authz.Require(authz.CampaignsRead), authz.Require(authz.CampaignsWrite)
	r.GET("/campaigns", read, h.list)
	r.POST("/campaigns", write, h.create)
	r.GET("/campaigns/:campaign_id", read, h.get)
	r.PATCH("/campaigns/:campaign_id", write, h.update)
	for _, act := range []Transition{ActSchedule, ActPause, ActResume, ActCancel} {
		r.POST("/campaigns/:campaign_id/"+string(act), write, h.act(act))
	}
	r.POST("/campaigns/:campaign_id/resend", write, h.resend)
	r.GET("/campaigns/:campaign_id/dry-run", read, h.dryRun)
	r.GET("/campaigns/:campaign_id/progress", read, h.progress)
	r.GET("/campaigns/:campaign_id/deliveries", read, h.deliveries)
	r.GET("/campaigns/:campaign_id/report", read, h.report)
	r.GET("/campaigns/:campaign_id/preview", read, h.previewCampaign)
	r.GET("/campaigns/templates", read, h.templates)
	r.POST("/campaigns/preview", read, audit.ReadOnly, h.preview)
	r.GET("/campaigns/schedule-preview", read, h.schedulePreview)
	r.GET("/members/:member_id/messages", authz.Require(authz.MembersRead), h.memberMessages)
}

func (h *Handler) templates(c *gin.Context) {
	q, err := httpx.QueryOnly(c, "channel")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	ch := Channel(q.Get("channel"))
	if ch == "" {
		ch = ChannelTemplate
	}
	list, err := h.camps.Templates(c.Request.Context(), authz.MustFrom(c).MerchantID, ch)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"channel": ch, "templates": list, "variables": MessageVariables()})
}

func (h *Handler) preview(c *gin.Context) {
	var in PreviewInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	p, err := h.camps.Preview(c.Request.Context(), authz.MustFrom(c).MerchantID, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

func (h *Handler) previewCampaign(c *gin.Context) {
	id, ok := httpx.PathID(c, "campaign_id", errNotFound)
	if !ok {
		return
	}
	q, err := httpx.QueryOnly(c, "member_id")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	member := positive(q, "member_id", v)
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	p, err := h.camps.PreviewCampaign(c.Request.Context(), authz.MustFrom(c).MerchantID, id, member)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

func (h *Handler) schedulePreview(c *gin.Context) {
	q, err := httpx.QueryOnly(c, "cron")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	p, err := h.camps.NextRuns(c.Request.Context(), authz.MustFrom(c).MerchantID, q.Get("cron"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

// RegisterMember adds POST /member/v1/:merchant_id/subscriptions under r
// (the /api group): the mini-program records the subscribe-message grants
// a member accepted. requireMember authenticates; current names the member.
func (h *Handler) RegisterMember(r gin.IRouter, requireMember gin.HandlerFunc, current func(*gin.Context) (merchantID, memberID uint64)) {
	r.POST("/member/v1/:merchant_id/subscriptions", requireMember, func(c *gin.Context) {
		var req struct {
			TemplateIDs []string `json:"template_ids"`
		}
		if err := httpx.BindJSON(c, &req); err != nil {
			httpx.Fail(c, err)
			return
		}
		mid, memberID := current(c)
		left, err := h.grants.Add(c.Request.Context(), mid, memberID, req.TemplateIDs)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"remaining": left})
	})
}

// View is a campaign as the API shows it.
type View struct {
	ID              uint64        `json:"id"`
	Name            string        `json:"name"`
	Kind            Kind          `json:"kind"`
	Status          Status        `json:"status"`
	Channel         Channel       `json:"channel"`
	TemplateID      string        `json:"template_id,omitempty"`
	Message         Message       `json:"message"`
	Target          Target        `json:"target"`
	Gift            *Gift         `json:"gift"`
	HoldoutPct      int           `json:"holdout_pct"`
	Schedule        ScheduleInput `json:"schedule"`
	NextRunAt       *time.Time    `json:"next_run_at"`
	AttributionDays int           `json:"attribution_days"`
	Step            int           `json:"step"`
	PauseReason     string        `json:"pause_reason,omitempty"`
	CreatedAt       time.Time     `json:"created_at"`
	UpdatedAt       time.Time     `json:"updated_at"`
	CompletedAt     *time.Time    `json:"completed_at"`
}

// ViewOf returns the API view of a campaign.
func ViewOf(c Campaign) View {
	v := View{ID: c.ID, Name: c.Name, Kind: c.Kind, Status: c.Status, Channel: c.Channel, TemplateID: c.TemplateID,
		Message: c.Message, Target: c.Target, Gift: c.Gift,
		HoldoutPct: c.HoldoutPct, Schedule: ScheduleInput{Kind: c.ScheduleKind, SendAt: c.SendAt, Cron: c.Cron},
		NextRunAt: c.NextRunAt, AttributionDays: c.AttributionDays, Step: c.Step, PauseReason: c.PauseReason,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, CompletedAt: c.CompletedAt}
	return v
}

// positive reads an optional id from the query (httpx.ParseID's range).
func positive(q url.Values, name string, v *apperr.Validation) uint64 {
	s := q.Get(name)
	if s == "" {
		return 0
	}
	n, ok := httpx.ParseID(s)
	if !ok {
		v.Add(name, fmt.Sprintf("must be a whole number from 1 to %d", uint64(httpx.MaxID)))
	}
	return n
}

// maxStep bounds a step number taken from a request (a campaign runs once
// per step: a million runs is far beyond any real one).
const maxStep = 1_000_000

// stepOf reads an optional step number from the query.
func stepOf(q url.Values, v *apperr.Validation) int {
	s := q.Get("step")
	if s == "" {
		return 0
	}
	n, ok := httpx.ParseID(s)
	if !ok || n > maxStep {
		v.Add("step", fmt.Sprintf("must be a whole number from 1 to %d", maxStep))
		return 0
	}
	return int(n)
}

func limitOf(q url.Values, v *apperr.Validation) int {
	s := q.Get("limit")
	if s == "" {
		return 50
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 200 {
		v.Add("limit", "must be 1 to 200")
	}
	return n
}

func (h *Handler) list(c *gin.Context) {
	q, err := httpx.QueryOnly(c, "status", "before", "limit")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	status := Status(q.Get("status"))
	if status != "" && !slices.Contains(Statuses, status) {
		v.Add("status", "must be draft, scheduled, running, paused, completed or cancelled")
	}
	before, limit := positive(q, "before", v), limitOf(q, v)
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	list, err := h.camps.List(c.Request.Context(), authz.MustFrom(c).MerchantID, status, before, limit)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]View, len(list))
	for i, cp := range list {
		out[i] = ViewOf(cp)
	}
	var next *uint64
	if len(list) == limit {
		next = &list[len(list)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"campaigns": out, "next_before": next})
}

func (h *Handler) create(c *gin.Context) {
	var in Input
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	p := authz.MustFrom(c)
	cp, err := h.camps.Create(c.Request.Context(), p.MerchantID, p.StaffID, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, ViewOf(cp))
}

func (h *Handler) get(c *gin.Context) {
	id, ok := httpx.PathID(c, "campaign_id", errNotFound)
	if !ok {
		return
	}
	cp, err := h.camps.Get(c.Request.Context(), authz.MustFrom(c).MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, ViewOf(cp))
}

func (h *Handler) update(c *gin.Context) {
	id, ok := httpx.PathID(c, "campaign_id", errNotFound)
	if !ok {
		return
	}
	var in Input
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	cp, err := h.camps.Update(c.Request.Context(), authz.MustFrom(c).MerchantID, id, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, ViewOf(cp))
}

func (h *Handler) act(act Transition) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := httpx.PathID(c, "campaign_id", errNotFound)
		if !ok {
			return
		}
		cp, err := h.camps.Act(c.Request.Context(), authz.MustFrom(c).MerchantID, id, act)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		c.JSON(http.StatusOK, ViewOf(cp))
	}
}

func (h *Handler) resend(c *gin.Context) {
	id, ok := httpx.PathID(c, "campaign_id", errNotFound)
	if !ok {
		return
	}
	var req struct {
		Statuses []DeliveryStatus `json:"statuses"`
	}
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	cp, n, err := h.camps.Resend(c.Request.Context(), authz.MustFrom(c).MerchantID, id, req.Statuses)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"campaign": ViewOf(cp), "rows": n})
}

func (h *Handler) dryRun(c *gin.Context) {
	id, ok := httpx.PathID(c, "campaign_id", errNotFound)
	if !ok {
		return
	}
	out, err := h.camps.DryRun(c.Request.Context(), authz.MustFrom(c).MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (h *Handler) progress(c *gin.Context) {
	id, ok := httpx.PathID(c, "campaign_id", errNotFound)
	if !ok {
		return
	}
	p, err := h.camps.Progress(c.Request.Context(), authz.MustFrom(c).MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"campaign": ViewOf(p.Campaign), "progress": p})
}

type deliveryView struct {
	ID         uint64         `json:"id"`
	MemberID   uint64         `json:"member_id"`
	Step       int            `json:"step"`
	Status     DeliveryStatus `json:"status"`
	Reason     Reason         `json:"reason,omitempty"`
	ErrCode    int            `json:"errcode,omitempty"`
	Attempts   int            `json:"attempts"`
	MsgID      *int64         `json:"msg_id"`
	SentAt     *time.Time     `json:"sent_at"`
	FinishedAt *time.Time     `json:"finished_at"`
	GiftGiven  bool           `json:"gift_granted"`
	// The gift, when the campaign has one: none, due (with its next
	// attempt), granted, or gave_up (with the last error).
	GiftState  string     `json:"gift_state"`
	GiftNextAt *time.Time `json:"gift_next_at,omitempty"`
	GiftError  string     `json:"gift_error,omitempty"`
}

func (h *Handler) deliveries(c *gin.Context) {
	id, ok := httpx.PathID(c, "campaign_id", errNotFound)
	if !ok {
		return
	}
	q, err := httpx.QueryOnly(c, "step", "status", "reason", "member_id", "before", "limit")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	f := DeliveryFilter{Step: stepOf(q, v), Status: DeliveryStatus(q.Get("status")), Reason: Reason(q.Get("reason")),
		MemberID: positive(q, "member_id", v), Before: positive(q, "before", v), Limit: limitOf(q, v)}
	if f.Status != "" && !slices.Contains(DeliveryStatuses, f.Status) {
		v.Add("status", "is not a delivery status")
	}
	if f.Reason != "" && !slices.Contains(Reasons, f.Reason) {
		v.Add("reason", "is not a reason")
	}
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	rows, err := h.camps.Deliveries(c.Request.Context(), authz.MustFrom(c).MerchantID, id, f)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]deliveryView, len(rows))
	for i, d := range rows {
		out[i] = deliveryView{ID: d.ID, MemberID: d.MemberID, Step: d.Step, Status: d.Status, Reason: d.Reason, ErrCode: d.ErrCode,
			Attempts: d.Attempts, MsgID: d.MsgID, SentAt: d.SentAt, FinishedAt: d.FinishedAt, GiftGiven: d.GiftState == GiftGranted,
			GiftState: d.GiftState.String(), GiftNextAt: d.GiftNextAt, GiftError: d.GiftError}
	}
	var next *uint64
	if len(rows) == f.Limit {
		next = &rows[len(rows)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"deliveries": out, "next_before": next})
}

func (h *Handler) report(c *gin.Context) {
	id, ok := httpx.PathID(c, "campaign_id", errNotFound)
	if !ok {
		return
	}
	q, err := httpx.QueryOnly(c, "step")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	step := stepOf(q, v)
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	r, err := h.camps.Report(c.Request.Context(), authz.MustFrom(c).MerchantID, id, step)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}
