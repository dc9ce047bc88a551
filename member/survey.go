package member

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// RecordSurvey records, in tx, the member's last satisfaction survey
// answer (the last_nps and last_satisfaction segment fields) and
// recomputes their churn risk, which a recent detractor answer raises
// (DetractorRisk). The member's row should already be locked by the
// caller.
func (a *Attributes) RecordSurvey(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64, nps, satisfaction int, at time.Time) error {
	if err := tx.WithContext(ctx).Exec("UPDATE members SET last_nps = ?, last_satisfaction = ?, last_survey_at = ? WHERE merchant_id = ? AND id = ?",
		nps, satisfaction, at.UTC(), merchantID, memberID).Error; err != nil {
		return fmt.Errorf("member: survey answer of %d: %w", memberID, err)
	}
	return a.Refresh(ctx, tx, merchantID, memberID)
}
