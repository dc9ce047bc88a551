package campaign_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/points"
)

// noticesOn switches the merchant's points-earned notices on, on the
// test template, and returns the kind's campaign.
func (e *env) noticesOn(eng *campaign.Engine) (*campaign.Notices, uint64) {
	e.t.Helper()
	n := campaign.NewNotices(eng)
	s, err := n.Save(context.Background(), e.merchantID, campaign.NoticePointsEarned, campaign.NoticeInput{Enabled: true,
		TemplateID: template, Fields: map[string]string{"first": "{{points_change}} 积分", "keyword1": "{{balance}}"}})
	if err != nil {
		e.t.Fatalf("switch notices on: %v", err)
	}
	return n, s.CampaignID
}

var entryIDs atomic.Uint64

// earn reports, as the points service would inside its transaction, that
// each member earned points: one event of one ledger entry per member.
func (e *env) earn(n *campaign.Notices, members []uint64) {
	e.t.Helper()
	err := e.db.Transaction(func(tx *gorm.DB) error {
		for _, m := range members {
			id := entryIDs.Add(1)
			if err := n.Emit(context.Background(), tx, event.Event{MerchantID: e.merchantID, Type: event.PointsChanged,
				Data: event.Points{MemberID: m, Available: 120, AvailableChange: 120,
					Entries: []event.PointsEntry{{ID: id, Kind: "earn", Points: 120, Reason: "order"}}}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("emit: %v", err)
	}
}

// A crash between claim and send leaves no double notice: instance A
// claims the notices and stalls before marking them (its claim then
// expires and B sends them), or after marking them sending (B's sweep
// leaves them unknown, and A, resuming without its lease, calls nothing).
// Either way every member has at most one notice, and exactly one unless
// the call was in flight.
func TestNoticeCrashBetweenClaimAndSend(t *testing.T) {
	for _, at := range []string{"before-mark", "before-call"} {
		t.Run(at, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
				e := newEnv(t, gdb)
				members := e.seed(10, "ncrash"+randHex(3))
				a := e.engine(campaign.EngineOptions{Lease: time.Minute, Owner: "A", SliceTime: time.Nanosecond}, nil)
				b := e.engine(campaign.EngineOptions{Lease: time.Minute, Owner: "B"}, nil)
				n, cid := e.noticesOn(a)
				e.earn(n, members)
				st := newStall()
				if at == "before-mark" {
					campaign.SetHooks(a, campaign.Hooks{BeforeMark: func([]uint64) { st.hold() }})
				} else {
					campaign.SetHooks(a, campaign.Hooks{BeforeCall: func(uint64) { st.hold() }})
				}
				wait := runAsync(t, a)
				<-st.reached
				if at == "before-call" {
					// Rows are marked as their permits come: let every row
					// reach its call, as in the campaign's own lease test.
					waitFor(t, func() bool { return e.statuses(cid)[campaign.DeliverySending] == 10 },
						func() string { return fmt.Sprintf("A holds %v, want 10 sending", e.statuses(cid)) })
				}
				e.clock.Add(2 * time.Minute) // A's lease has expired
				e.drain(b)
				close(st.resume)
				wait()
				e.drain(a)
				e.drain(b)
				got := e.statuses(cid)
				for openid, k := range e.received() {
					if k != 1 {
						t.Errorf("%s received %d notices", openid, k)
					}
				}
				switch at {
				case "before-mark":
					if got[campaign.DeliverySent] != 10 || len(e.received()) != 10 {
						t.Errorf("statuses %v, received %d: want 10 sent, once each", got, len(e.received()))
					}
				default:
					if got[campaign.DeliveryUnknown] != 10 || len(e.received()) != 0 {
						t.Errorf("statuses %v, received %d: want the 10 unknown, none sent", got, len(e.received()))
					}
				}
				// The same events reported again are no new notice.
				if e.status(cid) != campaign.StatusRunning {
					t.Errorf("the notice kind's campaign is %s, want running (it never completes)", e.status(cid))
				}
			})
		})
	}
}

// Quiet hours and the marketing frequency cap hold marketing, never
// notices: a member at the cap, in quiet hours, gets their notice at once,
// and it does not count toward the cap.
func TestNoticesIgnoreQuietHoursAndFrequencyCap(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		members := e.seed(3, "nquiet"+randHex(3))
		eng := e.engine(campaign.EngineOptions{FrequencyCap: 1}, nil)
		first := e.campaign(e.segment())
		e.drain(eng) // each member has had their one capped message
		if got := e.statuses(first.ID); got[campaign.DeliverySent] != 3 {
			t.Fatalf("first campaign: %v", got)
		}
		// 14:00 in Shanghai: quiet all day from now on.
		merchants.mu.Lock()
		merchants.quiet[e.merchantID] = [2]int{0, 24*60 - 1}
		merchants.mu.Unlock()
		t.Cleanup(func() {
			merchants.mu.Lock()
			delete(merchants.quiet, e.merchantID)
			merchants.mu.Unlock()
		})
		second := e.campaign(e.segment())
		n, cid := e.noticesOn(eng)
		e.earn(n, members)
		e.drain(eng)
		if got := e.statuses(cid); got[campaign.DeliverySent] != 3 {
			t.Errorf("notices in quiet hours, at the cap: %v, want 3 sent", got)
		}
		if got := e.statuses(second.ID); got[campaign.DeliverySent] != 0 {
			t.Errorf("the marketing campaign sent in quiet hours: %v", got)
		}
		for openid, k := range e.received() {
			if k != 2 {
				t.Errorf("%s received %d messages, want the campaign's and the notice", openid, k)
			}
		}
		var capped int64
		gdb.Table("campaign_deliveries").Where("campaign_id = ? AND capped = ?", cid, true).Count(&capped)
		if capped != 0 {
			t.Errorf("%d notices count toward the frequency cap", capped)
		}
	})
}

// A marketing blast running on the account does not starve notices: with
// the account's rate split between the lanes, a notice emitted while a
// blast is being sent goes out while the blast still has members to reach.
func TestNoticesAreNotStarvedByABlast(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newRealTimeEnv(t, gdb)
		members := e.seed(400, "nblast"+randHex(3))
		// 40 marketing messages a second: the blast takes ten seconds at
		// least, whatever the machine.
		lim := campaign.NewLocalLimiter(campaign.RateSplit{PerSecond: 50, ServicePct: 20})
		eng := e.engine(campaign.EngineOptions{SliceTime: 200 * time.Millisecond}, lim)
		blast := e.campaign(e.segment())
		n, cid := e.noticesOn(eng)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); eng.Run(ctx) }()
		defer func() { cancel(); wg.Wait() }()
		until := func(what string, cond func() bool) {
			t.Helper()
			for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("gave up waiting: %s", what)
				}
			}
		}
		until("the blast to start", func() bool { return e.statuses(blast.ID)[campaign.DeliverySent] > 0 })
		e.earn(n, members[:1])
		until("the notice", func() bool { return e.statuses(cid)[campaign.DeliverySent] == 1 })
		if sent := e.statuses(blast.ID)[campaign.DeliverySent]; sent >= len(members) {
			t.Errorf("the notice was sent only after the blast had finished")
		}
	})
}

// expiring plays the points service for the expiry reminders.
type expiring struct {
	coupons []points.ExpiringCoupon
	points  []points.Expiring
}

func (x expiring) CouponsExpiringSoon(_ context.Context, _ uint64, _ time.Duration, after uint64, limit int) ([]points.ExpiringCoupon, error) {
	var out []points.ExpiringCoupon
	for _, c := range x.coupons {
		if c.ID > after && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (x expiring) ExpiringSoon(_ context.Context, _ uint64, _ time.Duration, after uint64, limit int) ([]points.Expiring, error) {
	var out []points.Expiring
	for _, p := range x.points {
		if p.MemberID > after && len(out) < limit {
			out = append(out, p)
		}
	}
	return out, nil
}

// Expiry reminders: a coupon about to expire is one notice, and points
// about to expire one per member and expiry date, however often the scan
// runs; a kind switched off writes none.
func TestExpiryReminderNotices(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		members := e.seed(3, "nexp"+randHex(3))
		eng := e.engine(campaign.EngineOptions{}, nil)
		n := campaign.NewNotices(eng)
		soon := e.now().Add(48 * time.Hour)
		n.UseExpiring(expiring{points: []points.Expiring{{MemberID: members[0], Points: 80, FirstExpiresAt: soon}}},
			expiring{coupons: []points.ExpiringCoupon{{ID: 7, MemberID: members[1], ExpiresAt: soon, RewardName: "¥10 off", Code: "ABCD"},
				{ID: 8, MemberID: members[2], ExpiresAt: soon, RewardName: "¥10 off", Code: "EFGH"}}})
		on := func(k campaign.NoticeKind, enabled bool) uint64 {
			s, err := n.Save(context.Background(), e.merchantID, k, campaign.NoticeInput{Enabled: enabled, TemplateID: template,
				Fields: map[string]string{"first": "{{coupon_expires}}"}})
			if k == campaign.NoticePointsExpiring {
				s, err = n.Save(context.Background(), e.merchantID, k, campaign.NoticeInput{Enabled: enabled, TemplateID: template,
					Fields: map[string]string{"first": "{{points_expiring}} / {{expires_on}}"}})
			}
			if err != nil {
				t.Fatal(err)
			}
			return s.CampaignID
		}
		coupons, pts := on(campaign.NoticeCouponExpiring, true), on(campaign.NoticePointsExpiring, false)
		for range 2 {
			if err := n.RunExpiring(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		e.drain(eng)
		if got := e.statuses(coupons); got[campaign.DeliverySent] != 2 || len(got) != 1 {
			t.Errorf("coupon reminders: %v, want 2 sent", got)
		}
		if got := e.statuses(pts); len(got) != 0 {
			t.Errorf("points reminders while switched off: %v", got)
		}
		on(campaign.NoticePointsExpiring, true)
		for range 2 {
			if err := n.RunExpiring(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		e.drain(eng)
		if got := e.statuses(pts); got[campaign.DeliverySent] != 1 || len(got) != 1 {
			t.Errorf("points reminders: %v, want 1 sent", got)
		}
		var texts []string
		for _, s := range sim.Sent() {
			if s.AppID == e.creds.AppID {
				texts = append(texts, s.Data["first"])
			}
		}
		want := soon.In(shanghai).Format(time.DateOnly)
		if len(texts) != 3 || texts[0] != want || texts[2] != "80 / "+want {
			t.Errorf("reminder texts %q", texts)
		}
	})
}

// Events landing at once are one notice: three changes of a member's
// points reported before a worker takes the first notice are one notice
// of their sum; a change after it was sent is a notice of its own.
func TestNoticesLandingAtOnceAreOne(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		members := e.seed(2, "nbatch"+randHex(3))
		eng := e.engine(campaign.EngineOptions{}, nil)
		n, cid := e.noticesOn(eng)
		for range 3 {
			e.earn(n, members[:1])
		}
		e.earn(n, members[1:])
		e.drain(eng)
		e.earn(n, members[:1])
		e.drain(eng)
		if got := e.statuses(cid); got[campaign.DeliverySent] != 3 || len(got) != 1 {
			t.Errorf("statuses %v, want 3 sent", got)
		}
		var texts []string
		for _, s := range sim.Sent() {
			if s.AppID == e.creds.AppID && s.ToUser == e.openid(members[0]) {
				texts = append(texts, s.Data["first"])
			}
		}
		if len(texts) != 2 || texts[0] != "+360 积分" || texts[1] != "+120 积分" {
			t.Errorf("the member's notices: %q, want +360 then +120", texts)
		}
	})
}

// openid is a member's official-account openid.
func (e *env) openid(memberID uint64) string {
	var openid []string
	e.db.Table("members").Where("id = ?", memberID).Pluck("oa_openid", &openid)
	if len(openid) != 1 {
		e.t.Fatalf("member %d: %v", memberID, openid)
	}
	return openid[0]
}

// Notice rows are pruned once finished longer ago than the retention, in
// bounded batches: rows still waiting stay, young ones stay, and the
// deliveries of a marketing campaign are not touched.
func TestNoticesPrunedAfterRetention(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		members := e.seed(7, "nprune"+randHex(3))
		eng := e.engine(campaign.EngineOptions{}, nil)
		blast := e.campaign(e.segment())
		n, cid := e.noticesOn(eng)
		e.earn(n, members[:5])
		e.drain(eng)
		if got := e.statuses(cid); got[campaign.DeliverySent] != 5 {
			t.Fatalf("notices: %v", got)
		}
		if got := e.statuses(blast.ID); got[campaign.DeliverySent] != 7 {
			t.Fatalf("the marketing campaign: %v", got)
		}
		// Two more notices, planned and not sent yet.
		e.earn(n, members[5:])
		count := func(campaignID uint64) int64 {
			var k int64
			gdb.Table("campaign_deliveries").Where("campaign_id = ?", campaignID).Count(&k)
			return k
		}
		if k := count(cid); k != 7 {
			t.Fatalf("%d notice rows before pruning", k)
		}

		// Within the retention nothing of this merchant's goes. (Prune
		// covers every merchant: on a shared database other tests' old
		// notices may go too, so the counts are this merchant's.)
		e.clock.Set(e.now().Add(campaign.DefaultNoticeRetention - time.Hour))
		if _, err := n.Prune(context.Background(), campaign.DefaultNoticeRetention, 2); err != nil || count(cid) != 7 {
			t.Fatalf("young rows pruned: %d left (%v)", count(cid), err)
		}
		// Past it, the five sent notices go, two at a time; the two still
		// pending and the campaign's rows stay.
		e.clock.Set(e.now().Add(2 * time.Hour))
		got, err := n.Prune(context.Background(), campaign.DefaultNoticeRetention, 2)
		if err != nil || got < 5 {
			t.Fatalf("pruned %d (%v), want at least the 5 sent notices", got, err)
		}
		var pending int64
		gdb.Table("campaign_deliveries").Where("campaign_id = ? AND status = ?", cid, campaign.DeliveryPending).Count(&pending)
		if k := count(cid); k != 2 || pending != 2 {
			t.Fatalf("%d notice rows left (%d pending), want the 2 pending", k, pending)
		}
		if k := count(blast.ID); k != 7 {
			t.Fatalf("the marketing campaign lost rows: %d left", k)
		}
		// Again: nothing more.
		if got, err := n.Prune(context.Background(), campaign.DefaultNoticeRetention, 2); err != nil || got != 0 || count(cid) != 2 {
			t.Fatalf("a second prune deleted %d (%v), %d left", got, err, count(cid))
		}
	})
}
