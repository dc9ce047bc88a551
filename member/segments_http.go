package member

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/member/segment"
)

// SegmentHandler serves the admin API of segments.
type SegmentHandler struct {
	segs   *Segments
	svc    *Service
	export AdminOptions // the segment members' CSV export (defaults)
}

// NewSegmentHandler returns the segment routes' handler.
func NewSegmentHandler(segs *Segments, svc *Service) *SegmentHandler {
	return &SegmentHandler{segs: segs, svc: svc}
}

// Register adds the routes under the authenticated admin group:
//
//	GET    /segments/fields               campaigns:read   what rules may target
//	POST   /segments/preview              campaigns:read   {"rule"} → count and a sample
//	GET    /segments                      campaigns:read   saved segments with cached counts
//	POST   /segments                      campaigns:write  save {"name","description","rule"}
//	GET    /segments/:segment_id          campaigns:read
//	PATCH  /segments/:segment_id          campaigns:write
//	DELETE /segments/:segment_id          campaigns:write
//	POST   /segments/:segment_id/refresh  campaigns:write  recount now
//	GET    /segments/:segment_id/members  members:read     its members now, in the members list's pages
//	GET    /segments/:segment_id/members/export.csv  members:export  the same as CSV
func (h *SegmentHandler) Register(r gin.IRouter) {
	r.GET("/segments/fields", authz.Require(authz.CampaignsRead), h.fields)
	r.POST("/segments/preview", authz.Require(authz.CampaignsRead), audit.ReadOnly, h.preview)
	r.GET("/segments", authz.Require(authz.CampaignsRead), h.list)
	r.POST("/segments", authz.Require(authz.CampaignsWrite), h.create)
	r.GET("/segments/:segment_id", authz.Require(authz.CampaignsRead), h.get)
	r.PATCH("/segments/:segment_id", authz.Require(authz.CampaignsWrite), h.update)
	r.DELETE("/segments/:segment_id", authz.Require(authz.CampaignsWrite), h.delete)
	r.POST("/segments/:segment_id/refresh", authz.Require(authz.CampaignsWrite), h.refresh)
	r.GET("/segments/:segment_id/members", authz.Require(authz.MembersRead), h.members)                    // segment_members.go
	r.GET("/segments/:segment_id/members/export.csv", authz.Require(authz.MembersExport), h.exportMembers) // segment_members.go
}

type fieldView struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Operators []string `json:"operators"`
	Values    []string `json:"values,omitempty"`
	Min       *int64   `json:"min,omitempty"`
	Max       *int64   `json:"max,omitempty"`
}

var kindNames = map[segment.Kind]string{segment.KindEnum: "enum", segment.KindInt: "integer", segment.KindString: "text",
	segment.KindBool: "boolean", segment.KindIDSet: "id_set", segment.KindDaysSince: "days_since", segment.KindUpcoming: "upcoming_date"}

func (h *SegmentHandler) fields(c *gin.Context) {
	out := make([]fieldView, 0, len(SegmentSchema))
	for _, name := range SegmentSchema.Names() {
		f := SegmentSchema[name]
		v := fieldView{Name: name, Type: kindNames[f.Kind], Operators: segment.Operators(f.Kind), Values: f.Values}
		if f.Kind == segment.KindInt || f.Kind == segment.KindUpcoming {
			lo, hi := f.Min, f.Max
			v.Min, v.Max = &lo, &hi
		}
		out = append(out, v)
	}
	c.JSON(http.StatusOK, gin.H{"fields": out})
}

type ruleRequest struct {
	Rule json.RawMessage `json:"rule"`
}

type previewView struct {
	Count     int64            `json:"count"`
	Sample    []memberItemView `json:"sample"`
	CountedAt time.Time        `json:"counted_at"`
}

func (h *SegmentHandler) preview(c *gin.Context) {
	var req ruleRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if len(req.Rule) == 0 {
		httpx.Fail(c, apperr.Invalid("rule", "is required"))
		return
	}
	p := authz.MustFrom(c)
	pv, err := h.segs.Preview(c.Request.Context(), p.MerchantID, req.Rule)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	ids := make([]uint64, len(pv.Sample))
	for i, m := range pv.Sample {
		ids[i] = m.ID
	}
	tags, err := store{h.svc.db}.tagIDsOf(c.Request.Context(), p.MerchantID, ids)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := previewView{Count: pv.Count, Sample: make([]memberItemView, len(pv.Sample)), CountedAt: h.segs.now()}
	for i, m := range pv.Sample {
		out.Sample[i] = memberItem(m, tags[m.ID], masked(p))
	}
	c.JSON(http.StatusOK, out)
}

type segmentView struct {
	ID          uint64          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Rule        json.RawMessage `json:"rule"`
	CachedCount *int64          `json:"cached_count"`
	CountedAt   *time.Time      `json:"counted_at"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

func viewOfSegment(s Segment) segmentView {
	return segmentView{ID: s.ID, Name: s.Name, Description: s.Description, Rule: json.RawMessage(s.Rule),
		CachedCount: s.CachedCount, CountedAt: s.CountedAt, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

func (h *SegmentHandler) list(c *gin.Context) {
	segs, err := h.segs.List(c.Request.Context(), authz.MustFrom(c).MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]segmentView, len(segs))
	for i, s := range segs {
		out[i] = viewOfSegment(s)
	}
	c.JSON(http.StatusOK, gin.H{"segments": out})
}

func (h *SegmentHandler) create(c *gin.Context) {
	var in SegmentInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	p := authz.MustFrom(c)
	seg, err := h.segs.Create(c.Request.Context(), p.MerchantID, p.StaffID, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, viewOfSegment(seg))
}

func (h *SegmentHandler) segmentID(c *gin.Context) (uint64, bool) {
	return httpx.PathID(c, "segment_id", ErrSegmentNotFound)
}

func (h *SegmentHandler) get(c *gin.Context) {
	id, ok := h.segmentID(c)
	if !ok {
		return
	}
	seg, err := h.segs.Get(c.Request.Context(), authz.MustFrom(c).MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOfSegment(seg))
}

func (h *SegmentHandler) update(c *gin.Context) {
	id, ok := h.segmentID(c)
	if !ok {
		return
	}
	var in SegmentInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	seg, err := h.segs.Update(c.Request.Context(), authz.MustFrom(c).MerchantID, id, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOfSegment(seg))
}

func (h *SegmentHandler) delete(c *gin.Context) {
	id, ok := h.segmentID(c)
	if !ok {
		return
	}
	if err := h.segs.Delete(c.Request.Context(), authz.MustFrom(c).MerchantID, id); err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (h *SegmentHandler) refresh(c *gin.Context) {
	id, ok := h.segmentID(c)
	if !ok {
		return
	}
	seg, err := h.segs.Refresh(c.Request.Context(), authz.MustFrom(c).MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOfSegment(seg))
}
