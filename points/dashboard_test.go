package points

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/dbtest"
)

// dashBook writes a merchant's members and orders for the dashboard tests.
type dashBook struct {
	t          *testing.T
	db         *gorm.DB
	merchantID uint64
	seq        int
}

type dashOrder struct {
	at               time.Time
	amount, refunded int64
}

// member adds a member whose purchase facts are its counted orders, with
// those orders.
func (b *dashBook) member(orders ...dashOrder) uint64 {
	b.t.Helper()
	b.seq++
	var first *time.Time
	for _, o := range orders {
		if o.refunded < o.amount && (first == nil || o.at.Before(*first)) {
			at := o.at
			first = &at
		}
	}
	now := time.Now().UTC()
	openid := fmt.Sprintf("o_pdash_%d_%d", b.merchantID, b.seq)
	if err := b.db.Exec(`INSERT INTO members (merchant_id, oa_openid, source, created_at, updated_at, first_order_at)
VALUES (?, ?, 'oa_follow', ?, ?, ?)`, b.merchantID, openid, now, now, first).Error; err != nil {
		b.t.Fatal(err)
	}
	var id uint64
	b.db.Raw("SELECT id FROM members WHERE merchant_id = ? AND oa_openid = ?", b.merchantID, openid).Scan(&id)
	for i, o := range orders {
		if err := b.db.Create(&Order{MerchantID: b.merchantID, MemberID: id, ExternalID: fmt.Sprintf("%s-%d", openid, i),
			AmountFen: o.amount, RefundedFen: o.refunded, EarnDetail: "{}", OrderedAt: o.at, CreatedAt: o.at, UpdatedAt: o.at}).Error; err != nil {
			b.t.Fatal(err)
		}
	}
	return id
}

var dashShanghai = mustZone("Asia/Shanghai")

// local is a time in Shanghai.
func local(y, m, d, h, mi int) time.Time {
	return time.Date(y, time.Month(m), d, h, mi, 0, 0, dashShanghai).UTC()
}

// localPeriod is [from, to) between Shanghai midnights.
func localPeriod(fy, fm, fd, ty, tm, td int) Period {
	return Period{From: local(fy, fm, fd, 0, 0), To: local(ty, tm, td, 0, 0)}
}

func newDashboard(t *testing.T, gdb *gorm.DB, now time.Time) *Dashboard {
	svc := NewService(gdb, nil, &zones{m: map[uint64]*time.Location{}}, func() time.Time { return now }, quiet)
	return NewDashboard(svc)
}

// Repeat purchase counts members with two or more counted orders placed in
// the period among those with one; refunds in full do not count, partial
// ones do; the period's end is exclusive; other merchants do not count.
func TestDashboardRepeatPurchase(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		b := &dashBook{t: t, db: gdb, merchantID: dbtest.NewMerchantID()}
		P := localPeriod(2026, 3, 1, 2026, 3, 31)
		C := localPeriod(2026, 1, 30, 2026, 3, 1)
		b.member(dashOrder{local(2026, 3, 2, 10, 0), 1000, 0}, dashOrder{local(2026, 3, 5, 10, 0), 2000, 0})  // repeat
		b.member(dashOrder{local(2026, 3, 3, 10, 0), 1000, 0}, dashOrder{local(2026, 3, 4, 10, 0), 500, 500}) // one counted
		b.member(dashOrder{local(2026, 3, 10, 10, 0), 1000, 400}, dashOrder{local(2026, 3, 12, 10, 0), 100, 0})
		b.member(dashOrder{local(2026, 3, 15, 10, 0), 900, 900})                                            // refunded only
		b.member(dashOrder{local(2026, 2, 20, 10, 0), 300, 0}, dashOrder{local(2026, 3, 31, 0, 0), 300, 0}) // C only; P's end
		b.member(dashOrder{local(2026, 2, 27, 23, 59), 300, 0}, dashOrder{local(2026, 2, 28, 23, 59), 300, 0})
		(&dashBook{t: t, db: gdb, merchantID: dbtest.NewMerchantID()}).member(dashOrder{local(2026, 3, 2, 10, 0), 1, 0},
			dashOrder{local(2026, 3, 3, 10, 0), 1, 0})

		got, err := newDashboard(t, gdb, local(2026, 3, 31, 9, 0)).Figures(context.Background(), b.merchantID, dashShanghai, P, C)
		if err != nil {
			t.Fatal(err)
		}
		rate := func(n, base int64) RepeatPurchase {
			r := float64(n) / float64(base)
			return RepeatPurchase{Buyers: base, RepeatBuyers: n, Rate: &r}
		}
		if want := rate(2, 3); !reflect.DeepEqual(got.Period.RepeatPurchase, want) {
			t.Errorf("period: %+v, want %+v", got.Period.RepeatPurchase, want)
		}
		if want := rate(1, 2); !reflect.DeepEqual(got.Compare.RepeatPurchase, want) {
			t.Errorf("compare: %+v, want %+v", got.Compare.RepeatPurchase, want)
		}
		empty, err := newDashboard(t, gdb, time.Now()).Figures(context.Background(), dbtest.NewMerchantID(), dashShanghai, P, C)
		if err != nil {
			t.Fatal(err)
		}
		if (empty.Period.RepeatPurchase != RepeatPurchase{}) || len(empty.Period.Retention) != CohortMonths {
			t.Errorf("no orders: %+v", empty.Period)
		}
	})
}

// The cohort table: cohorts by the local month of the first counted order,
// cells counting each member once per later local month with a counted
// order before the period's end.
func TestDashboardRetention(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		b := &dashBook{t: t, db: gdb, merchantID: dbtest.NewMerchantID()}
		P := localPeriod(2026, 3, 1, 2026, 3, 31) // ends in 2026-03: cohorts 2025-03 .. 2026-02
		C := localPeriod(2026, 1, 30, 2026, 3, 1) // ends in 2026-02: cohorts 2025-02 .. 2026-01
		// A: cohort 2025-03, back twice in April (one cell), and in March 2026.
		b.member(dashOrder{local(2025, 3, 15, 12, 0), 1000, 0}, dashOrder{local(2025, 4, 2, 12, 0), 1000, 0},
			dashOrder{local(2025, 4, 20, 12, 0), 1000, 0}, dashOrder{local(2026, 3, 10, 12, 0), 1000, 0})
		// B: first order late on 31 March local (still March in UTC), back
		// ten minutes into April local (still March in UTC).
		b.member(dashOrder{local(2025, 3, 31, 23, 30), 1000, 0}, dashOrder{local(2025, 4, 1, 0, 10), 1000, 0})
		// C: cohort 2026-02, back in March, and after P's end.
		b.member(dashOrder{local(2026, 2, 10, 12, 0), 1000, 0}, dashOrder{local(2026, 3, 5, 12, 0), 1000, 0},
			dashOrder{local(2026, 3, 31, 1, 0), 1000, 0})
		// D: cohort 2026-02, a March order refunded in full.
		b.member(dashOrder{local(2026, 2, 20, 12, 0), 1000, 0}, dashOrder{local(2026, 3, 2, 12, 0), 1000, 1000})
		// E: cohort 2025-02 (before P's cohorts, C's first), back in April 2025.
		b.member(dashOrder{local(2025, 2, 10, 12, 0), 1000, 0}, dashOrder{local(2025, 4, 5, 12, 0), 1000, 0})
		// F: first order in P's last month: no cohort of P.
		b.member(dashOrder{local(2026, 3, 3, 12, 0), 1000, 0}, dashOrder{local(2026, 3, 4, 12, 0), 1000, 0})
		// A first order refunded in full does not make a cohort.
		b.member(dashOrder{local(2025, 5, 3, 12, 0), 1000, 1000})

		got, err := newDashboard(t, gdb, local(2026, 3, 31, 9, 0)).Figures(context.Background(), b.merchantID, dashShanghai, P, C)
		if err != nil {
			t.Fatal(err)
		}
		// check compares the table with sizes and non-zero cells by cohort
		// month and offset.
		check := func(name string, table []Cohort, first string, sizes map[string]int64, cells map[string]map[int]int64) {
			t.Helper()
			if len(table) != CohortMonths || table[0].Month != first {
				t.Fatalf("%s: %d cohorts from %v", name, len(table), table[0].Month)
			}
			for i, c := range table {
				if c.Size != sizes[c.Month] {
					t.Errorf("%s: cohort %s size %d, want %d", name, c.Month, c.Size, sizes[c.Month])
				}
				if len(c.Months) != CohortMonths-i {
					t.Errorf("%s: cohort %s has %d months, want %d", name, c.Month, len(c.Months), CohortMonths-i)
				}
				for k, m := range c.Months {
					want := cells[c.Month][m.Offset]
					if m.Offset != k+1 || m.Members != want || m.Month != table[min(i+k+1, CohortMonths-1)].Month && i+k+1 < CohortMonths {
						t.Errorf("%s: cohort %s %+v, want offset %d with %d", name, c.Month, m, k+1, want)
					}
					if c.Size > 0 && m.Rate != float64(want)/float64(c.Size) {
						t.Errorf("%s: cohort %s %+v: rate", name, c.Month, m)
					}
				}
			}
		}
		check("period", got.Period.Retention, "2025-03", map[string]int64{"2025-03": 2, "2026-02": 2},
			map[string]map[int]int64{"2025-03": {1: 2, 12: 1}, "2026-02": {1: 1}})
		if m := got.Period.Retention[0].Months; m[11].Month != "2026-03" || m[0].Month != "2025-04" {
			t.Errorf("months of the first cohort: %+v", m)
		}
		check("compare", got.Compare.Retention, "2025-02", map[string]int64{"2025-02": 1, "2025-03": 2},
			map[string]map[int]int64{"2025-02": {2: 1}, "2025-03": {1: 2}})
	})
}

// The liability figures are the liability report of the current month.
func TestDashboardLiability(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		ctx := context.Background()
		mid := dbtest.NewMerchantID()
		now := local(2026, 3, 20, 12, 0)
		exp := local(2026, 6, 1, 0, 0)
		for i, a := range []account{{Available: 120, Pending: 30}, {Available: 0, Debt: 15}, {Available: 50}} {
			a.MerchantID, a.MemberID, a.CreatedAt, a.UpdatedAt = mid, uint64(100+i), now, now
			if err := gdb.Create(&a).Error; err != nil {
				t.Fatal(err)
			}
		}
		for _, l := range []lot{{MemberID: 100, Status: lotActive, Points: 200, Remaining: 120, ExpiresAt: &exp},
			{MemberID: 100, Status: lotPending, Points: 30, Remaining: 30}, {MemberID: 102, Status: lotActive, Points: 50, Remaining: 50}} {
			l.MerchantID, l.LedgerID, l.CreatedAt, l.UpdatedAt = mid, 1, now, now
			if err := gdb.Create(&l).Error; err != nil {
				t.Fatal(err)
			}
		}
		d := newDashboard(t, gdb, now)
		got, err := d.Figures(ctx, mid, dashShanghai, localPeriod(2026, 3, 1, 2026, 3, 21), localPeriod(2026, 2, 9, 2026, 3, 1))
		if err != nil {
			t.Fatal(err)
		}
		l := got.Liability
		if l.Members != 3 || l.Outstanding != 170 || l.Pending != 30 || l.Debt != 15 || l.NeverExpiring != 50 ||
			!reflect.DeepEqual(l.ExpiringByMonth, []MonthPoints{{Month: "2026-05", Points: 120}}) || len(l.Periods) != 1 ||
			l.Periods[0].Month != "2026-03" || !l.AsOf.Equal(now) {
			t.Fatalf("liability %+v", l)
		}
		want, err := d.svc.Liability(ctx, mid, "2026-03", "2026-03")
		if err != nil || !reflect.DeepEqual(want, l) {
			t.Fatalf("not the report: %+v %v", want, err)
		}
	})
}

// Month buckets are local months, whatever UTC says.
func TestMonthBuckets(t *testing.T) {
	starts := monthBuckets(local(2026, 1, 1, 0, 0), dashShanghai) // ends at local midnight starting 2026: last month 2025-12
	if len(starts) != CohortMonths+1 || !starts[0].Equal(local(2024, 12, 1, 0, 0)) || !starts[CohortMonths].Equal(local(2025, 12, 1, 0, 0)) {
		t.Fatalf("%v", starts)
	}
	// West of UTC a period ending at local midnight ends in the next UTC
	// month: the last month is still the local one.
	ny := mustZone("America/New_York")
	end := time.Date(2026, 4, 1, 0, 0, 0, 0, ny) // 04:00 UTC on 1 April
	ns := monthBuckets(end, ny)
	if !ns[CohortMonths].Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, ny)) || !ns[0].Equal(time.Date(2025, 3, 1, 0, 0, 0, 0, ny)) {
		t.Fatalf("New York: %v", ns)
	}
	for _, c := range []struct {
		t    time.Time
		want int
	}{{local(2024, 11, 30, 23, 59), -1}, {local(2024, 12, 1, 0, 0), 0}, {local(2024, 12, 31, 23, 59), 0},
		{local(2025, 1, 1, 0, 0), 1}, {local(2025, 12, 31, 0, 0), -1}} {
		if got := bucket(c.t, starts[:CohortMonths]); got != c.want {
			t.Errorf("bucket(%v) = %d, want %d", c.t, got, c.want)
		}
	}
}
