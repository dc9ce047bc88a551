package points

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
)

// This file owns points_coupons: a coupon is the redemption of a coupon
// reward as the member shows it at the till. It is issued with its
// redemption, then moves once, by one guarded UPDATE ... WHERE status =
// 'issued', to used (verified by staff or a POS), expired (the sweep, past
// expires_at) or cancelled (its redemption was cancelled). Of any number
// of concurrent verifications of one code, the UPDATE lets one through.

// CouponStatus is the state of a coupon.
type CouponStatus string

// Coupon states.
const (
	CouponIssued    CouponStatus = "issued"
	CouponUsed      CouponStatus = "used"
	CouponExpired   CouponStatus = "expired"
	CouponCancelled CouponStatus = "cancelled"
)

// DefaultCouponValidDays is how long a coupon is valid when the reward
// does not say.
const DefaultCouponValidDays = 30

// Coupon is a points_coupons row.
type Coupon struct {
	ID              uint64 `gorm:"primaryKey"`
	MerchantID      uint64
	MemberID        uint64
	RedemptionID    uint64
	RewardID        uint64
	RewardName      string
	Code            string
	Status          CouponStatus
	ExpiresAt       time.Time
	UsedAt          *time.Time
	UsedStore       string
	UsedBy          string
	UsedStaffID     *uint64
	UsedAPIKeyID    *uint64
	VerifyRequestID *string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// TableName implements gorm's tabler.
func (Coupon) TableName() string { return "points_coupons" }

// EffectiveStatus is the coupon's state as the member and staff should see
// it: an issued coupon past its expiry is expired even before the sweep
// has marked it.
func (c Coupon) EffectiveStatus(now time.Time) CouponStatus {
	if c.Status == CouponIssued && !now.Before(c.ExpiresAt) {
		return CouponExpired
	}
	return c.Status
}

// issueCoupon adds the coupon of a coupon reward's redemption, inside the
// redemption's transaction, and emits coupon.issued there. It is valid for
// the reward's coupon_valid_days, never past the reward's own valid_until.
func (s *Service) issueCoupon(ctx context.Context, tx *gorm.DB, r Reward, red Redemption, now time.Time) error {
	days := r.CouponValidDays
	if days <= 0 {
		days = DefaultCouponValidDays
	}
	exp := now.AddDate(0, 0, days)
	if r.ValidUntil != nil && r.ValidUntil.Before(exp) {
		exp = *r.ValidUntil
	}
	c := Coupon{MerchantID: red.MerchantID, MemberID: red.MemberID, RedemptionID: red.ID, RewardID: r.ID,
		RewardName: r.Name, Code: *red.Code, Status: CouponIssued, ExpiresAt: exp, CreatedAt: now, UpdatedAt: now}
	if err := tx.WithContext(ctx).Create(&c).Error; err != nil {
		return fmt.Errorf("points: issue coupon: %w", err)
	}
	return event.Emit(ctx, s.events, tx, event.Event{MerchantID: c.MerchantID, Type: event.CouponIssued,
		Data: event.Coupon{MemberID: c.MemberID, CouponID: c.ID, RedemptionID: c.RedemptionID, RewardID: c.RewardID,
			RewardName: c.RewardName, Code: c.Code, ExpiresAt: c.ExpiresAt}})
}

var (
	errCouponNotFound  = apperr.New(apperr.ErrNotFound, "no coupon with this code")
	errCouponUsed      = apperr.New(apperr.ErrConflict, "this coupon was already used")
	errCouponExpired   = apperr.New(apperr.ErrUnprocessable, "this coupon has expired")
	errCouponCancelled = apperr.New(apperr.ErrUnprocessable, "this coupon was cancelled")
	errCouponSpent     = apperr.New(apperr.ErrConflict, "the redemption's coupon was already used: it cannot be cancelled")
)

// VerifyInput is one verification (核销) of a coupon at the till.
type VerifyInput struct {
	Code      string // as shown by the member; case and spaces do not matter
	RequestID string // the till's id of this attempt: a repeat answers the first result
	Store     string // where (optional, free text)
}

func (in *VerifyInput) validate() error {
	v := &apperr.Validation{}
	in.Code = strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(in.Code), " ", ""))
	if in.Code == "" || len(in.Code) > 32 {
		v.Add("code", "is required: the coupon code the member shows")
	}
	if !validID(in.RequestID) {
		v.Add("request_id", "is required: 1 to 64 visible ASCII characters, without / ? # % or \\")
	}
	in.Store = strings.TrimSpace(in.Store)
	if utf8.RuneCountInString(in.Store) > 64 {
		v.Add("store", "must be at most 64 characters")
	}
	return v.Err()
}

// VerifyCoupon marks the merchant's coupon with the code used, exactly
// once, recording when, where and by whom (the caller's principal), in the
// audit log too. Repeating the request id of the verification that used it
// answers that verification again (replayed true); any other verification
// of a used coupon is a conflict, of an expired or cancelled one
// unprocessable.
func (s *Service) VerifyCoupon(ctx context.Context, merchantID uint64, in VerifyInput) (Coupon, bool, error) {
	if err := in.validate(); err != nil {
		return Coupon{}, false, err
	}
	p, _ := authz.From(ctx)
	var out Coupon
	replayed := false
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		now := s.now()
		c, err := couponByCode(ctx, tx, merchantID, in.Code)
		if err != nil {
			return err
		}
		upd := map[string]any{"status": CouponUsed, "used_at": now, "used_store": in.Store, "used_by": clip(p.Name, 64),
			"verify_request_id": in.RequestID, "updated_at": now}
		if p.StaffID != 0 {
			upd["used_staff_id"] = p.StaffID
		}
		if p.APIKeyID != 0 {
			upd["used_api_key_id"] = p.APIKeyID
		}
		// The one transition to used: of concurrent verifications, the
		// first UPDATE takes the row lock and moves it; the others then
		// find it no longer issued and change nothing.
		res := tx.WithContext(ctx).Model(&Coupon{}).
			Where("id = ? AND merchant_id = ? AND status = ? AND expires_at > ?", c.ID, merchantID, CouponIssued, now).
			Updates(upd)
		if res.Error != nil {
			return fmt.Errorf("points: verify coupon: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			cur, err := couponByCode(ctx, tx, merchantID, in.Code)
			if err != nil {
				return err
			}
			switch {
			case cur.Status == CouponUsed && cur.VerifyRequestID != nil && *cur.VerifyRequestID == in.RequestID:
				out, replayed = cur, true
				return nil
			case cur.Status == CouponUsed:
				return errCouponUsed
			case cur.Status == CouponCancelled:
				return errCouponCancelled
			default:
				return errCouponExpired
			}
		}
		if err := tx.WithContext(ctx).Where("id = ?", c.ID).Take(&out).Error; err != nil {
			return fmt.Errorf("points: coupon %d: %w", c.ID, err)
		}
		if err := audit.Record(ctx, tx, merchantID, audit.Entry{Action: "coupon.verify", TargetType: "coupon",
			TargetIDs: []uint64{c.ID}, After: map[string]any{"member_id": c.MemberID, "redemption_id": c.RedemptionID,
				"reward": c.RewardName, "store": in.Store, "request_id": in.RequestID}}, now); err != nil {
			return err
		}
		// In the verification's transaction, through the outbox: the event
		// exists exactly when the verification does (a replay or a refused
		// verification moved nothing and emits nothing).
		return event.Emit(ctx, s.events, tx, event.Event{MerchantID: merchantID, Type: event.CouponVerified,
			Data: event.CouponVerification{MemberID: out.MemberID, CouponID: out.ID, RedemptionID: out.RedemptionID,
				RewardID: out.RewardID, RewardName: out.RewardName, Store: out.UsedStore, StaffID: out.UsedStaffID,
				APIKeyID: out.UsedAPIKeyID, UsedBy: out.UsedBy, VerifiedAt: now}})
	})
	return out, replayed, err
}

func couponByCode(ctx context.Context, q *gorm.DB, merchantID uint64, code string) (Coupon, error) {
	var c Coupon
	// uk_points_coupons_code
	err := q.WithContext(ctx).Where("merchant_id = ? AND code = ?", merchantID, code).Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Coupon{}, errCouponNotFound
	}
	if err != nil {
		return Coupon{}, fmt.Errorf("points: coupon by code: %w", err)
	}
	return c, nil
}

// CouponByCode returns the merchant's coupon with the code (what staff
// check before verifying it).
func (s *Service) CouponByCode(ctx context.Context, merchantID uint64, code string) (Coupon, error) {
	return couponByCode(ctx, s.db, merchantID, strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(code), " ", "")))
}

// cancelCoupon cancels the coupon of a redemption being cancelled, inside
// that transaction: an issued (or expired) coupon becomes cancelled; a used
// one makes the cancellation a conflict (what was handed over cannot be
// given back as points). A redemption without a coupon changes nothing.
func cancelCoupon(ctx context.Context, tx *gorm.DB, merchantID, redemptionID uint64, now time.Time) error {
	res := tx.WithContext(ctx).Model(&Coupon{}).
		Where("merchant_id = ? AND redemption_id = ? AND status IN ?", merchantID, redemptionID, []CouponStatus{CouponIssued, CouponExpired}).
		Updates(map[string]any{"status": CouponCancelled, "updated_at": now})
	if res.Error != nil {
		return fmt.Errorf("points: cancel coupon: %w", res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	var n int64
	if err := tx.WithContext(ctx).Model(&Coupon{}).Where("merchant_id = ? AND redemption_id = ? AND status = ?",
		merchantID, redemptionID, CouponUsed).Count(&n).Error; err != nil {
		return fmt.Errorf("points: coupon of redemption %d: %w", redemptionID, err)
	}
	if n > 0 {
		return errCouponSpent
	}
	return nil
}

// couponsOf returns the coupons of redemptions, by redemption id.
func (s *Service) couponsOf(ctx context.Context, merchantID uint64, redemptionIDs []uint64) (map[uint64]Coupon, error) {
	out := map[uint64]Coupon{}
	if len(redemptionIDs) == 0 {
		return out, nil
	}
	var list []Coupon
	// uk_points_coupons_redemption
	if err := s.db.WithContext(ctx).Where("merchant_id = ? AND redemption_id IN ?", merchantID, redemptionIDs).
		Find(&list).Error; err != nil {
		return nil, fmt.Errorf("points: coupons of redemptions: %w", err)
	}
	for _, c := range list {
		out[c.RedemptionID] = c
	}
	return out, nil
}

// expireCoupons marks issued coupons past their expiry expired, a batch
// at a time (idx_points_coupons_due), and returns how many.
func (s *Service) expireCoupons(ctx context.Context) (int, error) {
	total := 0
	for {
		now := s.now()
		var ids []uint64
		if err := s.db.WithContext(ctx).Model(&Coupon{}).Where("status = ? AND expires_at <= ?", CouponIssued, now).
			Order("expires_at, id").Limit(s.JobBatch).Pluck("id", &ids).Error; err != nil {
			return total, fmt.Errorf("points: due coupons: %w", err)
		}
		if len(ids) == 0 {
			return total, nil
		}
		res := s.db.WithContext(ctx).Model(&Coupon{}).Where("id IN ? AND status = ? AND expires_at <= ?", ids, CouponIssued, now).
			Updates(map[string]any{"status": CouponExpired, "updated_at": now})
		if res.Error != nil {
			return total, fmt.Errorf("points: expire coupons: %w", res.Error)
		}
		total += int(res.RowsAffected)
		if len(ids) < s.JobBatch {
			return total, nil
		}
	}
}

// ExpiringCoupon is an issued coupon that expires soon.
type ExpiringCoupon struct {
	ID         uint64
	MemberID   uint64
	ExpiresAt  time.Time
	RewardName string
	Code       string
}

// CouponsExpiringSoon lists the merchant's issued coupons that expire
// within the window, by coupon id after the cursor afterID, limit at a
// time: the care reminders' audience ("your coupon expires soon").
// idx_points_coupons_expiring bounds it to the window's coupons.
func (s *Service) CouponsExpiringSoon(ctx context.Context, merchantID uint64, within time.Duration, afterID uint64, limit int) ([]ExpiringCoupon, error) {
	now := s.now()
	out := []ExpiringCoupon{}
	if err := s.db.WithContext(ctx).Model(&Coupon{}).Select("id, member_id, expires_at, reward_name, code").
		Where("merchant_id = ? AND status = ? AND expires_at > ? AND expires_at <= ? AND id > ?",
			merchantID, CouponIssued, now, now.Add(within), afterID).Order("id").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("points: coupons expiring soon: %w", err)
	}
	return out, nil
}

// couponMember is what a coupon list shows of the coupon's member.
type couponMember struct {
	ID    uint64
	Name  string
	Phone *string
}

// couponMembers reads the name and phone of the members of a page of
// coupons (members by primary key; an erased member's are empty).
func (s *Service) couponMembers(ctx context.Context, merchantID uint64, ids []uint64) (map[uint64]couponMember, error) {
	out := map[uint64]couponMember{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []couponMember
	if err := s.db.WithContext(ctx).Table("members").Select("id, name, phone").
		Where("merchant_id = ? AND id IN ?", merchantID, ids).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("points: coupons' members: %w", err)
	}
	for _, r := range rows {
		out[r.ID] = r
	}
	return out, nil
}

// CouponFilter narrows a coupon list; zero fields do not filter. Status is
// the effective one (an issued coupon past its expiry is expired).
type CouponFilter struct {
	MemberID uint64
	RewardID uint64
	Status   CouponStatus
}

// MemberCoupons lists a member's coupons newest first, optionally of one
// effective status, before the coupon id before (0: from the newest).
func (s *Service) MemberCoupons(ctx context.Context, merchantID, memberID uint64, status CouponStatus, before uint64, limit int) ([]Coupon, error) {
	return s.Coupons(ctx, merchantID, CouponFilter{MemberID: memberID, Status: status}, before, limit)
}

// Coupons lists the merchant's coupons newest first, filtered by f,
// before the coupon id before (0: from the newest). A member's coupons are
// one range of idx_points_coupons_member.
func (s *Service) Coupons(ctx context.Context, merchantID uint64, f CouponFilter, before uint64, limit int) ([]Coupon, error) {
	now := s.now()
	q := s.db.WithContext(ctx).Where("merchant_id = ?", merchantID)
	if f.MemberID != 0 {
		q = q.Where("member_id = ?", f.MemberID)
	}
	if f.RewardID != 0 {
		q = q.Where("reward_id = ?", f.RewardID)
	}
	if before != 0 {
		q = q.Where("id < ?", before)
	}
	switch f.Status {
	case "":
	case CouponIssued:
		q = q.Where("status = ? AND expires_at > ?", CouponIssued, now)
	case CouponExpired:
		q = q.Where("(status = ? OR (status = ? AND expires_at <= ?))", CouponExpired, CouponIssued, now)
	default:
		q = q.Where("status = ?", f.Status)
	}
	out := []Coupon{}
	if err := q.Order("id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("points: coupons: %w", err)
	}
	return out, nil
}
