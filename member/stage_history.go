package member

import (
	"context"
	"fmt"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// StageChange is one lifecycle stage transition of a member as the member
// page shows it. The transitions are written where the stage changes, in
// the same transaction (order_refresh.go, attributes.go).
type StageChange struct {
	ID         uint64    `json:"id"`
	FromStage  string    `json:"from_stage"`
	ToStage    string    `json:"to_stage"`
	Reason     string    `json:"reason"`
	OccurredAt time.Time `json:"occurred_at"`
}

// StageHistory lists a member's stage transitions, newest first, before
// the event id before (0: from the newest): one range of
// idx_stage_events_member (merchant_id, member_id, id). Another
// merchant's member is not found.
func (s *Service) StageHistory(ctx context.Context, merchantID, memberID, before uint64, limit int) ([]StageChange, error) {
	var n int64
	if err := s.db.WithContext(ctx).Table("members").Where("merchant_id = ? AND id = ?", merchantID, memberID).Count(&n).Error; err != nil {
		return nil, fmt.Errorf("member: stage history of %d: %w", memberID, err)
	}
	if n == 0 {
		return nil, errMemberNotFound
	}
	q := s.db.WithContext(ctx).Where("merchant_id = ? AND member_id = ?", merchantID, memberID)
	if before != 0 {
		q = q.Where("id < ?", before)
	}
	var rows []StageEvent
	if err := q.Order("id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("member: stage history of %d: %w", memberID, err)
	}
	out := make([]StageChange, len(rows))
	for i, r := range rows {
		out[i] = StageChange{ID: r.ID, FromStage: r.FromStage, ToStage: r.ToStage, Reason: r.Reason, OccurredAt: r.OccurredAt.UTC()}
	}
	return out, nil
}

// stageHistory serves GET /members/:member_id/stage-history.
func (h *AdminHandler) stageHistory(c *gin.Context) {
	id, ok := httpx.PathID(c, "member_id", errMemberNotFound)
	if !ok {
		return
	}
	before, limit, ok := httpx.BeforeQuery(c, 50, 200)
	if !ok {
		return
	}
	list, err := h.svc.StageHistory(c.Request.Context(), authz.MustFrom(c).MerchantID, id, before, limit)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.WriteBeforePage(c, "stage_changes", list, limit, func(m StageChange) uint64 { return m.ID })
}
