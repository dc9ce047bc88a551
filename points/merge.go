package points

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/member"
)

// MergeHook moves a merged member's points to the surviving member inside
// the merge transaction (register it with member.Service.OnMerge). The
// member rows are locked by the merge already; the two accounts are locked
// here, the survivor first. Balances add up, entries, lots, orders,
// refunds, redemptions and tier history move (an entry's balance column
// stays what it was for the member who had it), the higher tier is kept,
// one-off bonuses given to either count for the survivor, and the
// survivor's purchase facts are derived again from the orders they now
// hold.
func (s *Service) MergeHook(ctx context.Context, tx *gorm.DB, merchantID, fromID, intoID uint64) error {
	var n int64
	if err := tx.WithContext(ctx).Model(&account{}).Where("merchant_id = ? AND member_id = ?", merchantID, fromID).
		Count(&n).Error; err != nil {
		return fmt.Errorf("points: merge: %w", err)
	}
	var orders int64
	if err := tx.WithContext(ctx).Model(&Order{}).Where("merchant_id = ? AND member_id = ?", merchantID, fromID).
		Count(&orders).Error; err != nil {
		return fmt.Errorf("points: merge: %w", err)
	}
	if n == 0 && orders == 0 {
		return nil // the merged member never had points
	}
	into, err := s.lockAccount(ctx, tx, merchantID, intoID)
	if err != nil {
		return err
	}
	from, err := s.lockAccount(ctx, tx, merchantID, fromID)
	if err != nil {
		return err
	}
	into.Available += from.Available
	into.Pending += from.Pending
	into.Debt += from.Debt
	into.BonusFlags |= from.BonusFlags
	if from.StreakDay > into.StreakDay {
		into.StreakDay, into.Streak = from.StreakDay, from.Streak
	}
	switch {
	case from.CapDay == into.CapDay:
		into.CapEarned += from.CapEarned
	case from.CapDay > into.CapDay:
		into.CapDay, into.CapEarned = from.CapDay, from.CapEarned
	}
	tiers, err := s.tiers(ctx, tx, merchantID)
	if err != nil {
		return err
	}
	ft, it := tierByID(tiers, from.TierID), tierByID(tiers, into.TierID)
	if ft != nil && (it == nil || ft.Level > it.Level) {
		into.TierID, into.TierSince, into.TierReviewAt, into.TierGraceUntil = from.TierID, from.TierSince, from.TierReviewAt, from.TierGraceUntil
		if _, err := s.tierHistory(ctx, tx, into, it, ft, tierMerge, 0, s.now()); err != nil {
			return err
		}
	}
	if err := member.SetTier(ctx, tx, merchantID, intoID, into.TierID); err != nil {
		return err
	}
	for _, table := range []string{"points_ledger", "points_lots", "points_orders", "points_refunds",
		"points_redemptions", "points_tier_history"} {
		if err := tx.WithContext(ctx).Exec("UPDATE "+table+" SET member_id = ? WHERE merchant_id = ? AND member_id = ?",
			intoID, merchantID, fromID).Error; err != nil {
			return fmt.Errorf("points: merge %s: %w", table, err)
		}
	}
	// Debt is only owed while no lot has points left (credits pay it
	// first); merging a debtor with a member holding points settles it.
	if into.Debt > 0 {
		_, short, err := s.takeFromLots(ctx, tx, into, into.Debt, 0)
		if err != nil {
			return err
		}
		into.Debt = short
	}
	if err := tx.WithContext(ctx).Where("merchant_id = ? AND member_id = ?", merchantID, fromID).Delete(&account{}).Error; err != nil {
		return fmt.Errorf("points: merge: delete account: %w", err)
	}
	if err := s.saveAccount(ctx, tx, into); err != nil {
		return err
	}
	facts, err := derivePurchaseFacts(ctx, tx, merchantID, intoID)
	if err != nil {
		return err
	}
	if err := member.SetPurchaseFacts(ctx, tx, merchantID, intoID, facts); err != nil {
		return err
	}
	return s.afterPurchase(ctx, tx, merchantID, intoID)
}
