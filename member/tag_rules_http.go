package member

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// TagRuleHandler serves the auto-tagging routes.
type TagRuleHandler struct{ rules *TagRules }

// NewTagRuleHandler returns the auto-tagging handler.
func NewTagRuleHandler(rules *TagRules) *TagRuleHandler { return &TagRuleHandler{rules: rules} }

// Register adds the admin routes under the authenticated group, each
// scoped to the caller's merchant:
//
//	GET    /tag-rules                          members:read   the rules
//	POST   /tag-rules                          members:write  {"tag_id","rule","enabled"}: applied to every member at once
//	POST   /tag-rules/preview                  members:read   {"rule","tag_id"} → count, and what applying it would change
//	GET    /tag-rules/:rule_id                 members:read
//	PATCH  /tag-rules/:rule_id                 members:write  {"rule","enabled"}
//	DELETE /tag-rules/:rule_id                 members:write  the tag stays where it is
//	GET    /members/:member_id/tag-history     members:read   the member's tag gains and losses by rules
func (h *TagRuleHandler) Register(r gin.IRouter) {
	read, write := authz.Require(authz.MembersRead), authz.Require(authz.MembersWrite)
	r.GET("/tag-rules", read, h.list)
	r.POST("/tag-rules", write, h.create)
	r.POST("/tag-rules/preview", read, audit.ReadOnly, h.preview)
	r.GET("/tag-rules/:rule_id", read, h.get)
	r.PATCH("/tag-rules/:rule_id", write, h.update)
	r.DELETE("/tag-rules/:rule_id", write, h.delete)
	r.GET("/members/:member_id/tag-history", read, h.history)
}

func (h *TagRuleHandler) list(c *gin.Context) {
	if _, err := httpx.QueryOnly(c); err != nil {
		httpx.Fail(c, err)
		return
	}
	out, err := h.rules.List(c.Request.Context(), authz.MustFrom(c).MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"tag_rules": out})
}

func (h *TagRuleHandler) create(c *gin.Context) {
	var in TagRuleInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	p := authz.MustFrom(c)
	out, err := h.rules.Create(c.Request.Context(), p.MerchantID, p.StaffID, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, out)
}

func (h *TagRuleHandler) preview(c *gin.Context) {
	var in struct {
		TagID uint64          `json:"tag_id"`
		Rule  json.RawMessage `json:"rule"`
	}
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	out, err := h.rules.Preview(c.Request.Context(), authz.MustFrom(c).MerchantID, in.TagID, in.Rule)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (h *TagRuleHandler) get(c *gin.Context) {
	id, ok := httpx.PathID(c, "rule_id", errTagRuleNotFound)
	if !ok {
		return
	}
	out, err := h.rules.Get(c.Request.Context(), authz.MustFrom(c).MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (h *TagRuleHandler) update(c *gin.Context) {
	id, ok := httpx.PathID(c, "rule_id", errTagRuleNotFound)
	if !ok {
		return
	}
	var in TagRuleInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	out, err := h.rules.Update(c.Request.Context(), authz.MustFrom(c).MerchantID, id, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (h *TagRuleHandler) delete(c *gin.Context) {
	id, ok := httpx.PathID(c, "rule_id", errTagRuleNotFound)
	if !ok {
		return
	}
	if err := h.rules.Delete(c.Request.Context(), authz.MustFrom(c).MerchantID, id); err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (h *TagRuleHandler) history(c *gin.Context) {
	id, ok := httpx.PathID(c, "member_id", errMemberNotFound)
	if !ok {
		return
	}
	q, err := httpx.QueryOnly(c, "before", "limit")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	var before uint64
	if s := q.Get("before"); s != "" {
		if n, ok := httpx.ParseID(s); ok {
			before = n
		} else {
			v.Add("before", "must be a positive integer")
		}
	}
	limit := 50
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			v.Add("limit", "must be 1 to 200")
		}
		limit = n
	}
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	events, err := h.rules.History(c.Request.Context(), authz.MustFrom(c).MerchantID, id, before, limit)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	var next *uint64
	if len(events) == limit {
		next = &events[len(events)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"events": events, "next_before": next})
}
