package referral

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"
)

// counted are the statuses of referrals that count as brought in (an
// ineligible one does not).
var counted = []Status{StatusPending, StatusConverted, StatusReversed}

// Summary is a member's own referrals, for the member API.
type Summary struct {
	Invited      int64  `json:"invited"`       // members they brought in
	Converted    int64  `json:"converted"`     // of whom made a first paid order (not refunded)
	PointsEarned int64  `json:"points_earned"` // their rewards for those
	Referrals    []Item `json:"referrals"`     // the latest 50, newest first
}

// Item is one referral as the referrer sees it: the referee's name masked.
type Item struct {
	Name        string     `json:"name"`
	Status      Status     `json:"status"`
	JoinedAt    time.Time  `json:"joined_at"`
	ConvertedAt *time.Time `json:"converted_at"`
}

// Summary returns the member's referrals. It reads idx_referrals_referrer.
func (s *Service) Summary(ctx context.Context, merchantID, memberID uint64) (Summary, error) {
	out := Summary{Referrals: []Item{}}
	var rows []Referral
	if err := s.db.WithContext(ctx).Where("merchant_id = ? AND referrer_id = ? AND status IN ?", merchantID, memberID, counted).
		Order("id DESC").Limit(50).Find(&rows).Error; err != nil {
		return Summary{}, fmt.Errorf("referral: summary: %w", err)
	}
	var agg struct {
		Invited   int64
		Converted int64
		Points    int64
	}
	if err := s.db.WithContext(ctx).Model(&Referral{}).
		Select("COUNT(*) AS invited, COALESCE(SUM(CASE WHEN status = ? THEN 1 ELSE 0 END), 0) AS converted, "+
			"COALESCE(SUM(CASE WHEN status = ? THEN referrer_points ELSE 0 END), 0) AS points", StatusConverted, StatusConverted).
		Where("merchant_id = ? AND referrer_id = ? AND status IN ?", merchantID, memberID, counted).Scan(&agg).Error; err != nil {
		return Summary{}, fmt.Errorf("referral: summary: %w", err)
	}
	out.Invited, out.Converted, out.PointsEarned = agg.Invited, agg.Converted, agg.Points
	ids := make([]uint64, len(rows))
	for i, r := range rows {
		ids[i] = r.RefereeID
	}
	names, err := s.names.Names(ctx, merchantID, ids)
	if err != nil {
		return Summary{}, err
	}
	for _, r := range rows {
		out.Referrals = append(out.Referrals, Item{Name: mask(names[r.RefereeID]), Status: r.Status, JoinedAt: r.CreatedAt,
			ConvertedAt: r.ConvertedAt})
	}
	return out, nil
}

// mask keeps the first character of a name: the referrer recognises their
// friend without the API handing out other members' names.
func mask(name string) string {
	if name == "" {
		return "*"
	}
	r, _ := utf8.DecodeRuneInString(name)
	return string(r) + "**"
}

// Report is the merchant's referral programme over a period: the
// referrals recorded in it and what became of them.
type Report struct {
	From         *time.Time    `json:"from"`
	To           *time.Time    `json:"to"`
	Invites      int64         `json:"invites"`     // members who took their invitation (link or QR) in the period
	SignUps      int64         `json:"sign_ups"`    // members brought in
	Conversions  int64         `json:"conversions"` // of them, first paid order made and kept
	Reversed     int64         `json:"reversed"`    // first order refunded: rewards taken back
	Ineligible   int64         `json:"ineligible"`  // refused: self-referral or an identity that already counted
	PointsCost   int64         `json:"points_cost"` // rewards given and kept (both sides)
	TopReferrers []TopReferrer `json:"top_referrers"`
}

// TopReferrer is a member who brought others in.
type TopReferrer struct {
	MemberID   uint64 `json:"member_id"`
	Name       string `json:"name"`
	SignUps    int64  `json:"sign_ups"`
	Converted  int64  `json:"converted"`
	PointsCost int64  `json:"points_cost"`
}

// Report computes the report over referrals recorded in [from, to) (nil:
// open). It reads the period's range of idx_referrals_created, grouped.
func (s *Service) Report(ctx context.Context, merchantID uint64, from, to *time.Time) (Report, error) {
	out := Report{From: from, To: to, TopReferrers: []TopReferrer{}}
	period := func(col string) (string, []any) {
		where, args := "merchant_id = ?", []any{merchantID}
		if from != nil {
			where += " AND " + col + " >= ?"
			args = append(args, *from)
		}
		if to != nil {
			where += " AND " + col + " < ?"
			args = append(args, *to)
		}
		return where, args
	}
	where, args := period("created_at")
	if err := s.db.WithContext(ctx).Model(&Code{}).Where(where, args...).Count(&out.Invites).Error; err != nil {
		return Report{}, fmt.Errorf("referral: report: %w", err)
	}
	var byStatus []struct {
		Status Status
		N      int64
		Points int64
	}
	if err := s.db.WithContext(ctx).Model(&Referral{}).Select("status, COUNT(*) AS n, COALESCE(SUM(referrer_points + referee_points), 0) AS points").
		Where(where, args...).Group("status").Scan(&byStatus).Error; err != nil {
		return Report{}, fmt.Errorf("referral: report: %w", err)
	}
	for _, b := range byStatus {
		switch b.Status {
		case StatusConverted:
			out.Conversions, out.PointsCost = b.N, b.Points
		case StatusReversed:
			out.Reversed = b.N
		case StatusIneligible:
			out.Ineligible = b.N
		}
		if b.Status != StatusIneligible {
			out.SignUps += b.N
		}
	}
	var top []struct {
		ReferrerID uint64
		SignUps    int64
		Converted  int64
		Points     int64
	}
	if err := s.db.WithContext(ctx).Model(&Referral{}).
		Select("referrer_id, COUNT(*) AS sign_ups, SUM(CASE WHEN status = ? THEN 1 ELSE 0 END) AS converted, "+
			"SUM(CASE WHEN status = ? THEN referrer_points + referee_points ELSE 0 END) AS points", StatusConverted, StatusConverted).
		Where(where+" AND status IN ?", append(args, counted)...).Group("referrer_id").
		Order("converted DESC, sign_ups DESC, referrer_id").Limit(10).Scan(&top).Error; err != nil {
		return Report{}, fmt.Errorf("referral: top referrers: %w", err)
	}
	ids := make([]uint64, len(top))
	for i, t := range top {
		ids[i] = t.ReferrerID
	}
	names, err := s.names.Names(ctx, merchantID, ids)
	if err != nil {
		return Report{}, err
	}
	for _, t := range top {
		out.TopReferrers = append(out.TopReferrers, TopReferrer{MemberID: t.ReferrerID, Name: names[t.ReferrerID],
			SignUps: t.SignUps, Converted: t.Converted, PointsCost: t.Points})
	}
	return out, nil
}
