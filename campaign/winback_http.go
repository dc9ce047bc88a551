package campaign

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// WinBackHandler serves the win-back routes.
type WinBackHandler struct{ wb *WinBack }

// NewWinBackHandler returns the win-back handler.
func NewWinBackHandler(wb *WinBack) *WinBackHandler { return &WinBackHandler{wb: wb} }

// Register adds the admin routes under the authenticated group
// (/api/admin/v1), each scoped to the caller's merchant:
//
//	GET   /win-back            campaigns:read   the program (defaults when never saved)
//	PATCH /win-back            campaigns:write  edit it
//	GET   /win-back/sequences  campaigns:read   members' episodes, newest first
//	GET   /win-back/report     campaigns:read   win-back rate and cost per won-back member
func (h *WinBackHandler) Register(r gin.IRouter) {
	read, write := authz.Require(authz.CampaignsRead), authz.Require(authz.CampaignsWrite)
	r.GET("/win-back", read, h.get)
	r.PATCH("/win-back", write, h.update)
	r.GET("/win-back/sequences", read, h.sequences)
	r.GET("/win-back/report", read, h.report)
}

func (h *WinBackHandler) get(c *gin.Context) {
	s, err := h.wb.Settings(c.Request.Context(), authz.MustFrom(c).MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s)
}

func (h *WinBackHandler) update(c *gin.Context) {
	var in WinBackInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	s, err := h.wb.Update(c.Request.Context(), authz.MustFrom(c).MerchantID, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s)
}

func (h *WinBackHandler) sequences(c *gin.Context) {
	q, err := httpx.QueryOnly(c, "status", "member_id", "before", "limit")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	f := WinBackFilter{Status: q.Get("status"), MemberID: positive(q, "member_id", v), Before: positive(q, "before", v),
		Limit: limitOf(q, v)}
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	out, err := h.wb.Sequences(c.Request.Context(), authz.MustFrom(c).MerchantID, f)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	var next *uint64
	if len(out) == f.Limit {
		next = &out[len(out)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"sequences": out, "next_before": next})
}

// DefaultWinBackReportDays is the report's default period, ending today.
const DefaultWinBackReportDays = 30

func (h *WinBackHandler) report(c *gin.Context) {
	q, err := httpx.QueryOnly(c, "from", "to")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	ctx := c.Request.Context()
	merchantID := authz.MustFrom(c).MerchantID
	loc, err := h.wb.zones.Location(ctx, merchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	from, to, err := WinBackPeriod(q.Get("from"), q.Get("to"), h.wb.now().In(loc))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	r, err := h.wb.Report(ctx, merchantID, from, to)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

// WinBackPeriod reads a report period of local dates (YYYY-MM-DD, both
// inclusive; default the DefaultWinBackReportDays ending today) as the
// instants [start of from, start of the day after to) in now's zone.
func WinBackPeriod(from, to string, now time.Time) (time.Time, time.Time, error) {
	loc := now.Location()
	v := &apperr.Validation{}
	parse := func(name, s string, def time.Time) time.Time {
		if s == "" {
			return def
		}
		d, err := time.ParseInLocation(time.DateOnly, s, loc)
		if err != nil || d.Year() < 2000 || d.Year() > 2100 {
			v.Add(name, "must be a date YYYY-MM-DD")
		}
		return d
	}
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	t := parse("to", to, today)
	f := parse("from", from, t.AddDate(0, 0, 1-DefaultWinBackReportDays))
	if err := v.Err(); err != nil {
		return time.Time{}, time.Time{}, err
	}
	if f.After(t) {
		return time.Time{}, time.Time{}, apperr.Invalid("from", "must not be after to")
	}
	if t.Sub(f) > 366*24*time.Hour {
		return time.Time{}, time.Time{}, apperr.Invalid("from", "the period is at most 366 days")
	}
	return f, t.AddDate(0, 0, 1), nil
}
