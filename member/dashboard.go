package member

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"
)

// The member side of the admin dashboard: acquisition, activity and
// lifecycle flows of a period, and the current distributions of the
// computed attributes. Every figure is one set-based statement over an
// index (named at each query); nothing loops over members. Erased members
// still count: erasure keeps the computed attributes and history, which are
// not personal once the member is anonymous, and the figures are totals.

// Period is a span of time [From, To), in UTC.
type Period struct {
	From, To time.Time
}

// ChannelCount is a count for one acquisition channel (QR scene; "" when
// none).
type ChannelCount struct {
	Channel string `json:"channel"`
	Count   int64  `json:"count"`
}

// ByChannel is a total broken down by acquisition channel: the largest
// MaxDashboardChannels channels, largest first, and the sum of the rest.
type ByChannel struct {
	Total         int64          `json:"total"`
	Channels      []ChannelCount `json:"channels"`
	OtherChannels int64          `json:"other_channels"`
}

// MaxDashboardChannels bounds the channels listed in a breakdown; scenes
// have a long tail (a merchant may print thousands of table cards).
const MaxDashboardChannels = 50

// StageRate is a rate of lifecycle changes in a period: Entries changes
// against Base members at the period's start (Rate is nil when Base is 0).
type StageRate struct {
	Entries int64    `json:"entries"`
	Base    int64    `json:"base"`
	Rate    *float64 `json:"rate"`
}

// PeriodMembers are the member figures of one period.
type PeriodMembers struct {
	// NewFollowers counts subscribe events (a re-follow counts again) by
	// the QR scene they carried.
	NewFollowers ByChannel `json:"new_followers"`
	// NewMembers counts members created in the period by their
	// acquisition channel.
	NewMembers ByChannel `json:"new_members"`
	// Unfollows counts unsubscribe events.
	Unfollows int64 `json:"unfollows"`
	// ActiveMembers counts distinct members with a counted order placed in
	// the period, a follow or QR scan in it, or whose latest
	// official-account interaction falls in it.
	ActiveMembers int64 `json:"active_members"`
	// Churn: entries into churned during the period against the active
	// customers (new, repeat, loyal, at risk, won back) at its start.
	Churn StageRate `json:"churn"`
	// WinBack: moves out of churned or lost into a buying stage during the
	// period against the churned and lost members at its start.
	WinBack StageRate `json:"win_back"`
}

// RFMCell is one cell of the R×F grid.
type RFMCell struct {
	R       int     `json:"r"`
	F       int     `json:"f"`
	Members int64   `json:"members"`
	AvgM    float64 `json:"avg_m"` // average monetary score of the cell
}

// CLVFigures are the lifetime-value figures of the members with one.
type CLVFigures struct {
	Members    int64 `json:"members"`     // members with a CLV estimate (those with counted orders)
	AverageFen int64 `json:"average_fen"` // rounded; 0 when Members is 0
	// EquityFen is customer equity (客户资产): the sum of the estimates.
	EquityFen int64 `json:"equity_fen"`
}

// ShareTop20 is the 2:8 figure of the last nightly pass.
type ShareTop20 struct {
	Share      float64   `json:"share"`       // share of 12-month spend from the top 20% of customers, 0-1
	Customers  int64     `json:"customers"`   // customers with a counted order in those 12 months
	ComputedAt time.Time `json:"computed_at"` // when the pass computed it
}

// CurrentMembers are the distributions of the computed attributes now.
type CurrentMembers struct {
	Members   int64            `json:"members"`
	Lifecycle map[string]int64 `json:"lifecycle"` // every stage, zeros included
	// Pyramid counts every tier; "none" is members the nightly pass has
	// not scored yet.
	Pyramid     map[string]int64 `json:"pyramid"`
	RFM         []RFMCell        `json:"rfm"`          // cells with members, R then F ascending
	RFMUnscored int64            `json:"rfm_unscored"` // members without scores (no counted order in 12 months)
	CLV         CLVFigures       `json:"clv"`
	// ShareTop20 is nil until a nightly pass has finished.
	ShareTop20 *ShareTop20 `json:"share_top20"`
}

// MemberFigures are the member side of the dashboard.
type MemberFigures struct {
	Period  PeriodMembers
	Compare PeriodMembers
	Current CurrentMembers
}

// Dashboard computes the member figures of the admin dashboard.
type Dashboard struct {
	db    *gorm.DB
	attrs *Attributes // the 2:8 figure of the last nightly pass; may be nil
}

// NewDashboard returns the member dashboard; attrs gives the 2:8 figure
// (nil: not shown).
func NewDashboard(gdb *gorm.DB, attrs *Attributes) *Dashboard {
	return &Dashboard{db: gdb, attrs: attrs}
}

// Stage sets of the churn and win-back rates.
var (
	activeStages  = []string{StageNew, StageRepeat, StageLoyal, StageAtRisk, StageWonBack}
	churnedStages = []string{StageChurned, StageLost}
)

// Figures computes the member figures of the period, the comparison
// period and now. The statements run concurrently (up to four at a time).
func (d *Dashboard) Figures(ctx context.Context, merchantID uint64, period, compare Period) (MemberFigures, error) {
	var out MemberFigures
	var flows []stageFlow
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, x := range []struct {
		p   Period
		dst *PeriodMembers
	}{{period, &out.Period}, {compare, &out.Compare}} {
		g.Go(func() error { return d.follows(gctx, merchantID, x.p, x.dst) })
		g.Go(func() error { return d.newMembers(gctx, merchantID, x.p, x.dst) })
		g.Go(func() error { return d.active(gctx, merchantID, x.p, x.dst) })
	}
	g.Go(func() error {
		var err error
		flows, err = d.stageFlows(gctx, merchantID, []time.Time{period.From, period.To, compare.From, compare.To})
		return err
	})
	g.Go(func() error { return d.current(gctx, merchantID, &out.Current) })
	if d.attrs != nil {
		g.Go(func() error {
			res, ok, err := d.attrs.LastRun(gctx, merchantID)
			if err == nil && ok {
				out.Current.ShareTop20 = &ShareTop20{Share: res.ShareTop20, Customers: res.Customers, ComputedAt: res.ComputedAtUTC}
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return MemberFigures{}, err
	}
	out.Period.Churn, out.Period.WinBack = stageRates(out.Current.Lifecycle, flows, 0, 1)
	out.Compare.Churn, out.Compare.WinBack = stageRates(out.Current.Lifecycle, flows, 2, 3)
	return out, nil
}

type channelRow struct {
	Kind    string
	Channel string
	N       int64
}

// follows counts the period's subscribe events by scene and its
// unsubscribe events: one range of idx_follow_events_time (merchant_id,
// kind, occurred_at, scene, ...) per kind, read from the index alone.
func (d *Dashboard) follows(ctx context.Context, merchantID uint64, p Period, dst *PeriodMembers) error {
	var rows []channelRow
	err := d.db.WithContext(ctx).Raw(`SELECT kind, COALESCE(scene, '') AS channel, COUNT(*) AS n FROM member_follow_events
WHERE merchant_id = ? AND kind IN (?, ?) AND occurred_at >= ? AND occurred_at < ? GROUP BY kind, scene`,
		merchantID, HistorySubscribe, HistoryUnsubscribe, p.From, p.To).Scan(&rows).Error
	if err != nil {
		return fmt.Errorf("member: dashboard follows: %w", err)
	}
	var subs []channelRow
	for _, r := range rows {
		if r.Kind == HistoryUnsubscribe {
			dst.Unfollows += r.N
		} else {
			subs = append(subs, r)
		}
	}
	dst.NewFollowers = byChannel(subs)
	return nil
}

// newMembers counts the members created in the period by channel:
// idx_members_created (merchant_id, created_at, channel_scene), index only.
func (d *Dashboard) newMembers(ctx context.Context, merchantID uint64, p Period, dst *PeriodMembers) error {
	var rows []channelRow
	err := d.db.WithContext(ctx).Raw(`SELECT COALESCE(channel_scene, '') AS channel, COUNT(*) AS n FROM members
WHERE merchant_id = ? AND created_at >= ? AND created_at < ? GROUP BY channel_scene`, merchantID, p.From, p.To).
		Scan(&rows).Error
	if err != nil {
		return fmt.Errorf("member: dashboard new members: %w", err)
	}
	dst.NewMembers = byChannel(rows)
	return nil
}

// byChannel merges rows that name the same channel (NULL and "" are both
// "none"), sorts them largest first and keeps the largest
// MaxDashboardChannels.
func byChannel(rows []channelRow) ByChannel {
	sums := map[string]int64{}
	var out ByChannel
	for _, r := range rows {
		sums[r.Channel] += r.N
		out.Total += r.N
	}
	out.Channels = make([]ChannelCount, 0, min(len(sums), MaxDashboardChannels))
	all := make([]ChannelCount, 0, len(sums))
	for ch, n := range sums {
		all = append(all, ChannelCount{Channel: ch, Count: n})
	}
	slices.SortFunc(all, func(a, b ChannelCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Channel, b.Channel))
	})
	for i, c := range all {
		if i < MaxDashboardChannels {
			out.Channels = append(out.Channels, c)
		} else {
			out.OtherChannels += c.Count
		}
	}
	return out
}

// active counts the distinct members active in the period. Three ranges,
// each read from an index alone, deduplicated by UNION:
// idx_points_orders_time (counted orders placed in the period: the order
// facts live with points, and only their member ids are read here),
// idx_follow_events_time (follows and QR scans) and
// idx_members_interaction (the latest message, menu click, follow or scan).
// members.last_interaction_at keeps only the latest interaction, so for a
// past period a member who wrote then and again later is seen only through
// orders and follow events.
func (d *Dashboard) active(ctx context.Context, merchantID uint64, p Period, dst *PeriodMembers) error {
	err := d.db.WithContext(ctx).Raw(`SELECT COUNT(*) FROM (
  SELECT member_id FROM points_orders
   WHERE merchant_id = ? AND ordered_at >= ? AND ordered_at < ? AND refunded_fen < amount_fen
  UNION
  SELECT member_id FROM member_follow_events
   WHERE merchant_id = ? AND kind IN (?, ?) AND occurred_at >= ? AND occurred_at < ?
  UNION
  SELECT id FROM members
   WHERE merchant_id = ? AND last_interaction_at >= ? AND last_interaction_at < ?
) a`, merchantID, p.From, p.To,
		merchantID, HistorySubscribe, HistoryScan, p.From, p.To,
		merchantID, p.From, p.To).Scan(&dst.ActiveMembers).Error
	if err != nil {
		return fmt.Errorf("member: dashboard active members: %w", err)
	}
	return nil
}

// stageFlow is the number of stage changes from one stage to another at or
// after each cut time.
type stageFlow struct {
	From, To string
	Since    []int64 // per cut time
}

// stageFlows counts the stage changes at or after each cut time, by
// (from_stage, to_stage): one range of idx_stage_events_flow (merchant_id,
// occurred_at, from_stage, to_stage) from the earliest cut, index only.
// Only the changes since the comparison period began are read, however
// long the history.
func (d *Dashboard) stageFlows(ctx context.Context, merchantID uint64, cuts []time.Time) ([]stageFlow, error) {
	earliest := slices.MinFunc(cuts, func(a, b time.Time) int { return a.Compare(b) })
	sel := "SELECT from_stage, to_stage"
	args := make([]any, 0, len(cuts)+2)
	for i, c := range cuts {
		sel += fmt.Sprintf(", SUM(CASE WHEN occurred_at >= ? THEN 1 ELSE 0 END) AS s%d", i)
		args = append(args, c)
	}
	args = append(args, merchantID, earliest)
	rows, err := d.db.WithContext(ctx).Raw(sel+` FROM member_stage_events
WHERE merchant_id = ? AND occurred_at >= ? GROUP BY from_stage, to_stage`, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("member: dashboard stage flows: %w", err)
	}
	defer rows.Close()
	var out []stageFlow
	for rows.Next() {
		f := stageFlow{Since: make([]int64, len(cuts))}
		dst := []any{&f.From, &f.To}
		for i := range f.Since {
			dst = append(dst, &f.Since[i])
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("member: dashboard stage flows: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// stageRates derives a period's churn and win-back rates from the current
// stage counts and the flows since the period's start (cut index from) and
// end (cut index to). Every stage change is a stage event (Refresh and
// Recompute write one with each change), and every member starts as
// potential, so the members in stage s at time T are those in s now,
// minus the changes into s since T, plus the changes out of s since T.
// (A member merged into another since T is no longer counted: the merge
// deletes their row and writes no stage event.)
func stageRates(current map[string]int64, flows []stageFlow, from, to int) (churn, winBack StageRate) {
	at := func(stages []string) int64 {
		var n int64
		for _, s := range stages {
			n += current[s]
			for _, f := range flows {
				if f.To == s {
					n -= f.Since[from]
				}
				if f.From == s {
					n += f.Since[from]
				}
			}
		}
		return n
	}
	for _, f := range flows {
		during := f.Since[from] - f.Since[to]
		if f.To == StageChurned && f.From != StageChurned {
			churn.Entries += during
		}
		if slices.Contains(churnedStages, f.From) && slices.Contains(activeStages, f.To) {
			winBack.Entries += during
		}
	}
	churn.Base, winBack.Base = at(activeStages), at(churnedStages)
	churn.Rate, winBack.Rate = ratio(churn.Entries, churn.Base), ratio(winBack.Entries, winBack.Base)
	return churn, winBack
}

func ratio(n, base int64) *float64 {
	if base <= 0 {
		return nil
	}
	r := float64(n) / float64(base)
	return &r
}

// current reads the distributions of the computed attributes in one pass
// over idx_members_value (merchant_id, lifecycle_stage, pyramid_tier,
// rfm_r, rfm_f, rfm_m, clv_fen): index only, and the GROUP BY follows the
// index order, so the groups stream without a temporary table.
func (d *Dashboard) current(ctx context.Context, merchantID uint64, dst *CurrentMembers) error {
	rows, err := d.db.WithContext(ctx).Raw(`SELECT lifecycle_stage, COALESCE(pyramid_tier, '') AS pyramid, rfm_r, rfm_f,
  COUNT(*) AS n, COALESCE(SUM(rfm_m), 0) AS m_sum, COUNT(rfm_m) AS m_n, COALESCE(SUM(clv_fen), 0) AS clv_sum,
  COUNT(clv_fen) AS clv_n
FROM members WHERE merchant_id = ? GROUP BY lifecycle_stage, pyramid_tier, rfm_r, rfm_f`, merchantID).Rows()
	if err != nil {
		return fmt.Errorf("member: dashboard distributions: %w", err)
	}
	defer rows.Close()
	dst.Lifecycle = make(map[string]int64, len(Stages))
	for _, s := range Stages {
		dst.Lifecycle[s] = 0
	}
	dst.Pyramid = map[string]int64{PyramidPlatinum: 0, PyramidGold: 0, PyramidIron: 0, PyramidLead: 0, "none": 0}
	type cell struct{ n, mSum, mN int64 }
	grid := map[[2]int]*cell{}
	for rows.Next() {
		var stage, pyramid string
		var r, f *int
		var n, mSum, mN, clvSum, clvN int64
		if err := rows.Scan(&stage, &pyramid, &r, &f, &n, &mSum, &mN, &clvSum, &clvN); err != nil {
			return fmt.Errorf("member: dashboard distributions: %w", err)
		}
		dst.Members += n
		dst.Lifecycle[stage] += n
		if pyramid == "" {
			pyramid = "none"
		}
		dst.Pyramid[pyramid] += n
		dst.CLV.Members += clvN
		dst.CLV.EquityFen += clvSum
		if r == nil || f == nil {
			dst.RFMUnscored += n
			continue
		}
		c := grid[[2]int{*r, *f}]
		if c == nil {
			c = &cell{}
			grid[[2]int{*r, *f}] = c
		}
		c.n, c.mSum, c.mN = c.n+n, c.mSum+mSum, c.mN+mN
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("member: dashboard distributions: %w", err)
	}
	dst.RFM = make([]RFMCell, 0, len(grid))
	for k, c := range grid {
		cell := RFMCell{R: k[0], F: k[1], Members: c.n}
		if c.mN > 0 {
			cell.AvgM = float64(c.mSum) / float64(c.mN)
		}
		dst.RFM = append(dst.RFM, cell)
	}
	slices.SortFunc(dst.RFM, func(a, b RFMCell) int { return cmp.Or(cmp.Compare(a.R, b.R), cmp.Compare(a.F, b.F)) })
	if dst.CLV.Members > 0 {
		dst.CLV.AverageFen = roundDiv(dst.CLV.EquityFen, dst.CLV.Members)
	}
	return nil
}

// roundDiv divides rounding half away from zero.
func roundDiv(a, b int64) int64 {
	if (a < 0) != (b < 0) {
		return (a - b/2) / b
	}
	return (a + b/2) / b
}
