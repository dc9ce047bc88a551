package member

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// AdminHandler serves the merchant admin API of members and tags.
type AdminHandler struct {
	svc *Service
	o   AdminOptions
}

// AdminOptions tune the admin handler.
type AdminOptions struct {
	ExportBatch int // members per query of the CSV export; DefaultExportBatch when 0
	// ExportWriteWindow is how long one write of the CSV export may take
	// (the client not reading) before the export is aborted;
	// DefaultExportWriteWindow when 0.
	ExportWriteWindow time.Duration
	// Codes checks member codes (POST /member-codes/resolve); nil leaves
	// the route out.
	Codes *Codes
}

// DefaultExportWriteWindow is the export's default write window: the
// server's write timeout, now applied per write instead of to the whole
// response.
const DefaultExportWriteWindow = 60 * time.Second

// exportRowsTrailer is the HTTP trailer a complete export ends with: the
// number of members in it. An export that fails after its first bytes has
// none, and its connection is aborted.
const exportRowsTrailer = "X-Export-Rows"

// NewAdminHandler returns the admin handler of members and tags.
func NewAdminHandler(svc *Service, o AdminOptions) *AdminHandler {
	return &AdminHandler{svc: svc, o: o}
}

// Register adds the routes under r, the authenticated admin group
// (/api/admin/v1): every request carries an authz.Principal, and every
// route names its permission first. Everything is scoped to the principal's
// merchant; another merchant's member or tag is "not found".
//
//	GET    /members                            members:read    list (filters, keyset pages)
//	GET    /members/export.csv                 members:export  CSV of the filtered list
//	GET    /members/lookup                     members:read    the member with an openid, unionid or phone
//	POST   /member-codes/resolve               members:read    the member a member code names {"member_code"}
//	GET    /members/:member_id                 members:read    detail
//	PATCH  /members/:member_id                 members:write   edit remark, name, gender, birthday, phone, tags
//	GET    /members/:member_id/privacy-export  privacy:manage  everything stored about the member (PIPL)
//	POST   /members/:member_id/erase           privacy:manage  erase personal data (PIPL)
//	GET    /members/:member_id/stage-history   members:read    lifecycle stage transitions (stage_history.go)
//	GET    /tags                               members:read    tags with member counts
//	POST   /tags                               members:write   create {"name","color"}
//	PATCH  /tags/:tag_id                       members:write   rename, recolour
//	DELETE /tags/:tag_id                       members:write   delete with its assignments
//	POST   /tags/:tag_id/assign                members:write   {"member_ids":[...]} (at most 1000)
//	POST   /tags/:tag_id/unassign              members:write   {"member_ids":[...]}
func (h *AdminHandler) Register(r gin.IRouter) {
	r.GET("/members", authz.Require(authz.MembersRead), h.list)
	r.GET("/members/export.csv", authz.Require(authz.MembersExport), h.export)
	r.GET("/members/lookup", authz.Require(authz.MembersRead), h.lookup) // lookup.go
	if h.o.Codes != nil {
		r.POST("/member-codes/resolve", authz.Require(authz.MembersRead), h.resolveCode) // code_http.go
	}
	r.GET("/members/:member_id", authz.Require(authz.MembersRead), h.detail)
	r.PATCH("/members/:member_id", authz.Require(authz.MembersWrite), h.update)
	r.GET("/members/:member_id/privacy-export", authz.Require(authz.PrivacyManage), h.privacyExport)
	r.POST("/members/:member_id/erase", authz.Require(authz.PrivacyManage), h.erase)
	r.GET("/members/:member_id/stage-history", authz.Require(authz.MembersRead), h.stageHistory)
	r.GET("/tags", authz.Require(authz.MembersRead), h.tags)
	r.POST("/tags", authz.Require(authz.MembersWrite), h.createTag)
	r.PATCH("/tags/:tag_id", authz.Require(authz.MembersWrite), h.updateTag)
	r.DELETE("/tags/:tag_id", authz.Require(authz.MembersWrite), h.deleteTag)
	r.POST("/tags/:tag_id/assign", authz.Require(authz.MembersWrite), h.assign)
	r.POST("/tags/:tag_id/unassign", authz.Require(authz.MembersWrite), h.unassign)
}

// masked reports whether the caller sees phone numbers masked: staff with
// the viewer role.
func masked(p authz.Principal) bool { return p.IsStaff() && p.Role == authz.RoleViewer }

// PhoneFor is the phone number as the caller may see it: masked for staff
// with the viewer role, as in the member lists. Other features' lists that
// show members use it.
func PhoneFor(p authz.Principal, phone *string) *string { return maskedPhone(phone, masked(p)) }

func maskedPhone(phone *string, mask bool) *string {
	if phone == nil || !mask {
		return phone
	}
	m := MaskPhone(*phone)
	return &m
}

// listFilter parses the filters and adapts them to the caller: someone who
// sees masked phone numbers may only search whole numbers.
func listFilter(c *gin.Context, p authz.Principal, parse func(url.Values) (MemberFilter, error)) (MemberFilter, error) {
	q, err := httpx.Query(c)
	if err != nil {
		return MemberFilter{}, err
	}
	f, err := parse(q)
	if err != nil {
		return MemberFilter{}, err
	}
	f.PhoneExact = masked(p)
	return f, nil
}

type memberItemView struct {
	ID                uint64     `json:"id"`
	Name              string     `json:"name"`
	Phone             *string    `json:"phone"`
	Gender            string     `json:"gender"`
	Birthday          *DateInput `json:"birthday"`
	FollowStatus      string     `json:"follow_status"`
	ChannelScene      *string    `json:"channel_scene"`
	Stage             string     `json:"stage"`
	TierID            *uint64    `json:"tier_id"`
	TagIDs            []uint64   `json:"tag_ids"`
	Remark            string     `json:"remark"`
	LastInteractionAt *time.Time `json:"last_interaction_at"`
	CreatedAt         time.Time  `json:"created_at"`
}

type memberPageView struct {
	Members    []memberItemView `json:"members"`
	NextCursor *string          `json:"next_cursor"`
}

// memberItem is a member as lists show it (phone masked when mask).
func memberItem(m Member, tags []uint64, mask bool) memberItemView {
	if tags == nil {
		tags = []uint64{}
	}
	return memberItemView{ID: m.ID, Name: m.Name, Phone: maskedPhone(m.Phone, mask),
		Gender: m.Gender.String(), Birthday: birthdayOf(m), FollowStatus: m.FollowStatus,
		ChannelScene: m.ChannelScene, Stage: m.LifecycleStage, TierID: m.TierID, TagIDs: tags,
		Remark: m.Remark, LastInteractionAt: m.LastInteractionAt, CreatedAt: m.CreatedAt}
}

func birthdayOf(m Member) *DateInput {
	if m.BirthdayMonth == nil || m.BirthdayDay == nil {
		return nil
	}
	return &DateInput{Month: *m.BirthdayMonth, Day: *m.BirthdayDay, Year: m.BirthdayYear}
}

func (h *AdminHandler) list(c *gin.Context) {
	p := authz.MustFrom(c)
	f, err := listFilter(c, p, ParseMemberFilter)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	page, err := h.svc.ListMembers(c.Request.Context(), p.MerchantID, f)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, pageView(page, masked(p)))
}

// pageView is a page of members as the lists show it.
func pageView(page MemberPage, mask bool) memberPageView {
	out := memberPageView{Members: make([]memberItemView, len(page.Members))}
	for i, lm := range page.Members {
		out.Members[i] = memberItem(lm.Member, lm.TagIDs, mask)
	}
	if page.NextCursor != "" {
		out.NextCursor = &page.NextCursor
	}
	return out
}

func (h *AdminHandler) export(c *gin.Context) {
	p := authz.MustFrom(c)
	f, err := listFilter(c, p, ParseExportFilter)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	streamExport(c, h.svc, h.o, p, f, "members-")
}

// streamExport answers with the CSV export of the members f selects, named
// <prefix><UTC time>.csv (the members export and a segment's).
func streamExport(c *gin.Context, svc *Service, o AdminOptions, p authz.Principal, f MemberFilter, prefix string) {
	started := false
	begin := func() {
		started = true
		name := prefix + svc.now().UTC().Format("20060102-150405") + ".csv"
		c.Header("Content-Type", "text/csv; charset=utf-8")
		c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
		c.Header("Cache-Control", "no-store")
		c.Header("Trailer", exportRowsTrailer)
		c.Status(http.StatusOK)
	}
	window := o.ExportWriteWindow
	if window <= 0 {
		window = DefaultExportWriteWindow
	}
	w := exportWriter{w: c.Writer, rc: http.NewResponseController(c.Writer), window: window}
	n, err := svc.ExportCSV(c.Request.Context(), p.MerchantID, f,
		ExportOptions{MaskPhones: masked(p), BatchSize: o.ExportBatch, Begin: begin}, w)
	if err == nil {
		c.Writer.Header().Set(exportRowsTrailer, strconv.FormatInt(n, 10))
		return
	}
	if !started {
		httpx.Fail(c, err)
		return
	}
	// The status line and part of the file are sent: the error can only be
	// logged. Aborting the connection (instead of ending the response
	// normally) leaves the chunked body without its last chunk and the
	// trailer, so the client sees a failed download rather than a CSV that
	// looks complete.
	httpx.Logger(c).ErrorContext(c.Request.Context(), "member export failed after it started",
		"merchant_id", p.MerchantID, "rows_written", n, "error", err)
	panic(http.ErrAbortHandler)
}

// exportWriter is the response writer of a CSV export. Before each write
// and flush it moves the connection's write deadline window ahead: the
// server's write timeout is a deadline for the whole response, which would
// cut a large export to a slow but steadily reading client (the client
// already holding a 200 and part of the file); with it, the timeout bounds
// a stall instead. (The read timeout needs nothing: net/http clears the
// read deadline once the request is read.) Deadlines are wall-clock times,
// as the connection's are.
type exportWriter struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	window time.Duration
}

func (e exportWriter) extend() error {
	err := e.rc.SetWriteDeadline(time.Now().Add(e.window))
	if err != nil && !errors.Is(err, http.ErrNotSupported) { // no connection (a recorder in tests)
		return fmt.Errorf("member: export: extend deadline: %w", err)
	}
	return nil
}

func (e exportWriter) Write(p []byte) (int, error) {
	if err := e.extend(); err != nil {
		return 0, err
	}
	return e.w.Write(p)
}

// Flush implements http.Flusher: ExportCSV flushes after every batch. A
// failure shows in the next write (or ends the response without its
// terminating chunk).
func (e exportWriter) Flush() {
	if e.extend() == nil {
		_ = e.rc.Flush()
	}
}

// memberDetailView is the admin detail: the member's own profile view plus
// the merchant-side fields.
type memberDetailView struct {
	profileView
	Remark            string     `json:"remark"`
	Stage             string     `json:"stage"`
	TierID            *uint64    `json:"tier_id"`
	Tags              []tagView  `json:"tags"`
	LastInteractionAt *time.Time `json:"last_interaction_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
	ErasedAt          *time.Time `json:"erased_at"`
}

type tagView struct {
	ID        uint64    `json:"id"`
	Name      string    `json:"name"`
	Color     string    `json:"color"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type tagCountView struct {
	tagView
	MemberCount int64 `json:"member_count"`
}

func tagViewOf(t Tag) tagView {
	return tagView{ID: t.ID, Name: t.Name, Color: t.Color, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

func detailView(d Detail, mask bool) memberDetailView {
	m := d.Member
	v := memberDetailView{profileView: viewOf(d.Profile), Remark: m.Remark, Stage: m.LifecycleStage,
		TierID: m.TierID, Tags: []tagView{}, LastInteractionAt: m.LastInteractionAt, UpdatedAt: m.UpdatedAt,
		ErasedAt: m.ErasedAt}
	v.Phone = maskedPhone(v.Phone, mask)
	for _, t := range d.Tags {
		v.Tags = append(v.Tags, tagViewOf(t))
	}
	return v
}

func (h *AdminHandler) detail(c *gin.Context) {
	p := authz.MustFrom(c)
	id, ok := httpx.PathID(c, "member_id", errMemberNotFound)
	if !ok {
		return
	}
	d, err := h.svc.Detail(c.Request.Context(), p.MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, detailView(d, masked(p)))
}

func (h *AdminHandler) update(c *gin.Context) {
	p := authz.MustFrom(c)
	id, ok := httpx.PathID(c, "member_id", errMemberNotFound)
	if !ok {
		return
	}
	var u AdminUpdate
	if err := httpx.BindJSON(c, &u); err != nil {
		httpx.Fail(c, err)
		return
	}
	d, err := h.svc.UpdateByStaff(c.Request.Context(), p.MerchantID, id, u)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, detailView(d, masked(p)))
}

func (h *AdminHandler) privacyExport(c *gin.Context) {
	p := authz.MustFrom(c)
	id, ok := httpx.PathID(c, "member_id", errMemberNotFound)
	if !ok {
		return
	}
	doc, err := h.svc.PrivacyExport(c.Request.Context(), p.MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, doc)
}

type erasureView struct {
	MemberID      uint64    `json:"member_id"`
	ErasedAt      time.Time `json:"erased_at"`
	AlreadyErased bool      `json:"already_erased"`
	ErasedFields  []string  `json:"erased_fields"`
}

func (h *AdminHandler) erase(c *gin.Context) {
	p := authz.MustFrom(c)
	id, ok := httpx.PathID(c, "member_id", errMemberNotFound)
	if !ok {
		return
	}
	e, err := h.svc.Erase(c.Request.Context(), p.MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	fields := e.Fields
	if fields == nil {
		fields = []string{}
	}
	c.JSON(http.StatusOK, erasureView{MemberID: e.MemberID, ErasedAt: e.ErasedAt, AlreadyErased: e.AlreadyErased,
		ErasedFields: fields})
}

func (h *AdminHandler) tags(c *gin.Context) {
	p := authz.MustFrom(c)
	tags, err := h.svc.Tags(c.Request.Context(), p.MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]tagCountView, len(tags))
	for i, t := range tags {
		out[i] = tagCountView{tagView: tagViewOf(t.Tag), MemberCount: t.Members}
	}
	c.JSON(http.StatusOK, gin.H{"tags": out})
}

func (h *AdminHandler) createTag(c *gin.Context) {
	p := authz.MustFrom(c)
	var in TagInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	t, err := h.svc.CreateTag(c.Request.Context(), p.MerchantID, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, tagViewOf(t))
}

func (h *AdminHandler) updateTag(c *gin.Context) {
	p := authz.MustFrom(c)
	id, ok := httpx.PathID(c, "tag_id", errTagNotFound)
	if !ok {
		return
	}
	var in TagInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	t, err := h.svc.UpdateTag(c.Request.Context(), p.MerchantID, id, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, tagViewOf(t))
}

func (h *AdminHandler) deleteTag(c *gin.Context) {
	p := authz.MustFrom(c)
	id, ok := httpx.PathID(c, "tag_id", errTagNotFound)
	if !ok {
		return
	}
	if err := h.svc.DeleteTag(c.Request.Context(), p.MerchantID, id); err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

type bulkRequest struct {
	MemberIDs []uint64 `json:"member_ids"`
}

func (h *AdminHandler) assign(c *gin.Context)   { h.bulk(c, h.svc.AssignTag) }
func (h *AdminHandler) unassign(c *gin.Context) { h.bulk(c, h.svc.UnassignTag) }

func (h *AdminHandler) bulk(c *gin.Context, do func(ctx context.Context, merchantID, tagID uint64, ids []uint64) (BulkResult, error)) {
	p := authz.MustFrom(c)
	id, ok := httpx.PathID(c, "tag_id", errTagNotFound)
	if !ok {
		return
	}
	var req bulkRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	res, err := do(c.Request.Context(), p.MerchantID, id, req.MemberIDs)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}
