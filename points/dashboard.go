package points

import (
	"context"
	"fmt"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"
)

// The points side of the admin dashboard: repeat purchase and cohort
// retention from the orders, and the points liability from the existing
// report. Counted orders are those not fully refunded (refunded_fen <
// amount_fen), as for the members' purchase facts.

// Period is a span of time [From, To), in UTC.
type Period struct {
	From, To time.Time
}

// RepeatPurchase is the repeat-purchase rate of a period: of the members
// with a counted order placed in the period (Buyers), the share with at
// least two (RepeatBuyers). Rate is nil without buyers.
type RepeatPurchase struct {
	Buyers       int64    `json:"buyers"`
	RepeatBuyers int64    `json:"repeat_buyers"`
	Rate         *float64 `json:"rate"`
}

// CohortMonth is how many members of a cohort ordered in one later month.
type CohortMonth struct {
	Offset  int     `json:"offset"` // months after the cohort's month (1-12)
	Month   string  `json:"month"`  // YYYY-MM, merchant time
	Members int64   `json:"members"`
	Rate    float64 `json:"rate"` // Members / the cohort's size
}

// Cohort is the members whose first counted order fell in one local month,
// and how many of them ordered again in each following month.
type Cohort struct {
	Month  string        `json:"month"` // YYYY-MM, merchant time
	Size   int64         `json:"size"`
	Months []CohortMonth `json:"months"` // offsets 1 up to the month the period ends in (at most 12)
}

// PeriodPoints are the order figures of one period.
type PeriodPoints struct {
	RepeatPurchase RepeatPurchase `json:"repeat_purchase"`
	// Retention is the cohort table as of the period's end: the 12 local
	// months before the one the period ends in, oldest first.
	Retention []Cohort `json:"retention"`
}

// PointsFigures are the points side of the dashboard.
type PointsFigures struct {
	Period    PeriodPoints
	Compare   PeriodPoints
	Liability Liability
}

// Dashboard computes the points figures of the admin dashboard.
type Dashboard struct{ svc *Service }

// NewDashboard returns the points dashboard over the service's database
// and reports.
func NewDashboard(svc *Service) *Dashboard { return &Dashboard{svc: svc} }

// CohortMonths is how many cohorts the retention table shows, and how many
// following months the oldest of them has.
const CohortMonths = 12

// Figures computes the order figures of both periods (months in loc) and
// the current liability (the report of the current local month).
func (d *Dashboard) Figures(ctx context.Context, merchantID uint64, loc *time.Location, period, compare Period) (PointsFigures, error) {
	var out PointsFigures
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, x := range []struct {
		p   Period
		dst *PeriodPoints
	}{{period, &out.Period}, {compare, &out.Compare}} {
		g.Go(func() error {
			var err error
			x.dst.RepeatPurchase, err = d.repeatPurchase(gctx, merchantID, x.p)
			return err
		})
	}
	g.Go(func() error {
		tables, err := d.retention(gctx, merchantID, loc, period.To, compare.To)
		if err == nil {
			out.Period.Retention, out.Compare.Retention = tables[0], tables[1]
		}
		return err
	})
	g.Go(func() error {
		month := d.svc.now().In(loc).Format("2006-01")
		var err error
		out.Liability, err = d.svc.Liability(gctx, merchantID, month, month)
		return err
	})
	if err := g.Wait(); err != nil {
		return PointsFigures{}, err
	}
	return out, nil
}

// repeatPurchase counts the period's buyers and repeat buyers: one range of
// idx_points_orders_time (merchant_id, ordered_at, member_id, amount_fen,
// refunded_fen), index only, grouped by member.
func (d *Dashboard) repeatPurchase(ctx context.Context, merchantID uint64, p Period) (RepeatPurchase, error) {
	var r struct {
		Buyers  int64
		Repeats int64
	}
	err := d.svc.db.WithContext(ctx).Raw(`SELECT COUNT(*) AS buyers, COALESCE(SUM(CASE WHEN n >= 2 THEN 1 ELSE 0 END), 0) AS repeats
FROM (SELECT member_id, COUNT(*) AS n FROM points_orders
      WHERE merchant_id = ? AND ordered_at >= ? AND ordered_at < ? AND refunded_fen < amount_fen
      GROUP BY member_id) b`, merchantID, p.From, p.To).Scan(&r).Error
	if err != nil {
		return RepeatPurchase{}, fmt.Errorf("points: dashboard repeat purchase: %w", err)
	}
	out := RepeatPurchase{Buyers: r.Buyers, RepeatBuyers: r.Repeats}
	if r.Buyers > 0 {
		rate := float64(r.Repeats) / float64(r.Buyers)
		out.Rate = &rate
	}
	return out, nil
}

// monthBuckets returns, in UTC, the starts of the CohortMonths+1 local
// months up to and including the one containing the instant just before
// end (the period's last month).
func monthBuckets(end time.Time, loc *time.Location) []time.Time {
	last := end.Add(-time.Millisecond).In(loc)
	first := time.Date(last.Year(), last.Month()-CohortMonths, 1, 0, 0, 0, 0, loc)
	out := make([]time.Time, CohortMonths+1)
	for i := range out {
		out[i] = first.AddDate(0, i, 0).UTC()
	}
	return out
}

// bucket returns i for bounds[i] <= t < bounds[i+1], and -1 outside
// [bounds[0], bounds[len-1]).
func bucket(t time.Time, bounds []time.Time) int {
	i := sort.Search(len(bounds), func(i int) bool { return t.Before(bounds[i]) })
	if i == 0 || i == len(bounds) {
		return -1
	}
	return i - 1
}

// cohortMember is a cohort member's cohort in each table (-1: none) and
// the months they ordered in after it, as bits.
type cohortMember struct {
	cohort [2]int8
	months [2]uint16
}

// orderMonths is an order's member and its month in each table (-1: none).
type orderMonths struct {
	member uint64
	month  [2]int8
}

// retention builds the cohort tables as of each end (one or two): cohorts
// are the members whose first counted order (members.first_order_at, the
// purchase fact this package maintains) falls in each of the 12 local
// months before the month the end falls in, and each cell counts the
// cohort's members with a counted order placed in a later month up to that
// one, before the end (so the last month is partial while it lasts).
//
// It joins in Go rather than in SQL, in one pass for both tables: the
// cohort members come from a range of idx_members_first_order (merchant_id,
// first_order_at; index only) and the orders of the window from a range of
// idx_points_orders_time (index only), streamed at the same time on two
// connections and put in months here. Joining them in the database meant a
// primary-key probe of members per order of the window (3.8 s for a
// million members), and bucketing the times with CASE expressions in SQL
// cost more than the scans themselves.
func (d *Dashboard) retention(ctx context.Context, merchantID uint64, loc *time.Location, ends ...time.Time) ([][]Cohort, error) {
	if len(ends) == 0 || len(ends) > 2 {
		return nil, fmt.Errorf("points: retention of %d periods", len(ends))
	}
	starts := make([][]time.Time, len(ends))
	orderBounds := make([][]time.Time, len(ends))
	months := make([][]string, len(ends))
	var lo, hi, orderLo, end time.Time
	for i, e := range ends {
		starts[i] = monthBuckets(e, loc)
		orderBounds[i] = append(append([]time.Time{}, starts[i]...), e)
		months[i] = make([]string, len(starts[i]))
		for j, s := range starts[i] {
			months[i][j] = s.In(loc).Format("2006-01")
		}
		if i == 0 || starts[i][0].Before(lo) {
			lo, orderLo = starts[i][0], starts[i][1]
		}
		if starts[i][CohortMonths].After(hi) {
			hi = starts[i][CohortMonths]
		}
		if e.After(end) {
			end = e
		}
	}
	members := map[uint64]cohortMember{}
	var orders []orderMonths
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		rows, err := d.svc.db.WithContext(gctx).Raw(`SELECT id, first_order_at FROM members
WHERE merchant_id = ? AND first_order_at >= ? AND first_order_at < ?`, merchantID, lo, hi).Rows()
		if err != nil {
			return fmt.Errorf("points: dashboard cohorts: %w", err)
		}
		defer rows.Close()
		var id uint64
		var at timeScanner
		for rows.Next() {
			if err := rows.Scan(&id, &at); err != nil {
				return fmt.Errorf("points: dashboard cohorts: %w", err)
			}
			m := cohortMember{cohort: [2]int8{-1, -1}}
			for i := range ends {
				m.cohort[i] = int8(bucket(at.t, starts[i]))
			}
			members[id] = m
		}
		return rows.Err()
	})
	g.Go(func() error {
		rows, err := d.svc.db.WithContext(gctx).Raw(`SELECT member_id, ordered_at FROM points_orders
WHERE merchant_id = ? AND ordered_at >= ? AND ordered_at < ? AND refunded_fen < amount_fen`, merchantID, orderLo, end).Rows()
		if err != nil {
			return fmt.Errorf("points: dashboard retention: %w", err)
		}
		defer rows.Close()
		var at timeScanner
		for rows.Next() {
			o := orderMonths{month: [2]int8{-1, -1}}
			if err := rows.Scan(&o.member, &at); err != nil {
				return fmt.Errorf("points: dashboard retention: %w", err)
			}
			for i := range ends {
				o.month[i] = int8(bucket(at.t, orderBounds[i]))
			}
			orders = append(orders, o)
		}
		return rows.Err()
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, o := range orders {
		m, ok := members[o.member]
		if !ok {
			continue
		}
		for i := range ends {
			if c := m.cohort[i]; c >= 0 && o.month[i] > c {
				m.months[i] |= 1 << o.month[i]
			}
		}
		members[o.member] = m
	}
	out := make([][]Cohort, len(ends))
	for i := range ends {
		var sizes [CohortMonths]int64
		var cells [CohortMonths][CohortMonths + 1]int64
		for _, m := range members {
			c := m.cohort[i]
			if c < 0 {
				continue
			}
			sizes[c]++
			for j := c + 1; j <= CohortMonths; j++ {
				if m.months[i]&(1<<j) != 0 {
					cells[c][j]++
				}
			}
		}
		out[i] = make([]Cohort, CohortMonths)
		for c := range out[i] {
			co := Cohort{Month: months[i][c], Size: sizes[c], Months: make([]CohortMonth, 0, CohortMonths-c)}
			for j := c + 1; j <= CohortMonths; j++ {
				cm := CohortMonth{Offset: j - c, Month: months[i][j], Members: cells[c][j]}
				if co.Size > 0 {
					cm.Rate = float64(cm.Members) / float64(co.Size)
				}
				co.Months = append(co.Months, cm)
			}
			out[i][c] = co
		}
	}
	return out, nil
}
