package points

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/member"
)

// Limits of order input.
const (
	// MaxAmountFen bounds an order or refund amount: 10^12 fen (10 billion
	// yuan) is far beyond any real order and keeps every sum far from
	// overflow.
	MaxAmountFen = 1_000_000_000_000
	maxItems     = 200
	// orderFutureSkew is how far in the future an order time may be (POS
	// clocks drift); orderMaxAge how far in the past.
	orderFutureSkew = 5 * time.Minute
	orderMaxAge     = 366 * 24 * time.Hour
)

// Item is one line of an order (optional; kept for reports and segments).
type Item struct {
	SKU      string `json:"sku"`
	Name     string `json:"name"`
	Category string `json:"category"`
	Quantity int64  `json:"quantity"`
	PriceFen int64  `json:"price_fen"`
}

// OrderInput is an order posted by a shop or POS.
type OrderInput struct {
	ExternalID string
	Member     member.BuyerRef
	AmountFen  int64
	OrderedAt  *time.Time // default: now
	Items      []Item
	CampaignID *uint64 // the campaign that brought the order, if the shop knows it (one of the merchant's)
}

// UseCampaigns sets how order campaign ids are checked. Without it an order
// naming a campaign is refused: an id that cannot be checked is not
// stored. Call before serving.
func (s *Service) UseCampaigns(c Campaigns) { s.campaigns = c }

// checkCampaign refuses a campaign id that is not one of the merchant's
// campaigns (another merchant's is "not a campaign", as one that does not
// exist), so campaign reports never count an order attributed by mistake
// or on purpose to someone else's campaign.
func (s *Service) checkCampaign(ctx context.Context, merchantID uint64, id *uint64) error {
	if id == nil {
		return nil
	}
	unknown := apperr.Invalid("campaign_id", "is not a campaign of this merchant")
	if s.campaigns == nil {
		return unknown
	}
	ok, err := s.campaigns.CampaignExists(ctx, merchantID, *id)
	if err != nil {
		return fmt.Errorf("points: campaign %d: %w", *id, err)
	}
	if !ok {
		return unknown
	}
	return nil
}

func (in OrderInput) validate(now time.Time) error {
	v := &apperr.Validation{}
	if !validID(in.ExternalID) {
		v.Add("external_id", "must be 1 to 64 visible ASCII characters, without / ? # % or \\")
	}
	refs := 0
	if in.Member.ID != 0 {
		refs++
	}
	if in.Member.OpenID != "" {
		refs++
		if len(in.Member.OpenID) > 64 {
			v.Add("openid", "must be at most 64 characters")
		}
	}
	if in.Member.Phone != "" {
		refs++
		if _, ok := member.NormalizePhone(in.Member.Phone); !ok {
			v.Add("phone", "must be an 11-digit mainland number (an optional +86 is accepted) or +<country code><number>")
		}
	}
	if refs != 1 {
		v.Add("member_id", "exactly one of member_id, openid and phone is required")
	}
	switch {
	case in.AmountFen <= 0:
		v.Add("amount_fen", "must be a positive whole number of fen")
	case in.AmountFen > MaxAmountFen:
		v.Add("amount_fen", fmt.Sprintf("must be at most %d", int64(MaxAmountFen)))
	}
	if in.OrderedAt != nil {
		switch {
		case in.OrderedAt.After(now.Add(orderFutureSkew)):
			v.Add("ordered_at", "is in the future")
		case in.OrderedAt.Before(now.Add(-orderMaxAge)):
			v.Add("ordered_at", "is more than a year ago")
		}
	}
	if len(in.Items) > maxItems {
		v.Add("items", fmt.Sprintf("must have at most %d entries", maxItems))
	}
	for i, it := range in.Items {
		f := fmt.Sprintf("items[%d]", i)
		if utf8.RuneCountInString(it.SKU) > 64 || utf8.RuneCountInString(it.Name) > 128 || utf8.RuneCountInString(it.Category) > 64 {
			v.Add(f, "sku and category must be at most 64 characters, name at most 128")
		}
		if it.Quantity < 1 || it.Quantity > 1_000_000 {
			v.Add(f+".quantity", "must be 1 to 1000000")
		}
		if it.PriceFen < 0 || it.PriceFen > MaxAmountFen {
			v.Add(f+".price_fen", "must be 0 to 10^12")
		}
	}
	if in.CampaignID != nil && *in.CampaignID == 0 {
		v.Add("campaign_id", "must be a positive id")
	}
	return v.Err()
}

// OrderResult is an order and its refunds.
type OrderResult struct {
	Order   Order
	Earn    EarnDetail
	Refunds []Refund
	// HoldUntil is when the order's points become available, while they are
	// held; ExpiresAt when they expire (nil: never or nothing earned).
	HoldUntil *time.Time
	ExpiresAt *time.Time
}

var (
	errOrderConflict = apperr.New(apperr.ErrConflict,
		"external_id was already used for an order with a different member or amount")
	errOrderNotFound = apperr.New(apperr.ErrNotFound, "order not found")
)

// RecordOrder records a paid order: the points it earns (a lot, held while
// the rules' pending days last, expiring by the rules' policy), the
// member's purchase facts and a possible tier upgrade, in one transaction.
// Posting the same external id again has no further effect and returns the
// first result with replayed=true; with another member or amount it is a
// conflict. An unknown member is unprocessable (422).
func (s *Service) RecordOrder(ctx context.Context, merchantID uint64, in OrderInput) (OrderResult, bool, error) {
	now := s.now()
	if err := in.validate(now); err != nil {
		return OrderResult{}, false, err
	}
	// A replay (a till posting again after a timeout) meets the order's
	// unique keys in the transaction below, whose second attempt reads the
	// stored order: new orders, nearly all of them, skip the lookup. A
	// replay the steps before the transaction refuse (its member erased
	// since, say) still answers as the first post did.
	orReplay := func(err error) (OrderResult, bool, error) {
		if o, lerr := s.orderByExternal(ctx, s.db, merchantID, in.ExternalID); lerr != nil {
			return OrderResult{}, false, lerr
		} else if o != nil {
			return s.replayOrder(ctx, merchantID, *o, in)
		}
		return OrderResult{}, false, err
	}
	if err := s.checkCampaign(ctx, merchantID, in.CampaignID); err != nil {
		return orReplay(err)
	}
	orderedAt := now
	if in.OrderedAt != nil {
		orderedAt = in.OrderedAt.UTC().Truncate(time.Millisecond)
	}
	buyer, err := s.members.FindBuyer(ctx, merchantID, in.Member)
	if errors.Is(err, apperr.ErrNotFound) {
		return orReplay(errMemberUnknown)
	}
	if err != nil {
		return OrderResult{}, false, err
	}
	if buyer.Erased {
		return orReplay(errMemberErased)
	}
	e, err := s.orderEnv(ctx, merchantID)
	if err != nil {
		return OrderResult{}, false, err
	}
	var items *string
	if len(in.Items) > 0 {
		raw, _ := json.Marshal(in.Items)
		str := string(raw)
		items = &str
	}
	writeMember := func(ctx context.Context, tx *gorm.DB, memberID uint64, d member.PurchaseDelta, _ member.Order) error {
		return member.RecordPurchase(ctx, tx, merchantID, memberID, d)
	}
	if s.orderWriter != nil {
		if writeMember, err = s.orderWriter(ctx, merchantID); err != nil {
			return OrderResult{}, false, err
		}
	}
	var out Order
	var fresh OrderResult
	replayed := false
	attempt := 0
	delta := member.PurchaseDelta{Orders: 1, SpendFen: in.AmountFen, OrderedAt: orderedAt}
	err = s.inTx(ctx, func(tx *gorm.DB) error {
		// A replay, or a concurrent post of the same order, makes this
		// transaction's inserts meet the unique idempotency key or external
		// id, and inTx runs it again: only a second attempt needs to look.
		if attempt++; attempt > 1 {
			if o, err := s.orderByExternal(ctx, tx, merchantID, in.ExternalID); err != nil {
				return err
			} else if o != nil {
				out, replayed = *o, true
				return nil
			}
		}
		// First write: the member row (purchase facts), then the account.
		err := writeMember(ctx, tx, buyer.ID, delta, newHistoryOrder(in, orderedAt))
		if errors.Is(err, apperr.ErrNotFound) {
			return errMemberUnknown
		}
		if err != nil {
			return err
		}
		a, err := s.lockAccount(ctx, tx, merchantID, buyer.ID)
		if err != nil {
			return err
		}
		r := e.rules.Rules
		detail := EarnDetail{AmountFen: in.AmountFen, Rate: r.RateText(), TierID: a.TierID, TierPct: 100, BirthdayPct: 100}
		if t := tierByID(e.tiers, a.TierID); t != nil {
			detail.TierPct = t.MultiplierPct
		}
		if buyer.BirthdayMonth != 0 && int(orderedAt.In(e.loc).Month()) == buyer.BirthdayMonth {
			detail.BirthdayPct = r.BirthdayMultiplierPct
		}
		detail.Computed = r.OrderPoints(in.AmountFen, detail.TierPct, detail.BirthdayPct)
		detail.Points = applyCap(a, r.DailyCap, detail.Computed, dayNumber(now, e.loc))
		detail.CappedBy = detail.Computed - detail.Points
		rawDetail, _ := json.Marshal(detail)
		o := Order{MerchantID: merchantID, MemberID: buyer.ID, ExternalID: in.ExternalID, AmountFen: in.AmountFen,
			Points: detail.Points, RuleVersion: e.rules.Version, EarnDetail: string(rawDetail),
			CampaignID: in.CampaignID, Items: items, OrderedAt: orderedAt, CreatedAt: now, UpdatedAt: now}
		fresh = OrderResult{Earn: detail, Refunds: []Refund{}}
		if detail.Points > 0 {
			c := creditSpec{Kind: KindEarn, Reason: "order " + in.ExternalID, RefType: refOrder, RefID: in.ExternalID,
				Key: "order:" + in.ExternalID, RuleVersion: e.rules.Version, Points: detail.Points,
				ExpiresAt: r.Expiry.ExpiresAt(now, e.loc)}
			if r.PendingDays > 0 {
				if until := orderedAt.AddDate(0, 0, r.PendingDays); until.After(now) {
					c.HoldUntil = &until
				}
			}
			entry, l, err := s.credit(ctx, tx, a, c)
			if err != nil {
				return err
			}
			o.LedgerID, o.LotID = &entry.ID, &l.ID
			fresh.HoldUntil, fresh.ExpiresAt = c.HoldUntil, c.ExpiresAt
		}
		if err := tx.WithContext(ctx).Create(&o).Error; err != nil {
			return fmt.Errorf("points: insert order: %w", err)
		}
		if err := s.orderEffects(ctx, tx, a, e, o); err != nil { // other features' rewards (order_hooks.go)
			return err
		}
		if s.orderWriter == nil {
			if err := s.afterPurchase(ctx, tx, merchantID, buyer.ID); err != nil {
				return err
			}
		}
		if err := s.maybeUpgrade(ctx, tx, a, e, now); err != nil {
			return err
		}
		if err := s.saveAccount(ctx, tx, a); err != nil {
			return err
		}
		if _, ok := authz.From(ctx); ok {
			if err := audit.Record(ctx, tx, merchantID, audit.Entry{Action: "order.create", TargetType: "order",
				TargetIDs: []uint64{o.ID}, After: map[string]any{"external_id": o.ExternalID, "member_id": o.MemberID,
					"amount_fen": o.AmountFen, "points": o.Points}}, now); err != nil {
				return err
			}
		}
		out = o
		return nil
	})
	if err != nil {
		return OrderResult{}, false, err
	}
	if replayed {
		return s.replayOrder(ctx, merchantID, out, in)
	}
	fresh.Order = out // a new order has no refunds: no need to read anything back
	return fresh, false, nil
}

// applyCap limits computed points by the member's daily cap (0: none) for
// the local day and counts them.
func applyCap(a *account, dailyCap, computed int64, day int) int64 {
	if a.CapDay != day {
		a.CapDay, a.CapEarned = day, 0
	}
	pts := computed
	if dailyCap > 0 {
		pts = max(0, min(computed, dailyCap-a.CapEarned))
	}
	a.CapEarned += pts
	return pts
}

// replayOrder answers a repeated post of an order: the first result, or a
// conflict when the repeat names another amount or member.
func (s *Service) replayOrder(ctx context.Context, merchantID uint64, o Order, in OrderInput) (OrderResult, bool, error) {
	if o.AmountFen != in.AmountFen {
		return OrderResult{}, false, errOrderConflict
	}
	if buyer, err := s.members.FindBuyer(ctx, merchantID, in.Member); err == nil && buyer.ID != o.MemberID {
		return OrderResult{}, false, errOrderConflict
	}
	res, err := s.orderResult(ctx, s.db, o)
	return res, true, err
}

func (s *Service) orderByExternal(ctx context.Context, q *gorm.DB, merchantID uint64, externalID string) (*Order, error) {
	var o Order
	err := q.WithContext(ctx).Where("merchant_id = ? AND external_id = ?", merchantID, externalID).Take(&o).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("points: order %q: %w", externalID, err)
	}
	return &o, nil
}

// GetOrder returns an order of the merchant by its external id.
func (s *Service) GetOrder(ctx context.Context, merchantID uint64, externalID string) (OrderResult, error) {
	if !validID(externalID) {
		return OrderResult{}, errOrderNotFound
	}
	o, err := s.orderByExternal(ctx, s.db, merchantID, externalID)
	if err != nil {
		return OrderResult{}, err
	}
	if o == nil {
		return OrderResult{}, errOrderNotFound
	}
	return s.orderResult(ctx, s.db, *o)
}

func (s *Service) orderResult(ctx context.Context, q *gorm.DB, o Order) (OrderResult, error) {
	res := OrderResult{Order: o, Refunds: []Refund{}}
	_ = json.Unmarshal([]byte(o.EarnDetail), &res.Earn)
	if err := q.WithContext(ctx).Where("merchant_id = ? AND order_id = ?", o.MerchantID, o.ID).
		Order("id").Find(&res.Refunds).Error; err != nil {
		return OrderResult{}, fmt.Errorf("points: refunds of order %d: %w", o.ID, err)
	}
	if o.LotID != nil {
		var l lot
		if err := q.WithContext(ctx).Where("id = ? AND merchant_id = ?", *o.LotID, o.MerchantID).Take(&l).Error; err == nil {
			res.ExpiresAt = l.ExpiresAt
			if l.Status == lotPending {
				res.HoldUntil = l.AvailableAt
			}
		}
	}
	return res, nil
}

// RefundInput is a full or partial refund of an order.
type RefundInput struct {
	ExternalID string // the order's
	RefundID   string // the shop's id of the refund: a repeat has no further effect
	AmountFen  int64
	Reason     string
}

// RefundResult is a refund and the order after it.
type RefundResult struct {
	Refund Refund
	Order  OrderResult
}

var errRefundConflict = apperr.New(apperr.ErrConflict, "refund_id was already used for a refund of a different amount")

// Refund records a refund of an order and takes back the order's points in
// proportion, in one transaction with the member's purchase facts.
//
// Rounding: after the refund the order has taken back
// floor(points × refunded / amount) points in total (all of them when the
// order is fully refunded), and this refund takes the difference from
// what earlier refunds took. Partial refunds therefore never take back
// more than their share, and a series of partial refunds adding up to the
// amount takes back exactly what the order earned. Points still on hold
// are cancelled from the order's pending lot; available points are taken
// from the order's own lot first, then from the lots that expire first,
// and what the member has already spent becomes debt paid off by their
// next credits (the balance shows it as negative). A refund larger than
// what is left to refund is unprocessable (422) and changes nothing; a
// repeated refund id returns the first result.
func (s *Service) Refund(ctx context.Context, merchantID uint64, in RefundInput) (RefundResult, bool, error) {
	v := &apperr.Validation{}
	if !validID(in.RefundID) {
		v.Add("refund_id", "must be 1 to 64 visible ASCII characters, without / ? # % or \\")
	}
	switch {
	case in.AmountFen <= 0:
		v.Add("amount_fen", "must be a positive whole number of fen")
	case in.AmountFen > MaxAmountFen:
		v.Add("amount_fen", fmt.Sprintf("must be at most %d", int64(MaxAmountFen)))
	}
	if utf8.RuneCountInString(in.Reason) > 255 {
		v.Add("reason", "must be at most 255 characters")
	}
	if err := v.Err(); err != nil {
		return RefundResult{}, false, err
	}
	if !validID(in.ExternalID) {
		return RefundResult{}, false, errOrderNotFound
	}
	o, err := s.orderByExternal(ctx, s.db, merchantID, in.ExternalID)
	if err != nil {
		return RefundResult{}, false, err
	}
	if o == nil {
		return RefundResult{}, false, errOrderNotFound
	}
	if r, err := refundByID(ctx, s.db, merchantID, o.ID, in.RefundID); err != nil {
		return RefundResult{}, false, err
	} else if r != nil {
		return s.replayRefund(ctx, *r, in)
	}
	var out Refund
	replayed := false
	err = s.inTx(ctx, func(tx *gorm.DB) error {
		now := s.now()
		if r, err := refundByID(ctx, tx, merchantID, o.ID, in.RefundID); err != nil {
			return err
		} else if r != nil {
			out, replayed = *r, true
			return nil
		}
		// Lock order: member row, account, then the order.
		if err := member.LockMember(ctx, tx, merchantID, o.MemberID); err != nil {
			if errors.Is(err, apperr.ErrNotFound) {
				return errRetry // merged away since we read the order: read it again
			}
			return err
		}
		a, err := s.lockAccount(ctx, tx, merchantID, o.MemberID)
		if err != nil {
			return err
		}
		var cur Order
		if err := tx.WithContext(ctx).Where("id = ? AND merchant_id = ?", o.ID, merchantID).Take(&cur).Error; err != nil {
			return fmt.Errorf("points: order %d: %w", o.ID, err)
		}
		if cur.MemberID != o.MemberID {
			o = &cur
			return errRetry
		}
		left := cur.AmountFen - cur.RefundedFen
		if in.AmountFen > left {
			return apperr.New(apperr.ErrUnprocessable, "refund of %d fen exceeds the %d fen left to refund on this order",
				in.AmountFen, left)
		}
		refunded := cur.RefundedFen + in.AmountFen
		target := cur.Points
		if refunded < cur.AmountFen {
			target = proportion(cur.Points, refunded, cur.AmountFen)
		}
		take := target - cur.PointsReversed
		ref := Refund{MerchantID: merchantID, OrderID: cur.ID, MemberID: cur.MemberID, RefundID: in.RefundID,
			AmountFen: in.AmountFen, Reason: clip(in.Reason, 255), CreatedAt: now}
		if take > 0 {
			entry, err := s.reverseOrderPoints(ctx, tx, a, cur, take, in.RefundID, &ref)
			if err != nil {
				return err
			}
			if entry != nil {
				ref.LedgerID = &entry.ID
			}
		}
		if err := tx.WithContext(ctx).Create(&ref).Error; err != nil {
			return fmt.Errorf("points: insert refund: %w", err)
		}
		if err := tx.WithContext(ctx).Exec("UPDATE points_orders SET refunded_fen = ?, points_reversed = ?, updated_at = ? WHERE id = ? AND merchant_id = ?",
			refunded, target, now, cur.ID, merchantID).Error; err != nil {
			return fmt.Errorf("points: update order: %w", err)
		}
		if err := s.refundEffects(ctx, tx, a, cur, in.RefundID, refunded); err != nil { // order_hooks.go
			return err
		}
		facts, err := derivePurchaseFacts(ctx, tx, merchantID, cur.MemberID)
		if err != nil {
			return err
		}
		if err := member.SetPurchaseFacts(ctx, tx, merchantID, cur.MemberID, facts); err != nil {
			return err
		}
		if err := s.afterPurchase(ctx, tx, merchantID, cur.MemberID); err != nil {
			return err
		}
		if err := s.saveAccount(ctx, tx, a); err != nil {
			return err
		}
		if _, ok := authz.From(ctx); ok {
			if err := audit.Record(ctx, tx, merchantID, audit.Entry{Action: "order.refund", TargetType: "order",
				TargetIDs: []uint64{cur.ID}, After: map[string]any{"refund_id": ref.RefundID, "amount_fen": ref.AmountFen,
					"points_reversed": ref.PointsReversed, "pending_cancelled": ref.PendingCancelled}}, now); err != nil {
				return err
			}
		}
		out = ref
		return nil
	})
	if err != nil {
		return RefundResult{}, false, err
	}
	if replayed {
		return s.replayRefund(ctx, out, in)
	}
	return s.refundResult(ctx, out, false)
}

// reverseOrderPoints takes n of the order's points back: from its lot while
// it is held, else from the available balance. Points of the order that
// have already expired are not taken a second time: what is left of an
// expired lot absorbs the reversal first. It returns the entry, or nil when
// nothing was left to take.
func (s *Service) reverseOrderPoints(ctx context.Context, tx *gorm.DB, a *account, o Order, n int64, refundID string, ref *Refund) (*Entry, error) {
	key := "refund:" + strconv.FormatUint(o.ID, 10) + ":" + refundID
	reason := "refund " + refundID + " of order " + o.ExternalID
	var l lot
	if o.LotID != nil {
		if err := tx.WithContext(ctx).Where("id = ? AND merchant_id = ?", *o.LotID, o.MerchantID).Take(&l).Error; err != nil {
			return nil, fmt.Errorf("points: lot of order %d: %w", o.ID, err)
		}
	}
	now := s.now()
	setLot := func(remaining int64, status string) error {
		err := tx.WithContext(ctx).Exec("UPDATE points_lots SET remaining = ?, status = ?, updated_at = ? WHERE id = ? AND merchant_id = ?",
			remaining, status, now, l.ID, l.MerchantID).Error
		if err != nil {
			return fmt.Errorf("points: lot of order %d: %w", o.ID, err)
		}
		return nil
	}
	switch l.Status {
	case lotPending:
		// Held points: cancel them from the order's own lot, which only
		// this order's refunds ever touch, so it holds at least n.
		x := min(n, l.Remaining)
		status := lotPending
		if l.Remaining-x == 0 {
			status = lotCancelled
		}
		if err := setLot(l.Remaining-x, status); err != nil {
			return nil, err
		}
		a.Pending -= x
		e := Entry{MerchantID: a.MerchantID, MemberID: a.MemberID, Kind: KindReverse, Pending: -x, Balance: a.Available,
			Reason: reason, RefType: refRefund, RefID: refundID, RuleVersion: o.RuleVersion, IdempotencyKey: key,
			CreatedAt: now}
		if err := tx.WithContext(ctx).Create(&e).Error; err != nil {
			return nil, fmt.Errorf("points: reverse entry: %w", err)
		}
		a.wrote(e)
		ref.PendingCancelled = x
		return &e, nil
	case lotExpired:
		// The member lost these already; an expired lot's remaining is
		// what expired, and it is outside every balance.
		x := min(n, l.Remaining)
		if err := setLot(l.Remaining-x, lotExpired); err != nil {
			return nil, err
		}
		n -= x
		if n == 0 {
			return nil, nil
		}
	}
	e, _, err := s.debit(ctx, tx, a, debitSpec{Kind: KindReverse, Reason: reason, RefType: refRefund, RefID: refundID,
		Key: key, RuleVersion: o.RuleVersion, Points: n, PreferLot: l.ID, AllowDebt: true})
	if err != nil {
		return nil, err
	}
	ref.PointsReversed = n
	return &e, nil
}

// proportion returns floor(points × part / whole) without overflow.
func proportion(points, part, whole int64) int64 {
	n := new(big.Int).Mul(big.NewInt(points), big.NewInt(part))
	return n.Quo(n, big.NewInt(whole)).Int64()
}

func refundByID(ctx context.Context, q *gorm.DB, merchantID, orderID uint64, refundID string) (*Refund, error) {
	var r Refund
	err := q.WithContext(ctx).Where("merchant_id = ? AND order_id = ? AND refund_id = ?", merchantID, orderID, refundID).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("points: refund %q: %w", refundID, err)
	}
	return &r, nil
}

func (s *Service) replayRefund(ctx context.Context, r Refund, in RefundInput) (RefundResult, bool, error) {
	if r.AmountFen != in.AmountFen {
		return RefundResult{}, false, errRefundConflict
	}
	return s.refundResult(ctx, r, true)
}

func (s *Service) refundResult(ctx context.Context, r Refund, replayed bool) (RefundResult, bool, error) {
	var o Order
	if err := s.db.WithContext(ctx).Where("id = ? AND merchant_id = ?", r.OrderID, r.MerchantID).Take(&o).Error; err != nil {
		return RefundResult{}, false, fmt.Errorf("points: order %d: %w", r.OrderID, err)
	}
	or, err := s.orderResult(ctx, s.db, o)
	if err != nil {
		return RefundResult{}, false, err
	}
	return RefundResult{Refund: r, Order: or}, replayed, nil
}

// derivePurchaseFacts computes a member's purchase facts from their orders
// (see member/facts.go for the semantics). It reads the member's orders
// through idx_points_orders_member.
func derivePurchaseFacts(ctx context.Context, q *gorm.DB, merchantID, memberID uint64) (member.PurchaseFacts, error) {
	var r struct {
		OrderCount    int64
		TotalSpendFen int64
		FirstOrderAt  *string
		LastOrderAt   *string
	}
	// MIN/MAX over DATETIME come back as text on SQLite; they are parsed
	// below for both dialects.
	err := q.WithContext(ctx).Raw(`SELECT
  COALESCE(SUM(CASE WHEN refunded_fen < amount_fen THEN 1 ELSE 0 END), 0) AS order_count,
  COALESCE(SUM(amount_fen - refunded_fen), 0) AS total_spend_fen,
  MIN(CASE WHEN refunded_fen < amount_fen THEN ordered_at END) AS first_order_at,
  MAX(CASE WHEN refunded_fen < amount_fen THEN ordered_at END) AS last_order_at
FROM points_orders WHERE merchant_id = ? AND member_id = ?`, merchantID, memberID).Scan(&r).Error
	if err != nil {
		return member.PurchaseFacts{}, fmt.Errorf("points: purchase facts of %d: %w", memberID, err)
	}
	f := member.PurchaseFacts{OrderCount: r.OrderCount, TotalSpendFen: r.TotalSpendFen}
	if f.FirstOrderAt, err = parseDBTime(r.FirstOrderAt); err != nil {
		return member.PurchaseFacts{}, err
	}
	if f.LastOrderAt, err = parseDBTime(r.LastOrderAt); err != nil {
		return member.PurchaseFacts{}, err
	}
	return f, nil
}

// parseDBTime reads a time that an aggregate returned as text.
func parseDBTime(s *string) (*time.Time, error) {
	if s == nil || *s == "" {
		return nil, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999", time.RFC3339Nano,
		"2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, *s); err == nil {
			u := t.UTC()
			return &u, nil
		}
	}
	return nil, fmt.Errorf("points: unreadable time %q", *s)
}
