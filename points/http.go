package points

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/member"
)

// Handler serves the points admin and member APIs.
type Handler struct {
	svc     *Service
	current func(*gin.Context) (merchantID, memberID uint64)
	codes   MemberCodes
}

// MemberCodes spends a member code (shown by the member at the till) on
// an order and names the member; member.Codes satisfies it.
type MemberCodes interface {
	Use(ctx context.Context, merchantID uint64, code, externalID string) (memberID uint64, err error)
}

// NewHandler returns the points HTTP handler.
func NewHandler(svc *Service) *Handler { return &Handler{svc: svc} }

// UseMemberCodes lets POST /orders name the buyer by a member code. Call
// before serving.
func (h *Handler) UseMemberCodes(c MemberCodes) { h.codes = c }

// RegisterAdmin adds the admin routes under r, the authenticated admin group
// (/api/admin/v1): every request carries an authz.Principal and every route
// names its permission first. Everything is scoped to the principal's
// merchant; an id of another merchant's member, order, tier, reward or
// redemption is "not found", like an id that does not exist (and a path id
// that is not a number).
//
//	GET    /orders                                 points:read   orders, newest first (?member_id=&from=&to=&cursor=&limit=)
//	POST   /orders                                 orders:write  record an order (idempotent by external_id; the buyer by member_id, openid, phone or member_code)
//	GET    /orders/:external_id                    points:read   an order with its refunds
//	POST   /orders/:external_id/refunds            orders:write  refund, full or partial (idempotent by refund_id)
//	GET    /points/rules                           points:read   current rules (?version= for a past one)
//	PUT    /points/rules                           points:write  replace the rules (a new version)
//	PATCH  /points/rules                           points:write  change some rules, keep the rest (a new version)
//	GET    /points/liability                       points:read   liability report (?from=YYYY-MM&to=YYYY-MM)
//	GET    /points/expiring                        points:read   members with points expiring soon (?days=&cursor=&limit=)
//	GET    /tiers                                  points:read   tiers
//	POST   /tiers                                  points:write  create a tier
//	GET    /tiers/:tier_id                         points:read   a tier
//	PATCH  /tiers/:tier_id                         points:write  change a tier
//	DELETE /tiers/:tier_id                         points:write  delete a tier no member holds
//	GET    /rewards                                points:read   rewards catalogue
//	POST   /rewards                                points:write  create a reward
//	GET    /rewards/:reward_id                     points:read   a reward
//	PATCH  /rewards/:reward_id                     points:write  change a reward
//	DELETE /rewards/:reward_id                     points:write  hide a reward
//	GET    /redemptions                            points:read   redemptions (?member_id=&cursor=&limit=)
//	GET    /redemptions/:redemption_id             points:read   a redemption
//	POST   /redemptions/:redemption_id/cancel      points:write  cancel, points returned {"reason"}
//	POST   /coupons/verify                         orders:write  verify (核销) a coupon at the till, once {"code","request_id","store"}
//	GET    /coupons                                points:read   coupons (?status=&member_id=&reward_id=&cursor=&limit=)
//	GET    /coupons/:code                          points:read   a coupon by its code
//	GET    /members/:member_id/points              points:read   balance, expiries, tier and ledger (?cursor=&limit=)
//	POST   /members/:member_id/points/adjustments  points:write  manual adjustment {"points","reason","request_id"}
func (h *Handler) RegisterAdmin(r gin.IRouter) {
	r.GET("/orders", authz.Require(authz.PointsRead), h.listOrders) // orders_list.go
	r.POST("/orders", authz.Require(authz.OrdersWrite), h.postOrder)
	r.GET("/orders/:external_id", authz.Require(authz.PointsRead), h.getOrder)
	r.POST("/orders/:external_id/refunds", authz.Require(authz.OrdersWrite), h.postRefund)
	r.GET("/points/rules", authz.Require(authz.PointsRead), h.getRules)
	r.PUT("/points/rules", authz.Require(authz.PointsWrite), h.putRules)
	r.PATCH("/points/rules", authz.Require(authz.PointsWrite), h.patchRules) // rules_patch.go
	r.GET("/points/liability", authz.Require(authz.PointsRead), h.liability)
	r.GET("/points/expiring", authz.Require(authz.PointsRead), h.expiring)
	catalogue[TierInput, Tier, tierView]{name: "tiers", param: "tier_id", notFound: errTierNotFound,
		list: h.svc.Tiers, get: h.svc.GetTier, save: h.svc.SaveTier, remove: h.svc.DeleteTier, view: viewTier}.register(r)
	catalogue[RewardInput, Reward, rewardView]{name: "rewards", param: "reward_id", notFound: errRewardNotFound,
		list: h.svc.Rewards, get: h.svc.GetReward, save: h.svc.SaveReward, remove: h.svc.DeleteReward, view: viewReward}.register(r)
	r.GET("/redemptions", authz.Require(authz.PointsRead), h.listRedemptions)
	r.GET("/redemptions/:redemption_id", authz.Require(authz.PointsRead), h.getRedemption)
	r.POST("/redemptions/:redemption_id/cancel", authz.Require(authz.PointsWrite), h.cancelRedemption)
	r.POST("/coupons/verify", authz.Require(authz.OrdersWrite), h.verifyCoupon) // coupons_http.go
	r.GET("/coupons", authz.Require(authz.PointsRead), h.listCoupons)
	r.GET("/coupons/:code", authz.Require(authz.PointsRead), h.getCoupon)
	r.GET("/members/:member_id/points", authz.Require(authz.PointsRead), h.memberPoints)
	r.POST("/members/:member_id/points/adjustments", authz.Require(authz.PointsWrite), h.adjust)
	r.POST("/members/:member_id/redemptions", authz.Require(authz.PointsWrite), h.redeemFor)
}

// RegisterMember adds the member routes under r (the /api group).
// requireMember authenticates the member token for the :merchant_id of the
// path (member.Handler's middleware); current returns the merchant and
// member it established.
//
//	GET  /member/v1/:merchant_id/points                     balance, held points, what expires when
//	GET  /member/v1/:merchant_id/points/history             ledger, newest first (?cursor=&limit=)
//	GET  /member/v1/:merchant_id/tier                       tier, benefits and progress
//	GET  /member/v1/:merchant_id/rewards                    rewards that can be redeemed now
//	POST /member/v1/:merchant_id/rewards/:reward_id/redeem  redeem {"request_id"} (idempotent)
//	GET  /member/v1/:merchant_id/redemptions                own redemptions (?cursor=&limit=)
//	GET  /member/v1/:merchant_id/coupons                    own coupons, newest first (?status=&cursor=&limit=)
//	POST /member/v1/:merchant_id/checkin                    daily check-in
func (h *Handler) RegisterMember(r gin.IRouter, requireMember gin.HandlerFunc, current func(*gin.Context) (merchantID, memberID uint64)) {
	h.current = current
	r.GET("/member/v1/:merchant_id/points", requireMember, h.mePoints)
	r.GET("/member/v1/:merchant_id/points/history", requireMember, h.meHistory)
	r.GET("/member/v1/:merchant_id/tier", requireMember, h.meTier)
	r.GET("/member/v1/:merchant_id/rewards", requireMember, h.meRewards)
	r.POST("/member/v1/:merchant_id/rewards/:reward_id/redeem", requireMember, h.meRedeem)
	r.GET("/member/v1/:merchant_id/redemptions", requireMember, h.meRedemptions)
	r.GET("/member/v1/:merchant_id/coupons", requireMember, h.meCoupons) // coupons_http.go
	r.POST("/member/v1/:merchant_id/checkin", requireMember, h.meCheckIn)
}

// ---- paths, queries, cursors ----

// createdUnlessReplayed is the status of an idempotent write: 201 the
// first time, 200 when the same request id or external id came again.
func createdUnlessReplayed(replayed bool) int {
	if replayed {
		return http.StatusOK
	}
	return http.StatusCreated
}

const (
	defaultPage = 20
	maxPage     = 100
	cursorTag   = "p"
)

func encodeCursor(id uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorTag + strconv.FormatUint(id, 10)))
}

// page reads ?cursor= and ?limit=.
func page(q url.Values) (before uint64, limit int, err error) {
	v := &apperr.Validation{}
	limit = defaultPage
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPage {
			v.Add("limit", "must be 1 to 100")
		}
		limit = n
	}
	if s := q.Get("cursor"); s != "" {
		raw, err := base64.RawURLEncoding.DecodeString(s)
		rest, ok := strings.CutPrefix(string(raw), cursorTag)
		id, idOK := httpx.ParseID(rest)
		if err != nil || !ok || !idOK || len(s) > 32 {
			v.Add("cursor", "is not a cursor from this list")
		}
		before = id
	}
	return before, limit, v.Err()
}

// nextCursor is the cursor after a full page whose last id is last.
func nextCursor(n, limit int, last uint64) *string {
	if n < limit {
		return nil
	}
	c := encodeCursor(last)
	return &c
}

// ---- views ----

type orderView struct {
	ID             uint64       `json:"id"`
	ExternalID     string       `json:"external_id"`
	MemberID       uint64       `json:"member_id"`
	AmountFen      int64        `json:"amount_fen"`
	RefundedFen    int64        `json:"refunded_fen"`
	Points         int64        `json:"points"`
	PointsReversed int64        `json:"points_reversed"`
	HoldUntil      *time.Time   `json:"hold_until"`
	ExpiresAt      *time.Time   `json:"expires_at"`
	RuleVersion    int          `json:"rule_version"`
	Earn           EarnDetail   `json:"earn"`
	CampaignID     *uint64      `json:"campaign_id"`
	Items          []Item       `json:"items"`
	OrderedAt      time.Time    `json:"ordered_at"`
	CreatedAt      time.Time    `json:"created_at"`
	Refunds        []refundView `json:"refunds"`
}

type refundView struct {
	RefundID         string    `json:"refund_id"`
	AmountFen        int64     `json:"amount_fen"`
	PointsReversed   int64     `json:"points_reversed"`
	PendingCancelled int64     `json:"pending_cancelled"`
	Reason           string    `json:"reason"`
	CreatedAt        time.Time `json:"created_at"`
}

func viewRefund(r Refund) refundView {
	return refundView{RefundID: r.RefundID, AmountFen: r.AmountFen, PointsReversed: r.PointsReversed,
		PendingCancelled: r.PendingCancelled, Reason: r.Reason, CreatedAt: r.CreatedAt}
}

func viewOrder(r OrderResult) orderView {
	o := r.Order
	v := orderView{ID: o.ID, ExternalID: o.ExternalID, MemberID: o.MemberID, AmountFen: o.AmountFen,
		RefundedFen: o.RefundedFen, Points: o.Points, PointsReversed: o.PointsReversed, HoldUntil: r.HoldUntil,
		ExpiresAt: r.ExpiresAt, RuleVersion: o.RuleVersion, Earn: r.Earn, CampaignID: o.CampaignID, Items: []Item{},
		OrderedAt: o.OrderedAt, CreatedAt: o.CreatedAt, Refunds: []refundView{}}
	if o.Items != nil {
		_ = json.Unmarshal([]byte(*o.Items), &v.Items)
	}
	for _, rf := range r.Refunds {
		v.Refunds = append(v.Refunds, viewRefund(rf))
	}
	return v
}

type tierView struct {
	ID            uint64    `json:"id"`
	Name          string    `json:"name"`
	Level         int       `json:"level"`
	Threshold     int64     `json:"threshold"`
	MultiplierPct int       `json:"multiplier_pct"`
	Benefits      []string  `json:"benefits"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func viewTier(t Tier) tierView {
	v := tierView{ID: t.ID, Name: t.Name, Level: t.Level, Threshold: t.Threshold, MultiplierPct: t.MultiplierPct,
		Benefits: []string{}, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
	_ = json.Unmarshal([]byte(t.Benefits), &v.Benefits)
	return v
}

func viewTierPtr(t *Tier) *tierView {
	if t == nil {
		return nil
	}
	v := viewTier(*t)
	return &v
}

type rewardView struct {
	ID             uint64     `json:"id"`
	Name           string     `json:"name"`
	Description    string     `json:"description"`
	Kind           string     `json:"kind"`
	PointsCost     int64      `json:"points_cost"`
	CashFen        int64      `json:"cash_fen"`
	Stock          *int64     `json:"stock"`
	StockLeft      *int64     `json:"stock_left"`
	PerMemberLimit int        `json:"per_member_limit"`
	ValidFrom      *time.Time `json:"valid_from"`
	ValidUntil     *time.Time `json:"valid_until"`
	CouponValid    int        `json:"coupon_valid_days"`
	Active         bool       `json:"active"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

func viewReward(r Reward) rewardView {
	return rewardView{ID: r.ID, Name: r.Name, Description: r.Description, Kind: r.Kind, PointsCost: r.PointsCost,
		CashFen: r.CashFen, Stock: r.StockTotal, StockLeft: r.StockLeft, PerMemberLimit: r.PerMemberLimit,
		ValidFrom: r.ValidFrom, ValidUntil: r.ValidUntil, CouponValid: r.CouponValidDays, Active: r.Active,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

type redemptionView struct {
	ID           uint64      `json:"id"`
	MemberID     uint64      `json:"member_id"`
	RewardID     uint64      `json:"reward_id"`
	RewardName   string      `json:"reward_name"`
	Points       int64       `json:"points"`
	CashFen      int64       `json:"cash_fen"`
	Code         *string     `json:"code"`
	Status       string      `json:"status"`
	CancelReason string      `json:"cancel_reason,omitempty"`
	CreatedAt    time.Time   `json:"created_at"`
	CancelledAt  *time.Time  `json:"cancelled_at"`
	Coupon       *couponView `json:"coupon"`
}

func viewRedemption(r Redemption) redemptionView {
	return redemptionView{ID: r.ID, MemberID: r.MemberID, RewardID: r.RewardID, RewardName: r.RewardName,
		Points: r.Points, CashFen: r.CashFen, Code: r.Code, Status: r.Status, CancelReason: r.CancelReason,
		CreatedAt: r.CreatedAt, CancelledAt: r.CancelledAt}
}

// redemptionViews returns the views of redemptions with their coupons.
func (h *Handler) redemptionViews(ctx context.Context, merchantID uint64, list ...Redemption) ([]redemptionView, error) {
	ids := make([]uint64, 0, len(list))
	for _, r := range list {
		if r.Code != nil {
			ids = append(ids, r.ID)
		}
	}
	coupons, err := h.svc.couponsOf(ctx, merchantID, ids)
	if err != nil {
		return nil, err
	}
	now := h.svc.now()
	out := make([]redemptionView, 0, len(list))
	for _, r := range list {
		v := viewRedemption(r)
		if c, ok := coupons[r.ID]; ok {
			cv := viewCoupon(c, now)
			v.Coupon = &cv
		}
		out = append(out, v)
	}
	return out, nil
}

// writeRedemption answers one redemption with its coupon: as the body, or
// under "redemption" in extra when extra is not nil.
func (h *Handler) writeRedemption(c *gin.Context, status int, merchantID uint64, r Redemption, extra gin.H) {
	views, err := h.redemptionViews(c.Request.Context(), merchantID, r)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	if extra == nil {
		c.JSON(status, views[0])
		return
	}
	extra["redemption"] = views[0]
	c.JSON(status, extra)
}

type tierStatusView struct {
	TierStatus
	Current *tierView `json:"current"`
	Next    *tierView `json:"next"`
}

func viewTierStatus(st TierStatus) tierStatusView {
	return tierStatusView{TierStatus: st, Current: viewTierPtr(st.Current), Next: viewTierPtr(st.Next)}
}

type ruleSetView struct {
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	Rules     Rules     `json:"rules"`
}

// ---- admin handlers ----

type orderRequest struct {
	ExternalID string     `json:"external_id"`
	MemberID   uint64     `json:"member_id"`
	OpenID     string     `json:"openid"`
	Phone      string     `json:"phone"`
	MemberCode string     `json:"member_code"`
	AmountFen  int64      `json:"amount_fen"`
	OrderedAt  *time.Time `json:"ordered_at"`
	Items      []Item     `json:"items"`
	CampaignID *uint64    `json:"campaign_id"`
}

func (h *Handler) postOrder(c *gin.Context) {
	p := authz.MustFrom(c)
	var req orderRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if req.MemberCode != "" {
		id, err := h.memberByCode(c.Request.Context(), p.MerchantID, req)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		req.MemberID = id
	}
	res, replayed, err := h.svc.RecordOrder(c.Request.Context(), p.MerchantID, OrderInput{ExternalID: req.ExternalID,
		Member:    member.BuyerRef{ID: req.MemberID, OpenID: req.OpenID, Phone: req.Phone},
		AmountFen: req.AmountFen, OrderedAt: req.OrderedAt, Items: req.Items, CampaignID: req.CampaignID})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(createdUnlessReplayed(replayed), gin.H{"order": viewOrder(res), "replayed": replayed})
}

// memberByCode spends an order's member code and returns the member it
// names. The code is the order's only member reference; it is spent only
// on an order whose external id is well formed.
func (h *Handler) memberByCode(ctx context.Context, merchantID uint64, req orderRequest) (uint64, error) {
	if req.MemberID != 0 || req.OpenID != "" || req.Phone != "" {
		return 0, apperr.Invalid("member_code", "give exactly one of member_id, openid, phone and member_code")
	}
	if h.codes == nil {
		return 0, apperr.Invalid("member_code", "member codes are not accepted by this service")
	}
	if !validID(req.ExternalID) {
		return 0, apperr.Invalid("external_id", "must be 1 to 64 visible ASCII characters, without / ? # % or \\")
	}
	return h.codes.Use(ctx, merchantID, req.MemberCode, req.ExternalID)
}

func (h *Handler) getOrder(c *gin.Context) {
	p := authz.MustFrom(c)
	res, err := h.svc.GetOrder(c.Request.Context(), p.MerchantID, c.Param("external_id"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOrder(res))
}

type refundRequest struct {
	RefundID  string `json:"refund_id"`
	AmountFen int64  `json:"amount_fen"`
	Reason    string `json:"reason"`
}

func (h *Handler) postRefund(c *gin.Context) {
	p := authz.MustFrom(c)
	var req refundRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	res, replayed, err := h.svc.Refund(c.Request.Context(), p.MerchantID, RefundInput{ExternalID: c.Param("external_id"),
		RefundID: req.RefundID, AmountFen: req.AmountFen, Reason: req.Reason})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(createdUnlessReplayed(replayed), gin.H{"refund": viewRefund(res.Refund), "order": viewOrder(res.Order), "replayed": replayed})
}

func (h *Handler) getRules(c *gin.Context) {
	p := authz.MustFrom(c)
	q, err := httpx.Query(c)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	var rs RuleSet
	if s := q.Get("version"); s != "" {
		n, perr := strconv.Atoi(s)
		if perr != nil || n < 0 {
			httpx.Fail(c, apperr.Invalid("version", "must be a version number"))
			return
		}
		rs, err = h.svc.RulesVersion(c.Request.Context(), p.MerchantID, n)
	} else {
		rs, err = h.svc.Rules(c.Request.Context(), p.MerchantID)
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, ruleSetView(rs))
}

func (h *Handler) putRules(c *gin.Context) {
	p := authz.MustFrom(c)
	r := DefaultRules()
	if err := httpx.BindJSON(c, &r); err != nil {
		httpx.Fail(c, err)
		return
	}
	rs, err := h.svc.SetRules(c.Request.Context(), p.MerchantID, r)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, ruleSetView(rs))
}

func (h *Handler) liability(c *gin.Context) {
	p := authz.MustFrom(c)
	q, err := httpx.Query(c)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	rep, err := h.svc.Liability(c.Request.Context(), p.MerchantID, q.Get("from"), q.Get("to"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rep)
}

func (h *Handler) expiring(c *gin.Context) {
	p := authz.MustFrom(c)
	q, err := httpx.Query(c)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	after, limit, err := page(q)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	var within time.Duration
	if s := q.Get("days"); s != "" {
		n, perr := strconv.Atoi(s)
		if perr != nil || n < 1 || n > maxExpiringSoonDays {
			httpx.Fail(c, apperr.Invalid("days", "must be 1 to 365"))
			return
		}
		within = time.Duration(n) * 24 * time.Hour
	}
	list, err := h.svc.ExpiringSoon(c.Request.Context(), p.MerchantID, within, after, limit)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	var last uint64
	if len(list) > 0 {
		last = list[len(list)-1].MemberID
	}
	c.JSON(http.StatusOK, gin.H{"members": list, "next_cursor": nextCursor(len(list), limit, last)})
}

// catalogue serves the admin routes of one kind of merchant-defined entry
// (tiers, rewards) under /<name>: list, create, read, update (PATCH) and
// delete, each scoped to the caller's merchant; V is T's JSON view.
type catalogue[In, T, V any] struct {
	name     string // the path and the list's JSON key
	param    string // the id's path parameter
	notFound error  // what a malformed id answers, like an unknown one
	list     func(ctx context.Context, merchantID uint64) ([]T, error)
	get      func(ctx context.Context, merchantID, id uint64) (T, error)
	save     func(ctx context.Context, merchantID, id uint64, in In) (T, error) // id 0 creates
	remove   func(ctx context.Context, merchantID, id uint64) error
	view     func(T) V
}

func (k catalogue[In, T, V]) register(r gin.IRouter) {
	one := "/" + k.name + "/:" + k.param
	r.GET("/"+k.name, authz.Require(authz.PointsRead), k.listAll)
	r.POST("/"+k.name, authz.Require(authz.PointsWrite), func(c *gin.Context) { k.write(c, 0) })
	r.GET(one, authz.Require(authz.PointsRead), k.read)
	r.PATCH(one, authz.Require(authz.PointsWrite), func(c *gin.Context) {
		if id, ok := httpx.PathID(c, k.param, k.notFound); ok {
			k.write(c, id)
		}
	})
	r.DELETE(one, authz.Require(authz.PointsWrite), k.delete)
}

func (k catalogue[In, T, V]) listAll(c *gin.Context) {
	p := authz.MustFrom(c)
	list, err := k.list(c.Request.Context(), p.MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]V, 0, len(list))
	for _, t := range list {
		out = append(out, k.view(t))
	}
	c.JSON(http.StatusOK, gin.H{k.name: out})
}

func (k catalogue[In, T, V]) write(c *gin.Context, id uint64) {
	p := authz.MustFrom(c)
	var in In
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	t, err := k.save(c.Request.Context(), p.MerchantID, id, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	status := http.StatusOK
	if id == 0 {
		status = http.StatusCreated
	}
	c.JSON(status, k.view(t))
}

func (k catalogue[In, T, V]) read(c *gin.Context) {
	p := authz.MustFrom(c)
	id, ok := httpx.PathID(c, k.param, k.notFound)
	if !ok {
		return
	}
	t, err := k.get(c.Request.Context(), p.MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, k.view(t))
}

func (k catalogue[In, T, V]) delete(c *gin.Context) {
	p := authz.MustFrom(c)
	id, ok := httpx.PathID(c, k.param, k.notFound)
	if !ok {
		return
	}
	if err := k.remove(c.Request.Context(), p.MerchantID, id); err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (h *Handler) listRedemptions(c *gin.Context) {
	p := authz.MustFrom(c)
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
	var memberID uint64
	if s := q.Get("member_id"); s != "" {
		var ok bool
		if memberID, ok = httpx.ParseID(s); !ok {
			httpx.Fail(c, apperr.Invalid("member_id", "must be a member id"))
			return
		}
	}
	h.writeRedemptions(c, p.MerchantID, memberID, before, limit)
}

func (h *Handler) writeRedemptions(c *gin.Context, merchantID, memberID, before uint64, limit int) {
	list, err := h.svc.Redemptions(c.Request.Context(), merchantID, memberID, before, limit)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out, err := h.redemptionViews(c.Request.Context(), merchantID, list...)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	var last uint64
	if len(list) > 0 {
		last = list[len(list)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"redemptions": out, "next_cursor": nextCursor(len(out), limit, last)})
}

func (h *Handler) getRedemption(c *gin.Context) {
	p := authz.MustFrom(c)
	id, ok := httpx.PathID(c, "redemption_id", errRedemptionNotFound)
	if !ok {
		return
	}
	r, err := h.svc.GetRedemption(c.Request.Context(), p.MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	h.writeRedemption(c, http.StatusOK, p.MerchantID, r, nil)
}

type cancelRequest struct {
	Reason string `json:"reason"`
}

func (h *Handler) cancelRedemption(c *gin.Context) {
	p := authz.MustFrom(c)
	id, ok := httpx.PathID(c, "redemption_id", errRedemptionNotFound)
	if !ok {
		return
	}
	var req cancelRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	r, err := h.svc.CancelRedemption(c.Request.Context(), p.MerchantID, id, req.Reason)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	h.writeRedemption(c, http.StatusOK, p.MerchantID, r, nil)
}

func (h *Handler) memberPoints(c *gin.Context) {
	p := authz.MustFrom(c)
	id, ok := httpx.PathID(c, "member_id", errNoMember)
	if !ok {
		return
	}
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
	ctx := c.Request.Context()
	b, err := h.svc.memberExists(ctx, p.MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	sum, err := h.svc.Summary(ctx, p.MerchantID, b.ID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	st, err := h.svc.TierStatus(ctx, p.MerchantID, b.ID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	entries, err := h.svc.History(ctx, p.MerchantID, b.ID, before, limit)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	var last uint64
	if len(entries) > 0 {
		last = entries[len(entries)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"summary": sum, "tier": viewTierStatus(st), "entries": entries,
		"next_cursor": nextCursor(len(entries), limit, last)})
}

type adjustRequest struct {
	Points    int64  `json:"points"`
	Reason    string `json:"reason"`
	RequestID string `json:"request_id"`
}

func (h *Handler) adjust(c *gin.Context) {
	p := authz.MustFrom(c)
	id, ok := httpx.PathID(c, "member_id", errNoMember)
	if !ok {
		return
	}
	var req adjustRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	e, replayed, err := h.svc.Adjust(c.Request.Context(), p.MerchantID, id,
		AdjustInput{Points: req.Points, Reason: req.Reason, RequestID: req.RequestID})
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(createdUnlessReplayed(replayed), gin.H{"entry": e, "replayed": replayed})
}

type redeemForRequest struct {
	RewardID  uint64 `json:"reward_id"`
	RequestID string `json:"request_id"`
}

func (h *Handler) redeemFor(c *gin.Context) {
	p := authz.MustFrom(c)
	id, ok := httpx.PathID(c, "member_id", errNoMember)
	if !ok {
		return
	}
	var req redeemForRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	r, replayed, err := h.svc.RedeemFor(c.Request.Context(), p.MerchantID, id, req.RewardID, req.RequestID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(createdUnlessReplayed(replayed), gin.H{"redemption": viewRedemption(r), "replayed": replayed})
}

// ---- member handlers ----

func (h *Handler) mePoints(c *gin.Context) {
	mid, id := h.current(c)
	ctx := c.Request.Context()
	if err := h.svc.settleBonuses(ctx, mid, id); err != nil {
		// The balance is still worth showing; the bonus comes next time.
		h.svc.log.WarnContext(ctx, "points: settle bonuses", "merchant_id", mid, "member_id", id, "error", err)
	}
	sum, err := h.svc.Summary(ctx, mid, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, sum)
}

func (h *Handler) meHistory(c *gin.Context) {
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
	entries, err := h.svc.History(c.Request.Context(), mid, id, before, limit)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	var last uint64
	if len(entries) > 0 {
		last = entries[len(entries)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"entries": entries, "next_cursor": nextCursor(len(entries), limit, last)})
}

func (h *Handler) meTier(c *gin.Context) {
	mid, id := h.current(c)
	st, err := h.svc.TierStatus(c.Request.Context(), mid, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewTierStatus(st))
}

func (h *Handler) meRewards(c *gin.Context) {
	mid, _ := h.current(c)
	list, err := h.svc.AvailableRewards(c.Request.Context(), mid)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]rewardView, 0, len(list))
	for _, r := range list {
		out = append(out, viewReward(r))
	}
	c.JSON(http.StatusOK, gin.H{"rewards": out})
}

type redeemRequest struct {
	RequestID string `json:"request_id"`
}

func (h *Handler) meRedeem(c *gin.Context) {
	mid, id := h.current(c)
	rewardID, ok := httpx.PathID(c, "reward_id", errRewardNotFound)
	if !ok {
		return
	}
	var req redeemRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	r, replayed, err := h.svc.Redeem(c.Request.Context(), mid, id, rewardID, req.RequestID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	h.writeRedemption(c, createdUnlessReplayed(replayed), mid, r, gin.H{"replayed": replayed})
}

func (h *Handler) meRedemptions(c *gin.Context) {
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
	h.writeRedemptions(c, mid, id, before, limit)
}

func (h *Handler) meCheckIn(c *gin.Context) {
	mid, id := h.current(c)
	res, err := h.svc.CheckIn(c.Request.Context(), mid, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(createdUnlessReplayed(res.AlreadyCheckedIn), res)
}
