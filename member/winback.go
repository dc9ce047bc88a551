package member

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// MarkWinBackLost records, in tx, that the member's win-back episode ended
// with every attempt unanswered, and moves the member to lost (DOMAIN:
// lost forever after the last unanswered win-back attempt) with a stage
// event. The mark holds until the member orders again, which wins them
// back (ComputeStage).
func (a *Attributes) MarkWinBackLost(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64) error {
	if err := tx.WithContext(ctx).Exec("UPDATE members SET win_back_lost_at = ? WHERE merchant_id = ? AND id = ?",
		a.now(), merchantID, memberID).Error; err != nil {
		return fmt.Errorf("member: win-back lost %d: %w", memberID, err)
	}
	return a.Refresh(ctx, tx, merchantID, memberID)
}
