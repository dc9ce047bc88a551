package campaign_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/wechat"
	"github.com/wxloyalty/loyalty/wechat/inbox"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

const templatePath = "/cgi-bin/message/template/send"

// WeChat's errcodes decide each row's fate: transient errors are retried
// with backoff until they succeed, a follower who left is skipped and
// marked unfollowed, a bad openid fails its row; holdout members get
// nothing; gifts are granted once per delivered member.
func TestErrcodesDriveRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		e.seed(40, "err"+randHex(3))
		c := e.campaign(e.segment(), func(in *campaign.Input) {
			in.Gift = &campaign.Gift{Points: 10}
			hold := 20
			in.HoldoutPct = &hold
		})
		// Plan inside quiet hours (nothing is sent), then have one member
		// the plan did not hold out leave: WeChat knows, the member row
		// does not yet. It is the last one sent (one send at a time, in
		// member order), so the scripted faults below meet others.
		local := e.now().In(shanghai)
		minute := local.Hour()*60 + local.Minute()
		merchants.mu.Lock()
		merchants.quiet[e.merchantID] = [2]int{minute, (minute + 60) % (24 * 60)}
		merchants.mu.Unlock()
		e.drain(e.engine(campaign.EngineOptions{}, nil))
		merchants.mu.Lock()
		delete(merchants.quiet, e.merchantID)
		merchants.mu.Unlock()
		var gone uint64
		gdb.Table("campaign_deliveries").Where("campaign_id = ? AND status = ?", c.ID, campaign.DeliveryPending).
			Order("member_id DESC").Limit(1).Pluck("member_id", &gone)
		var goneOpenID string
		gdb.Table("members").Where("id = ?", gone).Pluck("oa_openid", &goneOpenID)
		if goneOpenID == "" || len(e.received()) != 0 {
			t.Fatalf("planning in quiet hours: member %d %q, %d sent", gone, goneOpenID, len(e.received()))
		}
		sim.Unfollow(e.creds.AppID, goneOpenID)
		sim.Script(templatePath, wechattest.Fault{ErrCode: -1}, wechattest.Fault{HTTPStatus: 502},
			wechattest.Fault{ErrCode: 45011}, wechattest.Fault{ErrCode: 40003})
		eng := e.engine(campaign.EngineOptions{RetryBase: time.Second, Concurrency: 1}, nil)
		e.drain(eng)
		// Retries wait for their time: the three rows that met -1, 502 and
		// 45011 are pending, and stay so until the clock moves.
		if st := e.statuses(c.ID); st[campaign.DeliveryPending] != 3 {
			t.Fatalf("after the first pass: %v, want the 3 transient failures pending", st)
		}
		sentFirst := len(sim.Sent())
		e.drain(eng)
		if st := e.statuses(c.ID); st[campaign.DeliveryPending] != 3 || len(sim.Sent()) != sentFirst {
			t.Fatalf("retried before their time: %v, %d sends more", st, len(sim.Sent())-sentFirst)
		}
		for range 6 {
			e.clock.Add(2 * time.Minute)
			e.drain(eng)
		}
		st := e.statuses(c.ID)
		if st[campaign.DeliveryHoldout] == 0 || st[campaign.DeliveryHoldout] > 20 {
			t.Fatalf("holdout of 20%%: %v", st)
		}
		planned := 40 - st[campaign.DeliveryHoldout]
		if st[campaign.DeliveryFailed] != 1 || st[campaign.DeliverySkipped] != 1 || st[campaign.DeliverySent] != planned-2 {
			t.Fatalf("statuses %v", st)
		}
		var failed campaign.Delivery
		gdb.Where("campaign_id = ? AND status = ?", c.ID, campaign.DeliveryFailed).Take(&failed)
		if failed.ErrCode != 40003 || failed.Reason != campaign.ReasonInvalidOpenID {
			t.Fatalf("failed row: %+v", failed)
		}
		var skipped campaign.Delivery
		gdb.Where("campaign_id = ? AND status = ?", c.ID, campaign.DeliverySkipped).Take(&skipped)
		var follow string
		gdb.Table("members").Where("id = ?", skipped.MemberID).Pluck("follow_status", &follow)
		if skipped.MemberID != gone || skipped.Reason != campaign.ReasonNotFollowing || follow != "unfollowed" {
			t.Fatalf("left follower: %+v, member now %q", skipped, follow)
		}
		// Gifts: once per sent member, with a key per campaign, step and
		// member.
		if len(e.gifts.keys) != planned-2 {
			t.Fatalf("%d gifts for %d sent", len(e.gifts.keys), planned-2)
		}
		for k, n := range e.gifts.keys {
			if n != 1 || !strings.HasPrefix(k, fmt.Sprintf("campaign:%d:1:", c.ID)) {
				t.Fatalf("gift %s granted %d times", k, n)
			}
		}
		if e.status(c.ID) != campaign.StatusCompleted {
			t.Fatalf("campaign %s", e.status(c.ID))
		}
		// Its completion was announced once (webhooks' campaign.completed).
		if evs := e.events.all(); len(evs) != 1 || evs[0].Type != event.CampaignCompleted || evs[0].MerchantID != e.merchantID ||
			evs[0].Data != (event.Campaign{CampaignID: c.ID, Step: 1}) {
			t.Fatalf("events %+v", evs)
		}
		// Nobody outside the plan got anything, nobody twice.
		for o, n := range e.received() {
			if n != 1 {
				t.Fatalf("%s got %d", o, n)
			}
		}
	})
}

// A template WeChat does not know stops the campaign at once; most sends
// failing for other reasons auto-pause it.
func TestCampaignLevelErrors(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		e.seed(30, "bad"+randHex(3))
		c := e.campaign(e.segment())
		sim.Script(templatePath, wechattest.Fault{ErrCode: 40037})
		e.drain(e.engine(campaign.EngineOptions{}, nil))
		var cp campaign.Campaign
		gdb.Where("id = ?", c.ID).Take(&cp)
		if cp.Status != campaign.StatusPaused || !strings.Contains(cp.PauseReason, "40037") {
			t.Fatalf("after 40037: %s %q", cp.Status, cp.PauseReason)
		}
		before := len(e.received())
		e.drain(e.engine(campaign.EngineOptions{}, nil))
		if len(e.received()) != before {
			t.Fatal("a paused campaign kept sending")
		}

		e2 := newEnv(t, gdb)
		e2.seed(400, "fail"+randHex(3))
		c2 := e2.campaign(e2.segment())
		var faults []wechattest.Fault
		for range 400 {
			faults = append(faults, wechattest.Fault{ErrCode: 40003})
		}
		sim.Script(templatePath, faults...)
		e2.drain(e2.engine(campaign.EngineOptions{AutoPauseMin: 20, AutoPausePct: 50, Batch: 20, Concurrency: 8}, nil))
		sim.ClearFaults()
		cp = campaign.Campaign{}
		gdb.Where("id = ?", c2.ID).Take(&cp)
		if cp.Status != campaign.StatusPaused || !strings.Contains(cp.PauseReason, "auto-pause") {
			t.Fatalf("mostly failing campaign: %s %q %v", cp.Status, cp.PauseReason, e2.statuses(c2.ID))
		}
		if st := e2.statuses(c2.ID); st[campaign.DeliveryPending] == 0 {
			t.Fatalf("auto-pause should leave rows unsent: %v", st)
		}
	})
}

// WeChat's daily quota runs out mid-run: the account stops until local
// midnight, then the campaign finishes on its own; our own quota ledger
// stops sends before WeChat has to.
func TestQuotaExhaustionAndNextDay(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		e.seed(50, "quota"+randHex(3))
		c := e.campaign(e.segment())
		eng := e.engine(campaign.EngineOptions{Batch: 10}, nil)
		// Ten sends go through, then WeChat answers 45009 to every send, as
		// it does once the quota is spent (sends already in flight when the
		// first 45009 comes back meet it too).
		var faults []wechattest.Fault
		for range 10 {
			faults = append(faults, wechattest.Fault{Latency: time.Microsecond})
		}
		for range 50 {
			faults = append(faults, wechattest.Fault{ErrCode: 45009})
		}
		sim.Script(templatePath, faults...)
		e.drain(eng)
		sim.ClearFaults()
		st := e.statuses(c.ID)
		if st[campaign.DeliverySent] != 10 || st[campaign.DeliveryPending] != 40 {
			t.Fatalf("after 45009: %v", st)
		}
		sentBefore := st[campaign.DeliverySent]
		// Later the same local day, WeChat would accept again (the
		// simulator does): the engine still sends nothing.
		e.clock.Add(8 * time.Hour) // 22:00 in Shanghai
		e.drain(eng)
		if got := e.statuses(c.ID)[campaign.DeliverySent]; got != sentBefore {
			t.Fatalf("sent %d more before midnight", got-sentBefore)
		}
		// After local midnight the campaign finishes.
		e.clock.Add(3 * time.Hour)
		e.drain(eng)
		if st := e.statuses(c.ID); st[campaign.DeliverySent] != 50 || e.status(c.ID) != campaign.StatusCompleted {
			t.Fatalf("next day: %v %s", st, e.status(c.ID))
		}

		// Our own ledger: a daily quota of 130 leaves 30 for marketing once
		// the 100 kept for service messages are set aside (1% minimum 10...
		// here the reserve is 100).
		e2 := newEnv(t, gdb)
		e2.seed(60, "ledger"+randHex(3))
		c2 := e2.campaign(e2.segment())
		e2.drain(e2.engine(campaign.EngineOptions{DailyQuota: 130, ServiceQuota: 100}, nil))
		if st := e2.statuses(c2.ID); st[campaign.DeliverySent] != 30 || st[campaign.DeliveryPending] != 30 {
			t.Fatalf("own quota: %v", st)
		}
	})
}

// Nothing is sent in the merchant's quiet hours; held rows go out after.
// The frequency cap counts capped sends of all campaigns in 7 days.
func TestQuietHoursAndFrequencyCap(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		merchants.mu.Lock()
		merchants.quiet[e.merchantID] = [2]int{21 * 60, 9 * 60}
		merchants.mu.Unlock()
		e.clock.Set(time.Date(2026, 11, 23, 14, 30, 0, 0, time.UTC)) // 22:30 in Shanghai
		e.seed(10, "quiet"+randHex(3))
		seg := e.segment()
		c := e.campaign(seg)
		eng := e.engine(campaign.EngineOptions{}, nil)
		e.drain(eng)
		if st := e.statuses(c.ID); st[campaign.DeliveryPending] != 10 {
			t.Fatalf("quiet hours: %v", st)
		}
		e.clock.Add(10 * time.Hour) // 08:30
		e.drain(eng)
		if len(e.received()) != 0 {
			t.Fatal("sent before the end of quiet hours")
		}
		e.clock.Add(31 * time.Minute) // 09:01
		e.drain(eng)
		if st := e.statuses(c.ID); st[campaign.DeliverySent] != 10 {
			t.Fatalf("after quiet hours: %v", st)
		}
		// A second campaign the same week: still under the cap of 2.
		c2 := e.campaign(seg)
		e.drain(eng)
		// A third: capped.
		c3 := e.campaign(seg)
		e.drain(eng)
		if st := e.statuses(c2.ID); st[campaign.DeliverySent] != 10 {
			t.Fatalf("second campaign: %v", st)
		}
		if st := e.statuses(c3.ID); st[campaign.DeliverySkipped] != 10 {
			t.Fatalf("third campaign in 7 days: %v", st)
		}
		var reasons []campaign.Reason
		gdb.Table("campaign_deliveries").Where("campaign_id = ?", c3.ID).Distinct().Pluck("reason", &reasons)
		if len(reasons) != 1 || reasons[0] != campaign.ReasonFrequencyCap {
			t.Fatalf("reasons %v", reasons)
		}
		// Eight days later the cap has room again.
		e.clock.Add(8 * 24 * time.Hour)
		c4 := e.campaign(seg)
		e.drain(eng)
		if st := e.statuses(c4.ID); st[campaign.DeliverySent] != 10 {
			t.Fatalf("a week later: %v", st)
		}
	})
}

// A merchant's own frequency cap replaces the engine's: one message in
// three days lets the second campaign through only after the window.
func TestMerchantFrequencyCap(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		merchants.mu.Lock()
		merchants.caps[e.merchantID] = [2]int{1, 3}
		merchants.mu.Unlock()
		e.clock.Set(time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC)) // noon in Shanghai
		e.seed(4, "mcap"+randHex(3))
		seg := e.segment()
		eng := e.engine(campaign.EngineOptions{}, nil)
		c1 := e.campaign(seg)
		e.drain(eng)
		c2 := e.campaign(seg)
		e.drain(eng)
		if st := e.statuses(c1.ID); st[campaign.DeliverySent] != 4 {
			t.Fatalf("first campaign: %v", st)
		}
		if st := e.statuses(c2.ID); st[campaign.DeliverySkipped] != 4 {
			t.Fatalf("second campaign under a cap of 1: %v", st)
		}
		e.clock.Add(3*24*time.Hour + time.Minute)
		c3 := e.campaign(seg)
		e.drain(eng)
		if st := e.statuses(c3.ID); st[campaign.DeliverySent] != 4 {
			t.Fatalf("after the 3-day window: %v", st)
		}
	})
}

// receiptOutcomes are the three receipt statuses WeChat sends, by the order
// of the rows they are for.
var receiptOutcomes = []string{"success", "failed:user block", "failed: system failed"}

// storeReceipts pushes a TEMPLATESENDJOBFINISH receipt per msgid (with the
// outcome of the same index) through the inbox, as the callback does, and
// processes it.
func storeReceipts(e *env, gdb *gorm.DB, openIDs []string, msgIDs []int64) {
	e.t.Helper()
	d := inbox.NewDispatcher(gdb, quiet, inbox.DispatcherOptions{Now: e.now})
	campaign.NewReceipts(gdb, e.now).RegisterHandlers(d)
	w := inbox.NewWriter(gdb, quiet, inbox.WriterOptions{Now: e.now})
	w.Start()
	defer w.Stop()
	for i, id := range msgIDs {
		ev := wechat.Event{MerchantID: e.merchantID, MsgType: wechat.MsgTypeEvent, EventType: wechat.EventTemplateFinish,
			OpenID: openIDs[i], MsgID: id, Status: receiptOutcomes[i], CreateTime: e.now().Truncate(time.Second),
			DedupeKey: fmt.Sprintf("%064d", id)}
		if err := w.Accept(context.Background(), ev); err != nil {
			e.t.Fatal(err)
		}
	}
	for {
		n, err := d.RunOnce(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
}

// checkReceiptOutcomes asserts that each row carries the outcome of the
// receipt for its msgid (first is the msgid of receiptOutcomes[0]).
func checkReceiptOutcomes(t *testing.T, rows []campaign.Delivery, first int64) {
	t.Helper()
	want := []struct {
		status campaign.DeliveryStatus
		reason campaign.Reason
	}{{campaign.DeliveryDelivered, ""},
		{campaign.DeliveryFailed, campaign.ReasonUserBlock}, {campaign.DeliveryFailed, campaign.ReasonSystem}}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v", rows)
	}
	for _, r := range rows {
		if r.MsgID == nil || *r.MsgID < first || *r.MsgID >= first+int64(len(want)) {
			t.Fatalf("row %+v has no msgid of this send", r)
		}
		w := want[*r.MsgID-first]
		if r.Status != w.status || r.Reason != w.reason {
			t.Fatalf("row with msgid %d: %s/%s, want %s/%s", *r.MsgID, r.Status, r.Reason, w.status, w.reason)
		}
	}
}

// TEMPLATESENDJOBFINISH receipts move sent rows to delivered or failed,
// whether they arrive after the send was recorded or before (WeChat can
// answer the send and push the receipt before the engine records it).
func TestReceiptsUpdateRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		e.seed(3, "rcpt"+randHex(3))
		c := e.campaign(e.segment())
		e.drain(e.engine(campaign.EngineOptions{}, nil))
		var rows []campaign.Delivery
		gdb.Where("campaign_id = ?", c.ID).Order("msg_id").Find(&rows)
		if len(rows) != 3 || rows[0].MsgID == nil {
			t.Fatalf("rows %+v", rows)
		}
		storeReceipts(e, gdb, []string{rows[0].OpenID, rows[1].OpenID, rows[2].OpenID},
			[]int64{*rows[0].MsgID, *rows[1].MsgID, *rows[2].MsgID})
		gdb.Where("campaign_id = ?", c.ID).Order("msg_id").Find(&rows)
		checkReceiptOutcomes(t, rows, *rows[0].MsgID)
	})
	// Before: the receipts of the msgids the next three sends will get are
	// stored first; recording the sends applies them.
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		e := newEnv(t, gdb)
		e.seed(3, "early"+randHex(3))
		c := e.campaign(e.segment())
		first := sim.NextMsgID()
		storeReceipts(e, gdb, []string{"o_early_a", "o_early_b", "o_early_c"}, []int64{first, first + 1, first + 2})
		e.drain(e.engine(campaign.EngineOptions{}, nil))
		var rows []campaign.Delivery
		gdb.Where("campaign_id = ?", c.ID).Order("msg_id").Find(&rows)
		checkReceiptOutcomes(t, rows, first)
	})
}
