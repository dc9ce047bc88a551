package campaign

// What goes out when: a care rule's next sends, and the calendar of
// campaigns and care sends over a range of local dates.

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// MaxNextSendDays bounds a next-sends preview, MaxCalendarDays a calendar
// range (each day of a date rule is one indexed lookup).
const (
	MaxNextSendDays = 31
	MaxCalendarDays = 62
)

// SampleMember is a member shown as an example.
type SampleMember struct {
	ID   uint64 `json:"id"`
	Name string `json:"name"`
}

// NextSendDay is one local date of a date rule's coming sends.
type NextSendDay struct {
	Date        string         `json:"date"`         // local date
	SendAt      time.Time      `json:"send_at"`      // the rule's send time that day
	Members     int            `json:"members"`      // members the rule is due for that day
	AlreadySent int            `json:"already_sent"` // of them, already served (today, once the scheduler ran)
	Sample      []SampleMember `json:"sample"`       // up to five of them
}

// NextSends is what a care rule will send in the coming days.
type NextSends struct {
	RuleID  uint64   `json:"rule_id"`
	Kind    CareKind `json:"kind"`
	Enabled bool     `json:"enabled"`
	// EventDriven rules (welcome, stage changes) send when members' events
	// happen: no dates can be told in advance, Days is empty.
	EventDriven bool          `json:"event_driven"`
	Days        []NextSendDay `json:"days"`
}

// NextSends tells, for the next days (today first) of a date rule, when
// it sends and to how many members, with a sample, whether or not the rule
// is enabled (so a marketer sees it before enabling). Nothing is written.
func (s *Care) NextSends(ctx context.Context, merchantID, ruleID uint64, days int) (NextSends, error) {
	r, err := s.Get(ctx, merchantID, ruleID)
	if err != nil {
		return NextSends{}, err
	}
	loc, err := s.zones.Location(ctx, merchantID)
	if err != nil {
		return NextSends{}, err
	}
	out := NextSends{RuleID: r.ID, Kind: r.Kind, Enabled: r.Enabled, Days: []NextSendDay{}}
	if !careSpecs[r.Kind].daily {
		out.EventDriven = true
		return out, nil
	}
	today := civil(s.now().In(loc))
	for i := range days {
		d, err := s.dayOf(ctx, r, loc, today.AddDate(0, 0, i))
		if err != nil {
			return NextSends{}, err
		}
		if d.Members > 0 {
			out.Days = append(out.Days, d)
		}
	}
	return out, nil
}

// dayOf looks up who a date rule is due for on local date day.
func (s *Care) dayOf(ctx context.Context, r CareRule, loc *time.Location, day time.Time) (NextSendDay, error) {
	items, err := s.dueOn(ctx, r, loc, day)
	if err != nil {
		return NextSendDay{}, err
	}
	open, err := s.unserved(ctx, r, items)
	if err != nil {
		return NextSendDay{}, err
	}
	d := NextSendDay{Date: day.Format(time.DateOnly), SendAt: localMidnight(day, loc).Add(time.Duration(r.SendMinute) * time.Minute).UTC(),
		Members: len(items), AlreadySent: len(items) - len(open), Sample: []SampleMember{}}
	if len(items) == 0 {
		return d, nil
	}
	ids := make([]uint64, 0, 5)
	for _, it := range items[:min(5, len(items))] {
		ids = append(ids, it.memberID)
	}
	if err := s.db.WithContext(ctx).Table("members").Select("id, name").Where("merchant_id = ? AND id IN ?", r.MerchantID, ids).
		Order("id").Find(&d.Sample).Error; err != nil {
		return NextSendDay{}, fmt.Errorf("care: sample: %w", err)
	}
	return d, nil
}

// CalendarEntry is one send on the calendar: a campaign's run (done,
// going or scheduled) or a care rule's day.
type CalendarEntry struct {
	Date       string    `json:"date"` // local date
	At         time.Time `json:"at"`
	Kind       string    `json:"kind"` // campaign or care
	CampaignID *uint64   `json:"campaign_id"`
	CareRuleID *uint64   `json:"care_rule_id"`
	Name       string    `json:"name"`
	// Status is the campaign's status, or "planned" for a care day or a
	// recurring campaign's later run still to come.
	Status string `json:"status"`
	// Members: a care day's members (due, or planned once it ran); null
	// for campaigns (the dry run counts them).
	Members *int64 `json:"members"`
}

// Calendar lists the sends of local dates [from, to]: campaigns that
// started or are scheduled in the range (with a recurring campaign's later
// runs), care runs that happened, and the coming days of enabled date
// rules with their members. Event-driven care rules have no dates.
func (s *Care) Calendar(ctx context.Context, merchantID uint64, from, to string) ([]CalendarEntry, error) {
	v := &apperr.Validation{}
	first, err1 := time.Parse(time.DateOnly, from)
	last, err2 := time.Parse(time.DateOnly, to)
	if err1 != nil {
		v.Add("from", "must be a date (YYYY-MM-DD)")
	}
	if err2 != nil {
		v.Add("to", "must be a date (YYYY-MM-DD)")
	}
	if err1 == nil && err2 == nil && (last.Before(first) || last.Sub(first) >= MaxCalendarDays*24*time.Hour) {
		v.Add("to", fmt.Sprintf("must be on or after from, at most %d days in all", MaxCalendarDays))
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	loc, err := s.zones.Location(ctx, merchantID)
	if err != nil {
		return nil, err
	}
	start, end := localMidnight(first, loc).UTC(), localMidnight(last.AddDate(0, 0, 1), loc).UTC()
	dateOf := func(t time.Time) string { return t.In(loc).Format(time.DateOnly) }
	out := []CalendarEntry{}
	var camps []Campaign
	// idx_campaigns_merchant; merchants keep hundreds of campaigns, not millions.
	if err := s.db.WithContext(ctx).Where("merchant_id = ? AND kind <> ? AND ((next_run_at >= ? AND next_run_at < ?)"+
		" OR (step_started_at >= ? AND step_started_at < ?) OR (schedule_kind = ? AND status = ? AND next_run_at < ?))",
		merchantID, KindCare, start, end, start, end, ScheduleCron, StatusScheduled, end).
		Order("id").Find(&camps).Error; err != nil {
		return nil, fmt.Errorf("campaign: calendar: %w", err)
	}
	for _, c := range camps {
		id := c.ID
		entry := func(at time.Time, status string) {
			out = append(out, CalendarEntry{Date: dateOf(at), At: at, Kind: "campaign", CampaignID: &id, Name: c.Name, Status: status})
		}
		if c.StepStartedAt != nil && !c.StepStartedAt.Before(start) && c.StepStartedAt.Before(end) {
			entry(*c.StepStartedAt, string(c.Status))
		}
		if c.NextRunAt == nil {
			continue
		}
		at := *c.NextRunAt
		if !at.Before(start) && at.Before(end) {
			entry(at, string(c.Status))
		}
		if c.ScheduleKind != ScheduleCron || c.Status != StatusScheduled {
			continue
		}
		for n := 0; n < MaxCalendarDays*24; n++ { // a cron firing hourly fills the range within the bound
			next, err := nextCron(c.Cron, at, loc)
			if err != nil || !next.Before(end) {
				break
			}
			at = next
			if !at.Before(start) {
				entry(at, "planned")
			}
		}
	}
	if err := s.careCalendar(ctx, merchantID, loc, first, last, &out); err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

// careCalendar adds the care runs of [first, last] and the coming days of
// enabled date rules.
func (s *Care) careCalendar(ctx context.Context, merchantID uint64, loc *time.Location, first, last time.Time, out *[]CalendarEntry) error {
	rules, err := s.List(ctx, merchantID)
	if err != nil {
		return err
	}
	byID := map[uint64]CareRule{}
	for _, r := range rules {
		byID[r.ID] = r
	}
	var runs []struct {
		RuleID     uint64
		LocalDate  string
		CampaignID uint64
		StartedAt  *time.Time
		Status     Status
		N          int64
	}
	// care_runs' key (merchant_id, rule_id, local_date); the deliveries by
	// uk_deliveries' campaign prefix.
	if err := s.db.WithContext(ctx).Table("care_runs r").
		Select("r.rule_id, r.local_date, r.campaign_id, c.step_started_at AS started_at, c.status, "+
			"(SELECT COUNT(*) FROM campaign_deliveries d WHERE d.campaign_id = r.campaign_id) AS n").
		Joins("JOIN campaigns c ON c.id = r.campaign_id").
		Where("r.merchant_id = ? AND r.local_date >= ? AND r.local_date <= ?", merchantID,
			first.Format(time.DateOnly), last.Format(time.DateOnly)).Order("r.local_date").Scan(&runs).Error; err != nil {
		return fmt.Errorf("care: calendar runs: %w", err)
	}
	ran := map[[2]string]bool{}
	for _, run := range runs {
		r, ok := byID[run.RuleID]
		if !ok {
			continue // a deleted rule's old runs
		}
		day, _ := time.Parse(time.DateOnly, run.LocalDate)
		at := localMidnight(day, loc).Add(time.Duration(r.SendMinute) * time.Minute).UTC()
		if run.StartedAt != nil {
			at = *run.StartedAt
		}
		ruleID, campID, n := run.RuleID, run.CampaignID, run.N
		ran[[2]string{fmt.Sprint(run.RuleID), run.LocalDate}] = true
		*out = append(*out, CalendarEntry{Date: run.LocalDate, At: at, Kind: "care", CampaignID: &campID, CareRuleID: &ruleID,
			Name: r.Name, Status: string(run.Status), Members: &n})
	}
	today := civil(s.now().In(loc))
	from := first
	if from.Before(today) {
		from = today
	}
	for _, r := range rules {
		if !r.Enabled || !careSpecs[r.Kind].daily {
			continue
		}
		for d := from; !d.After(last) && d.Before(today.AddDate(0, 0, MaxNextSendDays)); d = d.AddDate(0, 0, 1) {
			date := d.Format(time.DateOnly)
			if ran[[2]string{fmt.Sprint(r.ID), date}] {
				continue
			}
			day, err := s.dayOf(ctx, r, loc, d)
			if err != nil {
				return err
			}
			if open := int64(day.Members - day.AlreadySent); open > 0 {
				ruleID := r.ID
				*out = append(*out, CalendarEntry{Date: date, At: day.SendAt, Kind: "care", CareRuleID: &ruleID, Name: r.Name,
					Status: "planned", Members: &open})
			}
		}
	}
	return nil
}
