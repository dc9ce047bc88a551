package campaign

import (
	"context"
	"fmt"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// errMemberNotFound answers a member id that cannot be one.
var errMemberNotFound = apperr.New(apperr.ErrNotFound, "member not found")

// MemberMessage is one campaign or care message that reached a member:
// a delivery WeChat took (sent), confirmed (delivered) or, after taking
// it, reported undelivered (failed with a sent time).
type MemberMessage struct {
	ID           uint64         `json:"id"`
	CampaignID   uint64         `json:"campaign_id"`
	CampaignName string         `json:"campaign_name"`
	Kind         Kind           `json:"kind"`
	CareRuleID   *uint64        `json:"care_rule_id"`
	CareRuleName *string        `json:"care_rule_name"`
	Channel      Channel        `json:"channel"`
	Status       DeliveryStatus `json:"status"`
	SentAt       time.Time      `json:"sent_at"`
	DeliveredAt  *time.Time     `json:"delivered_at"`
}

// MemberMessages lists the messages that reached a member, newest first,
// before the delivery id before (0: from the newest). The member's rows
// are one range of idx_deliveries_member (merchant_id, member_id, ...);
// a care campaign is named by its rule (care_runs ties the two). Another
// merchant's member is not found.
func (s *Campaigns) MemberMessages(ctx context.Context, merchantID, memberID, before uint64, limit int) ([]MemberMessage, error) {
	type row struct {
		ID           uint64
		CampaignID   uint64
		CampaignName string
		Kind         Kind
		CareRuleID   *uint64
		CareRuleName *string
		Channel      Channel
		Status       DeliveryStatus
		SentAt       time.Time
		FinishedAt   *time.Time
	}
	var n int64
	if err := s.db.WithContext(ctx).Table("members").Where("merchant_id = ? AND id = ?", merchantID, memberID).Count(&n).Error; err != nil {
		return nil, fmt.Errorf("campaign: messages of member %d: %w", memberID, err)
	}
	if n == 0 {
		return nil, errMemberNotFound
	}
	q := s.db.WithContext(ctx).Table("campaign_deliveries d").
		Select("d.id, d.campaign_id, c.name AS campaign_name, c.kind, r.id AS care_rule_id, r.name AS care_rule_name, c.channel, d.status, d.sent_at, d.finished_at").
		Joins("JOIN campaigns c ON c.id = d.campaign_id").
		Joins("LEFT JOIN care_runs cr ON cr.merchant_id = d.merchant_id AND cr.campaign_id = d.campaign_id").
		Joins("LEFT JOIN care_rules r ON r.id = cr.rule_id").
		Where("d.merchant_id = ? AND d.member_id = ? AND d.sent_at IS NOT NULL AND d.status IN ?", merchantID, memberID,
			[]DeliveryStatus{DeliverySent, DeliveryDelivered, DeliveryFailed})
	if before != 0 {
		q = q.Where("d.id < ?", before)
	}
	var rows []row
	if err := q.Order("d.id DESC").Limit(limit).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("campaign: messages of member %d: %w", memberID, err)
	}
	out := make([]MemberMessage, len(rows))
	for i, r := range rows {
		m := MemberMessage{ID: r.ID, CampaignID: r.CampaignID, CampaignName: r.CampaignName, Kind: r.Kind,
			CareRuleID: r.CareRuleID, CareRuleName: r.CareRuleName, Channel: r.Channel, Status: r.Status, SentAt: r.SentAt.UTC()}
		if r.Status == DeliveryDelivered && r.FinishedAt != nil {
			t := r.FinishedAt.UTC()
			m.DeliveredAt = &t
		}
		out[i] = m
	}
	return out, nil
}

// memberMessages serves GET /members/:member_id/messages (members:read):
// what the member page shows as "messages received".
func (h *Handler) memberMessages(c *gin.Context) {
	id, ok := httpx.PathID(c, "member_id", errMemberNotFound)
	if !ok {
		return
	}
	before, limit, ok := httpx.BeforeQuery(c, 50, 200)
	if !ok {
		return
	}
	list, err := h.camps.MemberMessages(c.Request.Context(), authz.MustFrom(c).MerchantID, id, before, limit)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.WriteBeforePage(c, "messages", list, limit, func(m MemberMessage) uint64 { return m.ID })
}
