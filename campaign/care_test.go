package campaign_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/internal/httpx"
	"github.com/wxloyalty/loyalty/points"
	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// careZone is a merchant directory with one zone and quiet hours, for
// tests whose merchant is not in Shanghai.
type careZone struct {
	loc        *time.Location
	quietStart int
	quietEnd   int
}

func (z careZone) Location(context.Context, uint64) (*time.Location, error) { return z.loc, nil }
func (z careZone) QuietHours(context.Context, uint64) (int, int, error) {
	return z.quietStart, z.quietEnd, nil
}
func (careZone) FrequencyCap(context.Context, uint64) (int, int, error) { return 0, 0, nil }

// careEnv is a merchant with an engine and a care service sharing one
// clock and zone.
type careEnv struct {
	*env
	zone campaign.Merchants
	eng  *campaign.Engine
	care *campaign.Care
	loc  *time.Location
}

// newCareEnv uses the fixture's merchants (Shanghai) when zone is nil.
func newCareEnv(t *testing.T, gdb *gorm.DB, zone *careZone, deps campaign.CareDeps) *careEnv {
	t.Helper()
	c := &careEnv{env: newEnv(t, gdb), zone: merchants, loc: shanghai}
	if zone != nil {
		c.zone, c.loc = *zone, zone.loc
	}
	c.eng = c.newEngine()
	c.care = campaign.NewCare(c.eng, deps, campaign.CareOptions{})
	// The package's MySQL database is shared: later tests' schedulers and
	// engines must not work for this merchant.
	t.Cleanup(func() {
		gdb.Exec("UPDATE care_rules SET enabled = 0 WHERE merchant_id = ?", c.merchantID)
		gdb.Exec("UPDATE campaigns SET status = 'cancelled' WHERE merchant_id = ? AND status IN ('running', 'paused', 'scheduled')",
			c.merchantID)
	})
	return c
}

// newEngine is one more engine instance on the merchant's zone.
func (c *careEnv) newEngine() *campaign.Engine {
	return campaign.NewEngine(c.db, campaign.EngineDeps{WeChat: c.accounts, Audiences: c.segments, Merchants: c.zone,
		Gifts: c.gifts, Followers: c.members,
		Limiter: campaign.NewLocalLimiter(campaign.RateSplit{PerSecond: 100000, ServicePct: 2})},
		c.now, quiet, campaign.EngineOptions{Poll: 5 * time.Millisecond})
}

// at sets the clock to a local time of the merchant.
func (c *careEnv) at(y int, m time.Month, d, hh, mm int) {
	c.clock.Set(time.Date(y, m, d, hh, mm, 0, 0, c.loc))
}

// tick runs the scheduler once, then the engine until it settles.
func (c *careEnv) tick() {
	c.t.Helper()
	if err := c.care.RunOnce(context.Background()); err != nil {
		c.t.Fatalf("care round: %v", err)
	}
	c.drain(c.eng)
}

// rule creates a template rule with keyword1 = marker, so each rule's
// messages are told apart in the simulator.
func (c *careEnv) rule(kind campaign.CareKind, marker string, mut ...func(*campaign.CareInput)) campaign.CareRule {
	c.t.Helper()
	in := campaign.CareInput{Kind: &kind, Name: strPtr(marker), Channel: ptr(campaign.ChannelTemplate), TemplateID: strPtr(template),
		Message: &campaign.Message{Fields: map[string]string{"first": "Dear {{name}}", "keyword1": marker}}}
	for _, m := range mut {
		m(&in)
	}
	r, err := c.care.Create(context.Background(), c.merchantID, 1, in)
	if err != nil {
		c.t.Fatalf("create %s rule: %v", kind, err)
	}
	return r
}

func intPtr(n int) *int { return &n }

// openIDs returns the official-account openids of members.
func (c *careEnv) openIDs(ids ...uint64) map[uint64]string {
	var rows []struct {
		ID       uint64
		OAOpenID string `gorm:"column:oa_openid"`
	}
	c.db.Table("members").Select("id, oa_openid").Where("id IN ?", ids).Find(&rows)
	out := map[uint64]string{}
	for _, r := range rows {
		out[r.ID] = r.OAOpenID
	}
	return out
}

// received counts the account's template messages by marker and openid.
func (c *careEnv) receivedBy() map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, s := range sim.Sent() {
		if s.AppID != c.creds.AppID || s.Kind != "template" {
			continue
		}
		k := s.Data["keyword1"]
		if out[k] == nil {
			out[k] = map[string]int{}
		}
		out[k][s.ToUser]++
	}
	return out
}

// careDelivery is a care delivery with its rule.
type careDelivery struct {
	RuleID   uint64
	MemberID uint64
	Status   campaign.DeliveryStatus
	Reason   campaign.Reason
	SentAt   *time.Time
}

func (c *careEnv) careDeliveries() []careDelivery {
	var out []careDelivery
	if err := c.db.Table("campaign_deliveries d").Select("r.rule_id, d.member_id, d.status, d.reason, d.sent_at").
		Joins("JOIN care_runs r ON r.campaign_id = d.campaign_id").Where("r.merchant_id = ?", c.merchantID).
		Order("d.id").Find(&out).Error; err != nil {
		c.t.Fatal(err)
	}
	return out
}

// sendDates returns, per rule and member, the local dates of the sent
// care messages, checking each went out after the rule's send time.
func (c *careEnv) sendDates(sendMinute map[uint64]int) map[uint64]map[uint64][]string {
	c.t.Helper()
	out := map[uint64]map[uint64][]string{}
	for _, d := range c.careDeliveries() {
		if d.Status != campaign.DeliverySent && d.Status != campaign.DeliveryDelivered {
			c.t.Fatalf("delivery of rule %d to %d: %s %s", d.RuleID, d.MemberID, d.Status, d.Reason)
		}
		local := d.SentAt.In(c.loc)
		if m, ok := sendMinute[d.RuleID]; ok && local.Hour()*60+local.Minute() < m {
			c.t.Fatalf("rule %d sent to %d at %s, before its send time", d.RuleID, d.MemberID, local)
		}
		if out[d.RuleID] == nil {
			out[d.RuleID] = map[uint64][]string{}
		}
		out[d.RuleID][d.MemberID] = append(out[d.RuleID][d.MemberID], local.Format(time.DateOnly))
	}
	return out
}

func (c *careEnv) setBirthday(id uint64, month, day int, year *int) {
	c.t.Helper()
	if err := c.db.Exec("UPDATE members SET birthday_month = ?, birthday_day = ?, birthday_year = ? WHERE id = ?",
		month, day, year, id).Error; err != nil {
		c.t.Fatal(err)
	}
}

func (c *careEnv) careSends(ruleID uint64) map[uint64][]string {
	var rows []campaign.CareSend
	c.db.Where("merchant_id = ? AND rule_id = ?", c.merchantID, ruleID).Order("id").Find(&rows)
	out := map[uint64][]string{}
	for _, r := range rows {
		out[r.MemberID] = append(out[r.MemberID], r.Occurrence)
	}
	return out
}

// A birthday rule (on the day, 09:00) and a birthday-eve rule (one day
// before, 09:30) over two years of simulated days, one of them a leap
// year, in Auckland: at the send time the UTC date is still the day
// before, so a scheduler reading dates in UTC would greet everyone a day
// late. Each member gets exactly one message per rule and year, on the
// right local day; Feb 29 birthdays are on Feb 28 in 2027 and on Feb 29 in
// 2028; nothing goes out before the send time (the scheduler also runs at
// 08:59 every day).
func TestCareBirthdaysOverTwoYears(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		auckland, err := time.LoadLocation("Pacific/Auckland")
		if err != nil {
			t.Fatal(err)
		}
		c := newCareEnv(t, gdb, &careZone{loc: auckland}, campaign.CareDeps{})
		c.at(2026, 12, 29, 12, 0)
		ids := c.seed(8, "bd"+randHex(3))
		leap, dec31, jan1, feb28, mar1, jul15, baby, none := ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[6], ids[7]
		c.setBirthday(leap, 2, 29, intPtr(2000))
		c.setBirthday(dec31, 12, 31, nil)
		c.setBirthday(jan1, 1, 1, intPtr(1990))
		c.setBirthday(feb28, 2, 28, nil)
		c.setBirthday(mar1, 3, 1, nil)
		c.setBirthday(jul15, 7, 15, nil)
		c.setBirthday(baby, 6, 1, intPtr(2027)) // born in 2027: the first birthday is in 2028
		_ = none
		day := c.rule(campaign.CareBirthday, "birthday", func(in *campaign.CareInput) { in.SendMinute = intPtr(9 * 60) })
		eve := c.rule(campaign.CareBirthday, "eve", func(in *campaign.CareInput) {
			in.SendMinute, in.DaysBefore = intPtr(9*60+30), intPtr(1)
		})
		for d := time.Date(2026, 12, 30, 0, 0, 0, 0, time.UTC); d.Year() <= 2028; d = d.AddDate(0, 0, 1) {
			c.at(d.Year(), d.Month(), d.Day(), 8, 59)
			c.tick()
			c.at(d.Year(), d.Month(), d.Day(), 10, 0)
			c.tick()
		}
		want := map[uint64]map[uint64][]string{
			day.ID: {
				leap:  {"2027-02-28", "2028-02-29"},
				dec31: {"2026-12-31", "2027-12-31", "2028-12-31"},
				jan1:  {"2027-01-01", "2028-01-01"},
				feb28: {"2027-02-28", "2028-02-28"},
				mar1:  {"2027-03-01", "2028-03-01"},
				jul15: {"2027-07-15", "2028-07-15"},
				baby:  {"2028-06-01"},
			},
			eve.ID: {
				leap:  {"2027-02-27", "2028-02-28"},
				dec31: {"2026-12-30", "2027-12-30", "2028-12-30"},
				jan1:  {"2026-12-31", "2027-12-31", "2028-12-31"},
				feb28: {"2027-02-27", "2028-02-27"},
				mar1:  {"2027-02-28", "2028-02-29"},
				jul15: {"2027-07-14", "2028-07-14"},
				baby:  {"2028-05-31"},
			},
		}
		got := c.sendDates(map[uint64]int{day.ID: 9 * 60, eve.ID: 9*60 + 30})
		for rule, members := range want {
			for id, dates := range members {
				if !slices.Equal(got[rule][id], dates) {
					t.Errorf("rule %d, member %d: sent on %v, want %v", rule, id, got[rule][id], dates)
				}
			}
			if len(got[rule]) != len(members) {
				t.Errorf("rule %d sent to %d members, want %d: %v", rule, len(got[rule]), len(members), got[rule])
			}
		}
		// WeChat got exactly those messages.
		recv := c.receivedBy()
		open := c.openIDs(ids...)
		for marker, rule := range map[string]uint64{"birthday": day.ID, "eve": eve.ID} {
			total := 0
			for id, dates := range want[rule] {
				total += len(dates)
				if recv[marker][open[id]] != len(dates) {
					t.Errorf("%s: member %d received %d, want %d", marker, id, recv[marker][open[id]], len(dates))
				}
			}
			n := 0
			for _, k := range recv[marker] {
				n += k
			}
			if n != total {
				t.Errorf("%s: WeChat got %d messages, want %d", marker, n, total)
			}
		}
		// One care_sends row per member and birthday year.
		if s := c.careSends(day.ID); !slices.Equal(s[leap], []string{"2027", "2028"}) || !slices.Equal(s[jan1], []string{"2027", "2028"}) {
			t.Errorf("occurrences: %v", s)
		}
		if s := c.careSends(eve.ID); !slices.Equal(s[jan1], []string{"2027", "2028", "2029"}) {
			t.Errorf("eve occurrences of the Jan 1 member: %v", s[jan1])
		}
		// The edge was exercised: at the send time the UTC date is the day before.
		for _, d := range c.careDeliveries() {
			if d.SentAt.UTC().Format(time.DateOnly) == d.SentAt.In(auckland).Format(time.DateOnly) {
				t.Fatalf("a send at %s is not across the date line", d.SentAt)
			}
		}
		// One campaign per rule and local day with sends.
		var runs int64
		gdb.Table("care_runs").Where("merchant_id = ?", c.merchantID).Count(&runs)
		var camps int64
		gdb.Table("campaigns").Where("merchant_id = ? AND kind = ?", c.merchantID, campaign.KindCare).Count(&camps)
		if runs != camps || runs == 0 {
			t.Fatalf("%d care runs, %d care campaigns", runs, camps)
		}
	})
}

// Several schedulers running at once (four instances, three rounds a day,
// two days) plan each member once per occurrence: one campaign per rule
// and day, one care_sends row and one delivery per member, one message in
// WeChat.
func TestCareConcurrentSchedulers(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		c := newCareEnv(t, gdb, nil, campaign.CareDeps{})
		ids := c.seed(120, "cc"+randHex(3))
		for i, id := range ids {
			c.setBirthday(id, 11, 23+i%2, nil) // half today, half tomorrow
		}
		bday := c.rule(campaign.CareBirthday, "birthday")
		welcome := c.rule(campaign.CareWelcome, "welcome")
		// The first 30 follow after the welcome rule exists.
		for i, id := range ids[:30] {
			c.followEvent(id, c.now().Add(time.Duration(i+1)*time.Second))
		}
		c.clock.Add(time.Minute)
		const instances = 4
		cares := make([]*campaign.Care, instances)
		for i := range cares {
			cares[i] = campaign.NewCare(c.newEngine(), campaign.CareDeps{}, campaign.CareOptions{Chunk: 7})
		}
		race := func() {
			for range 3 {
				var wg sync.WaitGroup
				start := make(chan struct{})
				errs := make([]error, instances)
				for i, care := range cares {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						errs[i] = care.RunOnce(context.Background())
					}()
				}
				close(start)
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("scheduler %d: %v", i, err)
					}
				}
			}
		}
		race()
		c.drain(c.eng)
		c.clock.Add(24 * time.Hour) // 2026-11-24 14:01
		race()
		c.drain(c.eng)

		bs, ws := c.careSends(bday.ID), c.careSends(welcome.ID)
		if len(bs) != 120 || len(ws) != 30 {
			t.Fatalf("care_sends: %d birthday members, %d welcomed", len(bs), len(ws))
		}
		for id, occ := range bs {
			if !slices.Equal(occ, []string{"2026"}) {
				t.Fatalf("member %d birthday occurrences %v", id, occ)
			}
		}
		perRule := map[uint64]map[uint64]int{}
		for _, d := range c.careDeliveries() {
			if d.Status != campaign.DeliverySent {
				t.Fatalf("delivery %+v", d)
			}
			if perRule[d.RuleID] == nil {
				perRule[d.RuleID] = map[uint64]int{}
			}
			perRule[d.RuleID][d.MemberID]++
		}
		for rule, n := range map[uint64]int{bday.ID: 120, welcome.ID: 30} {
			if len(perRule[rule]) != n {
				t.Fatalf("rule %d delivered to %d members, want %d", rule, len(perRule[rule]), n)
			}
			for id, k := range perRule[rule] {
				if k != 1 {
					t.Fatalf("rule %d: member %d has %d deliveries", rule, id, k)
				}
			}
		}
		recv := c.receivedBy()
		for _, id := range ids {
			open := c.openIDs(id)[id]
			if recv["birthday"][open] != 1 {
				t.Fatalf("member %d received %d birthday messages", id, recv["birthday"][open])
			}
		}
		if len(recv["welcome"]) != 30 {
			t.Fatalf("%d members welcomed", len(recv["welcome"]))
		}
		for o, k := range recv["welcome"] {
			if k != 1 {
				t.Fatalf("%s welcomed %d times", o, k)
			}
		}
		// Birthday: one campaign on each day; welcome: one on the first.
		var runs []struct {
			RuleID    uint64
			LocalDate string
		}
		gdb.Table("care_runs").Select("rule_id, local_date").Where("merchant_id = ?", c.merchantID).Order("rule_id, local_date").Find(&runs)
		if len(runs) != 3 || runs[0].LocalDate != "2026-11-23" || runs[1].LocalDate != "2026-11-24" || runs[2].RuleID != welcome.ID {
			t.Fatalf("runs %+v", runs)
		}
		var camps int64
		gdb.Table("campaigns").Where("merchant_id = ? AND kind = ?", c.merchantID, campaign.KindCare).Count(&camps)
		if camps != 3 {
			t.Fatalf("%d care campaigns, want 3 (a losing scheduler's campaign must be rolled back)", camps)
		}
	})
}

// The same occurrence seen by schedulers on two local days at once (one
// still on Nov 23, one already on Nov 24: clocks differ by two minutes)
// goes to two different campaigns of the day; the care_sends key still
// lets only one of them plan it.
func TestCareSchedulersAcrossMidnight(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		exp := &fakeExpiring{rows: map[uint64]time.Time{}}
		c := newCareEnv(t, gdb, nil, campaign.CareDeps{Expiring: exp})
		ids := c.seed(150, "mn"+randHex(3))
		for _, id := range ids {
			exp.rows[id] = time.Date(2026, 11, 27, 12, 0, 0, 0, shanghai)
		}
		r := c.rule(campaign.CarePointsExpiring, "expiring", func(in *campaign.CareInput) { in.SendMinute = intPtr(0) })
		before, after := time.Date(2026, 11, 23, 23, 59, 0, 0, shanghai), time.Date(2026, 11, 24, 0, 1, 0, 0, shanghai)
		exp.now = func() time.Time { return before }
		var cares []*campaign.Care
		for i := range 6 {
			at := before
			if i%2 == 1 {
				at = after
			}
			own := *c.env
			own.now = func() time.Time { return at }
			oc := &careEnv{env: &own, zone: c.zone, loc: c.loc}
			cares = append(cares, campaign.NewCare(oc.newEngine(), campaign.CareDeps{Expiring: exp}, campaign.CareOptions{Chunk: 3}))
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, len(cares))
		for i, care := range cares {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = care.RunOnce(context.Background())
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("scheduler %d: %v", i, err)
			}
		}
		c.clock.Set(after.Add(10 * time.Hour))
		c.drain(c.eng)
		sends := c.careSends(r.ID)
		perMember := map[uint64]int{}
		for _, d := range c.careDeliveries() {
			perMember[d.MemberID]++
		}
		for _, id := range ids {
			if !slices.Equal(sends[id], []string{"2026-11-27"}) || perMember[id] != 1 {
				t.Fatalf("member %d: care_sends %v, %d deliveries", id, sends[id], perMember[id])
			}
		}
		recv := c.receivedBy()["expiring"]
		for _, id := range ids {
			if k := recv[c.openIDs(id)[id]]; k != 1 {
				t.Fatalf("member %d received %d reminders", id, k)
			}
		}
	})
}

// The unique key decides, not the look-up before it: sends planned by
// another instance between the look-up and the insert are not planned
// again.
func TestCareSendsUniqueKey(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		c := newCareEnv(t, gdb, nil, campaign.CareDeps{})
		ids := c.seed(2, "uk"+randHex(3))
		r := c.rule(campaign.CareBirthday, "birthday")
		row := campaign.CareSend{MerchantID: c.merchantID, RuleID: r.ID, MemberID: ids[0], Occurrence: "2026", LocalDate: "2026-11-23",
			CampaignID: 1, Batch: "aaaaaaaaaaaaaaaa", CreatedAt: c.now()}
		if err := gdb.Create(&row).Error; err != nil {
			t.Fatal(err)
		}
		dup := row
		dup.ID, dup.Batch = 0, "bbbbbbbbbbbbbbbb"
		if err := gdb.Create(&dup).Error; err == nil {
			t.Fatal("a second care_sends row for one member and occurrence was accepted")
		}
	})
}

// Care sends wait for the end of quiet hours: a rule whose send time is
// in the night plans its rows then, and the engine sends them at 09:00;
// a welcome for a member who follows at night likewise.
func TestCareQuietHours(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		c := newCareEnv(t, gdb, &careZone{loc: shanghai, quietStart: 21 * 60, quietEnd: 9 * 60}, campaign.CareDeps{})
		ids := c.seed(4, "qh"+randHex(3))
		for _, id := range ids[:3] {
			c.setBirthday(id, 11, 24, nil)
		}
		bday := c.rule(campaign.CareBirthday, "birthday", func(in *campaign.CareInput) { in.SendMinute = intPtr(22 * 60) })
		c.rule(campaign.CareWelcome, "welcome")
		c.at(2026, 11, 24, 8, 0)
		c.tick()
		if n := len(c.careDeliveries()); n != 0 {
			t.Fatalf("%d rows planned before the send time", n)
		}
		c.at(2026, 11, 24, 22, 30)
		c.followEvent(ids[3], c.now().Add(-time.Minute))
		c.tick()
		rows := c.careDeliveries()
		if len(rows) != 4 {
			t.Fatalf("%d rows planned at 22:30, want 4", len(rows))
		}
		for _, d := range rows {
			if d.Status != campaign.DeliveryPending {
				t.Fatalf("sent in quiet hours: %+v", d)
			}
		}
		c.at(2026, 11, 25, 8, 59)
		c.tick()
		if got := c.receivedBy(); len(got) != 0 {
			t.Fatalf("sent before the end of quiet hours: %v", got)
		}
		c.at(2026, 11, 25, 9, 1)
		c.tick()
		got := c.sendDates(map[uint64]int{bday.ID: 9 * 60})
		if len(got[bday.ID]) != 3 {
			t.Fatalf("birthday sends after quiet hours: %v", got)
		}
		for id, dates := range got[bday.ID] {
			if !slices.Equal(dates, []string{"2026-11-25"}) {
				t.Fatalf("member %d sent on %v", id, dates)
			}
		}
		recv := c.receivedBy()
		if len(recv["birthday"]) != 3 || len(recv["welcome"]) != 1 {
			t.Fatalf("received %v", recv)
		}
	})
}

// The marketing frequency cap counts and binds care sends: members who
// had two capped messages this week get no birthday message (skipped,
// frequency_cap), and the occurrence is spent: it is not sent later.
func TestCareFrequencyCap(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		c := newCareEnv(t, gdb, nil, campaign.CareDeps{})
		capped := c.seed(4, "fc"+randHex(3))
		seg := c.segment()
		c1 := c.campaign(seg)
		c.drain(c.eng)
		c2 := c.campaign(seg)
		c.drain(c.eng)
		if c.statuses(c1.ID)[campaign.DeliverySent] != 4 || c.statuses(c2.ID)[campaign.DeliverySent] != 4 {
			t.Fatalf("marketing: %v %v", c.statuses(c1.ID), c.statuses(c2.ID))
		}
		control := c.seed(1, "fd"+randHex(3))[0]
		for _, id := range append(slices.Clone(capped), control) {
			c.setBirthday(id, 11, 23, nil)
		}
		bday := c.rule(campaign.CareBirthday, "birthday")
		c.tick()
		for _, d := range c.careDeliveries() {
			switch {
			case d.MemberID == control && d.Status != campaign.DeliverySent:
				t.Fatalf("control member: %+v", d)
			case d.MemberID != control && (d.Status != campaign.DeliverySkipped || d.Reason != campaign.ReasonFrequencyCap):
				t.Fatalf("capped member: %+v", d)
			}
		}
		for range 10 {
			c.clock.Add(24 * time.Hour)
			c.tick()
		}
		if n := len(c.careDeliveries()); n != 5 {
			t.Fatalf("%d care deliveries, want 5", n)
		}
		if s := c.careSends(bday.ID); len(s) != 5 {
			t.Fatalf("care_sends %v", s)
		}
		recv := c.receivedBy()["birthday"]
		if len(recv) != 1 || recv[c.openIDs(control)[control]] != 1 {
			t.Fatalf("birthday messages %v", recv)
		}
	})
}

func (c *careEnv) followEvent(memberID uint64, at time.Time) {
	c.t.Helper()
	if err := c.db.Exec("INSERT INTO member_follow_events (merchant_id, member_id, event_id, kind, occurred_at, created_at) VALUES (?, ?, ?, 'subscribe', ?, ?)",
		c.merchantID, memberID, time.Now().UnixNano()%1_000_000_000_000, at.UTC(), at.UTC()).Error; err != nil {
		c.t.Fatal(err)
	}
}

func (c *careEnv) stageEvent(memberID uint64, from, to string, at time.Time) uint64 {
	c.t.Helper()
	if err := c.db.Exec("INSERT INTO member_stage_events (merchant_id, member_id, from_stage, to_stage, reason, occurred_at) VALUES (?, ?, ?, ?, 'test', ?)",
		c.merchantID, memberID, from, to, at.UTC()).Error; err != nil {
		c.t.Fatal(err)
	}
	var id uint64
	c.db.Table("member_stage_events").Where("merchant_id = ? AND member_id = ?", c.merchantID, memberID).Order("id DESC").Limit(1).Pluck("id", &id)
	return id
}

func (c *careEnv) setStage(memberID uint64, stage string, tier *string) {
	c.t.Helper()
	if err := c.db.Exec("UPDATE members SET lifecycle_stage = ?, pyramid_tier = ? WHERE id = ?", stage, tier, memberID).Error; err != nil {
		c.t.Fatal(err)
	}
}

// Stage-triggered and welcome rules fire once per event (welcome: once per
// member), whatever the number of runs: the second-purchase nudge three
// days after the member became new and only if still new; the win-back
// offer to at-risk members but not to the lead tier (DOMAIN); the thank
// you to won-back members; the welcome to members who followed after the
// rule was created, and not again when they follow again.
func TestCareStageAndWelcomeRulesFireOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		c := newCareEnv(t, gdb, nil, campaign.CareDeps{})
		ids := c.seed(9, "st"+randHex(3))
		newStill, newMoved, atRisk, atRiskLead, wonBack, follower, earlyFollower, refollower := ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[6], ids[7]
		lateFollower := ids[8]
		lead, iron := "lead", "iron"
		c.at(2026, 11, 23, 13, 0)
		ev := c.now()
		c.stageEvent(newStill, "potential", "new", ev)
		c.stageEvent(newMoved, "potential", "new", ev)
		c.stageEvent(atRisk, "repeat", "at_risk", ev)
		c.stageEvent(atRiskLead, "repeat", "at_risk", ev)
		c.stageEvent(wonBack, "churned", "won_back", ev)
		c.setStage(newStill, "new", nil)
		c.setStage(newMoved, "repeat", nil) // bought again: no nudge
		c.setStage(atRisk, "at_risk", &iron)
		c.setStage(atRiskLead, "at_risk", &lead)
		c.setStage(wonBack, "won_back", nil)
		c.followEvent(earlyFollower, ev) // before the welcome rule existed

		c.at(2026, 11, 23, 13, 30)
		nudge := c.rule(campaign.CareSecondPurchase, "nudge", func(in *campaign.CareInput) { in.DaysAfter = intPtr(3) })
		winBack := c.rule(campaign.CareWinBack, "winback", func(in *campaign.CareInput) { in.Gift = &campaign.Gift{Points: 100} })
		thanks := c.rule(campaign.CareWonBackThanks, "thanks")
		welcome := c.rule(campaign.CareWelcome, "welcome")
		c.followEvent(follower, c.now().Add(time.Minute))
		c.followEvent(refollower, c.now().Add(2*time.Minute))

		c.at(2026, 11, 23, 14, 0)
		c.tick()
		c.tick()
		recv := c.receivedBy()
		open := c.openIDs(ids...)
		if recv["winback"][open[atRisk]] != 1 || len(recv["winback"]) != 1 {
			t.Fatalf("win-back: %v (lead-tier member must be left out)", recv["winback"])
		}
		if recv["thanks"][open[wonBack]] != 1 || len(recv["thanks"]) != 1 {
			t.Fatalf("thanks: %v", recv["thanks"])
		}
		if len(recv["nudge"]) != 0 {
			t.Fatalf("nudge before three days: %v", recv["nudge"])
		}
		if recv["welcome"][open[follower]] != 1 || recv["welcome"][open[refollower]] != 1 || len(recv["welcome"]) != 2 {
			t.Fatalf("welcome: %v", recv["welcome"])
		}
		if c.gifts.keys[fmt.Sprintf("campaign:%d:1:%d", c.careDeliveriesCampaign(winBack.ID), atRisk)] != 1 {
			t.Fatalf("win-back gift not granted once: %v", c.gifts.keys)
		}
		// The day's welcome campaign is complete; a later follower is added
		// to it, and it runs again.
		welcomeCampaign := c.careDeliveriesCampaign(welcome.ID)
		if st := c.status(welcomeCampaign); st != campaign.StatusCompleted {
			t.Fatalf("welcome campaign %s", st)
		}
		c.followEvent(lateFollower, c.now().Add(30*time.Minute))
		c.at(2026, 11, 23, 14, 45)
		c.tick()
		if recv := c.receivedBy(); recv["welcome"][open[lateFollower]] != 1 {
			t.Fatalf("late follower not welcomed: %v (campaign %s)", recv["welcome"], c.status(welcomeCampaign))
		}
		if c.careDeliveriesCampaign(welcome.ID) != welcomeCampaign {
			t.Fatal("a second welcome campaign for the day")
		}
		for day := 1; day <= 10; day++ {
			if day == 2 {
				// Unfollow and follow again: no second welcome.
				c.followEvent(refollower, c.now())
			}
			c.at(2026, 11, 23+day, 9, 0)
			c.tick()
			if day == 3 && len(c.receivedBy()["nudge"]) != 0 {
				t.Fatal("nudge before the send time on the third day")
			}
			c.at(2026, 11, 23+day, 15, 0)
			c.tick()
			if day == 2 && len(c.receivedBy()["nudge"]) != 0 {
				t.Fatal("nudge on the second day")
			}
		}
		recv = c.receivedBy()
		if recv["nudge"][open[newStill]] != 1 || len(recv["nudge"]) != 1 {
			t.Fatalf("nudge: %v", recv["nudge"])
		}
		got := c.sendDates(nil)
		if d := got[nudge.ID][newStill]; !slices.Equal(d, []string{"2026-11-26"}) {
			t.Fatalf("nudge sent on %v, want 2026-11-26", d)
		}
		for _, rule := range []uint64{winBack.ID, thanks.ID, welcome.ID} {
			for id, dates := range got[rule] {
				if len(dates) != 1 {
					t.Fatalf("rule %d sent to %d %d times", rule, id, len(dates))
				}
			}
		}
		if len(recv["winback"]) != 1 || len(recv["thanks"]) != 1 || len(recv["welcome"]) != 3 {
			t.Fatalf("after ten days: %v", recv)
		}
		for marker, perOpenID := range recv {
			for o, k := range perOpenID {
				if k != 1 {
					t.Fatalf("%s: %s received %d", marker, o, k)
				}
			}
		}
		if w := c.careSends(welcome.ID); len(w) != 3 || !slices.Equal(w[refollower], []string{"follow"}) {
			t.Fatalf("welcome sends %v", w)
		}
	})
}

func (c *careEnv) careDeliveriesCampaign(ruleID uint64) uint64 {
	var id uint64
	c.db.Table("care_runs").Where("merchant_id = ? AND rule_id = ?", c.merchantID, ruleID).Order("local_date").Limit(1).Pluck("campaign_id", &id)
	return id
}

// Membership anniversaries and care dates around the end of February in a
// common and a leap year: a member who joined on Feb 29 is celebrated on
// Feb 28 in 2027; a member who joined at 00:30 Shanghai time on Feb 28
// (Feb 27 in UTC) on Feb 28; a child's birthday rule matches its label
// whatever the case; a wedding anniversary one day before. Days in
// between are skipped: the scheduler does not make up for a year.
func TestCareAnniversariesAndCareDates(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		c := newCareEnv(t, gdb, nil, campaign.CareDeps{})
		ids := c.seed(7, "an"+randHex(3))
		joinedLeap, joinedMar1, joinedEarly, lily, wedding, tom, custom := ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[6]
		created := func(id uint64, t time.Time) {
			c.db.Exec("UPDATE members SET created_at = ? WHERE id = ?", t.UTC(), id)
		}
		created(joinedLeap, time.Date(2024, 2, 29, 10, 0, 0, 0, shanghai))
		created(joinedMar1, time.Date(2025, 3, 1, 18, 0, 0, 0, shanghai))
		created(joinedEarly, time.Date(2026, 2, 28, 0, 30, 0, 0, shanghai))
		for _, id := range []uint64{lily, wedding, tom, custom} {
			created(id, time.Date(2026, 6, 1, 12, 0, 0, 0, shanghai))
		}
		careDate := func(member uint64, kind, label string, m, d int, y *int) {
			if err := c.db.Exec("INSERT INTO member_care_dates (merchant_id, member_id, kind, label, month, day, year, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
				c.merchantID, member, kind, label, m, d, y, c.now(), c.now()).Error; err != nil {
				t.Fatal(err)
			}
		}
		careDate(lily, "child_birthday", "Lily", 2, 29, intPtr(2020))
		careDate(tom, "child_birthday", "Tom", 2, 29, nil)
		careDate(wedding, "wedding_anniversary", "", 3, 1, intPtr(2015))
		careDate(custom, "custom", "", 2, 28, nil)
		anniv := c.rule(campaign.CareAnniversary, "anniversary")
		child := c.rule(campaign.CareDateRule, "child", func(in *campaign.CareInput) {
			in.CareDateKind, in.Label = strPtr("child_birthday"), strPtr("lily")
		})
		wed := c.rule(campaign.CareDateRule, "wedding", func(in *campaign.CareInput) {
			in.CareDateKind, in.DaysBefore = strPtr("wedding_anniversary"), intPtr(1)
		})
		for _, y := range []int{2027, 2028} {
			for d := time.Date(y, 2, 25, 0, 0, 0, 0, time.UTC); d.Before(time.Date(y, 3, 3, 0, 0, 0, 0, time.UTC)); d = d.AddDate(0, 0, 1) {
				c.at(d.Year(), d.Month(), d.Day(), 11, 0)
				c.tick()
				c.tick()
			}
		}
		got := c.sendDates(map[uint64]int{anniv.ID: 600, child.ID: 600, wed.ID: 600})
		want := map[uint64]map[uint64][]string{
			anniv.ID: {
				joinedLeap:  {"2027-02-28", "2028-02-29"},
				joinedMar1:  {"2027-03-01", "2028-03-01"},
				joinedEarly: {"2027-02-28", "2028-02-28"},
			},
			child.ID: {lily: {"2027-02-28", "2028-02-29"}},
			wed.ID:   {wedding: {"2027-02-28", "2028-02-29"}},
		}
		for rule, members := range want {
			if len(got[rule]) != len(members) {
				t.Errorf("rule %d sent to %v, want %v", rule, got[rule], members)
			}
			for id, dates := range members {
				if !slices.Equal(got[rule][id], dates) {
					t.Errorf("rule %d member %d: %v, want %v", rule, id, got[rule][id], dates)
				}
			}
		}
		if s := c.careSends(anniv.ID); !slices.Equal(s[joinedLeap], []string{"2027", "2028"}) {
			t.Errorf("anniversary occurrences %v", s)
		}
	})
}

// fakeExpiring is a points service with a settable expiry per member.
type fakeExpiring struct {
	mu   sync.Mutex
	now  func() time.Time
	rows map[uint64]time.Time
}

func (f *fakeExpiring) ExpiringSoon(_ context.Context, _ uint64, within time.Duration, after uint64, limit int) ([]points.Expiring, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []points.Expiring
	for id, at := range f.rows {
		if id > after && at.After(f.now()) && !at.After(f.now().Add(within)) {
			out = append(out, points.Expiring{MemberID: id, Points: 50, FirstExpiresAt: at})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MemberID < out[j].MemberID })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// A points reminder goes out once per expiry date: not again on the next
// days, again when a later lot comes within the window.
func TestCarePointsExpiring(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		exp := &fakeExpiring{rows: map[uint64]time.Time{}}
		c := newCareEnv(t, gdb, nil, campaign.CareDeps{Expiring: exp})
		exp.now = c.now
		ids := c.seed(3, "px"+randHex(3))
		exp.rows[ids[0]] = time.Date(2026, 11, 28, 23, 59, 0, 0, shanghai)
		exp.rows[ids[1]] = time.Date(2026, 12, 20, 0, 0, 0, 0, shanghai) // outside 7 days at first
		r := c.rule(campaign.CarePointsExpiring, "expiring", func(in *campaign.CareInput) { in.WithinDays = intPtr(7) })
		for day := 0; day <= 20; day++ { // to 2026-12-13
			c.at(2026, 11, 23+day, 12, 0)
			if day == 6 {
				exp.mu.Lock()
				exp.rows[ids[0]] = time.Date(2026, 12, 5, 12, 0, 0, 0, shanghai) // the next lot
				exp.mu.Unlock()
			}
			c.tick()
			c.tick()
		}
		got := c.careSends(r.ID)
		if !slices.Equal(got[ids[0]], []string{"2026-11-28", "2026-12-05"}) || !slices.Equal(got[ids[1]], []string{"2026-12-20"}) ||
			len(got) != 2 {
			t.Fatalf("points reminders %v", got)
		}
		dates := c.sendDates(nil)[r.ID]
		if !slices.Equal(dates[ids[0]], []string{"2026-11-23", "2026-11-29"}) || !slices.Equal(dates[ids[1]], []string{"2026-12-13"}) {
			t.Fatalf("sent on %v", dates)
		}
	})
}

// careAPI serves the care routes as cmd/loyalty mounts them, with the
// caller's principal from a test header.
type careAPI struct {
	*careEnv
	router *gin.Engine
}

func newCareAPI(t *testing.T, gdb *gorm.DB) *careAPI {
	c := newCareEnv(t, gdb, nil, campaign.CareDeps{})
	a := &careAPI{careEnv: c, router: gin.New()}
	a.router.Use(httpx.Recover())
	g := a.router.Group("/api/admin/v1", func(ctx *gin.Context) {
		var p authz.Principal
		_ = json.Unmarshal([]byte(ctx.GetHeader("X-Test-Principal")), &p)
		ctx.Request = ctx.Request.WithContext(authz.WithPrincipal(ctx.Request.Context(), p))
	}, audit.NewRecorder(gdb, c.now).Track())
	campaign.NewCareHandler(c.care).Register(g)
	return a
}

func (a *careAPI) call(role authz.Role, merchantID uint64, method, path string, body any) (int, map[string]any) {
	a.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	req := httptest.NewRequest(method, "/api/admin/v1"+path, bytes.NewReader(raw))
	p, _ := json.Marshal(authz.Principal{MerchantID: merchantID, StaffID: 9, Role: role, Name: "care"})
	req.Header.Set("X-Test-Principal", string(p))
	rec := httptest.NewRecorder()
	a.router.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

func careBody(kind string) map[string]any {
	return map[string]any{"kind": kind, "channel": "template", "template_id": template,
		"message": map[string]any{"fields": map[string]string{"first": "Happy birthday {{name}}", "keyword1": "{{points}} points"}}}
}

func errFields(out map[string]any) map[string]any {
	e, _ := out["error"].(map[string]any)
	f, _ := e["fields"].(map[string]any)
	return f
}

// Bad rules are refused at save time with 400 naming the field, and
// nothing is written.
func TestCareRuleValidation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newCareAPI(t, gdb)
		with := func(kind string, mut func(b map[string]any)) map[string]any {
			b := careBody(kind)
			mut(b)
			return b
		}
		cases := []struct {
			field string
			body  any
		}{
			{"kind", with("birthdays", func(map[string]any) {})},
			{"kind", with("", func(b map[string]any) { delete(b, "kind") })},
			{"days_before", with("birthday", func(b map[string]any) { b["days_before"] = 31 })},
			{"days_before", with("birthday", func(b map[string]any) { b["days_before"] = -1 })},
			{"days_before", with("birthday", func(b map[string]any) { b["days_before"] = "three" })},
			{"days_after", with("birthday", func(b map[string]any) { b["days_after"] = 3 })},
			{"days_after", with("second_purchase", func(b map[string]any) { b["days_after"] = 0 })},
			{"days_after", with("win_back", func(b map[string]any) { b["days_after"] = 91 })},
			{"within_days", with("points_expiring", func(b map[string]any) { b["within_days"] = 91 })},
			{"send_minute", with("birthday", func(b map[string]any) { b["send_minute"] = 1440 })},
			{"send_minute", with("birthday", func(b map[string]any) { b["send_minute"] = -5 })},
			{"send_minute", with("welcome", func(b map[string]any) { b["send_minute"] = 600 })},
			{"template_id", with("birthday", func(b map[string]any) { b["template_id"] = "TPL_NOPE" })},
			{"message.fields.first", with("birthday", func(b map[string]any) {
				b["message"] = map[string]any{"fields": map[string]string{"first": "Hi {{nickname}}"}}
			})},
			{"message.fields.keyword9", with("birthday", func(b map[string]any) {
				b["message"] = map[string]any{"fields": map[string]string{"keyword9": "x"}}
			})},
			{"care_date_kind", with("care_date", func(map[string]any) {})},
			{"care_date_kind", with("care_date", func(b map[string]any) { b["care_date_kind"] = "funeral" })},
			{"care_date_kind", with("birthday", func(b map[string]any) { b["care_date_kind"] = "custom" })},
			{"label", with("care_date", func(b map[string]any) {
				b["care_date_kind"] = "custom"
				b["label"] = string(bytes.Repeat([]byte("x"), 65))
			})},
			{"include_lead_tier", with("birthday", func(b map[string]any) { b["include_lead_tier"] = true })},
			{"gift.points", with("birthday", func(b map[string]any) { b["gift"] = map[string]any{"points": -5} })},
			{"channel", with("birthday", func(b map[string]any) { b["channel"] = "sms" })},
			{"name", with("birthday", func(b map[string]any) { b["name"] = string(bytes.Repeat([]byte("n"), 65)) })},
			{"colour", with("birthday", func(b map[string]any) { b["colour"] = "red" })},
		}
		for _, tc := range cases {
			code, out := a.call(authz.RoleMarketer, a.merchantID, "POST", "/care-rules", tc.body)
			if code != 400 {
				t.Errorf("%s: status %d, want 400: %v", tc.field, code, out)
				continue
			}
			if _, ok := errFields(out)[tc.field]; !ok {
				t.Errorf("%s: fields %v do not name it", tc.field, errFields(out))
			}
		}
		var n int64
		gdb.Table("care_rules").Where("merchant_id = ?", a.merchantID).Count(&n)
		if n != 0 {
			t.Fatalf("%d rules written by bad requests", n)
		}
		// Edits are checked the same way; the kind cannot change.
		code, out := a.call(authz.RoleMarketer, a.merchantID, "POST", "/care-rules", careBody("birthday"))
		if code != 201 {
			t.Fatalf("create: %d %v", code, out)
		}
		path := fmt.Sprintf("/care-rules/%v", out["id"])
		for field, body := range map[string]map[string]any{
			"kind":        {"kind": "welcome"},
			"days_before": {"days_before": 40},
			"send_minute": {"send_minute": 2000},
			"template_id": {"template_id": "TPL_GONE"},
		} {
			code, out := a.call(authz.RoleMarketer, a.merchantID, "PATCH", path, body)
			if _, ok := errFields(out)[field]; code != 400 || !ok {
				t.Errorf("PATCH %s: %d %v", field, code, out)
			}
		}
		if code, out := a.call(authz.RoleMarketer, a.merchantID, "GET", path, nil); code != 200 || out["days_before"] != float64(0) ||
			out["send_minute"] != float64(600) || out["send_time"] != "10:00" {
			t.Fatalf("rule after refused edits: %d %v", code, out)
		}
	})
}

// The routes only ever see the caller's merchant: another merchant's rule
// is 404 on every route and absent from the list; reading needs
// campaigns:read, writing campaigns:write; changes are audited.
func TestCareRoutesTenantIsolation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		a := newCareAPI(t, gdb)
		ids := a.seed(2, "ti"+randHex(3))
		a.setBirthday(ids[0], 11, 23, nil)
		body := careBody("birthday")
		body["gift"] = map[string]any{"points": 20}
		if code, _ := a.call(authz.RoleViewer, a.merchantID, "POST", "/care-rules", body); code != 403 {
			t.Fatalf("viewer create: %d, want 403", code)
		}
		code, out := a.call(authz.RoleMarketer, a.merchantID, "POST", "/care-rules", body)
		if code != 201 || out["kind"] != "birthday" || out["enabled"] != true {
			t.Fatalf("create: %d %v", code, out)
		}
		id := out["id"]
		path := fmt.Sprintf("/care-rules/%v", id)
		a.tick()
		code, out = a.call(authz.RoleViewer, a.merchantID, "GET", path+"/sends", nil)
		sends, _ := out["sends"].([]any)
		if code != 200 || len(sends) != 1 {
			t.Fatalf("sends: %d %v", code, out)
		}
		if s := sends[0].(map[string]any); s["status"] != "sent" || s["occurrence"] != "2026" || s["member_id"] != float64(ids[0]) {
			t.Fatalf("send %v", s)
		}

		other := dbtest.NewMerchantID()
		for _, r := range []struct{ method, path string }{
			{"GET", path}, {"PATCH", path}, {"DELETE", path}, {"GET", path + "/sends"},
		} {
			var b any
			if r.method == "PATCH" {
				b = map[string]any{"enabled": false}
			}
			if code, out := a.call(authz.RoleOwner, other, r.method, r.path, b); code != 404 {
				t.Errorf("other merchant %s %s: %d %v", r.method, r.path, code, out)
			}
		}
		if code, out := a.call(authz.RoleOwner, other, "GET", "/care-rules", nil); code != 200 || len(out["care_rules"].([]any)) != 0 {
			t.Fatalf("other merchant's list: %d %v", code, out)
		}
		if code, out := a.call(authz.RoleViewer, a.merchantID, "GET", "/care-rules", nil); code != 200 || len(out["care_rules"].([]any)) != 1 {
			t.Fatalf("own list: %d %v", code, out)
		}
		if code, _ := a.call(authz.RoleViewer, a.merchantID, "PATCH", path, map[string]any{"enabled": false}); code != 403 {
			t.Fatalf("viewer edit: %d", code)
		}
		if code, out := a.call(authz.RoleMarketer, a.merchantID, "PATCH", path, map[string]any{"days_before": 2, "name": "Birthday eve"}); code != 200 ||
			out["days_before"] != float64(2) || out["name"] != "Birthday eve" {
			t.Fatalf("edit: %d %v", code, out)
		}
		if code, _ := a.call(authz.RoleMarketer, a.merchantID, "DELETE", path, nil); code != 204 {
			t.Fatalf("delete: %d", code)
		}
		if code, _ := a.call(authz.RoleMarketer, a.merchantID, "GET", path, nil); code != 404 {
			t.Fatalf("deleted rule: %d", code)
		}
		var actions []string
		gdb.Table("audit_log").Where("merchant_id = ? AND target_type = ?", a.merchantID, "care_rule").Order("id").Pluck("action", &actions)
		if !slices.Equal(actions, []string{"care_rule.create", "care_rule.update", "care_rule.delete"}) {
			t.Fatalf("audit %v", actions)
		}
		var otherRows int64
		gdb.Table("audit_log").Where("merchant_id = ?", other).Count(&otherRows)
		if otherRows != 0 {
			t.Fatalf("refused requests left %d audit rows for the other merchant", otherRows)
		}
	})
}

// Disabling a rule withdraws what it planned and the engine has not taken
// (the rows wait out quiet hours here); editing the message changes what
// the waiting rows send.
func TestCareEditAndDisableAffectQueuedRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		c := newCareEnv(t, gdb, &careZone{loc: shanghai, quietStart: 21 * 60, quietEnd: 9 * 60}, campaign.CareDeps{})
		ids := c.seed(4, "ed"+randHex(3))
		for _, id := range ids {
			c.setBirthday(id, 11, 23, nil)
		}
		edited := c.rule(campaign.CareBirthday, "before", func(in *campaign.CareInput) { in.SendMinute = intPtr(22 * 60) })
		c.at(2026, 11, 23, 22, 0)
		c.tick()
		ctx := context.Background()
		if _, err := c.care.Update(ctx, c.merchantID, edited.ID, campaign.CareInput{
			Message: &campaign.Message{Fields: map[string]string{"first": "Dear {{name}}", "keyword1": "after"}}}); err != nil {
			t.Fatal(err)
		}
		c.at(2026, 11, 24, 9, 30)
		c.tick()
		recv := c.receivedBy()
		if len(recv["after"]) != 4 || len(recv["before"]) != 0 {
			t.Fatalf("queued rows did not follow the edit: %v", recv)
		}
		// A second rule, disabled while its rows wait.
		for _, id := range ids {
			c.setBirthday(id, 11, 25, nil)
		}
		off := c.rule(campaign.CareBirthday, "off", func(in *campaign.CareInput) { in.SendMinute = intPtr(22 * 60) })
		c.at(2026, 11, 25, 22, 0)
		c.tick()
		// WeChat cannot list templates: disabling still works (it does not
		// ask), a message edit is refused as unavailable.
		defer sim.ClearFaults()
		sim.Script("/cgi-bin/template/get_all_private_template", wechattest.Fault{HTTPStatus: 502}, wechattest.Fault{HTTPStatus: 502},
			wechattest.Fault{HTTPStatus: 502}, wechattest.Fault{HTTPStatus: 502}, wechattest.Fault{HTTPStatus: 502})
		if _, err := c.care.Update(ctx, c.merchantID, off.ID, campaign.CareInput{Enabled: new(bool)}); err != nil {
			t.Fatalf("disable while WeChat is down: %v", err)
		}
		if _, err := c.care.Update(ctx, c.merchantID, off.ID, campaign.CareInput{
			Message: &campaign.Message{Fields: map[string]string{"keyword1": "x"}}}); !errors.Is(err, apperr.ErrUnavailable) {
			t.Fatalf("message edit while WeChat is down: %v", err)
		}
		sim.ClearFaults()
		c.at(2026, 11, 26, 9, 30)
		c.tick()
		if n := len(c.receivedBy()["off"]); n != 0 {
			t.Fatalf("a disabled rule sent %d messages", n)
		}
		withdrawn := 0
		for _, d := range c.careDeliveries() {
			if d.RuleID != off.ID {
				continue
			}
			if d.Status != campaign.DeliverySkipped || d.Reason != campaign.ReasonCareRuleDisabled {
				t.Fatalf("withdrawn row %+v", d)
			}
			withdrawn++
		}
		if withdrawn != len(ids) {
			t.Fatalf("%d rows of the disabled rule withdrawn, want the %d it planned", withdrawn, len(ids))
		}
	})
}

// A day's campaign the engine completed while the scheduler was adding
// rows (its completion check ran before they committed) is run again by
// the next scheduler round, so the rows do not wait forever.
func TestCareRevivesCampaignCompletedUnderNewRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		c := newCareEnv(t, gdb, &careZone{loc: shanghai, quietStart: 21 * 60, quietEnd: 9 * 60}, campaign.CareDeps{})
		ids := c.seed(3, "rv"+randHex(3))
		for _, id := range ids {
			c.setBirthday(id, 11, 23, nil)
		}
		r := c.rule(campaign.CareBirthday, "birthday", func(in *campaign.CareInput) { in.SendMinute = intPtr(22 * 60) })
		c.at(2026, 11, 23, 22, 0)
		c.tick() // planned, held by quiet hours
		camp := c.careDeliveriesCampaign(r.ID)
		// The race's outcome, as the engine would leave it.
		gdb.Exec("UPDATE campaigns SET status = 'completed' WHERE id = ?", camp)
		c.at(2026, 11, 24, 9, 30)
		c.drain(c.eng)
		if n := len(c.receivedBy()["birthday"]); n != 0 {
			t.Fatalf("a completed campaign sent %d", n)
		}
		c.tick()
		if n := len(c.receivedBy()["birthday"]); n != 3 {
			t.Fatalf("after the next round %d sent, want 3 (campaign %s)", n, c.status(camp))
		}
	})
}
