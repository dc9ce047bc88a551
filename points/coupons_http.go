package points

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/member"
)

// couponView is a coupon as staff and its member see it. status is the
// effective one: an issued coupon past its expiry shows expired at once.
type couponView struct {
	ID           uint64     `json:"id"`
	Code         string     `json:"code"`
	MemberID     uint64     `json:"member_id"`
	RedemptionID uint64     `json:"redemption_id"`
	RewardID     uint64     `json:"reward_id"`
	RewardName   string     `json:"reward_name"`
	Status       string     `json:"status"`
	ExpiresAt    time.Time  `json:"expires_at"`
	UsedAt       *time.Time `json:"used_at"`
	UsedStore    string     `json:"used_store"`
	UsedBy       string     `json:"used_by"`
	CreatedAt    time.Time  `json:"created_at"`
}

func viewCoupon(c Coupon, now time.Time) couponView {
	return couponView{ID: c.ID, Code: c.Code, MemberID: c.MemberID, RedemptionID: c.RedemptionID, RewardID: c.RewardID,
		RewardName: c.RewardName, Status: string(c.EffectiveStatus(now)), ExpiresAt: c.ExpiresAt, UsedAt: c.UsedAt,
		UsedStore: c.UsedStore, UsedBy: c.UsedBy, CreatedAt: c.CreatedAt}
}

type verifyRequest struct {
	Code      string `json:"code"`
	RequestID string `json:"request_id"`
	Store     string `json:"store"`
}

// verifyCoupon serves POST /coupons/verify: 201 when this request used
// the coupon, 200 when it repeats the request that did.
func (h *Handler) verifyCoupon(c *gin.Context) {
	p := authz.MustFrom(c)
	var req verifyRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	cp, replayed, err := h.svc.VerifyCoupon(c.Request.Context(), p.MerchantID,
		VerifyInput{Code: req.Code, RequestID: req.RequestID, Store: req.Store})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(createdUnlessReplayed(replayed), gin.H{"coupon": viewCoupon(cp, h.svc.now()), "replayed": replayed})
}

func (h *Handler) getCoupon(c *gin.Context) {
	p := authz.MustFrom(c)
	cp, err := h.svc.CouponByCode(c.Request.Context(), p.MerchantID, c.Param("code"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewCoupon(cp, h.svc.now()))
}

// meCoupons serves GET /member/v1/:merchant_id/coupons: the member's
// coupons newest first, optionally of one (effective) status.
func (h *Handler) meCoupons(c *gin.Context) {
	mid, id := h.current(c)
	q, err := httpx.Query(c)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	before, limit, err := page(q)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	status, err := couponStatus(q.Get("status"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	list, err := h.svc.MemberCoupons(c.Request.Context(), mid, id, status, before, limit)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	h.couponPage(c, list, limit)
}

// listCoupons serves GET /coupons (points:read): the merchant's coupons
// newest first, by member, reward and effective status.
func (h *Handler) listCoupons(c *gin.Context) {
	p := authz.MustFrom(c)
	q, err := httpx.QueryOnly(c, "status", "member_id", "reward_id", "cursor", "limit")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	before, limit, err := page(q)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	var f CouponFilter
	if f.Status, err = couponStatus(q.Get("status")); err != nil {
		v.Add("status", "must be issued, used, expired or cancelled")
	}
	for name, dst := range map[string]*uint64{"member_id": &f.MemberID, "reward_id": &f.RewardID} {
		if s := q.Get(name); s != "" {
			id, ok := httpx.ParseID(s)
			if !ok {
				v.Add(name, "must be a whole number from 1")
			}
			*dst = id
		}
	}
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	list, err := h.svc.Coupons(c.Request.Context(), p.MerchantID, f, before, limit)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	ids := make([]uint64, 0, len(list))
	for _, cp := range list {
		ids = append(ids, cp.MemberID)
	}
	who, err := h.svc.couponMembers(c.Request.Context(), p.MerchantID, ids)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	now := h.svc.now()
	out := make([]couponListView, 0, len(list))
	var last uint64
	for _, cp := range list {
		m := who[cp.MemberID]
		out = append(out, couponListView{couponView: viewCoupon(cp, now), MemberName: m.Name, MemberPhone: member.PhoneFor(p, m.Phone)})
		last = cp.ID
	}
	c.JSON(http.StatusOK, gin.H{"coupons": out, "next_cursor": nextCursor(len(out), limit, last)})
}

// couponListView is a coupon in the staff's list: with its member's name
// and phone (masked as the member lists mask it), so the list names people.
type couponListView struct {
	couponView
	MemberName  string  `json:"member_name"`
	MemberPhone *string `json:"member_phone"`
}

func couponStatus(s string) (CouponStatus, error) {
	switch st := CouponStatus(s); st {
	case "", CouponIssued, CouponUsed, CouponExpired, CouponCancelled:
		return st, nil
	}
	return "", apperr.Invalid("status", "must be issued, used, expired or cancelled")
}

// couponPage answers a page of coupons with the cursor of the next.
func (h *Handler) couponPage(c *gin.Context, list []Coupon, limit int) {
	now := h.svc.now()
	out := make([]couponView, 0, len(list))
	var last uint64
	for _, cp := range list {
		out = append(out, viewCoupon(cp, now))
		last = cp.ID
	}
	c.JSON(http.StatusOK, gin.H{"coupons": out, "next_cursor": nextCursor(len(out), limit, last)})
}
