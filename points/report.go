package points

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// MonthPoints is an amount of points in a local calendar month.
type MonthPoints struct {
	Month  string `json:"month"` // YYYY-MM, merchant time
	Points int64  `json:"points"`
}

// PeriodFlow is what moved in one local month, by kind (all positive
// figures except the net ones).
type PeriodFlow struct {
	Month    string `json:"month"`
	Earned   int64  `json:"earned"`   // earn entries (held or not)
	Gifted   int64  `json:"gifted"`   // bonuses and gifts
	Redeemed int64  `json:"redeemed"` // spent on rewards
	Expired  int64  `json:"expired"`
	Reversed int64  `json:"reversed"` // net change by refunds and cancelled redemptions (negative: taken back)
	Adjusted int64  `json:"adjusted"` // net manual adjustments
}

// Liability is the merchant's points liability report.
type Liability struct {
	AsOf        time.Time `json:"as_of"`
	Members     int64     `json:"members"`     // members with an account
	Outstanding int64     `json:"outstanding"` // available points of all members (net of debt)
	Pending     int64     `json:"pending"`     // points on hold
	Debt        int64     `json:"debt"`        // points owed by members after refunds
	// ValueFen values outstanding plus pending points at the rules'
	// liability_fen_per_100_points (0 when not set).
	ValueFen int64 `json:"value_fen"`
	// ExpiringByMonth is when outstanding points expire, by local month of
	// their expiry; NeverExpiring is what never does.
	ExpiringByMonth []MonthPoints `json:"expiring_by_month"`
	NeverExpiring   int64         `json:"never_expiring"`
	// Periods is what was earned, redeemed, expired... per local month.
	Periods []PeriodFlow `json:"periods"`
}

// maxReportMonths bounds the periods of one report.
const maxReportMonths = 36

// Liability returns the liability report, with flows for the local months
// from..to (YYYY-MM, inclusive).
func (s *Service) Liability(ctx context.Context, merchantID uint64, from, to string) (Liability, error) {
	e, err := s.env(ctx, merchantID)
	if err != nil {
		return Liability{}, err
	}
	now := s.now()
	start, end, err := monthRange(from, to, now, e.loc)
	if err != nil {
		return Liability{}, err
	}
	out := Liability{AsOf: now, ExpiringByMonth: []MonthPoints{}, Periods: []PeriodFlow{}}
	// The merchant's accounts by primary key.
	var tot struct {
		Members, Available, Pending, Debt int64
	}
	if err := s.db.WithContext(ctx).Raw(`SELECT COUNT(*) AS members, COALESCE(SUM(available), 0) AS available,
  COALESCE(SUM(pending), 0) AS pending, COALESCE(SUM(debt), 0) AS debt FROM points_accounts WHERE merchant_id = ?`,
		merchantID).Scan(&tot).Error; err != nil {
		return Liability{}, fmt.Errorf("points: liability totals: %w", err)
	}
	out.Members, out.Outstanding, out.Pending, out.Debt = tot.Members, tot.Available, tot.Pending, tot.Debt
	out.ValueFen = (out.Outstanding + out.Pending) * e.rules.Rules.LiabilityFenPer100 / 100
	// Expiry times are merchant-local midnights, so there are few distinct
	// values; grouping by the time and bucketing by month here keeps the
	// SQL the same on both dialects.
	var exp []struct {
		ExpiresAt *time.Time
		Points    int64
	}
	if err := s.db.WithContext(ctx).Model(&lot{}).Select("expires_at, SUM(remaining) AS points").
		Where("merchant_id = ? AND status = ?", merchantID, lotActive).Group("expires_at").Find(&exp).Error; err != nil {
		return Liability{}, fmt.Errorf("points: liability expiries: %w", err)
	}
	byMonth := map[string]int64{}
	for _, x := range exp {
		if x.ExpiresAt == nil {
			out.NeverExpiring += x.Points
			continue
		}
		byMonth[x.ExpiresAt.Add(-time.Millisecond).In(e.loc).Format("2006-01")] += x.Points
	}
	for m, p := range byMonth {
		out.ExpiringByMonth = append(out.ExpiringByMonth, MonthPoints{Month: m, Points: p})
	}
	sort.Slice(out.ExpiringByMonth, func(i, j int) bool { return out.ExpiringByMonth[i].Month < out.ExpiringByMonth[j].Month })
	for m := start; m.Before(end); m = m.AddDate(0, 1, 0) {
		next := m.AddDate(0, 1, 0)
		var rows []struct {
			Kind   string
			Points int64
		}
		// idx_points_ledger_flows: one month of the merchant's entries, from
		// the index alone.
		if err := s.db.WithContext(ctx).Model(&Entry{}).Select("kind, SUM(points + pending) AS points").
			Where("merchant_id = ? AND created_at >= ? AND created_at < ?", merchantID, m.UTC(), next.UTC()).
			Group("kind").Find(&rows).Error; err != nil {
			return Liability{}, fmt.Errorf("points: liability flows: %w", err)
		}
		f := PeriodFlow{Month: m.Format("2006-01")}
		for _, r := range rows {
			switch r.Kind {
			case KindEarn:
				f.Earned = r.Points
			case KindGift:
				f.Gifted = r.Points
			case KindRedeem:
				f.Redeemed = -r.Points
			case KindExpire:
				f.Expired = -r.Points
			case KindReverse:
				f.Reversed = r.Points
			case KindAdjust:
				f.Adjusted = r.Points
			}
		}
		out.Periods = append(out.Periods, f)
	}
	return out, nil
}

// monthRange parses from..to (default: the last 12 months to now) into
// local month starts [start, end).
func monthRange(from, to string, now time.Time, loc *time.Location) (time.Time, time.Time, error) {
	local := now.In(loc)
	thisMonth := time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, loc)
	end := thisMonth.AddDate(0, 1, 0)
	start := thisMonth.AddDate(0, -11, 0)
	v := &apperr.Validation{}
	if from != "" {
		t, err := time.ParseInLocation("2006-01", from, loc)
		if err != nil {
			v.Add("from", "must be a month YYYY-MM")
		}
		start = t
	}
	if to != "" {
		t, err := time.ParseInLocation("2006-01", to, loc)
		if err != nil {
			v.Add("to", "must be a month YYYY-MM")
		}
		end = t.AddDate(0, 1, 0)
	}
	if err := v.Err(); err != nil {
		return time.Time{}, time.Time{}, err
	}
	if !start.Before(end) {
		return time.Time{}, time.Time{}, apperr.Invalid("to", "must not be before from")
	}
	if start.AddDate(0, maxReportMonths, 0).Before(end) {
		return time.Time{}, time.Time{}, apperr.Invalid("to", fmt.Sprintf("must be at most %d months after from", maxReportMonths))
	}
	return start, end, nil
}

// Expiring is a member's points that expire soon.
type Expiring struct {
	MemberID       uint64    `json:"member_id"`
	Points         int64     `json:"points"`
	FirstExpiresAt time.Time `json:"first_expires_at"`
}

// ExpiringSoon lists members whose points expire within the window (the
// rules' expiring_soon_days when within is 0), by member id after the
// cursor afterMemberID, limit at a time: the campaign engine's reminder
// audience ("your points expire soon") and the admin report. It walks
// idx_points_lots_member in member order, so a page stops as soon as it is
// full.
func (s *Service) ExpiringSoon(ctx context.Context, merchantID uint64, within time.Duration, afterMemberID uint64, limit int) ([]Expiring, error) {
	if limit <= 0 || limit > 1000 {
		return nil, apperr.Invalid("limit", "must be 1 to 1000")
	}
	if within <= 0 {
		rs, err := s.rules(ctx, s.db, merchantID)
		if err != nil {
			return nil, err
		}
		within = time.Duration(rs.Rules.ExpiringSoonDays) * 24 * time.Hour
	}
	now := s.now()
	var rows []struct {
		MemberID uint64
		Points   int64
		First    *string
	}
	err := s.db.WithContext(ctx).Model(&lot{}).Select("member_id, SUM(remaining) AS points, MIN(expires_at) AS first").
		Where("merchant_id = ? AND member_id > ? AND status = ? AND expires_at > ? AND expires_at <= ?",
			merchantID, afterMemberID, lotActive, now, now.Add(within)).
		Group("member_id").Order("member_id").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("points: expiring soon: %w", err)
	}
	out := make([]Expiring, 0, len(rows))
	for _, r := range rows {
		t, err := parseDBTime(r.First)
		if err != nil || t == nil {
			return nil, fmt.Errorf("points: expiring soon: %v", err)
		}
		out = append(out, Expiring{MemberID: r.MemberID, Points: r.Points, FirstExpiresAt: *t})
	}
	return out, nil
}
