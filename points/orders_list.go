package points

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// OrderFilter selects orders for the admin list. Zero values select
// everything: any member, any time.
type OrderFilter struct {
	MemberID uint64
	From, To time.Time // ordered_at in [From, To); zero: unbounded
	// After is the keyset position: orders strictly before it in the
	// list's order (ordered_at, id descending); zero: the first page.
	After OrderCursor
	Limit int
}

// OrderCursor is a position in the order list: the last order of a page.
type OrderCursor struct {
	OrderedAt time.Time
	ID        uint64
}

// ListOrders returns the merchant's orders, newest order time first (id
// breaks ties), filtered by f.
//
// The query walks idx_points_orders_list (merchant_id, ordered_at, id)
// backwards, or idx_points_orders_member (merchant_id, member_id,
// ordered_at, + the primary key) with a member: the keyset condition
// continues the walk where the previous page stopped, so a page reads
// about Limit rows whatever its depth.
func (s *Service) ListOrders(ctx context.Context, merchantID uint64, f OrderFilter) ([]Order, error) {
	q := s.db.WithContext(ctx).Where("merchant_id = ?", merchantID)
	if f.MemberID != 0 {
		q = q.Where("member_id = ?", f.MemberID)
	}
	if !f.From.IsZero() {
		q = q.Where("ordered_at >= ?", f.From.UTC())
	}
	if !f.To.IsZero() {
		q = q.Where("ordered_at < ?", f.To.UTC())
	}
	if f.After.ID != 0 {
		at := f.After.OrderedAt.UTC()
		q = q.Where("(ordered_at < ? OR (ordered_at = ? AND id < ?))", at, at, f.After.ID)
	}
	var out []Order
	if err := q.Order("ordered_at DESC, id DESC").Limit(f.Limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("points: list orders: %w", err)
	}
	return out, nil
}

// orderListItem is an order as the list shows it: the order's own
// figures, without the earning detail and refunds of GET /orders/{id}.
type orderListItem struct {
	ID             uint64    `json:"id"`
	ExternalID     string    `json:"external_id"`
	MemberID       uint64    `json:"member_id"`
	AmountFen      int64     `json:"amount_fen"`
	RefundedFen    int64     `json:"refunded_fen"`
	Points         int64     `json:"points"`
	PointsReversed int64     `json:"points_reversed"`
	RuleVersion    int       `json:"rule_version"`
	CampaignID     *uint64   `json:"campaign_id"`
	OrderedAt      time.Time `json:"ordered_at"`
	CreatedAt      time.Time `json:"created_at"`
}

// orderCursorTag marks order-list cursors, so a cursor of another list
// (an id-only points cursor) is refused rather than misread.
const orderCursorTag = "o"

func encodeOrderCursor(c OrderCursor) string {
	raw := orderCursorTag + strconv.FormatInt(c.OrderedAt.UnixNano(), 10) + "." + strconv.FormatUint(c.ID, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeOrderCursor(s string) (OrderCursor, bool) {
	if len(s) > 64 {
		return OrderCursor{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return OrderCursor{}, false
	}
	rest, ok := strings.CutPrefix(string(raw), orderCursorTag)
	nanos, idText, ok2 := strings.Cut(rest, ".")
	ns, err := strconv.ParseInt(nanos, 10, 64)
	id, idOK := httpx.ParseID(idText)
	if !ok || !ok2 || err != nil || !idOK {
		return OrderCursor{}, false
	}
	return OrderCursor{OrderedAt: time.Unix(0, ns).UTC(), ID: id}, true
}

// listOrders serves GET /orders: ?member_id=, ?from=/?to= (merchant-local
// dates, both included), ?cursor=, ?limit= (1-100, default 20).
func (h *Handler) listOrders(c *gin.Context) {
	p := authz.MustFrom(c)
	q, err := httpx.QueryOnly(c, "member_id", "from", "to", "cursor", "limit")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	for k, vs := range q {
		if len(vs) > 1 {
			httpx.Fail(c, apperr.Invalid(k, "is given more than once"))
			return
		}
	}
	ctx := c.Request.Context()
	loc, err := h.svc.location(ctx, p.MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	f := OrderFilter{Limit: defaultPage}
	v := &apperr.Validation{}
	if s := q.Get("member_id"); s != "" {
		id, ok := httpx.ParseID(s)
		if !ok {
			v.Add("member_id", fmt.Sprintf("must be a whole number from 1 to %d", uint64(httpx.MaxID)))
		}
		f.MemberID = id
	}
	day := func(name string) time.Time {
		s := q.Get(name)
		if s == "" {
			return time.Time{}
		}
		d, err := time.ParseInLocation(time.DateOnly, s, loc)
		if err != nil || d.Year() < 2000 || d.Year() > 2100 {
			v.Add(name, "must be a date YYYY-MM-DD (2000-01-01 to 2100-12-31)")
			return time.Time{}
		}
		return d
	}
	from, to := day("from"), day("to")
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		v.Add("to", "must not be before from")
	}
	f.From = from
	if !to.IsZero() {
		f.To = to.AddDate(0, 0, 1) // to is included: up to its next local midnight
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPage {
			v.Add("limit", "must be 1 to 100")
		}
		f.Limit = n
	}
	if s := q.Get("cursor"); s != "" {
		cur, ok := decodeOrderCursor(s)
		if !ok {
			v.Add("cursor", "is not a cursor from this list")
		}
		f.After = cur
	}
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	list, err := h.svc.ListOrders(ctx, p.MerchantID, f)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]orderListItem, 0, len(list))
	for _, o := range list {
		out = append(out, orderListItem{ID: o.ID, ExternalID: o.ExternalID, MemberID: o.MemberID, AmountFen: o.AmountFen,
			RefundedFen: o.RefundedFen, Points: o.Points, PointsReversed: o.PointsReversed, RuleVersion: o.RuleVersion,
			CampaignID: o.CampaignID, OrderedAt: o.OrderedAt, CreatedAt: o.CreatedAt})
	}
	var next *string
	if len(list) == f.Limit {
		last := list[len(list)-1]
		s := encodeOrderCursor(OrderCursor{OrderedAt: last.OrderedAt, ID: last.ID})
		next = &s
	}
	c.JSON(http.StatusOK, gin.H{"orders": out, "next_cursor": next})
}
