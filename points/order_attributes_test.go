package points

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
)

// crmMerchants is the member.MerchantSource of these tests.
type crmMerchants struct{ cadence string }

func (crmMerchants) IDs(context.Context) ([]uint64, error) { return nil, nil }
func (crmMerchants) Location(context.Context, uint64) (*time.Location, error) {
	return mustZone("Asia/Shanghai"), nil
}
func (m crmMerchants) CRMSettings(context.Context, uint64) (member.CRMSettings, error) {
	s := member.DefaultCRMSettings
	s.Cadence = m.cadence
	return s, nil
}

// memberState is what an order writes to the member row.
type memberState struct {
	OrderCount    int64
	TotalSpendFen int64
	FirstOrderAt  *time.Time
	LastOrderAt   *time.Time
	Stage         string `gorm:"column:lifecycle_stage"`
	WonBackAt     *time.Time
	CLVFen        *int64
	ChurnRisk     *int
	ChurnReason   *string
	AttributesAt  *time.Time
	Events        string `gorm:"-"`
}

func show(s memberState) string {
	str := func(p any) string {
		v := reflect.ValueOf(p)
		if v.IsNil() {
			return "nil"
		}
		return fmt.Sprint(v.Elem().Interface())
	}
	return fmt.Sprintf("orders %d spend %d first %s last %s stage %s won_back %s clv %s risk %s (%s) at %s events %s",
		s.OrderCount, s.TotalSpendFen, str(s.FirstOrderAt), str(s.LastOrderAt), s.Stage, str(s.WonBackAt), str(s.CLVFen),
		str(s.ChurnRisk), str(s.ChurnReason), str(s.AttributesAt), s.Events)
}

func readState(t *testing.T, gdb *gorm.DB, merchantID, memberID uint64) memberState {
	t.Helper()
	var s memberState
	if err := gdb.Table("members").Select("order_count, total_spend_fen, first_order_at, last_order_at, lifecycle_stage, "+
		"won_back_at, clv_fen, churn_risk, churn_reason, attributes_at").
		Where("merchant_id = ? AND id = ?", merchantID, memberID).Take(&s).Error; err != nil {
		t.Fatal(err)
	}
	for _, p := range []**time.Time{&s.FirstOrderAt, &s.LastOrderAt, &s.WonBackAt, &s.AttributesAt} {
		if *p != nil {
			u := (*p).UTC()
			*p = &u
		}
	}
	var evs []member.StageEvent
	if err := gdb.Where("merchant_id = ? AND member_id = ?", merchantID, memberID).Order("id").Find(&evs).Error; err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		s.Events += fmt.Sprintf("%s>%s(%s)@%s ", e.FromStage, e.ToStage, e.Reason, e.OccurredAt.UTC().Format(time.RFC3339))
	}
	return s
}

// A new order's one-UPDATE path (member.Attributes.RecordOrder as the
// order writer) leaves the member exactly as the purchase-facts UPDATE
// followed by the full refresh (Attributes.Refresh re-reading every order)
// does: the same facts, stage, won-back mark, churn risk, CLV, attribute
// time and stage events, order after order, through backdated orders,
// lapses, win-backs and refunds; and a full refresh afterwards changes
// nothing.
func TestOrderWriterAgreesWithFullRefresh(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		fast, full := newFixture(t, gdb), newFixture(t, gdb)
		for _, f := range []*fixture{fast, full} {
			f.clock.Set(time.Date(2025, 1, 10, 4, 0, 0, 0, time.UTC))
		}
		attrs := member.NewAttributes(gdb, NewHistory(gdb), crmMerchants{member.CadenceHigh}, fast.clock.Now, quiet)
		fast.svc.OnPurchase(attrs.Refresh) // refunds
		fast.svc.UseOrderWriter(attrs.OrderWriter)
		fullAttrs := member.NewAttributes(gdb, NewHistory(gdb), crmMerchants{member.CadenceHigh}, full.clock.Now, quiet)
		full.svc.OnPurchase(fullAttrs.Refresh)

		const members = 4
		var a, b [members]uint64
		for i := range members {
			a[i] = fast.newMember(memberOpts{following: i%2 == 0})
			b[i] = full.newMember(memberOpts{following: i%2 == 0})
		}
		items := func(cats ...string) []Item {
			var out []Item
			for _, c := range cats {
				out = append(out, Item{SKU: "s", Name: "n", Category: c, Quantity: 1, PriceFen: 100})
			}
			return out
		}
		type step struct {
			member  int
			advance time.Duration // the clock moves first
			amount  int64
			back    time.Duration // ordered this long before now
			cats    []string
			refund  int64 // refund this much of the step's order instead of ordering
			lapse   bool  // instead of ordering: refresh both (time passed, as the nightly pass sees it)
		}
		refresh := func(at *member.Attributes, merchantID, memberID uint64) {
			t.Helper()
			if err := gdb.Transaction(func(tx *gorm.DB) error { return at.Refresh(context.Background(), tx, merchantID, memberID) }); err != nil {
				t.Fatal(err)
			}
		}
		day := 24 * time.Hour
		steps := []step{
			{member: 0, amount: 1000, cats: []string{"tea"}},
			{member: 1, amount: 2500},
			{member: 0, advance: 10 * day, amount: 800, cats: []string{"cake"}},
			{member: 0, advance: 12 * day, amount: 1200, cats: []string{"tea", "cake"}},
			{member: 2, amount: 5000, back: 200 * day},                       // backdated: at risk at once
			{member: 2, amount: 700, back: 100 * day, cats: []string{"tea"}}, // between two orders
			{member: 0, advance: 9 * day, amount: 990},
			{member: 1, advance: 200 * day, lapse: true}, // churned
			{member: 1, advance: day, amount: 3000},      // back after a lapse: won back
			{member: 1, refund: 3000},                    // fully refunded: the lapse again
			{member: 3, amount: 100, back: 300 * day},
			{member: 3, amount: 100, back: 299 * day},
			{member: 3, amount: 100, back: 10 * day, cats: []string{"tea", ""}},
			{member: 0, advance: 400 * day, lapse: true},
			{member: 0, advance: day, amount: 450, cats: []string{"tea"}}, // lost, then won back
			{member: 0, amount: 450, back: 2 * day},
			{member: 2, refund: 300},
			{member: 2, advance: day, amount: 1},
		}
		var lastExt [members]string
		for i, st := range steps {
			for _, f := range []*fixture{fast, full} {
				f.clock.Add(st.advance)
			}
			if st.lapse {
				refresh(attrs, fast.merchantID, a[st.member])
				refresh(fullAttrs, full.merchantID, b[st.member])
			} else if st.refund > 0 {
				for k, f := range []*fixture{fast, full} {
					if _, _, err := f.svc.Refund(f.ctx(), f.merchantID, RefundInput{ExternalID: lastExt[st.member] + []string{"a", "b"}[k],
						RefundID: fmt.Sprintf("r%d", i), AmountFen: st.refund}); err != nil {
						t.Fatalf("step %d refund: %v", i, err)
					}
				}
			} else {
				ext := fmt.Sprintf("x%d-", i)
				lastExt[st.member] = ext
				for k, f := range []*fixture{fast, full} {
					id := []uint64{a[st.member], b[st.member]}[k]
					at := f.clock.Now().Add(-st.back)
					if _, _, err := f.svc.RecordOrder(f.ctx(), f.merchantID, OrderInput{ExternalID: ext + []string{"a", "b"}[k],
						Member: member.BuyerRef{ID: id}, AmountFen: st.amount, OrderedAt: &at, Items: items(st.cats...)}); err != nil {
						t.Fatalf("step %d order: %v", i, err)
					}
				}
			}
			for m := range members {
				got, want := readState(t, gdb, fast.merchantID, a[m]), readState(t, gdb, full.merchantID, b[m])
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("step %d, member %d:\n one UPDATE   %s\n full refresh %s", i, m, show(got), show(want))
				}
			}
			// Nothing left for a full refresh at the same moment to change.
			before := readState(t, gdb, fast.merchantID, a[st.member])
			refresh(attrs, fast.merchantID, a[st.member])
			if after := readState(t, gdb, fast.merchantID, a[st.member]); !reflect.DeepEqual(before, after) {
				t.Fatalf("step %d: a full refresh changed\n %s\n to %s", i, show(before), show(after))
			}
		}
		stages := map[string]bool{}
		for m := range members {
			stages[readState(t, gdb, fast.merchantID, a[m]).Events] = true
		}
		for _, want := range []string{"new", "repeat", "lost", "churned", "won_back"} {
			found := false
			for ev := range stages {
				found = found || strings.Contains(ev, ">"+want+"(")
			}
			if !found {
				t.Fatalf("no member reached %s: the scenario misses a case (%v)", want, stages)
			}
		}
		fast.reconcile()
		full.reconcile()
	})
}
