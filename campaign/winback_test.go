package campaign_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
)

// orderBook is the members' counted orders, as points would report them.
type orderBook struct {
	mu     sync.Mutex
	orders map[uint64]member.History
}

func (b *orderBook) MemberOrders(_ context.Context, _ *gorm.DB, _, fromID, toID uint64) (map[uint64]member.History, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[uint64]member.History{}
	for id, h := range b.orders {
		if id >= fromID && id <= toID {
			out[id] = append(member.History(nil), h...)
		}
	}
	return out, nil
}

func (b *orderBook) RecentTotals(context.Context, uint64, time.Time, func(uint64, int64, int64, time.Time)) error {
	return nil
}

// crmMerchants is the attributes' view of the test merchants.
type crmMerchants struct{}

func (crmMerchants) IDs(context.Context) ([]uint64, error)                    { return nil, nil }
func (crmMerchants) Location(context.Context, uint64) (*time.Location, error) { return shanghai, nil }
func (crmMerchants) CRMSettings(context.Context, uint64) (member.CRMSettings, error) {
	return member.DefaultCRMSettings, nil
}

// flakyStages fails its first fail calls after doing the work, as a
// process dying before its commit would: the transaction rolls back.
type flakyStages struct {
	next campaign.WinBackStages
	mu   sync.Mutex
	fail int
}

func (f *flakyStages) MarkWinBackLost(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64) error {
	if err := f.next.MarkWinBackLost(ctx, tx, merchantID, memberID); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return errors.New("crash before commit")
	}
	return nil
}

type winBackEnv struct {
	*careEnv
	book   *orderBook
	attrs  *member.Attributes
	stages *flakyStages
	wb     *campaign.WinBack
}

func newWinBackEnv(t *testing.T, gdb *gorm.DB) *winBackEnv {
	c := newCareEnv(t, gdb, nil, campaign.CareDeps{})
	w := &winBackEnv{careEnv: c, book: &orderBook{orders: map[uint64]member.History{}}}
	w.attrs = member.NewAttributes(gdb, w.book, crmMerchants{}, c.now, quiet)
	w.stages = &flakyStages{next: w.attrs}
	w.wb = campaign.NewWinBack(c.care, w.stages, nil)
	t.Cleanup(func() { gdb.Exec("UPDATE win_back_settings SET enabled = 0 WHERE merchant_id = ?", c.merchantID) })
	return w
}

// churned makes members churned customers whose one order was long ago.
func (w *winBackEnv) churned(ids ...uint64) {
	w.t.Helper()
	at := w.now().AddDate(0, 0, -200).UTC().Truncate(time.Second)
	for _, id := range ids {
		if err := w.db.Exec("UPDATE members SET lifecycle_stage = 'churned', pyramid_tier = 'iron', order_count = 1, "+
			"total_spend_fen = 5000, first_order_at = ?, last_order_at = ? WHERE id = ?", at, at, id).Error; err != nil {
			w.t.Fatal(err)
		}
		w.book.mu.Lock()
		w.book.orders[id] = member.History{{At: at, NetFen: 5000}}
		w.book.mu.Unlock()
	}
}

// order records a new order of the member as points does: facts and
// attributes, and the win-back episode answered, in the order's
// transaction.
func (w *winBackEnv) order(id uint64) {
	w.t.Helper()
	ctx := context.Background()
	write, err := w.attrs.OrderWriter(ctx, w.merchantID)
	if err != nil {
		w.t.Fatal(err)
	}
	at := w.now().UTC()
	o := member.Order{At: at, NetFen: 8000}
	if err := w.db.Transaction(func(tx *gorm.DB) error {
		if err := write(ctx, tx, id, member.PurchaseDelta{Orders: 1, SpendFen: 8000, OrderedAt: at}, o); err != nil {
			return err
		}
		return w.wb.Answered(ctx, tx, w.merchantID, id, at)
	}); err != nil {
		w.t.Fatal(err)
	}
	w.book.mu.Lock()
	w.book.orders[id] = append(w.book.orders[id], o)
	w.book.mu.Unlock()
}

// program enables a 3-attempt program: attempt 1 offers 100 points,
// attempt 2 200 points, attempt 3 no offer; keyword1 names the attempt.
func (w *winBackEnv) program() campaign.WinBackSettings {
	w.t.Helper()
	step := func(marker string, offer *campaign.Gift) campaign.WinBackStep {
		return campaign.WinBackStep{TemplateID: template, Offer: offer,
			Message: campaign.Message{Fields: map[string]string{"first": "We miss you {{name}}", "keyword1": marker}}}
	}
	s, err := w.wb.Update(context.Background(), w.merchantID, campaign.WinBackInput{Enabled: ptr(true),
		Steps: []campaign.WinBackStep{step("wb1", &campaign.Gift{Points: 100}), step("wb2", &campaign.Gift{Points: 200}),
			step("wb3", nil)}})
	if err != nil {
		w.t.Fatalf("win-back program: %v", err)
	}
	return s
}

// pass runs the win-back pass, then the engine until it settles.
func (w *winBackEnv) pass() {
	w.t.Helper()
	if err := w.wb.RunMerchant(context.Background(), w.merchantID); err != nil {
		w.t.Fatalf("win-back pass: %v", err)
	}
	w.drain(w.eng)
}

func validationFields(t *testing.T, err error) map[string]string {
	t.Helper()
	var v *apperr.Validation
	if !errors.As(err, &v) {
		t.Fatalf("want a validation error, got %v", err)
	}
	return v.Fields
}

func (w *winBackEnv) stage(id uint64) string {
	var s []string
	w.db.Table("members").Where("id = ?", id).Pluck("lifecycle_stage", &s)
	return s[0]
}

func (w *winBackEnv) sequence(id uint64) campaign.WinBackSequence {
	w.t.Helper()
	seqs, err := w.wb.Sequences(context.Background(), w.merchantID, campaign.WinBackFilter{MemberID: id, Limit: 10})
	if err != nil || len(seqs) != 1 {
		w.t.Fatalf("episodes of %d: %v %v", id, seqs, err)
	}
	// The list carries the member's name, for the panel.
	var name []string
	w.db.Table("members").Where("id = ?", id).Pluck("name", &name)
	if len(name) != 1 || name[0] == "" || seqs[0].Name != name[0] {
		w.t.Fatalf("episode of %d: name %q, member's %v", id, seqs[0].Name, name)
	}
	return seqs[0]
}

// The defaults are DOMAIN's (3 attempts), and a bad edit names its fields
// and changes nothing.
func TestWinBackSettings(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		w := newWinBackEnv(t, gdb)
		ctx := context.Background()
		s, err := w.wb.Settings(ctx, w.merchantID)
		if err != nil || s.MaxAttempts != 3 || s.Enabled {
			t.Fatalf("defaults %+v %v", s, err)
		}
		_, err = w.wb.Update(ctx, w.merchantID, campaign.WinBackInput{Enabled: ptr(true), IntervalDays: ptr(0),
			Steps: []campaign.WinBackStep{{TemplateID: template, Message: campaign.Message{Fields: map[string]string{"first": "x"}}}}})
		fields := validationFields(t, err)
		if fields["interval_days"] == "" || fields["steps"] == "" {
			t.Fatalf("errors %v", fields)
		}
		_, err = w.wb.Update(ctx, w.merchantID, campaign.WinBackInput{MaxAttempts: ptr(1),
			Steps: []campaign.WinBackStep{{TemplateID: "TPL_NONE", Message: campaign.Message{Fields: map[string]string{"first": "x"}}}}})
		if fields := validationFields(t, err); fields["steps[0].template_id"] == "" {
			t.Fatalf("errors %v", fields)
		}
		if s, _ := w.wb.Settings(ctx, w.merchantID); s.MaxAttempts != 3 || len(s.Steps) != 0 {
			t.Fatalf("a refused edit changed the program: %+v", s)
		}
		s = w.program()
		if !s.Enabled || len(s.Steps) != 3 || s.ActiveSince == nil {
			t.Fatalf("program %+v", s)
		}
	})
}

// Two churned members enter win-back. One never answers: exactly three
// attempts, then lost (stage lost, no longer targeted: nothing after). The
// other orders after attempt 2: won back (stage won_back), no attempt 3,
// attempt 2's offer granted once. Every pass runs twice, once with a
// second instance at the same time, and the first try at ending the
// episode lost crashes before its commit: nothing is doubled.
func TestWinBackAttemptsToLostAndWonBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		w := newWinBackEnv(t, gdb)
		ids := w.seed(2, "wb"+randHex(3))
		lost, won := ids[0], ids[1]
		w.churned(lost, won)
		w.program()
		open := w.openIDs(ids...)
		other := campaign.NewWinBack(w.care, w.stages, nil) // a second instance
		twice := func() {
			t.Helper()
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, wb := range []*campaign.WinBack{w.wb, other} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = wb.RunMerchant(context.Background(), w.merchantID)
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatalf("concurrent pass: %v", err)
				}
			}
			w.drain(w.eng)
			w.pass() // and once more after a "restart"
		}
		day0 := w.now().In(shanghai)
		at := func(days int) { w.clock.Set(day0.AddDate(0, 0, days)) }

		at(0)
		w.clock.Set(time.Date(day0.Year(), day0.Month(), day0.Day(), 9, 0, 0, 0, shanghai))
		w.pass() // before the send time: nothing yet
		if n := len(w.receivedBy()["wb1"]); n != 0 {
			t.Fatalf("attempt 1 before the send time: %d", n)
		}
		at(0)
		twice()
		at(3)
		twice() // between attempts: nothing
		at(7)
		twice()
		if s := w.sequence(won); s.Attempts != 2 || s.Status != campaign.WinBackActive {
			t.Fatalf("after attempt 2: %+v", s)
		}
		at(9)
		w.order(won)
		if got := w.stage(won); got != member.StageWonBack {
			t.Fatalf("stage after the order: %s", got)
		}
		twice()
		if s := w.sequence(won); s.Status != campaign.WinBackWonBack || s.WonBackAt == nil {
			t.Fatalf("won back episode: %+v", s)
		}
		at(14)
		twice()
		at(21)
		w.stages.fail = 1 // the first try at ending the episode dies before its commit
		if err := w.wb.RunMerchant(context.Background(), w.merchantID); err == nil {
			t.Fatal("the crash was not reported")
		}
		if s := w.sequence(lost); s.Status != campaign.WinBackActive || w.stage(lost) != "churned" {
			t.Fatalf("a rolled-back pass left %+v, stage %s", s, w.stage(lost))
		}
		twice()
		if s := w.sequence(lost); s.Status != campaign.WinBackLost || s.Attempts != 3 {
			t.Fatalf("lost episode: %+v", s)
		}
		if got := w.stage(lost); got != member.StageLost {
			t.Fatalf("stage after 3 unanswered attempts: %s", got)
		}
		for d := 28; d <= 70; d += 7 {
			at(d)
			twice()
		}

		recv := w.receivedBy()
		for marker, want := range map[string]map[string]int{
			"wb1": {open[lost]: 1, open[won]: 1},
			"wb2": {open[lost]: 1, open[won]: 1},
			"wb3": {open[lost]: 1},
		} {
			if fmt.Sprint(recv[marker]) != fmt.Sprint(want) {
				t.Errorf("%s received %v, want %v", marker, recv[marker], want)
			}
		}
		var stageEvents int64
		w.db.Table("member_stage_events").Where("member_id = ? AND to_stage = ?", lost, member.StageLost).Count(&stageEvents)
		if stageEvents != 1 {
			t.Errorf("%d stage events to lost", stageEvents)
		}
		// Offers: attempts 1 and 2 of each member, each granted once.
		w.gifts.mu.Lock()
		grants := 0
		for key, n := range w.gifts.keys {
			if n != 1 {
				t.Errorf("gift %s granted %d times", key, n)
			}
			grants += n
		}
		w.gifts.mu.Unlock()
		if grants != 4 {
			t.Errorf("%d offers granted, want 4", grants)
		}
		r, err := w.wb.Report(context.Background(), w.merchantID, day0.AddDate(0, 0, -1), day0.AddDate(0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		if r.Entered != 2 || r.WonBack != 1 || r.Lost != 1 || r.Rate != 0.5 || r.OffersGranted != 4 || r.CostPoints != 600 ||
			r.CostPerWonBackPoints != 600 {
			t.Errorf("report %+v", r)
		}
	})
}

// DOMAIN: lead-tier members are excluded from paid win-back offers by
// default: they get the attempt's message without the offer.
func TestWinBackLeadTierGetsNoOffer(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		w := newWinBackEnv(t, gdb)
		ids := w.seed(2, "wl"+randHex(3))
		w.churned(ids...)
		gdb.Exec("UPDATE members SET pyramid_tier = 'lead' WHERE id = ?", ids[0])
		w.program()
		w.pass()
		open := w.openIDs(ids...)
		if got := w.receivedBy()["wb1"]; got[open[ids[0]]] != 1 || got[open[ids[1]]] != 1 {
			t.Fatalf("attempt 1 received %v", got)
		}
		w.gifts.mu.Lock()
		defer w.gifts.mu.Unlock()
		if len(w.gifts.keys) != 1 {
			t.Fatalf("offers %v, want one (the iron member's)", w.gifts.keys)
		}
		for key := range w.gifts.keys {
			if !strings.HasSuffix(key, fmt.Sprintf(":%d", ids[1])) {
				t.Fatalf("offer %s went to the lead-tier member", key)
			}
		}
	})
}

// An order ends the member's win-back episode in the order's own
// transaction: an attempt planned and not yet sent is withdrawn at once,
// not at the next pass, so a member who has just bought never gets it.
func TestWinBackOrderWithdrawsAWaitingAttempt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		w := newWinBackEnv(t, gdb)
		id := w.seed(1, "wo"+randHex(3))[0]
		w.churned(id)
		w.program()
		if err := w.wb.RunMerchant(context.Background(), w.merchantID); err != nil {
			t.Fatalf("win-back pass: %v", err)
		}
		pending := func(status string) int64 {
			var n int64
			w.db.Table("campaign_deliveries").Where("merchant_id = ? AND member_id = ? AND status = ?", w.merchantID, id, status).Count(&n)
			return n
		}
		if pending("pending") != 1 {
			t.Fatalf("attempt 1 not waiting: %d pending", pending("pending"))
		}
		w.order(id) // before the engine has sent attempt 1
		if s := w.sequence(id); s.Status != campaign.WinBackWonBack || s.WonBackAt == nil {
			t.Fatalf("episode after the order: %+v", s)
		}
		var reasons []string
		w.db.Table("campaign_deliveries").Where("merchant_id = ? AND member_id = ?", w.merchantID, id).Pluck("reason", &reasons)
		if pending("pending") != 0 || pending("skipped") != 1 || fmt.Sprint(reasons) != "[won_back]" {
			t.Fatalf("the waiting attempt: %d pending, %d skipped %v", pending("pending"), pending("skipped"), reasons)
		}
		w.drain(w.eng)
		if n := len(w.receivedBy()["wb1"]); n != 0 {
			t.Fatalf("a member who had just bought got attempt 1 (%d)", n)
		}
	})
}

// A marketer's edit of the program reaches the attempts planned and not
// yet sent: they go with the edited message and offer (and count the new
// offer's cost); an edited interval spaces the attempts still to come; and
// disabling the program withdraws what is still waiting.
func TestWinBackEditReachesPlannedAttempts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		w := newWinBackEnv(t, gdb)
		ctx := context.Background()
		ids := w.seed(2, "we"+randHex(3))
		w.churned(ids...)
		s := w.program()
		open := w.openIDs(ids...)
		day0 := w.now().In(shanghai)
		if err := w.wb.RunMerchant(ctx, w.merchantID); err != nil { // attempt 1 planned, not sent
			t.Fatalf("win-back pass: %v", err)
		}
		count := func(status, reason string) int64 {
			var n int64
			w.db.Table("campaign_deliveries").Where("merchant_id = ? AND member_id IN ? AND status = ? AND reason = ?",
				w.merchantID, ids, status, reason).Count(&n)
			return n
		}
		if n := count("pending", ""); n != 2 {
			t.Fatalf("attempt 1 not waiting: %d pending", n)
		}

		steps := append([]campaign.WinBackStep(nil), s.Steps...)
		steps[0] = campaign.WinBackStep{TemplateID: template, Offer: &campaign.Gift{Points: 300},
			Message: campaign.Message{Fields: map[string]string{"first": "Come back {{name}}", "keyword1": "wb1-edited"}}}
		if _, err := w.wb.Update(ctx, w.merchantID, campaign.WinBackInput{Steps: steps, IntervalDays: ptr(3)}); err != nil {
			t.Fatalf("edit: %v", err)
		}
		w.drain(w.eng)
		recv := w.receivedBy()
		if len(recv["wb1"]) != 0 || fmt.Sprint(recv["wb1-edited"]) != fmt.Sprint(map[string]int{open[ids[0]]: 1, open[ids[1]]: 1}) {
			t.Fatalf("attempt 1 after the edit: planned message %v, edited %v", recv["wb1"], recv["wb1-edited"])
		}
		r, err := w.wb.Report(ctx, w.merchantID, day0.AddDate(0, 0, -1), day0.AddDate(0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		if r.OffersGranted != 2 || r.CostPoints != 600 {
			t.Fatalf("the edited offer's cost: %+v", r)
		}

		// The interval is now 3 days: attempt 2 is due on day 3, not 7.
		w.clock.Set(day0.AddDate(0, 0, 3))
		if err := w.wb.RunMerchant(ctx, w.merchantID); err != nil {
			t.Fatalf("win-back pass: %v", err)
		}
		if n := count("pending", ""); n != 2 {
			t.Fatalf("attempt 2 on day 3: %d pending", n)
		}
		if s := w.sequence(ids[0]); s.Attempts != 2 {
			t.Fatalf("episode on day 3: %+v", s)
		}
		// Disabled before attempt 2 went out: it is withdrawn, not sent.
		if _, err := w.wb.Update(ctx, w.merchantID, campaign.WinBackInput{Enabled: ptr(false)}); err != nil {
			t.Fatalf("disable: %v", err)
		}
		if p, sk := count("pending", ""), count("skipped", "win_back_changed"); p != 0 || sk != 2 {
			t.Fatalf("after disabling: %d pending, %d withdrawn", p, sk)
		}
		w.drain(w.eng)
		if got := w.receivedBy()["wb2"]; len(got) != 0 {
			t.Fatalf("attempt 2 sent after the program was disabled: %v", got)
		}
	})
}
