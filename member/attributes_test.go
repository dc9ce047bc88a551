package member_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
	"github.com/wxloyalty/loyalty/points"
	"github.com/wxloyalty/loyalty/wechat"
)

// merchants is the merchant directory the attributes see.
type merchants struct {
	ids []uint64
	crm member.CRMSettings
}

func (m merchants) IDs(context.Context) ([]uint64, error) { return m.ids, nil }
func (m merchants) Location(context.Context, uint64) (*time.Location, error) {
	return shanghai, nil
}
func (m merchants) CRMSettings(context.Context, uint64) (member.CRMSettings, error) {
	return m.crm, nil
}

// attrEnv is a merchant with members, the points service taking their
// orders and the attribute service wired the way cmd/loyalty wires it.
type attrEnv struct {
	*fixture
	points *points.Service
	attrs  *member.Attributes
	orders int
}

func newAttrEnv(t *testing.T, gdb *gorm.DB) *attrEnv {
	f := newFixture(t, gdb)
	e := &attrEnv{fixture: f}
	e.points = points.NewService(gdb, f.svc, fixedZone{shanghai}, f.clock.Now, quiet)
	e.attrs = member.NewAttributes(gdb, points.NewHistory(gdb), merchants{ids: []uint64{f.merchantID}, crm: member.DefaultCRMSettings},
		f.clock.Now, quiet)
	e.points.OnPurchase(e.attrs.Refresh)
	f.svc.UseAttributes(e.attrs)
	return e
}

// order records an order of amount fen for the member, daysAgo days ago.
func (e *attrEnv) order(memberID uint64, amount int64, daysAgo int, category string) string {
	e.t.Helper()
	e.orders++
	id := fmt.Sprintf("o%d", e.orders)
	at := e.clock.Now().Add(-time.Duration(daysAgo) * 24 * time.Hour)
	in := points.OrderInput{ExternalID: id, Member: member.BuyerRef{ID: memberID}, AmountFen: amount, OrderedAt: &at}
	if category != "" {
		in.Items = []points.Item{{SKU: "s", Name: "n", Category: category, Quantity: 1, PriceFen: amount}}
	}
	if _, _, err := e.points.RecordOrder(context.Background(), e.merchantID, in); err != nil {
		e.t.Fatalf("order: %v", err)
	}
	return id
}

type attrs struct {
	Stage       string `gorm:"column:lifecycle_stage"`
	RFMR, RFMF  *int
	RFMM        *int    `gorm:"column:rfm_m"`
	Pyramid     *string `gorm:"column:pyramid_tier"`
	CLV         *int64  `gorm:"column:clv_fen"`
	ChurnRisk   *int
	ChurnReason *string
}

func (e *attrEnv) get(id uint64) attrs {
	e.t.Helper()
	var a attrs
	if err := e.db.Table("members").Select("lifecycle_stage, rfm_r AS rfmr, rfm_f AS rfmf, rfm_m, pyramid_tier, clv_fen, churn_risk, churn_reason").
		Where("id = ?", id).Take(&a).Error; err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *attrEnv) stageEvents(id uint64) string {
	var evs []member.StageEvent
	e.db.Where("merchant_id = ? AND member_id = ?", e.merchantID, id).Order("id").Find(&evs)
	var parts []string
	for _, ev := range evs {
		parts = append(parts, ev.FromStage+">"+ev.ToStage)
	}
	return strings.Join(parts, ",")
}

// A member's life through orders, refunds, time and a win-back: every
// stage change is stored once, as an event, in the order's transaction or
// by the nightly pass.
func TestLifecycleThroughOrders(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newAttrEnv(t, gdb)
		ctx := context.Background()
		e.follow("o_life", "", "", 0)
		id := e.byOpenID("o_life").ID
		if a := e.get(id); a.Stage != member.StagePotential || a.ChurnRisk != nil {
			t.Fatalf("follower: %+v", a)
		}
		first := e.order(id, 10000, 0, "tea")
		if a := e.get(id); a.Stage != member.StageNew || a.ChurnRisk == nil || *a.ChurnRisk != 0 || a.CLV == nil {
			t.Fatalf("after a first order: %+v", a)
		}
		// A full refund: they never bought after all.
		if _, _, err := e.points.Refund(ctx, e.merchantID, points.RefundInput{ExternalID: first, RefundID: "r1", AmountFen: 10000}); err != nil {
			t.Fatal(err)
		}
		if a := e.get(id); a.Stage != member.StagePotential || a.ChurnRisk != nil {
			t.Fatalf("only refunded orders: %+v", a)
		}
		e.order(id, 10000, 0, "tea")
		e.clock.Add(30 * 24 * time.Hour)
		e.order(id, 5000, 0, "tea")
		if a := e.get(id); a.Stage != member.StageRepeat {
			t.Fatalf("second order: %+v", a)
		}
		// Time passes: the nightly pass sees the member churn.
		e.clock.Add(200 * 24 * time.Hour)
		res, err := e.attrs.Recompute(ctx, e.merchantID)
		if err != nil || res.Members != 1 || res.StageChanges != 1 {
			t.Fatalf("recompute: %+v %v", res, err)
		}
		if a := e.get(id); a.Stage != member.StageChurned || *a.ChurnRisk != 100 || *a.ChurnReason != "overdue" {
			t.Fatalf("after 200 idle days: %+v", a)
		}
		// Unchanged on a second pass.
		if res, _ := e.attrs.Recompute(ctx, e.merchantID); res.Changed != 0 {
			t.Fatalf("second pass changed %d", res.Changed)
		}
		// They buy again: won back, never new again.
		e.order(id, 8000, 0, "cake")
		if a := e.get(id); a.Stage != member.StageWonBack {
			t.Fatalf("churned member buys again: %+v", a)
		}
		want := "potential>new,new>potential,potential>new,new>repeat,repeat>churned,churned>won_back"
		if got := e.stageEvents(id); got != want {
			t.Fatalf("stage events %s, want %s", got, want)
		}
		// Unfollowing raises the churn risk at once.
		before := *e.get(id).ChurnRisk
		e.deliver(e.event(wechat.EventUnsubscribe, "o_life", "", 1))
		if after := e.get(id); *after.ChurnRisk != before+20 || *after.ChurnReason != "unfollowed" {
			t.Fatalf("unfollow: risk %d -> %+v", before, after)
		}
	})
}

// RFM quintiles and the pyramid over a merchant's customers, and the
// nightly pass claimed by one instance per local date.
func TestNightlyScores(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newAttrEnv(t, gdb)
		ctx := context.Background()
		var ids []uint64
		for i := range 20 {
			e.follow(fmt.Sprintf("o_rfm_%d", i), "", "", i)
			ids = append(ids, e.byOpenID(fmt.Sprintf("o_rfm_%d", i)).ID)
		}
		// Member i spends (i+1) × 100 yuan over i+1 orders... except the
		// last four, who never buy; member 0 bought only 400 days ago.
		e.order(ids[0], 99999, 0, "tea") // 400 days before the others: outside the 12 months
		e.clock.Add(400 * 24 * time.Hour)
		for i, id := range ids[:16] {
			for n := range i + 1 {
				e.order(id, 10000, 5+n+(15-i)*3, "tea")
			}
		}
		// Two instances run the nightly pass at once: one runs it.
		other := member.NewAttributes(gdb, points.NewHistory(gdb), merchants{ids: []uint64{e.merchantID}, crm: member.DefaultCRMSettings},
			e.clock.Now, quiet)
		if e.clock.Now().In(shanghai).Hour() < member.NightlyHour {
			e.clock.Add(time.Duration(member.NightlyHour) * time.Hour)
		}
		var wg sync.WaitGroup
		ran := make([]int, 2)
		for i, a := range []*member.Attributes{e.attrs, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := a.RunNightly(ctx)
				if err != nil {
					t.Error(err)
				}
				ran[i] = n
			}()
		}
		wg.Wait()
		if ran[0]+ran[1] != 1 {
			t.Fatalf("passes run: %v, want exactly one", ran)
		}
		if n, _ := e.attrs.RunNightly(ctx); n != 0 {
			t.Fatal("the pass ran twice on one local date")
		}
		last, ok, err := e.attrs.LastRun(ctx, e.merchantID)
		if err != nil || !ok || last.Members != 20 || last.Customers != 16 || last.ShareTop20 <= 0.2 {
			t.Fatalf("last run: %+v %v %v", last, ok, err)
		}
		top, bottom, never := e.get(ids[15]), e.get(ids[0]), e.get(ids[19])
		if *top.RFMF != 5 || *top.RFMM != 5 || *top.RFMR != 5 || *top.Pyramid != member.PyramidPlatinum {
			t.Fatalf("best customer: %+v", top)
		}
		if *bottom.RFMF != 1 || *bottom.RFMM != 1 || *bottom.Pyramid != member.PyramidIron {
			t.Fatalf("smallest customer: %+v", bottom)
		}
		if never.RFMR != nil || *never.Pyramid != member.PyramidLead || never.Stage != member.StagePotential {
			t.Fatalf("never bought: %+v", never)
		}
		gold := 0
		for _, id := range ids[:16] {
			if *e.get(id).Pyramid == member.PyramidGold {
				gold++
			}
		}
		// 15% of 16 customers rounds up to 3.
		if gold != 3 {
			t.Fatalf("%d gold members, want 3", gold)
		}
	})
}

type anyCampaign struct{}

func (anyCampaign) CampaignExists(context.Context, uint64, uint64) (bool, error) { return true, nil }

// The loyal customer who recommends others (推荐性购买): a member who buys
// often but only when a campaign brings them, in one category, is a
// repeat buyer; once someone they invited has made a paid order (a
// converted referral), the nightly pass sees them loyal, and their next
// order keeps them so.
func TestReferrerTraitMakesARepeatBuyerLoyal(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newAttrEnv(t, gdb)
		e.points.UseCampaigns(anyCampaign{})
		ctx := context.Background()
		e.follow("o_ref_trait", "", "", 0)
		id := e.byOpenID("o_ref_trait").ID
		campaignID := uint64(7)
		campaignOrder := func(daysAgo int) {
			e.orders++
			at := e.clock.Now().Add(-time.Duration(daysAgo) * 24 * time.Hour)
			if _, _, err := e.points.RecordOrder(ctx, e.merchantID, points.OrderInput{ExternalID: fmt.Sprintf("c%d", e.orders),
				Member: member.BuyerRef{ID: id}, AmountFen: 5000, OrderedAt: &at, CampaignID: &campaignID}); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range []int{330, 290, 250, 210, 170, 130, 90, 50, 10} {
			campaignOrder(d)
		}
		if a := e.get(id); a.Stage != member.StageRepeat {
			t.Fatalf("campaign-only buyer: %+v, want repeat", a)
		}
		// Someone they invited bought: a converted referral.
		now := e.clock.Now()
		if err := gdb.Exec(`INSERT INTO referrals (merchant_id, referrer_id, referee_id, code, source, status, created_at, converted_at, updated_at)
			VALUES (?, ?, ?, 'c0de', 'oauth', 'converted', ?, ?, ?)`, e.merchantID, id, id+1_000_000, now, now, now).Error; err != nil {
			t.Fatal(err)
		}
		if _, err := e.attrs.Recompute(ctx, e.merchantID); err != nil {
			t.Fatal(err)
		}
		if a := e.get(id); a.Stage != member.StageLoyal {
			t.Fatalf("a referrer who buys often: %+v, want loyal", a)
		}
		campaignOrder(0)
		if a := e.get(id); a.Stage != member.StageLoyal {
			t.Fatalf("after another campaign order: %+v, want still loyal", a)
		}
		// (The back-dated orders walked the stages first; the referral moved
		// them once, and the last order did not move them back.)
		if got := e.stageEvents(id); !strings.HasSuffix(got, "at_risk>repeat,repeat>loyal") {
			t.Fatalf("stage events %s, want them to end at_risk>repeat,repeat>loyal", got)
		}
	})
}
