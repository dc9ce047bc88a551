package member

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// store is the gorm access to the member tables. Every query is scoped by
// merchant_id. Methods run on whatever *gorm.DB the store wraps: the pool,
// or a transaction (see inTx).
type store struct{ db *gorm.DB }

// identity columns a member can be found by; each has a unique index
// (merchant_id, column), so lookups are single index probes.
type identity string

const (
	byOAOpenID identity = "oa_openid"
	byMPOpenID identity = "mp_openid"
	byUnionID  identity = "unionid"
	byPhone    identity = "phone"
)

var errMemberNotFound = apperr.New(apperr.ErrNotFound, "member not found")

// get loads a member of the merchant. lock takes a row lock (FOR UPDATE on
// MySQL; SQLite transactions hold the database write lock already).
func (s store) get(ctx context.Context, merchantID, id uint64, lock bool) (Member, error) {
	var m Member
	err := s.q(ctx, lock).Where("merchant_id = ? AND id = ?", merchantID, id).Take(&m).Error
	return m, notFound(err, "get member")
}

// by finds a member by one of its identities.
func (s store) by(ctx context.Context, merchantID uint64, col identity, value string, lock bool) (Member, error) {
	var m Member
	err := s.q(ctx, lock).Where("merchant_id = ? AND "+string(col)+" = ?", merchantID, value).Take(&m).Error
	return m, notFound(err, "find member by "+string(col))
}

func (s store) q(ctx context.Context, lock bool) *gorm.DB {
	q := s.db.WithContext(ctx)
	if lock {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return q
}

func (s store) create(ctx context.Context, m *Member) error {
	if err := s.db.WithContext(ctx).Create(m).Error; err != nil {
		return fmt.Errorf("member: create: %w", err)
	}
	return nil
}

// save writes every column of m (m was read in the same transaction). It
// does not use gorm's Save, which turns an UPDATE that changed no row into
// an upsert.
func (s store) save(ctx context.Context, m *Member) error {
	err := s.db.WithContext(ctx).Model(m).Where("merchant_id = ?", m.MerchantID).
		Select("*").Omit("id", "merchant_id", "created_at").Updates(m).Error
	if err != nil {
		return fmt.Errorf("member: save %d: %w", m.ID, err)
	}
	return nil
}

func (s store) addHistory(ctx context.Context, e *FollowEvent) error {
	if err := s.db.WithContext(ctx).Create(e).Error; err != nil {
		return fmt.Errorf("member: follow history: %w", err)
	}
	return nil
}

func (s store) careDates(ctx context.Context, merchantID, memberID uint64) ([]CareDate, error) {
	var out []CareDate
	err := s.db.WithContext(ctx).Where("merchant_id = ? AND member_id = ?", merchantID, memberID).
		Order("id").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("member: care dates: %w", err)
	}
	return out, nil
}

func (s store) consents(ctx context.Context, merchantID, memberID uint64) ([]Consent, error) {
	var out []Consent
	err := s.db.WithContext(ctx).Where("merchant_id = ? AND member_id = ?", merchantID, memberID).
		Order("channel").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("member: consents: %w", err)
	}
	return out, nil
}

func (s store) history(ctx context.Context, merchantID, memberID uint64, limit int) ([]FollowEvent, error) {
	var out []FollowEvent
	err := s.db.WithContext(ctx).Where("merchant_id = ? AND member_id = ?", merchantID, memberID).
		Order("occurred_at DESC, id DESC").Limit(limit).Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("member: follow history: %w", err)
	}
	return out, nil
}

// mergedInto returns the member that id was merged into, if it was.
func (s store) mergedInto(ctx context.Context, merchantID, id uint64) (uint64, bool, error) {
	var rec mergeRecord
	err := s.db.WithContext(ctx).Where("merchant_id = ? AND from_member_id = ?", merchantID, id).Take(&rec).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("member: merge record: %w", err)
	}
	return rec.IntoMemberID, true, nil
}

func notFound(err error, what string) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return errMemberNotFound
	}
	if err != nil {
		return fmt.Errorf("member: %s: %w", what, err)
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, apperr.ErrNotFound) }

func isRecordNotFound(err error) bool { return errors.Is(err, gorm.ErrRecordNotFound) }
