package member

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// SegmentAudience is a saved segment's rule compiled for its merchant, as
// a member-list filter (MemberFilter.Segment).
type SegmentAudience struct {
	ID       uint64
	Audience Audience
}

// audienceOf loads the caller's segment named by the path and compiles its
// rule now (a relative condition, "ordered within 30 days", means now).
func (h *SegmentHandler) audienceOf(c *gin.Context, merchantID uint64) (*SegmentAudience, bool) {
	id, ok := httpx.PathID(c, "segment_id", ErrSegmentNotFound)
	if !ok {
		return nil, false
	}
	ctx := c.Request.Context()
	seg, err := h.segs.Get(ctx, merchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return nil, false
	}
	a, err := h.segs.Compile(ctx, merchantID, json.RawMessage(seg.Rule))
	if err != nil {
		httpx.Fail(c, err)
		return nil, false
	}
	return &SegmentAudience{ID: seg.ID, Audience: a}, true
}

// members serves GET /segments/{segment_id}/members: the segment's members
// now, newest first, in the members list's keyset pages and view (?limit=,
// ?cursor=; phones masked for viewers).
func (h *SegmentHandler) members(c *gin.Context) {
	p := authz.MustFrom(c)
	q, err := httpx.QueryOnly(c, "limit", "cursor")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	f := MemberFilter{Limit: DefaultPageSize}
	v := &apperr.Validation{}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageSize {
			v.Add("limit", "must be 1 to 200")
		}
		f.Limit = n
	}
	if s := q.Get("cursor"); s != "" {
		before, ok := DecodeCursor(s)
		if !ok {
			v.Add("cursor", "is not a cursor from this list")
		}
		f.Before = before
	}
	for k, vs := range q {
		if len(vs) > 1 {
			v.Add(k, "is given more than once")
		}
	}
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	aud, ok := h.audienceOf(c, p.MerchantID)
	if !ok {
		return
	}
	f.Segment = aud
	page, err := h.svc.ListMembers(c.Request.Context(), p.MerchantID, f)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, pageView(page, masked(p)))
}

// exportMembers serves GET /segments/{segment_id}/members/export.csv: the
// segment's members as the members export writes them (streamed, with the
// X-Export-Rows trailer; audited as member.export with the segment id).
func (h *SegmentHandler) exportMembers(c *gin.Context) {
	p := authz.MustFrom(c)
	if _, err := httpx.QueryOnly(c); err != nil {
		httpx.Fail(c, err)
		return
	}
	aud, ok := h.audienceOf(c, p.MerchantID)
	if !ok {
		return
	}
	streamExport(c, h.svc, h.export, p, MemberFilter{Segment: aud, PhoneExact: masked(p)},
		"segment-"+strconv.FormatUint(aud.ID, 10)+"-members-")
}
