package points

import (
	"context"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/member"
)

// Opening positions of imported members (member/import.go): points
// satisfies member.Openings.

// refImport is the reference type of opening-balance entries.
const refImport = "import"

// tierImport is the tier-history reason of an imported tier.
const tierImport = "import"

// TierIDs returns the merchant's tiers by lower-cased name, for an import
// to name tiers.
func (s *Service) TierIDs(ctx context.Context, merchantID uint64) (map[string]uint64, error) {
	var tiers []Tier
	if err := s.db.WithContext(ctx).Select("id", "name").Where("merchant_id = ?", merchantID).Find(&tiers).Error; err != nil {
		return nil, fmt.Errorf("points: tiers of merchant %d: %w", merchantID, err)
	}
	out := make(map[string]uint64, len(tiers))
	for _, t := range tiers {
		out[strings.ToLower(t.Name)] = t.ID
	}
	return out, nil
}

// Open records, inside tx, the opening positions of members the import has
// just created (they have no account yet): an account with the balance and
// tier, and for a balance one adjust entry (idempotency key o.Key) with
// its lot, which never expires; a tier is recorded in the tier history.
// Every table gets one multi-row INSERT per batch of up to 1,000 members
// (SQLite takes at most 32,766 values in one statement).
func (s *Service) Open(ctx context.Context, tx *gorm.DB, merchantID uint64, in []member.Opening) error {
	now := s.now()
	accounts := make([]account, 0, len(in))
	var entries []Entry
	var tiers []TierChange
	for _, o := range in {
		a := account{MerchantID: merchantID, MemberID: o.MemberID, Available: o.Points, TierID: o.TierID,
			CreatedAt: now, UpdatedAt: now}
		if o.TierID != nil {
			a.TierSince = &now
			tiers = append(tiers, TierChange{MerchantID: merchantID, MemberID: o.MemberID, ToTierID: o.TierID,
				Reason: tierImport, CreatedAt: now})
		}
		accounts = append(accounts, a)
		if o.Points > 0 {
			entries = append(entries, Entry{MerchantID: merchantID, MemberID: o.MemberID, Kind: KindAdjust, Points: o.Points,
				Balance: o.Points, Reason: "opening balance (import)", RefType: refImport, RefID: o.Key,
				IdempotencyKey: o.Key, CreatedAt: now})
		}
	}
	q := tx.WithContext(ctx)
	if err := q.CreateInBatches(accounts, 1000).Error; err != nil {
		return fmt.Errorf("points: open accounts: %w", err)
	}
	if len(entries) > 0 {
		if err := q.CreateInBatches(entries, 1000).Error; err != nil {
			return fmt.Errorf("points: opening entries: %w", err)
		}
		lots := make([]lot, len(entries))
		for i, e := range entries {
			lots[i] = lot{MerchantID: merchantID, MemberID: e.MemberID, LedgerID: e.ID, Status: lotActive,
				Points: e.Points, Remaining: e.Points, CreatedAt: now, UpdatedAt: now}
		}
		if err := q.CreateInBatches(lots, 1000).Error; err != nil {
			return fmt.Errorf("points: opening lots: %w", err)
		}
	}
	if len(tiers) > 0 {
		if err := q.CreateInBatches(tiers, 1000).Error; err != nil {
			return fmt.Errorf("points: imported tiers: %w", err)
		}
	}
	return nil
}
