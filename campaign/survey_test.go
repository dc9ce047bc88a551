package campaign_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/campaign"
	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/dbtest"
	"github.com/wxloyalty/loyalty/member"
)

type surveyEnv struct {
	*careEnv
	book   *orderBook
	attrs  *member.Attributes
	events *eventLog
	sv     *campaign.Surveys
}

func newSurveyEnv(t *testing.T, gdb *gorm.DB) *surveyEnv {
	c := newCareEnv(t, gdb, nil, campaign.CareDeps{})
	s := &surveyEnv{careEnv: c, book: &orderBook{orders: map[uint64]member.History{}}, events: &eventLog{}}
	s.attrs = member.NewAttributes(gdb, s.book, crmMerchants{}, c.now, quiet)
	s.sv = campaign.NewSurveys(c.care, s.attrs, s.events, "https://shop.example")
	t.Cleanup(func() { gdb.Exec("UPDATE surveys SET enabled = 0 WHERE merchant_id = ?", c.merchantID) })
	return s
}

// order records a paid order of each member now, as points does (facts
// and attributes in the order's transaction).
func (s *surveyEnv) order(ids ...uint64) {
	s.t.Helper()
	ctx := context.Background()
	write, err := s.attrs.OrderWriter(ctx, s.merchantID)
	if err != nil {
		s.t.Fatal(err)
	}
	at := s.now().UTC()
	for _, id := range ids {
		o := member.Order{At: at, NetFen: 8000}
		if err := s.db.Transaction(func(tx *gorm.DB) error {
			return write(ctx, tx, id, member.PurchaseDelta{Orders: 1, SpendFen: 8000, OrderedAt: at}, o)
		}); err != nil {
			s.t.Fatal(err)
		}
		s.book.mu.Lock()
		s.book.orders[id] = append(s.book.orders[id], o)
		s.book.mu.Unlock()
	}
}

// survey enables a survey sent an hour after an order, at most once in 30
// days; keyword1 marks its messages "survey".
func (s *surveyEnv) survey() campaign.Survey {
	s.t.Helper()
	v, err := s.sv.Create(context.Background(), s.merchantID, campaign.SurveyInput{Name: strPtr("After your visit"),
		Enabled: ptr(true), Indicators: &[]campaign.Indicator{campaign.IndicatorReputation, campaign.IndicatorComplaint},
		AskExpectation: ptr(true), DelayHours: ptr(1), MinDaysBetween: ptr(30), TemplateID: strPtr(template),
		Message: &campaign.Message{Fields: map[string]string{"first": "How was it, {{name}}?", "keyword1": "survey"}}})
	if err != nil {
		s.t.Fatalf("survey: %v", err)
	}
	return v
}

// pass runs the survey pass on two instances at once and once more, then
// the engine until it settles.
func (s *surveyEnv) pass() {
	s.t.Helper()
	other := campaign.NewSurveys(s.care, s.attrs, s.events, "https://shop.example")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, sv := range []*campaign.Surveys{s.sv, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = sv.RunMerchant(context.Background(), s.merchantID)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			s.t.Fatalf("survey pass: %v", err)
		}
	}
	if err := s.sv.RunMerchant(context.Background(), s.merchantID); err != nil {
		s.t.Fatalf("survey pass: %v", err)
	}
	s.drain(s.eng)
}

func (s *surveyEnv) answer(memberID uint64, nps, sat int, exp *int, ind map[campaign.Indicator]int) (campaign.SurveyAnswer, error) {
	s.t.Helper()
	p, err := s.sv.Pending(context.Background(), s.merchantID, memberID)
	if err != nil || p == nil {
		s.t.Fatalf("pending survey of %d: %v %v", memberID, p, err)
	}
	return s.sv.Answer(context.Background(), s.merchantID, memberID, p.InvitationID,
		campaign.AnswerInput{NPS: &nps, Satisfaction: &sat, Expectation: exp, Indicators: ind})
}

func (s *surveyEnv) count(q string, args ...any) int64 {
	s.t.Helper()
	var n int64
	if err := s.db.Raw(q, args...).Scan(&n).Error; err != nil {
		s.t.Fatal(err)
	}
	return n
}

// A survey goes out an hour after an order, once per member although two
// instances run the pass; a member answers it (a second answer refused,
// out-of-range scores refused with nothing changed); the detractor gets
// the service follow-up exactly once (simulator counts), the promoter
// none; the answer becomes the member's last scores and raises a
// detractor's churn risk; survey.answered is emitted with the scores.
func TestSurveyAnsweredAndDetractorFollowedUpOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		s := newSurveyEnv(t, gdb)
		ctx := context.Background()
		ids := s.seed(3, "sv"+randHex(3))
		detractor, promoter, silent := ids[0], ids[1], ids[2]
		open := s.openIDs(ids...)
		t0 := s.now()
		v := s.survey()
		if v.Message.URL != "https://shop.example/m/"+itoa(s.merchantID)+"/survey" {
			t.Fatalf("default link %q", v.Message.URL)
		}
		rule := s.rule(campaign.CareSurveyDetractor, "followup")
		s.clock.Set(t0.Add(10 * time.Minute))
		s.order(ids...)

		s.clock.Set(t0.Add(40 * time.Minute)) // 30 minutes after the order: not yet
		s.pass()
		if n := len(s.receivedBy()["survey"]); n != 0 {
			t.Fatalf("survey before the delay: %d", n)
		}
		s.clock.Set(t0.Add(80 * time.Minute))
		s.pass()
		s.pass()
		got := s.receivedBy()["survey"]
		for _, id := range ids {
			if got[open[id]] != 1 {
				t.Fatalf("member %d got the survey %d times: %v", id, got[open[id]], got)
			}
		}
		for _, m := range sim.Sent() {
			if m.AppID == s.creds.AppID && m.Data["keyword1"] == "survey" && !strings.HasSuffix(m.URL, "/survey") {
				t.Fatalf("the message links to %q", m.URL)
			}
		}

		riskBefore := s.churnRisk(detractor)
		good := map[campaign.Indicator]int{campaign.IndicatorReputation: 4, campaign.IndicatorComplaint: 5}
		// Out of range: refused, naming the fields, nothing written.
		_, err := s.answer(promoter, 11, 0, ptr(6), map[campaign.Indicator]int{campaign.IndicatorReputation: 9, "mood": 3})
		fields := validationFields(t, err)
		for _, f := range []string{"nps", "satisfaction", "expectation", "indicators.reputation", "indicators.complaint", "indicators.mood"} {
			if fields[f] == "" {
				t.Fatalf("no error for %s: %v", f, fields)
			}
		}
		if n := s.count("SELECT COUNT(*) FROM survey_answers WHERE merchant_id = ?", s.merchantID); n != 0 {
			t.Fatalf("a refused answer was stored: %d", n)
		}
		if n := s.count("SELECT COUNT(*) FROM members WHERE id = ? AND last_nps IS NULL", promoter); n != 1 {
			t.Fatal("a refused answer changed the member")
		}

		if _, err := s.answer(detractor, 3, 2, ptr(4), good); err != nil {
			t.Fatalf("detractor's answer: %v", err)
		}
		if _, err := s.answer(promoter, 10, 5, ptr(4), good); err != nil {
			t.Fatalf("promoter's answer: %v", err)
		}
		// Answered: nothing pending; answering the invitation again is
		// refused in words, and nothing changes.
		if p, err := s.sv.Pending(ctx, s.merchantID, detractor); err != nil || p != nil {
			t.Fatalf("still pending after the answer: %+v %v", p, err)
		}
		var invID uint64
		s.db.Table("survey_invitations").Where("member_id = ?", detractor).Pluck("id", &invID)
		_, err = s.sv.Answer(ctx, s.merchantID, detractor, invID, campaign.AnswerInput{NPS: ptr(10), Satisfaction: ptr(5),
			Expectation: ptr(1), Indicators: good})
		if !errors.Is(err, apperr.ErrConflict) || !strings.Contains(err.Error(), "already been answered") {
			t.Fatalf("second answer: %v", err)
		}
		// Another member's invitation is not found for this one.
		_, err = s.sv.Answer(ctx, s.merchantID, promoter, invID, campaign.AnswerInput{NPS: ptr(1), Satisfaction: ptr(1),
			Expectation: ptr(1), Indicators: good})
		if !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("someone else's invitation: %v", err)
		}
		if n := s.count("SELECT COUNT(*) FROM survey_answers WHERE merchant_id = ?", s.merchantID); n != 2 {
			t.Fatalf("answers stored: %d", n)
		}
		var last struct {
			LastNPS          *int `gorm:"column:last_nps"`
			LastSatisfaction *int
			ChurnReason      *string
		}
		s.db.Table("members").Select("last_nps, last_satisfaction, churn_reason").Where("id = ?", detractor).Take(&last)
		if last.LastNPS == nil || *last.LastNPS != 3 || *last.LastSatisfaction != 2 || last.ChurnReason == nil || *last.ChurnReason != "detractor" {
			t.Fatalf("detractor's attributes %+v", last)
		}
		if after := s.churnRisk(detractor); after != min(riskBefore+member.DetractorRiskPoints, 100) {
			t.Fatalf("churn risk %d -> %d", riskBefore, after)
		}
		if s.churnRisk(promoter) != riskBefore || s.churnRisk(silent) != riskBefore {
			t.Fatal("a promoter's or a silent member's churn risk moved")
		}
		// Segments read the last scores.
		aud, err := s.segments.Compile(ctx, s.merchantID, []byte(`{"field":"last_nps","op":"lte","value":6}`))
		if err != nil {
			t.Fatal(err)
		}
		seg, err := s.segments.Count(ctx, aud)
		if err != nil || seg != 1 {
			t.Fatalf("detractors segment: %d %v", seg, err)
		}

		// The follow-up: twice, with a second scheduler at once: one message.
		other := campaign.NewCare(s.eng, campaign.CareDeps{}, campaign.CareOptions{})
		var wg sync.WaitGroup
		for _, c := range []*campaign.Care{s.care, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.RunMerchant(ctx, s.merchantID); err != nil {
					t.Errorf("care: %v", err)
				}
			}()
		}
		wg.Wait()
		s.tick()
		s.clock.Set(t0.Add(3 * time.Hour))
		s.tick()
		follow := s.receivedBy()["followup"]
		if follow[open[detractor]] != 1 || len(follow) != 1 {
			t.Fatalf("follow-ups %v (detractor %s)", follow, open[detractor])
		}
		if sends := s.careSends(rule.ID); len(sends) != 1 || len(sends[detractor]) != 1 {
			t.Fatalf("care sends %v", sends)
		}

		var answered []event.Survey
		for _, e := range s.events.all() {
			if e.Type == event.SurveyAnswered {
				answered = append(answered, e.Data.(event.Survey))
			}
		}
		if len(answered) != 2 || answered[0].MemberID != detractor || answered[0].NPS != 3 || answered[0].SurveyID != v.ID ||
			!answered[0].Detractor || answered[1].NPS != 10 || answered[1].Satisfaction != 5 || answered[1].Detractor {
			t.Fatalf("survey.answered events %+v", answered)
		}
	})
}

// At most once per N days: a member who orders again within 30 days of an
// invitation is not asked again; after 30 days, the next order is.
func TestSurveyAtMostOncePerNDays(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		s := newSurveyEnv(t, gdb)
		ids := s.seed(1, "sn"+randHex(3))
		open := s.openIDs(ids...)[ids[0]]
		t0 := s.now()
		s.survey()
		at := func(d time.Duration) { s.clock.Set(t0.Add(d)) }
		at(time.Minute)
		s.order(ids...)
		at(2 * time.Hour)
		s.pass()
		if n := s.receivedBy()["survey"][open]; n != 1 {
			t.Fatalf("first survey: %d", n)
		}
		for _, day := range []int{2, 10, 29} {
			at(time.Duration(day) * 24 * time.Hour)
			s.order(ids...)
			at(time.Duration(day)*24*time.Hour + 2*time.Hour)
			s.pass()
			if n := s.receivedBy()["survey"][open]; n != 1 {
				t.Fatalf("asked again on day %d: %d", day, n)
			}
		}
		at(31 * 24 * time.Hour)
		s.order(ids...)
		at(31*24*time.Hour + 2*time.Hour)
		s.pass()
		if n := s.receivedBy()["survey"][open]; n != 2 {
			t.Fatalf("after 30 days: %d surveys", n)
		}
		if n := s.count("SELECT COUNT(*) FROM survey_invitations WHERE merchant_id = ?", s.merchantID); n != 2 {
			t.Fatalf("invitations: %d", n)
		}
	})
}

// The results against hand-computed figures: twelve members invited, ten
// answer (promoters 10, 10, 9, 9, 10; passives 8, 7; detractors 6, 2, 4):
// NPS = 50% − 30% = 20; satisfaction (5+5+4+4+3+2+1+4+5+2)/10 = 3.5;
// response rate 10/12; gap satisfaction − expectation (3 each) = 0.5.
// Two weeks, two channels, two tiers.
func TestSurveyResults(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		s := newSurveyEnv(t, gdb)
		ctx := context.Background()
		ids := s.seed(12, "sr"+randHex(3))
		now := s.now()
		if err := gdb.Exec("INSERT INTO points_tiers (merchant_id, name, level, threshold, benefits, created_at, updated_at) VALUES (?, 'Gold', 1, 0, '[]', ?, ?)",
			s.merchantID, now, now).Error; err != nil {
			t.Fatal(err)
		}
		var tierID uint64
		gdb.Table("points_tiers").Where("merchant_id = ?", s.merchantID).Pluck("id", &tierID)
		gdb.Exec("UPDATE members SET channel_scene = 'poster', tier_id = ? WHERE id IN ?", tierID, ids[:4])
		t0 := s.now() // Monday 2026-11-23, 14:00 in Shanghai
		s.survey()
		s.clock.Set(t0.Add(time.Minute))
		s.order(ids...)
		s.clock.Set(t0.Add(2 * time.Hour))
		s.pass()
		nps := []int{10, 10, 9, 9, 10, 8, 7, 6, 2, 4}
		sat := []int{5, 5, 4, 4, 3, 2, 1, 4, 5, 2}
		good := map[campaign.Indicator]int{campaign.IndicatorReputation: 4, campaign.IndicatorComplaint: 5}
		for i := range 10 {
			if i == 6 {
				s.clock.Set(t0.Add(8 * 24 * time.Hour)) // the next week (invitations are open 14 days)
			}
			if _, err := s.answer(ids[i], nps[i], sat[i], ptr(3), good); err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
		}
		r, err := s.sv.Results(ctx, s.merchantID, 0, t0.AddDate(0, 0, -1), t0.AddDate(0, 0, 20))
		if err != nil {
			t.Fatal(err)
		}
		o := r.Overall
		if o.Answers != 10 || o.Promoters != 5 || o.Passives != 2 || o.Detractors != 3 || *o.NPS != 20 || *o.Satisfaction != 3.5 ||
			*o.ExpectationGap != 0.5 {
			t.Fatalf("overall %+v nps %v sat %v", o, *o.NPS, *o.Satisfaction)
		}
		if r.Invited != 12 || r.Responded != 10 || r.ResponseRate != 0.8333 {
			t.Fatalf("response rate %d/%d %v", r.Responded, r.Invited, r.ResponseRate)
		}
		// Week of 23 Nov: 10,10,9,9,10,8 → 5 promoters of 6 = 83.3;
		// week of 30 Nov: 7,6,2,4 → 0 − 75 = −75.
		if len(r.Weeks) != 2 || r.Weeks[0].Week != "2026-11-23" || *r.Weeks[0].NPS != 83.3 || r.Weeks[1].Week != "2026-11-30" ||
			*r.Weeks[1].NPS != -75 {
			t.Fatalf("weeks %+v", r.Weeks)
		}
		// Channel poster and Gold tier: the first four (all promoters),
		// satisfaction (5+5+4+4)/4 = 4.5.
		find := func(gs []campaign.SurveyGroup, key string) campaign.SurveyGroup {
			for _, g := range gs {
				if g.Key == key {
					return g
				}
			}
			t.Fatalf("no group %q in %+v", key, gs)
			return campaign.SurveyGroup{}
		}
		poster, none := find(r.Channels, "poster"), find(r.Channels, "")
		if poster.Answers != 4 || *poster.NPS != 100 || *poster.Satisfaction != 4.5 || none.Answers != 6 {
			t.Fatalf("channels %+v", r.Channels)
		}
		gold := find(r.Tiers, itoa(tierID))
		if gold.Name != "Gold" || gold.Answers != 4 || *gold.NPS != 100 {
			t.Fatalf("tiers %+v", r.Tiers)
		}
		if len(r.Latest) != 10 || r.Latest[0].MemberID != ids[9] || r.Latest[0].MemberName != "m9" || r.Latest[0].NPS != 4 {
			t.Fatalf("latest %+v", r.Latest[0])
		}
	})
}

// A bad survey names its fields and saves nothing; only one survey may be
// enabled.
func TestSurveyDefinition(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, gdb *gorm.DB) {
		s := newSurveyEnv(t, gdb)
		ctx := context.Background()
		_, err := s.sv.Create(ctx, s.merchantID, campaign.SurveyInput{Name: strPtr(""), DelayHours: ptr(-1),
			MinDaysBetween: ptr(0), Indicators: &[]campaign.Indicator{"mood", campaign.IndicatorReturn, campaign.IndicatorReturn},
			TemplateID: strPtr(template)})
		fields := validationFields(t, err)
		for _, f := range []string{"name", "delay_hours", "min_days_between", "indicators[0]", "indicators[2]"} {
			if fields[f] == "" {
				t.Fatalf("no error for %s: %v", f, fields)
			}
		}
		_, err = s.sv.Create(ctx, s.merchantID, campaign.SurveyInput{Name: strPtr("x"), TemplateID: strPtr("TPL_NONE"),
			Message: &campaign.Message{Fields: map[string]string{"first": "x"}}})
		if fields := validationFields(t, err); fields["template_id"] == "" {
			t.Fatalf("errors %v", fields)
		}
		if list, _ := s.sv.List(ctx, s.merchantID); len(list) != 0 {
			t.Fatalf("a refused survey was saved: %+v", list)
		}
		s.survey()
		second, err := s.sv.Create(ctx, s.merchantID, campaign.SurveyInput{Name: strPtr("Second"), TemplateID: strPtr(template),
			Message: &campaign.Message{Fields: map[string]string{"first": "x"}}})
		if err != nil || second.Enabled {
			t.Fatalf("second survey: %+v %v", second, err)
		}
		_, err = s.sv.Update(ctx, s.merchantID, second.ID, campaign.SurveyInput{Enabled: ptr(true)})
		if fields := validationFields(t, err); fields["enabled"] == "" {
			t.Fatalf("errors %v", fields)
		}
	})
}

func (s *surveyEnv) churnRisk(id uint64) int {
	s.t.Helper()
	var r []*int
	s.db.Table("members").Where("id = ?", id).Pluck("churn_risk", &r)
	if len(r) != 1 || r[0] == nil {
		s.t.Fatalf("member %d has no churn risk", id)
	}
	return *r[0]
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
