package member

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/db"
)

// Purchase facts are the order figures kept on the members row, so segments
// and the lifecycle job can filter on them without touching the orders:
// order_count, total_spend_fen, first_order_at and last_order_at. The
// points package owns the orders and writes the facts inside its own order
// and refund transactions through the functions below (tx is the caller's
// transaction); nothing else writes them.
//
// Semantics (DOMAIN: only paid, non-refunded amounts count):
//   - total_spend_fen is the sum over the member's orders of the paid
//     amount minus the refunded amount;
//   - order_count counts orders that are not fully refunded (a partial
//     refund keeps the order counted, a full refund removes it);
//   - first_order_at and last_order_at are the earliest and latest order
//     times among the counted orders, NULL when there is none.
//
// A member whose every order was fully refunded therefore ends with 0, 0,
// NULL, NULL: as if they had never bought.

// PurchaseFacts are a member's order figures.
type PurchaseFacts struct {
	OrderCount    int64
	TotalSpendFen int64
	FirstOrderAt  *time.Time
	LastOrderAt   *time.Time
}

// PurchaseDelta is what one new paid order adds to the facts.
type PurchaseDelta struct {
	Orders    int64     // orders added (1 for a new order)
	SpendFen  int64     // amount added, in fen
	OrderedAt time.Time // the order's time: widens first/last order times
}

// RecordPurchase adds a new order to the member's facts in tx. It is the
// first write of the points order transaction on purpose: the UPDATE takes
// the member row's lock, so every points transaction that touches a member
// row takes it before the points account row (the same order as a member
// merge), and the two cannot deadlock. A member that does not exist (merged
// away or never existed) is apperr.ErrNotFound.
func RecordPurchase(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64, d PurchaseDelta) error {
	if d.Orders == 0 && d.SpendFen == 0 {
		return LockMember(ctx, tx, merchantID, memberID)
	}
	at := d.OrderedAt.UTC()
	// CASE rather than LEAST/GREATEST: both dialects have it, and NULL
	// (no order yet) is handled explicitly. Uses the primary key.
	res := tx.WithContext(ctx).Exec(`UPDATE members SET order_count = order_count + ?,
  total_spend_fen = total_spend_fen + ?,
  first_order_at = CASE WHEN first_order_at IS NULL OR first_order_at > ? THEN ? ELSE first_order_at END,
  last_order_at = CASE WHEN last_order_at IS NULL OR last_order_at < ? THEN ? ELSE last_order_at END
WHERE merchant_id = ? AND id = ?`, d.Orders, d.SpendFen, at, at, at, at, merchantID, memberID)
	if res.Error != nil {
		return fmt.Errorf("member: record purchase of %d: %w", memberID, res.Error)
	}
	if res.RowsAffected == 0 {
		return errMemberNotFound
	}
	return nil
}

// SetPurchaseFacts overwrites the member's facts in tx with figures the
// caller derived from its orders (after a refund or a merge). Lock the
// member first (LockMember) when the transaction also locks other rows.
func SetPurchaseFacts(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64, f PurchaseFacts) error {
	err := tx.WithContext(ctx).Exec(`UPDATE members SET order_count = ?, total_spend_fen = ?,
  first_order_at = ?, last_order_at = ? WHERE merchant_id = ? AND id = ?`,
		f.OrderCount, f.TotalSpendFen, utcPtr(f.FirstOrderAt), utcPtr(f.LastOrderAt), merchantID, memberID).Error
	if err != nil {
		return fmt.Errorf("member: set purchase facts of %d: %w", memberID, err)
	}
	return nil
}

// GetPurchaseFacts reads the member's facts.
func GetPurchaseFacts(ctx context.Context, gdb *gorm.DB, merchantID, memberID uint64) (PurchaseFacts, error) {
	r, err := db.TakeOne[factsRow](gdb.WithContext(ctx).Table("members").
		Select("id, order_count, total_spend_fen, first_order_at, last_order_at").
		Where("merchant_id = ? AND id = ?", merchantID, memberID), errMemberNotFound, "member: purchase facts of %d", memberID)
	if err != nil {
		return PurchaseFacts{}, err
	}
	return r.facts(), nil
}

// PurchaseFactsRange returns the facts of the merchant's members with ids
// in [fromID, toID] that have any (order_count or spend not zero, or an
// order time), by member id. It walks the primary key range; reconciliation
// uses it to compare the facts with the orders chunk by chunk.
func PurchaseFactsRange(ctx context.Context, gdb *gorm.DB, merchantID, fromID, toID uint64) (map[uint64]PurchaseFacts, error) {
	var rows []factsRow
	err := gdb.WithContext(ctx).Table("members").Select("id, order_count, total_spend_fen, first_order_at, last_order_at").
		Where("merchant_id = ? AND id BETWEEN ? AND ?", merchantID, fromID, toID).
		Where("order_count <> 0 OR total_spend_fen <> 0 OR first_order_at IS NOT NULL OR last_order_at IS NOT NULL").
		Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("member: purchase facts %d..%d: %w", fromID, toID, err)
	}
	out := make(map[uint64]PurchaseFacts, len(rows))
	for _, r := range rows {
		out[r.ID] = r.facts()
	}
	return out, nil
}

type factsRow struct {
	ID            uint64
	OrderCount    int64
	TotalSpendFen int64
	FirstOrderAt  *time.Time
	LastOrderAt   *time.Time
}

func (r factsRow) facts() PurchaseFacts {
	return PurchaseFacts{OrderCount: r.OrderCount, TotalSpendFen: r.TotalSpendFen,
		FirstOrderAt: utcPtr(r.FirstOrderAt), LastOrderAt: utcPtr(r.LastOrderAt)}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// SetTier writes the member's loyalty tier (nil: none) in tx. The points
// package calls it in the transaction that changes the tier, after locking
// the member row.
func SetTier(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64, tierID *uint64) error {
	err := tx.WithContext(ctx).Exec("UPDATE members SET tier_id = ? WHERE merchant_id = ? AND id = ?",
		tierID, merchantID, memberID).Error
	if err != nil {
		return fmt.Errorf("member: set tier of %d: %w", memberID, err)
	}
	return nil
}

// LockMember takes the member row's lock in tx (FOR UPDATE on MySQL; a
// SQLite transaction holds the write lock already). Points transactions
// that may write the member row lock it before their own rows, the order a
// merge uses too. A missing member is apperr.ErrNotFound.
func LockMember(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64) error {
	var id uint64
	err := tx.WithContext(ctx).Table("members").Clauses(clause.Locking{Strength: "UPDATE"}).Select("id").
		Where("merchant_id = ? AND id = ?", merchantID, memberID).Take(&id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return errMemberNotFound
	}
	if err != nil {
		return fmt.Errorf("member: lock %d: %w", memberID, err)
	}
	return nil
}

// BuyerRef names a member the way a shop or POS knows them: exactly one of
// the member id, a WeChat openid (official account or mini-program) or a
// phone number.
type BuyerRef struct {
	ID     uint64
	OpenID string
	Phone  string
}

// Buyer is what the points program needs to know about a member.
type Buyer struct {
	ID              uint64
	BirthdayMonth   int  // 1-12, 0 when unknown
	EverFollowed    bool // followed the official account at some point
	HasMiniProgram  bool // logged in to the mini-program at least once
	ProfileComplete bool // name, phone and birthday all given
	Erased          bool // PIPL-erased: an anonymous tombstone
}

// NormalizePhone returns a phone number as members store it, and whether s
// is one: an 11-digit mainland number (an optional +86 is dropped) or
// +<country code><number>. Callers that take a phone number from a request
// check it with this, so a malformed number is a bad request naming the
// field, not a member that was not found.
func NormalizePhone(s string) (string, bool) {
	phone := strings.TrimPrefix(strings.TrimSpace(s), "+86")
	return phone, phoneRe.MatchString(phone)
}

// FindBuyer returns the member a BuyerRef names. An id that was merged into
// another member resolves to the survivor. Each lookup is a probe of the
// primary key or of one of the unique identity indexes. A member that does
// not exist is apperr.ErrNotFound.
func (s *Service) FindBuyer(ctx context.Context, merchantID uint64, ref BuyerRef) (Buyer, error) {
	st := store{s.db}
	var (
		m   Member
		err error
	)
	switch {
	case ref.ID != 0:
		m, err = s.Resolve(ctx, merchantID, ref.ID)
	case ref.OpenID != "":
		m, err = st.by(ctx, merchantID, byOAOpenID, ref.OpenID, false)
		if isNotFound(err) {
			m, err = st.by(ctx, merchantID, byMPOpenID, ref.OpenID, false)
		}
	case ref.Phone != "":
		phone, ok := NormalizePhone(ref.Phone)
		if !ok {
			return Buyer{}, errMemberNotFound
		}
		m, err = st.by(ctx, merchantID, byPhone, phone, false)
	default:
		return Buyer{}, errMemberNotFound
	}
	if err != nil {
		return Buyer{}, err
	}
	b := Buyer{ID: m.ID, EverFollowed: m.FollowedAt != nil || m.FollowStatus != FollowNone,
		HasMiniProgram: m.MPOpenID != nil, Erased: m.ErasedAt != nil,
		ProfileComplete: m.Name != "" && m.Phone != nil && m.BirthdayMonth != nil}
	if m.BirthdayMonth != nil {
		b.BirthdayMonth = *m.BirthdayMonth
	}
	return b, nil
}

// MemberIDByOAOpenID returns the id of the member with the official-account
// openid: one probe of uk_members_oa_openid, for answers that must be quick
// (the keyword reply inside WeChat's 5-second limit).
func MemberIDByOAOpenID(ctx context.Context, gdb *gorm.DB, merchantID uint64, openID string) (uint64, error) {
	var id uint64
	err := gdb.WithContext(ctx).Table("members").Select("id").
		Where("merchant_id = ? AND oa_openid = ?", merchantID, openID).Take(&id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, errMemberNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("member: find by openid: %w", err)
	}
	return id, nil
}
