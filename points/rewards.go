package points

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/db"
)

// Opt is a JSON field that may be absent (Set false), null (Null) or a
// value.
type Opt[T any] struct {
	Set  bool
	Null bool
	V    T
}

// UnmarshalJSON implements json.Unmarshaler.
func (o *Opt[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.V)
}

// RewardInput creates or changes a reward; absent fields keep their value
// on update.
type RewardInput struct {
	Name           *string        `json:"name"`
	Description    *string        `json:"description"`
	Kind           *string        `json:"kind"`
	PointsCost     *int64         `json:"points_cost"`
	CashFen        *int64         `json:"cash_fen"`
	Stock          Opt[int64]     `json:"stock"` // total stock; null: unlimited
	PerMemberLimit *int           `json:"per_member_limit"`
	ValidFrom      Opt[time.Time] `json:"valid_from"`
	ValidUntil     Opt[time.Time] `json:"valid_until"`
	Active         *bool          `json:"active"`
	// CouponValidDays: coupon rewards only (default 30).
	CouponValidDays *int `json:"coupon_valid_days"`
}

var (
	errRewardNotFound     = apperr.New(apperr.ErrNotFound, "reward not found")
	errRedemptionNotFound = apperr.New(apperr.ErrNotFound, "redemption not found")
	errOutOfStock         = apperr.New(apperr.ErrUnprocessable, "this reward is out of stock")
	errRewardUnavailable  = apperr.New(apperr.ErrUnprocessable, "this reward cannot be redeemed now")
	errMemberLimit        = apperr.New(apperr.ErrUnprocessable, "you have reached the limit for this reward")
)

func (in RewardInput) apply(r *Reward, create bool, redeemed int64) error {
	v := &apperr.Validation{}
	if create {
		for f, missing := range map[string]bool{"name": in.Name == nil, "kind": in.Kind == nil, "points_cost": in.PointsCost == nil} {
			if missing {
				v.Add(f, "is required")
			}
		}
		r.Active = true
		r.CouponValidDays = DefaultCouponValidDays
	}
	if in.Name != nil {
		r.Name = strings.TrimSpace(*in.Name)
		if c := utf8.RuneCountInString(r.Name); c < 1 || c > 64 {
			v.Add("name", "must be 1 to 64 characters")
		}
	}
	if in.Description != nil {
		r.Description = strings.TrimSpace(*in.Description)
		if utf8.RuneCountInString(r.Description) > 500 {
			v.Add("description", "must be at most 500 characters")
		}
	}
	if in.Kind != nil {
		r.Kind = *in.Kind
		if r.Kind != RewardGift && r.Kind != RewardCoupon && r.Kind != RewardPointsCash {
			v.Add("kind", "must be gift, coupon or points_cash")
		}
	}
	if in.PointsCost != nil {
		r.PointsCost = *in.PointsCost
		if r.PointsCost < 1 || r.PointsCost > maxAdjust {
			v.Add("points_cost", fmt.Sprintf("must be 1 to %d", maxAdjust))
		}
	}
	if in.CashFen != nil {
		r.CashFen = *in.CashFen
		if r.CashFen < 0 || r.CashFen > MaxAmountFen {
			v.Add("cash_fen", "must be 0 to 10^12")
		}
	}
	if r.Kind == RewardPointsCash && r.CashFen == 0 {
		v.Add("cash_fen", "is required (positive) for points_cash rewards")
	}
	if r.Kind != RewardPointsCash && r.CashFen != 0 {
		v.Add("cash_fen", "must be 0 unless the kind is points_cash")
	}
	if in.Stock.Set {
		if in.Stock.Null {
			r.StockTotal, r.StockLeft = nil, nil
		} else {
			total := in.Stock.V
			left := total - redeemed
			switch {
			case total < 0 || total > maxAdjust:
				v.Add("stock", fmt.Sprintf("must be 0 to %d, or null for unlimited", maxAdjust))
			case left < 0:
				v.Add("stock", fmt.Sprintf("must be at least the %d already redeemed", redeemed))
			}
			r.StockTotal, r.StockLeft = &total, &left
		}
	}
	if in.PerMemberLimit != nil {
		r.PerMemberLimit = *in.PerMemberLimit
		if r.PerMemberLimit < 0 || r.PerMemberLimit > 1_000_000 {
			v.Add("per_member_limit", "must be 0 (none) to 1000000")
		}
	}
	if in.ValidFrom.Set {
		r.ValidFrom = optTime(in.ValidFrom)
	}
	if in.ValidUntil.Set {
		r.ValidUntil = optTime(in.ValidUntil)
	}
	if r.ValidFrom != nil && r.ValidUntil != nil && !r.ValidUntil.After(*r.ValidFrom) {
		v.Add("valid_until", "must be after valid_from")
	}
	if in.Active != nil {
		r.Active = *in.Active
	}
	if in.CouponValidDays != nil {
		r.CouponValidDays = *in.CouponValidDays
		if r.CouponValidDays < 1 || r.CouponValidDays > 3650 {
			v.Add("coupon_valid_days", "must be 1 to 3650")
		}
	}
	return v.Err()
}

func optTime(o Opt[time.Time]) *time.Time {
	if o.Null {
		return nil
	}
	t := o.V.UTC().Truncate(time.Millisecond)
	return &t
}

// Rewards returns the merchant's rewards (not deleted), newest first.
func (s *Service) Rewards(ctx context.Context, merchantID uint64) ([]Reward, error) {
	out := []Reward{}
	if err := s.db.WithContext(ctx).Where("merchant_id = ? AND deleted_at IS NULL", merchantID).
		Order("id DESC").Limit(1000).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("points: rewards: %w", err)
	}
	return out, nil
}

// AvailableRewards returns the rewards a member can redeem now: active,
// within their validity, in stock.
func (s *Service) AvailableRewards(ctx context.Context, merchantID uint64) ([]Reward, error) {
	now := s.now()
	out := []Reward{}
	err := s.db.WithContext(ctx).Where("merchant_id = ? AND deleted_at IS NULL AND active = ?", merchantID, true).
		Where("valid_from IS NULL OR valid_from <= ?", now).Where("valid_until IS NULL OR valid_until > ?", now).
		Where("stock_left IS NULL OR stock_left > 0").Order("points_cost, id").Limit(1000).Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("points: available rewards: %w", err)
	}
	return out, nil
}

// GetReward returns one (not deleted) reward of the merchant.
func (s *Service) GetReward(ctx context.Context, merchantID, id uint64) (Reward, error) {
	return getReward(ctx, s.db, merchantID, id)
}

func getReward(ctx context.Context, q *gorm.DB, merchantID, id uint64) (Reward, error) {
	return db.TakeOne[Reward](q.WithContext(ctx).Where("merchant_id = ? AND id = ? AND deleted_at IS NULL", merchantID, id),
		errRewardNotFound, "points: reward %d", id)
}

// SaveReward creates (id 0) or changes a reward, audited. Changing the
// stock sets the total: what is left moves by the difference and may not
// fall below zero.
func (s *Service) SaveReward(ctx context.Context, merchantID, id uint64, in RewardInput) (Reward, error) {
	var out Reward
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		now := s.now()
		var r Reward
		var before *Reward
		var redeemed int64
		if id != 0 {
			err := tx.WithContext(ctx).Clauses(clause.Locking{Strength: "UPDATE"}).
				Where("merchant_id = ? AND id = ? AND deleted_at IS NULL", merchantID, id).Take(&r).Error
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return errRewardNotFound
			}
			if err != nil {
				return fmt.Errorf("points: reward %d: %w", id, err)
			}
			b := r
			before = &b
			if r.StockTotal != nil {
				redeemed = *r.StockTotal - *r.StockLeft
			} else if in.Stock.Set && !in.Stock.Null {
				if err := tx.WithContext(ctx).Model(&Redemption{}).Where("merchant_id = ? AND reward_id = ? AND status = ?",
					merchantID, id, RedemptionCompleted).Count(&redeemed).Error; err != nil {
					return fmt.Errorf("points: redemptions of reward %d: %w", id, err)
				}
			}
		} else {
			r = Reward{MerchantID: merchantID, CreatedAt: now}
		}
		if err := in.apply(&r, id == 0, redeemed); err != nil {
			return err
		}
		r.UpdatedAt = now
		var err error
		if id == 0 {
			err = tx.WithContext(ctx).Create(&r).Error
		} else {
			err = tx.WithContext(ctx).Model(&Reward{}).Where("merchant_id = ? AND id = ?", merchantID, id).
				Select("name", "description", "kind", "points_cost", "cash_fen", "stock_total", "stock_left",
					"per_member_limit", "valid_from", "valid_until", "coupon_valid_days", "active", "updated_at").Updates(&r).Error
		}
		if err != nil {
			return fmt.Errorf("points: save reward: %w", err)
		}
		action := "reward.update"
		if id == 0 {
			action = "reward.create"
		}
		out = r
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: action, TargetType: "reward", TargetIDs: []uint64{r.ID},
			Before: rewardSummary(before), After: rewardSummary(&r)}, now)
	})
	return out, err
}

func rewardSummary(r *Reward) any {
	if r == nil {
		return nil
	}
	return map[string]any{"name": r.Name, "kind": r.Kind, "points_cost": r.PointsCost, "cash_fen": r.CashFen,
		"stock_total": r.StockTotal, "stock_left": r.StockLeft, "per_member_limit": r.PerMemberLimit,
		"valid_from": r.ValidFrom, "valid_until": r.ValidUntil, "coupon_valid_days": r.CouponValidDays, "active": r.Active}
}

// DeleteReward hides a reward (its redemptions keep pointing at it), audited.
func (s *Service) DeleteReward(ctx context.Context, merchantID, id uint64) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		now := s.now()
		r, err := getReward(ctx, tx, merchantID, id)
		if err != nil {
			return err
		}
		if err := tx.WithContext(ctx).Model(&Reward{}).Where("merchant_id = ? AND id = ?", merchantID, id).
			Updates(map[string]any{"deleted_at": now, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("points: delete reward: %w", err)
		}
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "reward.delete", TargetType: "reward",
			TargetIDs: []uint64{id}, Before: rewardSummary(&r)}, now)
	})
}

// Redeem redeems a reward for a member in one transaction: the points
// leave the lots that expire first, a limited stock goes down by one with a
// conditional UPDATE (stock_left > 0) so concurrent redemptions cannot
// oversell, and a coupon reward gets a code. requestID is the client's id
// of the attempt: a repeat returns the first redemption. Not enough points,
// no stock, the per-member limit or a reward outside its validity are
// unprocessable (422) and change nothing.
func (s *Service) Redeem(ctx context.Context, merchantID, memberID, rewardID uint64, requestID string) (Redemption, bool, error) {
	if !validID(requestID) {
		return Redemption{}, false, apperr.Invalid("request_id", "is required: 1 to 64 visible ASCII characters, without / ? # % or \\")
	}
	return s.redeem(ctx, merchantID, memberID, rewardID, "redeem:"+strconv.FormatUint(memberID, 10)+":"+requestID, redeemByMember)
}

// RedeemFor redeems a reward for a member at staff's hands (at the till,
// say), as Redeem does and audited. A merged member's id redeems for the
// member it was merged into. requestID makes a repeat return the first
// redemption; it shares Redeem's key space, so one attempt cannot be both.
func (s *Service) RedeemFor(ctx context.Context, merchantID, memberID, rewardID uint64, requestID string) (Redemption, bool, error) {
	v := &apperr.Validation{}
	if rewardID == 0 {
		v.Add("reward_id", "is required")
	}
	if !validID(requestID) {
		v.Add("request_id", "is required: 1 to 64 visible ASCII characters, without / ? # % or \\")
	}
	if err := v.Err(); err != nil {
		return Redemption{}, false, err
	}
	b, err := s.memberExists(ctx, merchantID, memberID)
	if err != nil {
		return Redemption{}, false, err
	}
	return s.redeem(ctx, merchantID, b.ID, rewardID, "redeem:"+strconv.FormatUint(b.ID, 10)+":"+requestID, redeemByStaff)
}

// GiftReward gives the member a reward for free (a campaign's gift): a
// redemption of no points and no cash, with the reward's stock, limit and
// validity as for a paid one. key makes a repeat return the first gift.
func (s *Service) GiftReward(ctx context.Context, merchantID, memberID, rewardID uint64, key string) (Redemption, bool, error) {
	return s.redeem(ctx, merchantID, memberID, rewardID, "gift:"+clip(key, 59), redeemAsGift)
}

// redeemer is who redeems: the member, staff for the member (audited), or
// a campaign giving the reward for free.
type redeemer int

const (
	redeemByMember redeemer = iota
	redeemByStaff
	redeemAsGift
)

func (s *Service) redeem(ctx context.Context, merchantID, memberID, rewardID uint64, key string, by redeemer) (Redemption, bool, error) {
	free := by == redeemAsGift
	if prev, err := redemptionByKey(ctx, s.db, merchantID, key); err != nil {
		return Redemption{}, false, err
	} else if prev != nil {
		return replayRedemption(*prev, rewardID)
	}
	if _, err := getReward(ctx, s.db, merchantID, rewardID); err != nil {
		return Redemption{}, false, err
	}
	rs, err := s.rules(ctx, s.db, merchantID)
	if err != nil {
		return Redemption{}, false, err
	}
	var out Redemption
	replayed := false
	err = s.inTx(ctx, func(tx *gorm.DB) error {
		now := s.now()
		a, err := s.lockAccount(ctx, tx, merchantID, memberID)
		if err != nil {
			return err
		}
		if prev, err := redemptionByKey(ctx, tx, merchantID, key); err != nil {
			return err
		} else if prev != nil {
			out, replayed = *prev, true
			return nil
		}
		r, err := getReward(ctx, tx, merchantID, rewardID)
		if err != nil {
			return err
		}
		if !r.Active || r.ValidFrom != nil && now.Before(*r.ValidFrom) || r.ValidUntil != nil && !now.Before(*r.ValidUntil) {
			return errRewardUnavailable
		}
		if r.StockLeft != nil && *r.StockLeft <= 0 {
			return errOutOfStock
		}
		if r.PerMemberLimit > 0 {
			var n int64
			// idx_points_redemptions_member; the account lock serialises the
			// member's redemptions, so the count cannot race.
			if err := tx.WithContext(ctx).Model(&Redemption{}).Where("merchant_id = ? AND member_id = ? AND reward_id = ? AND status = ?",
				merchantID, memberID, rewardID, RedemptionCompleted).Count(&n).Error; err != nil {
				return fmt.Errorf("points: member's redemptions: %w", err)
			}
			if n >= int64(r.PerMemberLimit) {
				return errMemberLimit
			}
		}
		cost, cash, reason := r.PointsCost, r.CashFen, "redeemed "+r.Name
		if free {
			cost, cash, reason = 0, 0, "gift: "+r.Name
		}
		entry, allocs, err := s.debit(ctx, tx, a, debitSpec{Kind: KindRedeem, Reason: reason,
			RefType: refReward, RefID: strconv.FormatUint(r.ID, 10), Key: key, RuleVersion: rs.Version, Points: cost, AllowDebt: free})
		if err != nil {
			return err
		}
		red := Redemption{MerchantID: merchantID, MemberID: memberID, RewardID: r.ID, RewardName: r.Name,
			IdempotencyKey: key, Points: cost, CashFen: cash, Status: RedemptionCompleted,
			LedgerID: entry.ID, CreatedAt: now}
		if r.Kind == RewardCoupon {
			code := couponCode()
			red.Code = &code
		}
		if err := tx.WithContext(ctx).Create(&red).Error; err != nil {
			return fmt.Errorf("points: insert redemption: %w", err)
		}
		if red.Code != nil {
			if err := s.issueCoupon(ctx, tx, r, red, now); err != nil { // coupons.go
				return err
			}
		}
		rows := make([]redemptionLot, len(allocs))
		for i, al := range allocs {
			rows[i] = redemptionLot{MerchantID: merchantID, RedemptionID: red.ID, LotID: al.LotID, Points: al.Points}
		}
		if len(rows) > 0 {
			if err := tx.WithContext(ctx).Create(&rows).Error; err != nil {
				return fmt.Errorf("points: redemption lots: %w", err)
			}
		}
		if err := s.saveAccount(ctx, tx, a); err != nil {
			return err
		}
		if by == redeemByStaff {
			if err := audit.Record(ctx, tx, merchantID, audit.Entry{Action: "redemption.create", TargetType: "member",
				TargetIDs: []uint64{memberID}, After: map[string]any{"redemption_id": red.ID, "reward_id": r.ID,
					"reward": r.Name, "points": cost, "cash_fen": cash}}, now); err != nil {
				return err
			}
		}
		if r.StockLeft != nil {
			// Last statement on purpose: the reward row is shared by every
			// member redeeming it, so its lock is held as briefly as possible.
			res := tx.WithContext(ctx).Exec("UPDATE points_rewards SET stock_left = stock_left - 1, updated_at = ? WHERE merchant_id = ? AND id = ? AND stock_left > 0",
				now, merchantID, rewardID)
			if res.Error != nil {
				return fmt.Errorf("points: take stock: %w", res.Error)
			}
			if res.RowsAffected == 0 {
				return errOutOfStock
			}
		}
		out = red
		return nil
	})
	if err != nil {
		return Redemption{}, false, err
	}
	if replayed {
		return replayRedemption(out, rewardID)
	}
	return out, false, nil
}

func replayRedemption(r Redemption, rewardID uint64) (Redemption, bool, error) {
	if r.RewardID != rewardID {
		return Redemption{}, false, apperr.New(apperr.ErrConflict, "request_id was already used to redeem another reward")
	}
	return r, true, nil
}

func redemptionByKey(ctx context.Context, q *gorm.DB, merchantID uint64, key string) (*Redemption, error) {
	var r Redemption
	err := q.WithContext(ctx).Where("merchant_id = ? AND idempotency_key = ?", merchantID, key).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("points: redemption: %w", err)
	}
	return &r, nil
}

// couponAlphabet has no 0/O or 1/I, which staff misread at the till.
const couponAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

func couponCode() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = couponAlphabet[int(b[i])%len(couponAlphabet)]
	}
	return string(b)
}

// GetRedemption returns one redemption of the merchant.
func (s *Service) GetRedemption(ctx context.Context, merchantID, id uint64) (Redemption, error) {
	return db.TakeOne[Redemption](s.db.WithContext(ctx).Where("merchant_id = ? AND id = ?", merchantID, id),
		errRedemptionNotFound, "points: redemption %d", id)
}

// Redemptions lists the merchant's redemptions newest first (of one member
// when memberID is not 0), limit of them with ids below before (0: from
// the newest).
func (s *Service) Redemptions(ctx context.Context, merchantID, memberID, before uint64, limit int) ([]Redemption, error) {
	q := s.db.WithContext(ctx).Where("merchant_id = ?", merchantID)
	if memberID != 0 {
		q = q.Where("member_id = ?", memberID)
	}
	if before != 0 {
		q = q.Where("id < ?", before)
	}
	out := []Redemption{}
	if err := q.Order("id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("points: redemptions: %w", err)
	}
	return out, nil
}

// CancelRedemption cancels a redemption (staff, audited with the reason):
// the points go back to the lots they came from, keeping their expiry
// dates (a lot that has expired meanwhile is replaced by a new lot expiring
// by the current policy, so a late cancellation does not cost the member
// their points), a limited stock goes up by one, and its coupon (if any)
// is cancelled; a redemption whose coupon was used cannot be cancelled
// (409). Cancelling a cancelled redemption changes nothing.
func (s *Service) CancelRedemption(ctx context.Context, merchantID, id uint64, reason string) (Redemption, error) {
	reason = strings.TrimSpace(reason)
	if c := utf8.RuneCountInString(reason); c < 1 || c > 255 {
		return Redemption{}, apperr.Invalid("reason", "is required (1 to 255 characters)")
	}
	red, err := s.GetRedemption(ctx, merchantID, id)
	if err != nil {
		return Redemption{}, err
	}
	e, err := s.env(ctx, merchantID)
	if err != nil {
		return Redemption{}, err
	}
	var out Redemption
	err = s.inTx(ctx, func(tx *gorm.DB) error {
		now := s.now()
		a, err := s.lockAccount(ctx, tx, merchantID, red.MemberID)
		if err != nil {
			return err
		}
		var cur Redemption
		if err := tx.WithContext(ctx).Where("merchant_id = ? AND id = ?", merchantID, id).Take(&cur).Error; err != nil {
			return fmt.Errorf("points: redemption %d: %w", id, err)
		}
		if cur.MemberID != red.MemberID {
			red = cur
			return errRetry // moved by a member merge since we read it
		}
		if cur.Status == RedemptionCancelled {
			out = cur
			return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "redemption.cancel", TargetType: "redemption",
				TargetIDs: []uint64{id}, After: map[string]any{"already_cancelled": true}}, now)
		}
		if err := cancelCoupon(ctx, tx, merchantID, id, now); err != nil { // coupons.go
			return err
		}
		var allocs []redemptionLot
		if err := tx.WithContext(ctx).Where("merchant_id = ? AND redemption_id = ?", merchantID, id).
			Order("lot_id").Find(&allocs).Error; err != nil {
			return fmt.Errorf("points: redemption lots: %w", err)
		}
		entry, err := s.giveBack(ctx, tx, a, cur, allocs, reason, e, now)
		if err != nil {
			return err
		}
		cur.Status, cur.CancelLedgerID, cur.CancelReason, cur.CancelledAt = RedemptionCancelled, &entry.ID, clip(reason, 255), &now
		if err := tx.WithContext(ctx).Model(&Redemption{}).Where("merchant_id = ? AND id = ?", merchantID, id).
			Updates(map[string]any{"status": cur.Status, "cancel_ledger_id": entry.ID, "cancel_reason": cur.CancelReason,
				"cancelled_at": now}).Error; err != nil {
			return fmt.Errorf("points: cancel redemption: %w", err)
		}
		if err := s.saveAccount(ctx, tx, a); err != nil {
			return err
		}
		if err := tx.WithContext(ctx).Exec("UPDATE points_rewards SET stock_left = stock_left + 1, updated_at = ? WHERE merchant_id = ? AND id = ? AND stock_left IS NOT NULL",
			now, merchantID, cur.RewardID).Error; err != nil {
			return fmt.Errorf("points: return stock: %w", err)
		}
		out = cur
		return audit.Record(ctx, tx, merchantID, audit.Entry{Action: "redemption.cancel", TargetType: "redemption",
			TargetIDs: []uint64{id}, After: map[string]any{"member_id": cur.MemberID, "points_returned": cur.Points,
				"reason": cur.CancelReason}}, now)
	})
	return out, err
}

// giveBack returns a cancelled redemption's points: first paying any debt,
// then into the lots they came from while those have not expired, the rest
// as a new lot.
func (s *Service) giveBack(ctx context.Context, tx *gorm.DB, a *account, red Redemption, allocs []redemptionLot, reason string, e env, now time.Time) (Entry, error) {
	key := "cancel:redemption:" + strconv.FormatUint(red.ID, 10)
	left := red.Points
	pay := min(a.Debt, left)
	a.Debt -= pay
	left -= pay
	for _, al := range allocs {
		if left == 0 {
			break
		}
		x := min(al.Points, left)
		res := tx.WithContext(ctx).Exec(`UPDATE points_lots SET remaining = remaining + ?, status = ?, updated_at = ?
WHERE id = ? AND merchant_id = ? AND status IN (?, ?) AND (expires_at IS NULL OR expires_at > ?)`,
			x, lotActive, now, al.LotID, a.MerchantID, lotActive, lotUsed, now)
		if res.Error != nil {
			return Entry{}, fmt.Errorf("points: give back to lot %d: %w", al.LotID, res.Error)
		}
		if res.RowsAffected == 1 {
			left -= x
		}
	}
	a.Available += red.Points
	ent := Entry{MerchantID: a.MerchantID, MemberID: a.MemberID, Kind: KindReverse, Points: red.Points, Balance: a.Available,
		Reason: clip("cancelled redemption of "+red.RewardName+": "+reason, 255), RefType: refRedemption,
		RefID: strconv.FormatUint(red.ID, 10), RuleVersion: e.rules.Version, IdempotencyKey: key, CreatedAt: now}
	if left > 0 {
		ent.ExpiresAt = e.rules.Rules.Expiry.ExpiresAt(now, e.loc)
	}
	if err := tx.WithContext(ctx).Create(&ent).Error; err != nil {
		return Entry{}, fmt.Errorf("points: give-back entry: %w", err)
	}
	if left > 0 {
		l := lot{MerchantID: a.MerchantID, MemberID: a.MemberID, LedgerID: ent.ID, Status: lotActive, Points: left,
			Remaining: left, ExpiresAt: ent.ExpiresAt, CreatedAt: now, UpdatedAt: now}
		if err := tx.WithContext(ctx).Create(&l).Error; err != nil {
			return Entry{}, fmt.Errorf("points: give-back lot: %w", err)
		}
	}
	return ent, nil
}
