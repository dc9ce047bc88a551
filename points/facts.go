package points

import (
	"context"
	"fmt"
)

// MemberFacts is what messages may say about a member's points.
type MemberFacts struct {
	Available    int64
	TierName     string
	ExpiringSoon int64 // expires within the rules' ExpiringSoonDays
}

// MemberFacts returns, for many members at once, their balance, tier name
// and points expiring soon: three set queries (accounts by primary key,
// the merchant's tiers, the members' active lots), for campaign messages
// that use {{points}}, {{tier}} or {{expiring_points}}.
func (s *Service) MemberFacts(ctx context.Context, merchantID uint64, memberIDs []uint64) (map[uint64]MemberFacts, error) {
	out := make(map[uint64]MemberFacts, len(memberIDs))
	if len(memberIDs) == 0 {
		return out, nil
	}
	e, err := s.env(ctx, merchantID)
	if err != nil {
		return nil, err
	}
	names := map[uint64]string{}
	for _, t := range e.tiers {
		names[t.ID] = t.Name
	}
	var accts []account
	if err := s.db.WithContext(ctx).Where("merchant_id = ? AND member_id IN ?", merchantID, memberIDs).Find(&accts).Error; err != nil {
		return nil, fmt.Errorf("points: accounts: %w", err)
	}
	for _, a := range accts {
		f := MemberFacts{Available: a.Available}
		if a.TierID != nil {
			f.TierName = names[*a.TierID]
		}
		out[a.MemberID] = f
	}
	var soon []struct {
		MemberID uint64
		Points   int64
	}
	// idx_points_lots_member: each member's active lots.
	if err := s.db.WithContext(ctx).Model(&lot{}).Select("member_id, SUM(remaining) AS points").
		Where("merchant_id = ? AND member_id IN ? AND status = ? AND expires_at IS NOT NULL AND expires_at <= ?",
			merchantID, memberIDs, lotActive, s.now().AddDate(0, 0, e.rules.Rules.ExpiringSoonDays)).
		Group("member_id").Find(&soon).Error; err != nil {
		return nil, fmt.Errorf("points: expiring lots: %w", err)
	}
	for _, x := range soon {
		f := out[x.MemberID]
		f.ExpiringSoon = x.Points
		out[x.MemberID] = f
	}
	return out, nil
}

// OrdersByChannel counts the orders (not fully refunded) of members by
// their acquisition channel (members.channel_scene), for the channel
// report: the channel's members through the members index on
// (merchant_id, channel_scene, id), then each one's orders through
// idx_points_orders_member.
func (s *Service) OrdersByChannel(ctx context.Context, merchantID uint64, scenes []string) (map[string]int64, error) {
	out := make(map[string]int64, len(scenes))
	if len(scenes) == 0 {
		return out, nil
	}
	var rows []struct {
		Scene string
		N     int64
	}
	err := s.db.WithContext(ctx).Table("members m").Select("m.channel_scene AS scene, COUNT(o.id) AS n").
		Joins("JOIN points_orders o ON o.merchant_id = m.merchant_id AND o.member_id = m.id AND o.refunded_fen < o.amount_fen").
		Where("m.merchant_id = ? AND m.channel_scene IN ?", merchantID, scenes).Group("m.channel_scene").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("points: orders by channel: %w", err)
	}
	for _, r := range rows {
		out[r.Scene] = r.N
	}
	return out, nil
}
